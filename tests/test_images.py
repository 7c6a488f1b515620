"""Tests of backend.images: JPEG, PNG 8/16-bit and DICOM decoding, and every error path."""

from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from backend.exceptions import ImageDecodeError, LabelCastError
from backend.images import decode_image, image_format, read_size

pydicom = pytest.importorskip("pydicom")
from pydicom.data import get_testdata_file  # noqa: E402


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _gradient(width: int = 64, height: int = 48) -> np.ndarray:
    return (np.add.outer(np.arange(height), np.arange(width)) * 255 // (width + height)).astype(np.uint8)


def _dicom_bytes(name: str) -> bytes:
    with open(get_testdata_file(name), "rb") as handle:
        return handle.read()


def _edited_dicom(name: str, edit) -> bytes:
    ds = pydicom.dcmread(get_testdata_file(name))
    edit(ds)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _png_with_header_size(width: int, height: int) -> bytes:
    """A valid small PNG whose IHDR claims another size (CRC recomputed)."""
    data = bytearray(_encode(Image.new("L", (8, 8)), "PNG"))
    ihdr = bytearray(data[12:29])  # chunk type + 13 bytes of IHDR data
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF)
    return bytes(data)


# --- JPEG and PNG --------------------------------------------------------------------------


def test_grayscale_jpeg_stays_grayscale():
    """A grayscale JPEG decodes to mode L with its size and close to its pixels."""
    pixels = _gradient()
    image = decode_image(_encode(Image.fromarray(pixels), "JPEG", quality=95), "a.jpg")
    assert image.mode == "L" and image.size == (64, 48)
    assert np.abs(np.asarray(image, dtype=int) - pixels).mean() < 2


def test_rgb_jpeg_decodes_to_rgb():
    """A colour JPEG decodes to mode RGB."""
    image = decode_image(_encode(Image.new("RGB", (20, 10), (200, 30, 30)), "JPEG"))
    assert image.mode == "RGB" and image.size == (20, 10)
    assert abs(int(np.asarray(image)[5, 10, 0]) - 200) < 6


def test_png_8bit_roundtrip_is_exact():
    """An 8-bit grayscale PNG decodes to exactly its pixels."""
    pixels = _gradient()
    image = decode_image(_encode(Image.fromarray(pixels), "PNG"))
    assert image.mode == "L"
    np.testing.assert_array_equal(np.asarray(image), pixels)


def test_png_16bit_is_stretched_to_8bit():
    """A 16-bit PNG (12-bit values) maps its own min..max linearly onto 0..255."""
    values = np.linspace(100, 4095, 64 * 48).reshape(48, 64).astype(np.uint16)
    image16 = Image.fromarray(values)
    data = _encode(image16, "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    image = decode_image(data, "x16.png")
    assert image.mode == "L"
    out = np.asarray(image, dtype=float)
    expected = (values.astype(float) - 100) / (4095 - 100) * 255
    assert np.abs(out - expected).max() <= 0.51
    assert out.min() == 0 and out.max() == 255


def test_rgba_and_palette_png_become_rgb():
    """RGBA and palette PNGs decode to RGB."""
    rgba = decode_image(_encode(Image.new("RGBA", (4, 4), (1, 2, 3, 128)), "PNG"))
    palette = decode_image(_encode(Image.new("RGB", (4, 4), (9, 9, 9)).convert("P"), "PNG"))
    assert rgba.mode == "RGB" and palette.mode == "RGB"


def test_exif_orientation_is_applied():
    """A JPEG tagged 'rotate 90°' (EXIF orientation 6) comes out rotated."""
    exif = Image.Exif()
    exif[0x0112] = 6
    data = _encode(Image.fromarray(_gradient(40, 20)), "JPEG", exif=exif.tobytes())
    assert decode_image(data).size == (20, 40)


def test_jpeg_draft_mode_decodes_smaller_but_not_below_target():
    """With target_size, a large JPEG is decoded at reduced scale, never below the target."""
    big = Image.fromarray(np.tile(_gradient(256, 256), (8, 8)))  # 2048 × 2048
    data = _encode(big, "JPEG")
    full = decode_image(data)
    small = decode_image(data, target_size=224)
    assert full.size == (2048, 2048)
    assert small.size == (256, 256)


def test_draft_mode_leaves_png_alone():
    """target_size does not change the size of non-JPEG images."""
    data = _encode(Image.new("L", (600, 500)), "PNG")
    assert decode_image(data, target_size=100).size == (600, 500)


# --- DICOM ----------------------------------------------------------------------------------


def test_real_chest_radiograph_dicom():
    """RG1_UNCR.dcm (15-bit MONOCHROME1 chest X-ray) decodes to an 8-bit L image of its size."""
    image = decode_image(_dicom_bytes("RG1_UNCR.dcm"), "RG1_UNCR.dcm")
    assert image.mode == "L" and image.size == (1841, 1955)
    pixels = np.asarray(image)
    assert pixels.std() > 10


def test_monochrome1_is_inverted_against_monochrome2():
    """The same pixels tagged MONOCHROME2 decode to 255 minus the MONOCHROME1 result."""
    mono1 = np.asarray(decode_image(_dicom_bytes("RG1_UNCR.dcm")), dtype=int)

    def to_mono2(ds):
        ds.PhotometricInterpretation = "MONOCHROME2"

    mono2 = np.asarray(decode_image(_edited_dicom("RG1_UNCR.dcm", to_mono2)), dtype=int)
    np.testing.assert_array_equal(mono1, 255 - mono2)


def test_monochrome1_bright_raw_values_are_dark():
    """In MONOCHROME1 the largest raw value is displayed darkest."""
    ds = pydicom.dcmread(get_testdata_file("RG1_UNCR.dcm"))
    raw = ds.pixel_array
    image = np.asarray(decode_image(_dicom_bytes("RG1_UNCR.dcm")))
    assert image[raw == raw.max()].mean() < image[raw == raw.min()].mean()


@pytest.mark.parametrize(
    "name, tolerance",
    [
        pytest.param("RG1_J2KR.dcm", 0, id="jpeg2000-lossless"),
        pytest.param("RG1_J2KI.dcm", 3, id="jpeg2000-lossy"),
    ],
)
def test_jpeg2000_variants_match_uncompressed(name, tolerance):
    """The JPEG 2000 variants of RG1 decode (openjpeg plugin) to the uncompressed pixels."""
    reference = np.asarray(decode_image(_dicom_bytes("RG1_UNCR.dcm")), dtype=int)
    image = np.asarray(decode_image(_dicom_bytes(name), name), dtype=int)
    assert image.shape == reference.shape
    assert np.abs(image - reference).mean() <= tolerance


def test_rescale_slope_and_intercept_are_applied():
    """Doubling the rescale slope and the window gives the same displayed image."""
    reference = np.asarray(decode_image(_dicom_bytes("RG1_UNCR.dcm")), dtype=int)

    def rescale(ds):
        ds.RescaleSlope, ds.RescaleIntercept = 2, 0
        ds.WindowCenter, ds.WindowWidth = 2 * float(ds.WindowCenter), 2 * float(ds.WindowWidth) - 1

    image = np.asarray(decode_image(_edited_dicom("RG1_UNCR.dcm", rescale)), dtype=int)
    assert np.abs(image - reference).max() <= 1


def test_window_clips_outside_values():
    """A narrow window saturates values outside it to black and white."""

    def narrow(ds):
        ds.WindowCenter, ds.WindowWidth = 10000, 2000

    image = np.asarray(decode_image(_edited_dicom("RG1_UNCR.dcm", narrow)))
    raw = pydicom.dcmread(get_testdata_file("RG1_UNCR.dcm")).pixel_array
    assert (image[raw > 11000] == 0).all()  # MONOCHROME1: high values → black
    assert (image[raw < 9000] == 255).all()


def test_dicom_without_window_is_stretched():
    """Without a window, DICOM pixels are stretched from their min to their max."""

    def drop_window(ds):
        del ds.WindowCenter
        del ds.WindowWidth

    image = np.asarray(decode_image(_edited_dicom("RG1_UNCR.dcm", drop_window)))
    assert image.min() == 0 and image.max() == 255


def test_voi_lut_sequence_is_used():
    """A VOI LUT sequence takes precedence over the window."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    def add_lut(ds):
        item = Dataset()
        item.add_new(0x00283002, "US", [256, 0, 8])  # LUT Descriptor: 256 entries, first 0, 8 bits
        item.add_new(0x00283006, "US", [255 - i for i in range(256)])  # LUT Data: inverting
        ds.VOILUTSequence = Sequence([item])
        ds.PhotometricInterpretation = "MONOCHROME2"

    image = np.asarray(decode_image(_edited_dicom("RG1_UNCR.dcm", add_lut)))
    raw = pydicom.dcmread(get_testdata_file("RG1_UNCR.dcm")).pixel_array
    assert (image[raw >= 255] == 0).all()


def test_jpeg_lossless_dicom_decodes_or_names_the_plugin():
    """JPEG Lossless DICOM decodes where python-gdcm is installed, else the error names it."""
    data = _dicom_bytes("JPEG-LL.dcm")
    try:
        import gdcm  # noqa: F401
    except ImportError:
        with pytest.raises(ImageDecodeError, match="JPEG Lossless.*python-gdcm"):
            decode_image(data, "JPEG-LL.dcm")
    else:
        assert decode_image(data, "JPEG-LL.dcm").size == (256, 1024)


def test_multiframe_dicom_gives_the_first_frame():
    """A two-frame DICOM decodes to its first frame."""
    ds = pydicom.dcmread(get_testdata_file("SC_rgb_2frame.dcm"))
    first = ds.pixel_array[0]
    image = decode_image(_dicom_bytes("SC_rgb_2frame.dcm"), "two.dcm")
    np.testing.assert_array_equal(np.asarray(image), first)


def test_rgb_dicom_decodes_to_rgb():
    """A colour DICOM (8- and 16-bit) decodes to RGB."""
    for name in ("SC_rgb.dcm", "SC_rgb_16bit.dcm"):
        image = decode_image(_dicom_bytes(name), name)
        assert image.mode == "RGB" and image.size == (100, 100)


def test_preambleless_dicom_is_recognised_by_suffix():
    """A DICOM dataset without the 128-byte preamble decodes when its name ends in .dcm."""
    data = _dicom_bytes("MR_small.dcm")[132:]  # drop the preamble and the DICM marker
    assert data[128:132] != b"DICM"
    assert decode_image(data, "scan.dcm").size == (64, 64)
    with pytest.raises(ImageDecodeError):
        decode_image(data, "scan.bin")


# --- error paths ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, filename, fragment",
    [
        pytest.param(b"", "e.png", "empty", id="empty"),
        pytest.param(b"hello, not an image at all", "t.txt", "not a supported image", id="text"),
        pytest.param(_encode(Image.new("L", (4, 4)), "GIF"), "x.gif", "not a supported image", id="gif"),
        pytest.param(
            _encode(Image.fromarray(_gradient(200, 200)), "JPEG")[:400],
            "t.jpg",
            "truncated",
            id="truncated-jpeg",
        ),
        pytest.param(
            _encode(Image.fromarray(_gradient(200, 200)), "PNG")[:300],
            "t.png",
            "truncated",
            id="truncated-png",
        ),
        pytest.param(b"\xff\xd8\xff" + bytes(500), "junk.jpg", "not a supported image", id="jpeg-magic-junk"),
    ],
)
def test_bad_bytes_raise_image_decode_error(data, filename, fragment):
    """Empty, non-image, unsupported and truncated bytes raise ImageDecodeError naming the file."""
    with pytest.raises(ImageDecodeError) as info:
        decode_image(data, filename)
    assert fragment in str(info.value) and filename in str(info.value)


def test_image_decode_error_is_a_labelcast_error():
    """ImageDecodeError is the one documented type, a LabelCastError and a ValueError."""
    assert issubclass(ImageDecodeError, LabelCastError) and issubclass(ImageDecodeError, ValueError)


def test_png_bomb_is_refused_from_the_header():
    """A PNG claiming 100,000 × 100,000 pixels is refused at once without decoding."""
    data = _png_with_header_size(100_000, 100_000)
    start = time.perf_counter()
    with pytest.raises(ImageDecodeError, match="decompression bomb"):
        decode_image(data, "bomb.png")
    assert time.perf_counter() - start < 0.5


def test_pixel_limit_is_configurable():
    """max_pixels refuses an ordinary image that exceeds it and names both numbers."""
    data = _encode(Image.new("L", (100, 100)), "PNG")
    with pytest.raises(ImageDecodeError, match=r"10,000 pixels exceeds the limit of 9,999"):
        decode_image(data, max_pixels=9_999)
    assert decode_image(data, max_pixels=10_000).size == (100, 100)


def test_dicom_bomb_is_refused_before_decoding():
    """A DICOM whose header claims 60,000 × 60,000 pixels is refused from the header."""

    def huge(ds):
        ds.Rows, ds.Columns = 60_000, 60_000

    with pytest.raises(ImageDecodeError, match="decompression bomb"):
        decode_image(_edited_dicom("MR_small.dcm", huge), "huge.dcm")


def test_dicom_without_pixel_data():
    """A DICOM without PixelData raises ImageDecodeError saying so."""

    def strip(ds):
        del ds.PixelData

    with pytest.raises(ImageDecodeError, match="without pixel data"):
        decode_image(_edited_dicom("MR_small.dcm", strip), "nopix.dcm")


def test_truncated_dicom_raises():
    """A DICOM cut in the middle of its pixel data raises ImageDecodeError."""
    data = _dicom_bytes("RG1_UNCR.dcm")
    with pytest.raises(ImageDecodeError):
        decode_image(data[: len(data) // 2], "cut.dcm")


def test_truncated_jpeg2000_dicom_raises():
    """A JPEG 2000 DICOM with its codestream cut short raises ImageDecodeError."""
    data = _dicom_bytes("RG1_J2KR.dcm")
    with pytest.raises(ImageDecodeError):
        decode_image(data[: len(data) // 3], "cut_j2k.dcm")


def test_non_bytes_input_is_rejected():
    """Passing a str instead of bytes raises ImageDecodeError naming the type."""
    with pytest.raises(ImageDecodeError, match="expected bytes, got str"):
        decode_image("not bytes")  # type: ignore[arg-type]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    prefix=st.sampled_from([b"", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", bytes(128) + b"DICM"]),
    body=st.binary(max_size=300),
)
def test_random_bytes_only_ever_raise_image_decode_error(prefix, body):
    """Arbitrary bytes behind any magic number either decode or raise ImageDecodeError."""
    try:
        image = decode_image(prefix + body, "fuzz")
    except ImageDecodeError:
        return
    assert image.mode in ("L", "RGB")


# --- header helpers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, filename, expected",
    [
        pytest.param(_encode(Image.new("L", (2, 2)), "JPEG"), None, "jpeg", id="jpeg"),
        pytest.param(_encode(Image.new("L", (2, 2)), "PNG"), None, "png", id="png"),
        pytest.param(bytes(128) + b"DICM" + bytes(10), None, "dicom", id="dicom-preamble"),
        pytest.param(b"\x08\x00\x05\x00", "x.DCM", "dicom", id="dicom-suffix"),
        pytest.param(b"GIF89a", "x.gif", None, id="gif"),
        pytest.param(b"", "x.dcm", None, id="empty"),
    ],
)
def test_image_format_sniffing(data, filename, expected):
    """image_format names JPEG, PNG and DICOM from magic bytes or a .dcm name."""
    assert image_format(data, filename) == expected


def test_read_size_from_headers():
    """read_size gives (width, height) of JPEG, PNG and DICOM without decoding."""
    assert read_size(_encode(Image.new("L", (30, 20)), "JPEG")) == (30, 20)
    assert read_size(_dicom_bytes("RG1_UNCR.dcm"), "RG1_UNCR.dcm") == (1841, 1955)
    with pytest.raises(ImageDecodeError, match="decompression bomb"):
        read_size(_png_with_header_size(100_000, 100_000))
    with pytest.raises(ImageDecodeError):
        read_size(b"nope")


def test_chest_xray_png_fixture_is_a_real_radiograph(chest_xray_png_bytes):
    """The shared chest_xray_png_bytes fixture is a decodable grayscale PNG of about 300 px."""
    image = decode_image(chest_xray_png_bytes, "chest.png")
    assert image_format(chest_xray_png_bytes) == "png"
    assert image.mode == "L" and max(image.size) == 320


# --- round 2 (issue 13) ------------------------------------------------------------------------


def _deflated_dicom(private_bytes: int) -> bytes:
    """A Deflated Explicit VR Little Endian DICOM: an 8 × 8 image and a private element of
    ``private_bytes`` zeros (which deflate to almost nothing)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import DeflatedExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Rows = ds.Columns = 8
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.arange(64, dtype=np.uint8).tobytes()
    if private_bytes:
        ds.private_block(0x0009, "LabelCast test", create=True).add_new(0x01, "OB", b"\0" * private_bytes)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_deflated_dicom_bomb_is_refused_before_inflating_it():
    """A deflated DICOM whose dataset inflates past MAX_INFLATED_BYTES (a 200 MB private element
    in a 200 KB file) is refused, by the header check and the decoder, without holding it."""
    import tracemalloc

    from backend.images import MAX_INFLATED_BYTES, read_size

    bomb = _deflated_dicom(MAX_INFLATED_BYTES + 64 * 1024 * 1024)
    assert len(bomb) < 1_000_000
    tracemalloc.start()
    try:
        with pytest.raises(ImageDecodeError, match="inflates to more than"):
            decode_image(bomb, "bomb.dcm")
        with pytest.raises(ImageDecodeError, match="inflates to more than"):
            read_size(bomb, "bomb.dcm")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024 * 1024, f"{peak:,} bytes held while refusing"


def test_small_deflated_dicom_still_decodes():
    """An ordinary deflated DICOM decodes as before."""
    image = decode_image(_deflated_dicom(1000), "small.dcm")
    assert image.size == (8, 8) and image.mode == "L"
