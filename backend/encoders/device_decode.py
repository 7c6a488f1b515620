"""JPEG decoding on the encoder's device: which JPEGs it can take, decoding them, and their
preprocessing there.

On a GPU, :class:`JpegDecoder` is nvJPEG through ``torchvision.io.decode_jpeg(device="cuda")``;
on the CPU the same class runs libjpeg-turbo through the same call (tests use that: there is no
GPU in CI). Which JPEGs go to it is decided from the header alone (:func:`device_decodable`,
microseconds): 8-bit baseline or progressive, grayscale or YCbCr, upright. Everything else
(CMYK and Adobe-RGB JPEGs, 12-bit, lossless or arithmetic-coded, EXIF-rotated, since
``decode_jpeg`` ignores ``apply_exif_orientation`` on CUDA) is for the CPU decoders, and so is
any JPEG the device refuses when it tries (:func:`decode_on_device` reports those).

Importing this module imports nothing but the standard library and LabelCast's exceptions.
"""

from __future__ import annotations

import contextlib
import re
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from backend.exceptions import ImageDecodeError

DEVICE_CHUNK_PIXELS = 2**29
"""Most decoded pixels (width × height, from the headers) in one call to the device decoder:
128 images of 2048², 1.6 GB as RGB ``uint8`` on the device. Each chunk is preprocessed to the
encoder's input size before the next is decoded, so this bounds the full-size pixels held on
the device. (nvJPEG batches of 64 / 256 images decoded 1,317 / 1,404 images/s on an H200.)"""

DEVICE_SOF_MARKERS = {0xC0: "baseline", 0xC2: "progressive"}
"""Start-of-frame markers (the second byte) of the JPEG codings the device decoder is given."""

_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # DHT, JPG and DAC are not frames
_STANDALONE_MARKERS = frozenset([0x01, *range(0xD0, 0xD8)])  # TEM, RST0-7: no length field


@dataclass(frozen=True)
class JpegFrame:
    """What a JPEG header says about decoding it.

    Attributes
    ----------
    marker : int
        Second byte of the start-of-frame marker (0xC0 baseline, 0xC2 progressive, ...).
    precision : int
        Bits per sample (8 or 12).
    components : int
        1 grayscale, 3 YCbCr (or RGB, see ``adobe_transform``), 4 CMYK/YCCK.
    orientation : int or None
        EXIF orientation (1 upright, also when there is no EXIF); None when the EXIF block is
        unreadable.
    adobe_transform : int or None
        The Adobe APP14 colour transform (0: no transform, so 3 components are RGB), or None.
    """

    marker: int
    precision: int
    components: int
    orientation: int | None = 1
    adobe_transform: int | None = None


def jpeg_frame(data: bytes) -> JpegFrame | None:
    """Read the header of JPEG bytes up to the start of frame; None when it is not a JPEG or the
    header is cut or malformed before the frame.

    Parameters
    ----------
    data : bytes
        The encoded image.
    """
    if data[:2] != b"\xff\xd8":
        return None
    offset = 2
    orientation: int | None = 1
    adobe: int | None = None
    while offset + 4 <= len(data):
        if data[offset] != 0xFF:
            return None
        marker = data[offset + 1]
        if marker == 0xFF:  # fill byte before a marker
            offset += 1
            continue
        if marker in _STANDALONE_MARKERS:
            offset += 2
            continue
        if marker in (0xD8, 0xD9, 0xDA):  # another SOI, EOI or scan before any frame
            return None
        length = int.from_bytes(data[offset + 2 : offset + 4], "big")
        segment = data[offset + 4 : offset + 2 + length]
        if length < 2 or len(segment) < length - 2:
            return None
        if marker in _SOF_MARKERS:
            if len(segment) < 6:
                return None
            return JpegFrame(marker, segment[0], segment[5], orientation, adobe)
        if marker == 0xE1 and segment[:6] == b"Exif\0\0":
            orientation = _exif_orientation(segment[6:])
        elif marker == 0xEE and segment[:5] == b"Adobe" and len(segment) >= 12:
            adobe = segment[11]
        offset += 2 + length
    return None


def _exif_orientation(tiff: bytes) -> int | None:
    """The Orientation tag (0x0112) of the first IFD of an EXIF TIFF block; 1 when absent, None
    when the block cannot be read."""
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None or len(tiff) < 8:
        return None
    (ifd,) = struct.unpack_from(order + "I", tiff, 4)
    if ifd + 2 > len(tiff):
        return None
    (count,) = struct.unpack_from(order + "H", tiff, ifd)
    for index in range(count):
        entry = ifd + 2 + 12 * index
        if entry + 12 > len(tiff):
            return None
        tag, _, _, value = struct.unpack_from(order + "HHIH", tiff, entry)
        if tag == 0x0112:  # a SHORT: its value sits in the first two bytes of the value field
            return value
    return 1


def device_decodable(data: bytes) -> bool:
    """True when the header says the device decoder can take these bytes: an 8-bit baseline or
    progressive JPEG (:data:`DEVICE_SOF_MARKERS`), grayscale or YCbCr, upright (EXIF
    orientation 1 or none)."""
    frame = jpeg_frame(data)
    return (
        frame is not None
        and frame.marker in DEVICE_SOF_MARKERS
        and frame.precision == 8
        and frame.components in (1, 3)
        and frame.orientation == 1
        and not (frame.components == 3 and frame.adobe_transform == 0)
    )


class JpegDecoder:
    """JPEG bytes to ``uint8`` tensors on one device, with ``torchvision.io.decode_jpeg``:
    nvJPEG on a CUDA device (one batched call), libjpeg-turbo on the CPU.

    Parameters
    ----------
    device : str, default="cuda"
        Where the decoded tensors are, e.g. the encoder's ``device``.
    """

    def __init__(self, device: str = "cuda"):
        import torch

        self.device = torch.device(device)
        self.is_cuda = self.device.type == "cuda"
        self._stream: Any = None

    def __repr__(self) -> str:
        return f"JpegDecoder(device={str(self.device)!r})"

    def accepts(self, data: bytes) -> bool:
        """Whether to give these bytes to this decoder (:func:`device_decodable`)."""
        return device_decodable(data)

    def __call__(self, datas: Sequence[bytes]) -> list:
        """Decode JPEGs.

        Parameters
        ----------
        datas : sequence of bytes
            JPEG files.

        Returns
        -------
        list of uint8 torch.Tensor of shape (C, H, W), C in {1, 3}, on :attr:`device`

        Raises
        ------
        ImageDecodeError
            If any of them cannot be decoded here (``decode_jpeg`` gives no partial results).
        """
        import torch
        from torchvision.io import ImageReadMode, decode_jpeg

        buffers = [torch.frombuffer(bytearray(data), dtype=torch.uint8) for data in datas]
        try:
            images = decode_jpeg(buffers, mode=ImageReadMode.UNCHANGED, device=self.device)
        except torch.cuda.OutOfMemoryError:
            raise
        except RuntimeError as exc:
            # torchvision prefixes its source location: "decode_jpeg, /path/decode_jpeg.cpp:171, Image is ..."
            reason = re.sub(r"^.*\.(?:cpp|cu):\d+, ", "", str(exc).strip().splitlines()[-1] if str(exc).strip() else "")
            reason = reason or type(exc).__name__
            raise ImageDecodeError(f"decode_jpeg on {self.device} refused {len(buffers)} JPEG(s): {reason}") from None
        for image in images:
            if image.ndim != 3 or image.shape[0] not in (1, 3):
                raise ImageDecodeError(
                    f"decode_jpeg on {self.device} gave a {tuple(image.shape)} image; expected 1 or 3 channels"
                )
        return images

    @contextlib.contextmanager
    def stream(self) -> Iterator[None]:
        """Run the enclosed device work on this decoder's own CUDA stream and wait for it at the
        end (so that its output is complete for any stream); nothing on the CPU."""
        if not self.is_cuda:
            yield
            return
        import torch

        if self._stream is None:
            self._stream = torch.cuda.Stream(device=self.device)
        with torch.cuda.stream(self._stream):
            yield
        self._stream.synchronize()


@dataclass
class DevicePixels:
    """Output of :func:`decode_on_device`.

    Attributes
    ----------
    pixels : torch.Tensor of shape (len(taken), 3, S, S), float32, or None
        Preprocessed images on the decoder's device, in the order of ``taken``.
    taken : list of int
        Indices (into the input) of the images decoded.
    refused : dict of int to str
        Indices of the images the decoder refused, with its reason: for the CPU decoders.
    """

    pixels: Any
    taken: list[int]
    refused: dict[int, str]


def decode_on_device(
    decoder,
    datas: Sequence[bytes],
    preprocess,
    pixel_counts: Sequence[int] | None = None,
    chunk_pixels: int = DEVICE_CHUNK_PIXELS,
) -> DevicePixels:
    """Decode JPEGs with ``decoder`` and preprocess them on its device, in chunks.

    A chunk the decoder refuses, or that runs the device out of memory (decoding or
    preprocessing), is retried one image at a time; the images it still refuses, or that still
    do not fit, are returned in ``refused``, not raised: the CPU decoders take them.

    Parameters
    ----------
    decoder : JpegDecoder or alike
        ``decoder(datas) -> list of uint8 tensors (C, H, W)`` raising
        :class:`~backend.exceptions.ImageDecodeError` for what it cannot decode; ``stream()``
        (optional) a context manager the work runs in.
    datas : sequence of bytes
        JPEG files.
    preprocess : backend.encoders.preprocess.Preprocess
        Applied with :meth:`~backend.encoders.preprocess.Preprocess.tensor_batch`.
    pixel_counts : sequence of int, optional
        Width × height of each image (from its header); chunks hold at most ``chunk_pixels``
        of them (at least one image). Without it, all images are one chunk.
    chunk_pixels : int, default=DEVICE_CHUNK_PIXELS

    Returns
    -------
    DevicePixels
    """
    import torch

    if pixel_counts is not None and len(pixel_counts) != len(datas):
        raise ValueError(f"{len(pixel_counts)} pixel counts for {len(datas)} images; expected as many")
    taken: list[int] = []
    refused: dict[int, str] = {}
    parts = []
    stream = getattr(decoder, "stream", contextlib.nullcontext)
    with stream():
        for chunk in _chunks(len(datas), pixel_counts, chunk_pixels):
            try:
                parts.append(preprocess.tensor_batch(decoder([datas[i] for i in chunk])))
                taken.extend(chunk)
                continue
            except ImageDecodeError:
                pass
            except torch.cuda.OutOfMemoryError:
                _release(torch)
            for index in chunk:  # one at a time: what still fails goes to the CPU decoders
                try:
                    parts.append(preprocess.tensor_batch(decoder([datas[index]])))
                    taken.append(index)
                except ImageDecodeError as exc:
                    refused[index] = str(exc)
                except torch.cuda.OutOfMemoryError:
                    _release(torch)
                    refused[index] = "out of device memory while decoding it alone"
        pixels = (torch.cat(parts) if len(parts) > 1 else parts[0]) if parts else None
    return DevicePixels(pixels, taken, refused)


def _release(torch) -> None:
    """Give the memory of a failed device step back before the next (no-op without CUDA)."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _chunks(count: int, pixel_counts: Sequence[int] | None, limit: int) -> Iterator[list[int]]:
    if pixel_counts is None:
        if count:
            yield list(range(count))
        return
    chunk: list[int] = []
    total = 0
    for index, pixels in enumerate(pixel_counts):
        if chunk and total + pixels > limit:
            yield chunk
            chunk, total = [], 0
        chunk.append(index)
        total += pixels
    if chunk:
        yield chunk
