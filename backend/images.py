"""Image bytes to pixels: JPEG, PNG (8- and 16-bit) and DICOM, safely.

:func:`decode_image` is the one entry point. It returns a PIL image in mode ``"L"`` (grayscale,
8-bit) or ``"RGB"``; grayscale stays grayscale until the encoder's preprocessing. Every
failure, whatever the decoder underneath, raises :class:`backend.exceptions.ImageDecodeError`
with the file name (when known) and what was wrong: empty bytes, bytes that are no supported
image, corrupt or truncated data, a DICOM without pixel data, or more pixels than
``max_pixels`` (a decompression bomb, refused from the header before any pixel is decoded).

Bit depth: images with more than 8 bits per sample are mapped to 8 bits here, where the
metadata that says how to display them is still known. DICOM goes through the modality LUT
(rescale slope/intercept), then the VOI LUT or the first window (PS3.3 C.11.2.1.2), and
MONOCHROME1 is inverted so that bone is bright. A 16-bit PNG, or a DICOM without any window,
is stretched from its own minimum to its own maximum. Every encoder LabelCast ships was trained
on 8-bit images.

Importing this module imports Pillow and NumPy only; pydicom is imported on the first DICOM.
"""

from __future__ import annotations

import io
import pathlib
import struct
import zlib

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from backend.exceptions import ImageDecodeError

DEFAULT_MAX_PIXELS = 50_000_000
"""Largest accepted image, in pixels per frame (width × height). A 4,300 × 3,500 chest
radiograph has 15 million; anything above 50 million is treated as a decompression bomb."""

MAX_INFLATED_BYTES = 128 * 1024 * 1024
"""Largest dataset a deflate-compressed DICOM (Deflated Explicit VR Little Endian) may inflate
to, in bytes: as large as the largest image download (``backend.fetch.MAX_IMAGE_BYTES``), so
a deflated file costs no more than an uncompressed one. pydicom inflates the whole dataset
before reading any of it (a 1.4 MB file held 2 GB), so the size is measured first, by
inflating in chunks that are thrown away."""

DEFLATED_TRANSFER_SYNTAX = "1.2.840.10008.1.2.1.99"
"""Deflated Explicit VR Little Endian: everything after the file meta group is deflated."""

PIL_FORMATS = ("JPEG", "PNG", "TIFF", "BMP", "WEBP")
"""Pillow formats that :func:`decode_image` opens; others (GIF, PSD, ...) are refused."""

DICOM_SUFFIXES = (".dcm", ".dicom", ".dic")
"""File name endings that mark DICOM files written without the 128-byte preamble."""

_GRAY_MODES = ("I", "F")


def image_format(data: bytes, filename: str | None = None) -> str | None:
    """Name the container format of image bytes from their first bytes.

    Parameters
    ----------
    data : bytes
        The encoded image.
    filename : str, optional
        Its name; a DICOM suffix (:data:`DICOM_SUFFIXES`) marks preamble-less DICOM.

    Returns
    -------
    str or None
        ``"jpeg"``, ``"png"``, ``"dicom"``, or None for anything else (including empty bytes).
    """
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[128:132] == b"DICM":
        return "dicom"
    if data and filename and pathlib.PurePath(filename).suffix.lower() in DICOM_SUFFIXES:
        return "dicom"
    return None


def decode_image(
    data: bytes,
    filename: str | None = None,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    target_size: int | None = None,
) -> Image.Image:
    """Decode JPEG, PNG or DICOM bytes into an 8-bit grayscale or RGB PIL image.

    Parameters
    ----------
    data : bytes
        The encoded image.
    filename : str, optional
        Where the bytes came from; used in error messages and to recognise DICOM files
        without a preamble.
    max_pixels : int, default=DEFAULT_MAX_PIXELS
        Largest accepted width × height (per frame), checked from the header.
    target_size : int, optional
        The smallest side the caller will resize to. JPEGs much larger than that are decoded
        at a reduced scale (Pillow draft mode; the result is never smaller than
        ``target_size`` on either side).

    Returns
    -------
    PIL.Image.Image
        Mode ``"L"`` or ``"RGB"``, EXIF orientation applied. DICOM multi-frame images give
        their first frame.

    Raises
    ------
    ImageDecodeError
        If the bytes are empty, not a supported image, corrupt or truncated, a DICOM without
        pixel data, or larger than ``max_pixels``.
    """
    name = repr(filename) if filename else "image"
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ImageDecodeError(f"{name}: expected bytes, got {type(data).__name__}")
    if len(data) == 0:
        raise ImageDecodeError(f"{name}: empty (0 bytes)")
    if image_format(data, filename) == "dicom":
        return _decode_dicom(bytes(data), name, max_pixels)
    return _decode_pil(bytes(data), name, max_pixels, target_size)


def read_size(data: bytes, filename: str | None = None, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """Width and height from the header alone, checked against ``max_pixels``.

    Costs tens of microseconds: no pixel is decoded. Used before handing bytes to a decoder
    that has no size limit of its own (nvJPEG).

    Returns
    -------
    (int, int)
        Width and height in pixels.

    Raises
    ------
    ImageDecodeError
        If the header is unreadable or the image exceeds ``max_pixels``.
    """
    name = repr(filename) if filename else "image"
    if not data:
        raise ImageDecodeError(f"{name}: empty (0 bytes)")
    if image_format(data, filename) == "dicom":
        try:
            ds = _read_dicom(bytes(data), name, stop_before_pixels=True)
            width, height = int(ds.Columns), int(ds.Rows)
        except ImageDecodeError:
            raise
        except Exception as exc:
            raise ImageDecodeError(f"{name}: unreadable DICOM header: {exc}") from None
    else:
        Image.init()
        try:
            with Image.open(io.BytesIO(bytes(data)), formats=PIL_FORMATS) as image:
                width, height = image.size
        except Exception as exc:
            raise ImageDecodeError(f"{name}: not a supported image header: {exc}") from None
    _check_pixels(name, width, height, max_pixels)
    return width, height


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _check_pixels(name: str, width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"{name}: invalid size {width}×{height} in the header")
    if width * height > max_pixels:
        raise ImageDecodeError(
            f"{name}: {width}×{height} = {width * height:,} pixels exceeds the limit of "
            f"{max_pixels:,} (possible decompression bomb); refusing to decode it"
        )


def _decode_pil(data: bytes, name: str, max_pixels: int, target_size: int | None) -> Image.Image:
    Image.init()  # registers every Pillow plugin once (MPO, WEBP, ...); cheap afterwards
    try:
        image: Image.Image = Image.open(io.BytesIO(data), formats=PIL_FORMATS)
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(f"{name}: refused as a decompression bomb ({exc})") from None
    except UnidentifiedImageError:
        raise ImageDecodeError(
            f"{name}: not a supported image ({len(data):,} bytes; expected JPEG, PNG or DICOM)"
        ) from None
    except Exception as exc:  # Pillow raises many types for unreadable headers
        raise ImageDecodeError(
            f"{name}: not a supported image ({len(data):,} bytes; expected JPEG, PNG or DICOM): {exc}"
        ) from None
    _check_pixels(name, image.width, image.height, max_pixels)
    try:
        if target_size and image.format in ("JPEG", "MPO"):
            image.draft(image.mode, (target_size, target_size))
        image.load()
        image = ImageOps.exif_transpose(image)
    except Exception as exc:  # truncated or corrupt data, whatever the decoder
        raise ImageDecodeError(f"{name}: corrupt or truncated {image.format} data: {exc}") from None
    return to_l_or_rgb(image, name)


def to_l_or_rgb(image: Image.Image, name: str = "image") -> Image.Image:
    """An image in mode ``"L"`` or ``"RGB"``: 16-bit and float grayscale stretched from their
    own min..max to 8 bits, alpha and palettes dropped to RGB.

    Raises
    ------
    ImageDecodeError
        For a pixel mode with no sensible 8-bit form.
    """
    if image.mode in ("L", "RGB"):
        return image
    if image.mode in ("1", "LA"):
        return image.convert("L")
    if image.mode in _GRAY_MODES or image.mode.startswith("I;16"):
        return Image.fromarray(_stretch_to_uint8(np.asarray(image)), mode="L")
    if image.mode in ("P", "PA", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"):
        return image.convert("RGB")
    raise ImageDecodeError(f"{name}: unsupported pixel mode {image.mode!r}")


def _stretch_to_uint8(array: np.ndarray) -> np.ndarray:
    """Map an array linearly from its own [min, max] to uint8 [0, 255] (constant → 0)."""
    values = np.asarray(array, dtype=np.float32)
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    return _unit_to_uint8((values - low) / (high - low))


def _unit_to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values * 255.0), 0, 255).astype(np.uint8)


# --- DICOM ----------------------------------------------------------------------------------


def _decode_dicom(data: bytes, name: str, max_pixels: int) -> Image.Image:
    from pydicom.pixels import pixel_array

    try:
        ds = _read_dicom(data, name)
    except ImageDecodeError:
        raise
    except Exception as exc:
        raise ImageDecodeError(f"{name}: corrupt DICOM header: {exc}") from None
    if "PixelData" not in ds:
        raise ImageDecodeError(
            f"{name}: DICOM without pixel data (SOP class "
            f"{getattr(ds.get('SOPClassUID'), 'name', 'unknown')}); expected an image"
        )
    try:
        rows, columns = int(ds.Rows), int(ds.Columns)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        photometric = str(ds.PhotometricInterpretation).upper()
    except Exception as exc:
        raise ImageDecodeError(f"{name}: DICOM header lacks the image size: {exc}") from None
    _check_pixels(name, columns, rows, max_pixels)
    try:
        frame = pixel_array(ds, index=0)
    except Exception as exc:
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        syntax_name = getattr(syntax, "name", "unknown transfer syntax")
        raise ImageDecodeError(
            f"{name}: cannot decode DICOM pixel data ({syntax_name}): {_first_line(exc)}. "
            "Compressed syntaxes need a decoder plugin: pylibjpeg-openjpeg (JPEG 2000) or "
            "python-gdcm (JPEG lossless, JPEG-LS, JPEG 2000)"
        ) from None
    if samples == 1:
        pixels = _dicom_gray_to_unit(frame, ds)
        if photometric == "MONOCHROME1":
            pixels = 1.0 - pixels
        return Image.fromarray(_unit_to_uint8(pixels), mode="L")
    if photometric in ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_RCT", "YBR_ICT"):
        bits = int(ds.get("BitsStored", 8) or 8)
        rgb = np.asarray(frame, dtype=np.float32) / float(2**bits - 1)
        return Image.fromarray(_unit_to_uint8(rgb), mode="RGB")
    raise ImageDecodeError(
        f"{name}: unsupported DICOM photometric interpretation {photometric!r}; expected "
        "MONOCHROME1, MONOCHROME2 or RGB"
    )


def _read_dicom(data: bytes, name: str, **kwargs):
    """``pydicom.dcmread`` of the bytes, once a deflated dataset is known to inflate to at most
    :data:`MAX_INFLATED_BYTES` (pydicom would inflate it all first)."""
    import pydicom

    if DEFLATED_TRANSFER_SYNTAX.encode() in data[:4096]:
        start = _deflated_dataset_start(data)
        if start is None:  # pydicom might still see it deflated, and inflate it all
            raise ImageDecodeError(f"{name}: names the deflated transfer syntax, but not in a readable file meta group")
        _check_inflated_size(data[start:], name)
    return pydicom.dcmread(io.BytesIO(data), force=True, **kwargs)


_LONG_LENGTH_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}


def _deflated_dataset_start(data: bytes) -> int | None:
    """Where the deflated dataset begins when the file meta group (always Explicit VR Little
    Endian, PS3.10 7.1) names the deflated transfer syntax; None otherwise."""
    offset = 132 if data[128:132] == b"DICM" else 0
    syntax = None
    while offset + 8 <= len(data):
        group, element = struct.unpack_from("<HH", data, offset)
        if group != 0x0002:
            break
        vr = data[offset + 4 : offset + 6]
        try:
            if vr in _LONG_LENGTH_VRS:
                (length,) = struct.unpack_from("<I", data, offset + 8)
                header = 12
            else:
                (length,) = struct.unpack_from("<H", data, offset + 6)
                header = 8
        except struct.error:  # cut off inside the group
            return None
        if element == 0x0010:
            syntax = data[offset + header : offset + header + length].rstrip(b"\0 ").decode("ascii", "replace")
        offset += header + length
    return offset if syntax == DEFLATED_TRANSFER_SYNTAX else None


def _check_inflated_size(deflated: bytes, name: str, limit: int = MAX_INFLATED_BYTES) -> None:
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    size, pending = 0, deflated
    try:
        while True:
            out = inflater.decompress(pending, 1 << 20)
            size += len(out)
            if size > limit:
                raise ImageDecodeError(
                    f"{name}: deflated DICOM inflates to more than {limit:,} bytes "
                    f"({len(deflated):,} compressed; possible decompression bomb); refusing to read it"
                )
            pending = inflater.unconsumed_tail
            if inflater.eof or not (out or pending):
                return
    except zlib.error as exc:
        raise ImageDecodeError(f"{name}: corrupt deflated DICOM dataset: {exc}") from None


def _dicom_gray_to_unit(frame: np.ndarray, ds) -> np.ndarray:
    """Modality LUT, then VOI LUT or window, to float values in [0, 1] (MONOCHROME2 sense)."""
    from pydicom.pixels import apply_modality_lut

    values = np.asarray(apply_modality_lut(frame, ds), dtype=np.float64)
    if "VOILUTSequence" in ds and len(ds.VOILUTSequence):
        return _voi_lut(values, ds.VOILUTSequence[0])
    center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    if center is not None and width is not None and width > 0:
        function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
        return _window(values, center, width, function)
    return _stretch_to_uint8(values).astype(np.float64) / 255.0


def _voi_lut(values: np.ndarray, item) -> np.ndarray:
    """Apply the first VOI LUT (PS3.3 C.11.2.1.1) onto [0, 1].

    Done here rather than with ``pydicom.pixels.apply_voi``, which overflows for 8-bit LUTs
    fed with values above 255 (pydicom 3.0).
    """
    entries, first, bits = (int(v) for v in item.LUTDescriptor)
    entries = entries or 65536
    data = item.LUTData
    if isinstance(data, (bytes, bytearray)):
        lut = np.frombuffer(data, dtype="<u2")[:entries]
    else:
        lut = np.atleast_1d(np.asarray(data, dtype=np.float64))
    index = np.clip(np.rint(values) - first, 0, len(lut) - 1).astype(np.int64)
    return lut[index].astype(np.float64) / float(2**bits - 1)


def _first(value) -> float | None:
    """The first value of a possibly multi-valued DICOM number, or None."""
    if value is None:
        return None
    if not isinstance(value, (int, float, str)):
        if len(value) == 0:
            return None
        value = value[0]
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _window(values: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    """DICOM VOI window (PS3.3 C.11.2.1.2/3) onto [0, 1]."""
    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(-4.0 * (values - center) / width))
    if function == "LINEAR_EXACT":
        return np.clip((values - (center - width / 2.0)) / width, 0.0, 1.0)
    if width <= 1:
        return (values > center - 0.5).astype(np.float64)
    return np.clip((values - (center - 0.5)) / (width - 1.0) + 0.5, 0.0, 1.0)
