"""Tests of backend.encoders.device_decode: the header check, the decoder and chunked decoding.

There is no GPU here: :class:`JpegDecoder` runs on the CPU (``torchvision.io.decode_jpeg`` with
libjpeg-turbo, the same call that is nvJPEG on CUDA). That stands in for the GPU decoder; the
CUDA stream handling is not exercised.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from backend.encoders.device_decode import (
    JpegDecoder,
    decode_on_device,
    device_decodable,
    jpeg_frame,
)
from backend.encoders.preprocess import Preprocess
from backend.exceptions import ImageDecodeError


def _gray(seed: int = 0, size=(40, 30)) -> Image.Image:
    return Image.fromarray((np.random.default_rng(seed).random(size[::-1]) * 255).astype(np.uint8))


def _jpeg(image: Image.Image, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", **kwargs)
    return buffer.getvalue()


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "Acme"  # a tag before Orientation, so the IFD is walked
    exif[0x0112] = orientation
    return exif.tobytes()


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def cut_jpeg(image: Image.Image) -> bytes:
    """A JPEG whose end-of-image marker is replaced by zero padding: Pillow decodes every pixel,
    ``torchvision.io.decode_jpeg`` refuses it ("Image is incomplete or truncated")."""
    return _jpeg(image)[:-2] + b"\0" * 10


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(_jpeg(_gray()), True, id="baseline-gray"),
        pytest.param(_jpeg(_gray().convert("RGB")), True, id="baseline-rgb"),
        pytest.param(_jpeg(_gray(), progressive=True), True, id="progressive"),
        pytest.param(_jpeg(_gray(), exif=_exif(1)), True, id="exif-upright"),
        pytest.param(_jpeg(_gray(), exif=_exif(6)), False, id="exif-rotated"),
        pytest.param(_jpeg(_gray().convert("CMYK")), False, id="cmyk"),
        pytest.param(_png(_gray()), False, id="png"),
        pytest.param(_jpeg(_gray())[:20], False, id="cut-before-frame"),
        pytest.param(b"", False, id="empty"),
    ],
)
def test_device_decodable_reads_the_header(data, expected):
    """8-bit baseline/progressive, gray or YCbCr, upright JPEGs go to the device; others not."""
    assert device_decodable(data) is expected


def test_jpeg_frame_names_the_coding():
    """The frame of a progressive RGB JPEG: marker 0xC2, 8 bits, 3 components."""
    frame = jpeg_frame(_jpeg(_gray().convert("RGB"), progressive=True))
    assert (frame.marker, frame.precision, frame.components, frame.orientation) == (0xC2, 8, 3, 1)


def test_jpeg_frame_of_a_12_bit_header_is_refused():
    """A 12-bit precision in the frame header (patched in) is not for the device."""
    data = bytearray(_jpeg(_gray()))
    sof = data.index(b"\xff\xc0")
    data[sof + 4] = 12
    assert jpeg_frame(bytes(data)).precision == 12 and not device_decodable(bytes(data))


def test_the_decoder_gives_uint8_tensors_like_pillow():
    """Gray stays one channel, RGB three, pixels as Pillow decodes them (both libjpeg-turbo)."""
    gray, rgb = _gray(1, (50, 20)), _gray(2).convert("RGB")
    images = JpegDecoder("cpu")([_jpeg(gray), _jpeg(rgb)])
    assert [tuple(t.shape) for t in images] == [(1, 20, 50), (3, 30, 40)]
    decoded = np.asarray(Image.open(io.BytesIO(_jpeg(gray))))
    np.testing.assert_array_equal(images[0][0].numpy(), decoded)


def test_the_decoder_raises_for_what_it_cannot_take():
    """A JPEG decode_jpeg refuses raises ImageDecodeError naming the device and the reason."""
    with pytest.raises(ImageDecodeError, match="on cpu refused 1 JPEG.*incomplete or truncated"):
        JpegDecoder("cpu")([cut_jpeg(_gray())])


def test_decode_on_device_returns_what_it_refused_and_preprocesses_the_rest():
    """In a chunk with one refused JPEG, the others are decoded (retried one by one) and
    preprocessed like Preprocess.tensor_batch; the refused one comes back with its reason."""
    import torch

    preprocess = Preprocess(16, crop=16)
    datas = [_jpeg(_gray(1)), cut_jpeg(_gray(2)), _jpeg(_gray(3).convert("RGB"))]
    out = decode_on_device(JpegDecoder("cpu"), datas, preprocess)
    assert out.taken == [0, 2] and list(out.refused) == [1] and "truncated" in out.refused[1]
    expected = preprocess.tensor_batch(JpegDecoder("cpu")([datas[0], datas[2]]))
    torch.testing.assert_close(out.pixels, expected)


def test_a_chunk_that_runs_the_device_out_of_memory_is_decoded_one_by_one():
    """A stand-in for nvJPEG running out of GPU memory (no GPU here: the CPU decoder raises
    torch.cuda.OutOfMemoryError for chunks of more than one image, and for one large image even
    alone): the chunk is retried image by image, and the image that still does not fit is handed
    back for the CPU decoders with the reason, not raised."""
    import torch

    decoder = JpegDecoder("cpu")
    large = _jpeg(_gray(9, size=(64, 48)))

    def small_device(datas):
        if len(datas) > 1 or datas[0] == large:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return decoder(datas)

    preprocess = Preprocess(8, crop=8)
    datas = [_jpeg(_gray(1)), large, _jpeg(_gray(3))]
    out = decode_on_device(small_device, datas, preprocess)
    assert out.taken == [0, 2] and list(out.refused) == [1] and "out of device memory" in out.refused[1]
    torch.testing.assert_close(out.pixels, preprocess.tensor_batch(decoder([datas[0], datas[2]])))


def test_decode_on_device_cuts_chunks_by_pixels():
    """With a limit of two images' pixels, five images go to the decoder in three calls."""
    calls = []
    decoder = JpegDecoder("cpu")

    def counting(datas):
        calls.append(len(datas))
        return decoder(datas)

    datas = [_jpeg(_gray(i)) for i in range(5)]
    out = decode_on_device(counting, datas, Preprocess(8, crop=8), [1200] * 5, chunk_pixels=2400)
    assert calls == [2, 2, 1] and out.taken == [0, 1, 2, 3, 4] and tuple(out.pixels.shape) == (5, 3, 8, 8)


def test_device_preprocessing_is_within_a_level_of_the_cpu_path():
    """The real radiograph as a 2048 × 2457 JPEG, preprocessed for a 224-px CLIP: decoded whole
    and resized by Preprocess.tensor_batch (the device route) it differs from the CPU route
    (Pillow draft-mode decoding, Pillow resize) by under one 8-bit level on average."""
    from pydicom.data import get_testdata_file

    from backend.images import decode_image

    with open(get_testdata_file("RG1_UNCR.dcm"), "rb") as handle:
        radiograph = decode_image(handle.read(), "RG1_UNCR.dcm")
    data = _jpeg(radiograph.resize((2048, 2457)), quality=90)
    preprocess = Preprocess(224, crop=224, mean=(0.481, 0.458, 0.408), std=(0.269, 0.261, 0.276))
    device = decode_on_device(JpegDecoder("cpu"), [data], preprocess).pixels[0].numpy()
    cpu = preprocess.image(decode_image(data, target_size=preprocess.min_decode_size))
    levels = np.abs(device - cpu) * np.asarray(preprocess.std, np.float32)[:, None, None] * 255
    assert levels.mean() < 1.0, levels.mean()
