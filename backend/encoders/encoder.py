"""The loaded encoder: batches, device, mixed precision, decoding overlapped with the model.

An :class:`Encoder` wraps any torch module that maps a pixel batch of shape (N, 3, S, S) to
features of shape (N, D), with the :class:`~backend.encoders.preprocess.Preprocess` its
weights expect. Loaders in this package build one; nothing here knows which library the model
came from.

On CUDA the model runs under ``torch.inference_mode`` and bf16 autocast (fp16 where the GPU
has no bf16); batches start at a size scaled to the input resolution and halve on out-of-memory.
:meth:`Encoder.embed_bytes` decodes JPEG bytes on the GPU with nvJPEG
(``torchvision.io.decode_jpeg(device="cuda")``) in a background thread on its own CUDA
stream while the model runs the previous batch; other formats (PNG, DICOM) and JPEGs nvJPEG
refuses (or that its header says it cannot take: see ``backend.encoders.device_decode``) are
decoded by a pool of CPU threads. On the CPU, decoding and preprocessing run in a
thread pool one batch ahead of the model.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Generator, Iterator, Sequence

import numpy as np
from PIL import Image

from backend.encoders.preprocess import Preprocess
from backend.exceptions import EncoderLoadError, ImageDecodeError
from backend.images import DEFAULT_MAX_PIXELS, decode_image, read_size

CPU_BATCH_SIZE = 16
"""Images per forward pass on the CPU."""

CUDA_BATCH_PIXELS = 256 * 224 * 224
"""Input pixels per forward pass on a GPU at the start (256 images at 224², 87 at 384²); halved
on out-of-memory."""

MIN_BATCH_SIZE = 1

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
"""Autocast choices: ``auto`` is bf16 on CUDA (fp16 where the GPU lacks bf16) and fp32 on
the CPU; ``bf16`` on the CPU is several times faster on CPUs with bf16 instructions, with
embeddings that differ from fp32 ones by about 1e-2 (cosine similarity above 0.999)."""


def resolve_device(device: str | None) -> str:
    """``device`` if given, else ``"cuda"`` when a GPU is visible, else ``"cpu"``.

    Raises
    ------
    EncoderLoadError
        If a CUDA device is asked for and none is visible.
    """
    import torch

    if not device:
        return "cuda" if torch.cuda.is_available() else "cpu"
    device = str(device)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EncoderLoadError(f"device {device!r} requested but no CUDA GPU is visible; use 'cpu'")
    return device


def l2_normalise(features: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero).

    Parameters
    ----------
    features : ndarray of shape (n, d)

    Returns
    -------
    ndarray of shape (n, d), float32
    """
    features = np.asarray(features, dtype=np.float32)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.maximum(norms, np.float32(1e-12))


class Encoder:
    """A frozen image encoder ready to embed.

    Parameters
    ----------
    id : str
        Stable name of model, weights and preprocessing; the embedding cache key.
    dim : int
        Length of each embedding.
    model : torch.nn.Module
        Maps a float tensor (N, 3, S, S) to features (N, dim). Moved to ``device`` and put in
        eval mode here.
    preprocess : Preprocess
        What the weights expect.
    device : str, optional
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; None picks CUDA when available.
    batch_size : int, optional
        Images per forward pass; None sizes it to the device (see :data:`CPU_BATCH_SIZE`,
        :data:`CUDA_BATCH_PIXELS`).
    decode_workers : int, optional
        CPU decoding threads for :meth:`embed_bytes`; None uses the CPU count (at most 16).
    max_pixels : int, default=DEFAULT_MAX_PIXELS
        Decompression-bomb limit passed to :func:`backend.images.decode_image`.
    precision : {"auto", "fp32", "bf16", "fp16"}, default="auto"
        Autocast dtype of the forward pass (see :data:`PRECISIONS`).
    description : str, optional
        Human-readable origin (the spec), for logs.
    """

    def __init__(
        self,
        *,
        id: str,
        dim: int,
        model,
        preprocess: Preprocess,
        device: str | None = None,
        batch_size: int | None = None,
        decode_workers: int | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        precision: str | None = "auto",
        description: str = "",
    ):
        import torch

        self.id = str(id)
        self.dim = int(dim)
        self.preprocess = preprocess
        self.device = resolve_device(device)
        self.description = description
        self.max_pixels = int(max_pixels)
        self._torch_device = torch.device(self.device)
        self.model = model.eval().requires_grad_(False).to(self._torch_device)
        self.is_cuda = self._torch_device.type == "cuda"
        if batch_size is not None and int(batch_size) < 1:
            raise ValueError(f"batch_size={batch_size!r}; expected a positive integer")
        self.batch_size = int(batch_size) if batch_size else self._default_batch_size()
        self.decode_workers = int(decode_workers or min(16, os.cpu_count() or 1))
        self.amp_dtype = self._amp_dtype(precision or "auto")
        self._lock = threading.Lock()
        self._jpeg_decoder = None  # backend.encoders.device_decode.JpegDecoder, made on first use

    def __repr__(self) -> str:
        return f"Encoder(id={self.id!r}, dim={self.dim}, device={self.device!r})"

    def _amp_dtype(self, precision: str):
        import torch

        if precision not in PRECISIONS:
            raise ValueError(f"precision={precision!r}; expected one of {PRECISIONS}")
        if precision == "auto":
            if not self.is_cuda:
                return None
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]

    def _default_batch_size(self) -> int:
        if not self.is_cuda:
            return CPU_BATCH_SIZE
        side = self.preprocess.output_size
        return max(8, min(1024, CUDA_BATCH_PIXELS // (side * side)))

    # --- the model -----------------------------------------------------------------------------

    def _forward(self, pixels) -> np.ndarray:
        """Features of one preprocessed batch, halving the batch on CUDA out-of-memory."""
        import torch

        try:
            with (
                torch.inference_mode(),
                torch.autocast(
                    self._torch_device.type,
                    dtype=self.amp_dtype,
                    enabled=self.amp_dtype is not None,
                ),
            ):
                features = self.model(pixels.to(self._torch_device, non_blocking=True))
            return features.float().cpu().numpy().reshape(len(pixels), -1)
        except torch.cuda.OutOfMemoryError:
            if len(pixels) <= MIN_BATCH_SIZE:
                raise
        # Retried outside the except block, so that the failed attempt's frames are freed.
        if self.is_cuda:
            torch.cuda.empty_cache()
        half = len(pixels) // 2
        self.batch_size = max(MIN_BATCH_SIZE, half)
        return np.concatenate([self._forward(pixels[:half]), self._forward(pixels[half:])])

    def _finish(self, features: np.ndarray) -> np.ndarray:
        if features.shape[1] != self.dim:
            raise RuntimeError(f"encoder {self.id!r} produced {features.shape[1]}-d features; expected {self.dim}")
        return l2_normalise(features)

    def embed_pixels(self, pixels) -> np.ndarray:
        """Embed already preprocessed pixels.

        Parameters
        ----------
        pixels : ndarray or torch.Tensor of shape (n, 3, S, S)
            Output of :meth:`Preprocess.batch` or :meth:`Preprocess.tensor_batch`.

        Returns
        -------
        ndarray of shape (n, dim), float32, rows of unit L2 norm
        """
        import torch

        if isinstance(pixels, np.ndarray):
            pixels = torch.from_numpy(pixels)
        if len(pixels) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            parts = [
                self._forward(pixels[start : start + self.batch_size])
                for start in range(0, len(pixels), self.batch_size)
            ]
        return self._finish(np.concatenate(parts))

    # --- PIL images ----------------------------------------------------------------------------

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Embed PIL images.

        Parameters
        ----------
        images : sequence of PIL.Image.Image
            Any size; grayscale or RGB.

        Returns
        -------
        ndarray of shape (len(images), dim), float32, rows of unit L2 norm
        """
        images = list(images)
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        chunks = [images[i : i + self.batch_size] for i in range(0, len(images), self.batch_size)]
        with ThreadPoolExecutor(max_workers=1) as pool, self._lock:
            parts = [self._forward(_as_tensor(pixels)) for pixels in _prefetch(pool, self.preprocess.batch, chunks)]
        return self._finish(np.concatenate(parts))

    # --- encoded bytes -------------------------------------------------------------------------

    def embed_bytes(
        self,
        datas: Sequence[bytes],
        filenames: Sequence[str | None] | None = None,
        *,
        on_error: Callable[[int, ImageDecodeError], None] | None = None,
    ) -> np.ndarray:
        """Decode and embed encoded images (JPEG, PNG, DICOM), decoding overlapped with the model.

        Parameters
        ----------
        datas : sequence of bytes
            Encoded images.
        filenames : sequence of str or None, optional
            Their names, for error messages and DICOM detection.
        on_error : callable(index, ImageDecodeError), optional
            Called for each image that cannot be decoded; its row is then all NaN. Without it,
            the first such image raises.

        Returns
        -------
        ndarray of shape (len(datas), dim), float32
            Rows of unit L2 norm (NaN rows for undecodable images when ``on_error`` is given).

        Raises
        ------
        ImageDecodeError
            For an undecodable image when ``on_error`` is None.
        """
        datas = list(datas)
        names = list(filenames) if filenames is not None else [None] * len(datas)
        if len(names) != len(datas):
            raise ValueError(f"{len(names)} filenames for {len(datas)} images; expected as many")
        out = np.full((len(datas), self.dim), np.nan, dtype=np.float32)
        if not datas:
            return out
        with self._lock:
            if self.is_cuda:
                batches = self._gpu_batches(datas, names, on_error)
            else:
                batches = self._cpu_batches(datas, names, on_error)
            with contextlib.closing(batches):  # stops the decode thread if the model fails
                for indices, pixels in batches:
                    if len(indices):
                        out[indices] = self._finish(self._forward(pixels))
        return out

    def _decode_cpu(self, data: bytes, name: str | None) -> Image.Image:
        return decode_image(data, name, max_pixels=self.max_pixels, target_size=self.preprocess.min_decode_size)

    def _cpu_batches(self, datas, names, on_error) -> Generator[tuple[list[int], object], None, None]:
        """(indices, pixel tensor) per batch; decoding of the next batch runs in threads."""

        def prepare(indices: list[int]):
            def one(index):
                try:
                    return self.preprocess.image(self._decode_cpu(datas[index], names[index]))
                except ImageDecodeError as exc:
                    return exc

            results = list(decoders.map(one, indices))
            good = []
            for index, result in zip(indices, results, strict=True):
                if isinstance(result, ImageDecodeError):
                    if on_error is None:
                        raise result
                    on_error(index, result)
                else:
                    good.append(index)
            pixels = np.stack([r for r in results if not isinstance(r, ImageDecodeError)]) if good else None
            return good, pixels

        chunks = [
            list(range(start, min(start + self.batch_size, len(datas))))
            for start in range(0, len(datas), self.batch_size)
        ]
        with (
            ThreadPoolExecutor(max_workers=self.decode_workers) as decoders,
            ThreadPoolExecutor(max_workers=1) as ahead,
        ):
            for good, pixels in _prefetch(ahead, prepare, chunks):
                yield good, (_as_tensor(pixels) if pixels is not None else None)

    def _gpu_batches(self, datas, names, on_error) -> Generator[tuple[list[int], object], None, None]:
        """(indices, pixel tensor on the GPU) per batch, decoded by nvJPEG on a side stream in a
        background thread, one batch ahead of the model. Untested on a GPU in this repository's
        CI (no GPU there); the CPU path is the tested one."""
        import torch

        stream = torch.cuda.Stream(device=self._torch_device)
        ready: queue.Queue = queue.Queue(maxsize=2)
        stop = threading.Event()
        chunks = [
            list(range(start, min(start + self.batch_size, len(datas))))
            for start in range(0, len(datas), self.batch_size)
        ]

        def worker():
            try:
                with ThreadPoolExecutor(max_workers=self.decode_workers) as decoders:
                    for indices in chunks:
                        if stop.is_set():
                            return
                        with torch.cuda.stream(stream):
                            good, pixels = self._gpu_decode_batch(datas, names, indices, decoders, on_error)
                            event = torch.cuda.Event()
                            event.record(stream)
                        ready.put((good, pixels, event, None))
            except BaseException as exc:  # handed to the consumer thread and re-raised there
                ready.put(([], None, None, exc))
            finally:
                ready.put(None)

        thread = threading.Thread(target=worker, name="labelcast-nvjpeg", daemon=True)
        thread.start()
        try:
            while (item := ready.get()) is not None:
                good, pixels, event, error = item
                if error is not None:
                    raise error
                if pixels is not None:
                    torch.cuda.current_stream(self._torch_device).wait_event(event)
                    pixels.record_stream(torch.cuda.current_stream(self._torch_device))
                yield good, pixels
        finally:
            stop.set()
            while thread.is_alive():
                try:
                    ready.get(timeout=0.1)
                except queue.Empty:
                    pass
            thread.join()

    def _gpu_decode_batch(self, datas, names, indices, decoders, on_error):
        """Decode one batch: the JPEGs nvJPEG takes (by their header, see
        :func:`backend.encoders.device_decode.device_decodable`) with nvJPEG, the rest (and
        nvJPEG failures) on CPU threads."""
        import torch

        from backend.encoders.device_decode import JpegDecoder

        if self._jpeg_decoder is None:
            self._jpeg_decoder = JpegDecoder(self.device)
        jpeg, other = [], []
        for index in indices:
            (jpeg if self._jpeg_decoder.accepts(datas[index]) else other).append(index)
        # Header check (size limit, corrupt headers) costs tens of microseconds per image.
        checked = []
        for index in jpeg:
            try:
                read_size(datas[index], names[index], max_pixels=self.max_pixels)
                checked.append(index)
            except ImageDecodeError as exc:
                if on_error is None:
                    raise
                on_error(index, exc)
        decoded: dict[int, torch.Tensor] = {}
        if checked:
            try:
                decoded.update(zip(checked, self._jpeg_decoder([datas[i] for i in checked]), strict=True))
            except ImageDecodeError:
                other.extend(checked)  # decode them on the CPU
            except torch.cuda.OutOfMemoryError:  # the batch does not fit: the CPU takes it
                torch.cuda.empty_cache()
                other.extend(checked)

        def one(index):
            try:
                image = self._decode_cpu(datas[index], names[index])
            except ImageDecodeError as exc:
                return exc
            array = np.asarray(image)
            array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
            return torch.from_numpy(np.ascontiguousarray(array))

        for index, result in zip(other, decoders.map(one, other), strict=True):
            if isinstance(result, ImageDecodeError):
                if on_error is None:
                    raise result
                on_error(index, result)
            else:
                decoded[index] = result.to(self._torch_device, non_blocking=True)
        good = [index for index in indices if index in decoded]
        if not good:
            return [], None
        return good, self.preprocess.tensor_batch([decoded[i] for i in good])


def _as_tensor(pixels: np.ndarray):
    import torch

    return torch.from_numpy(pixels)


def _prefetch(pool: ThreadPoolExecutor, function, items: list) -> Iterator:
    """``map(function, items)`` with the next item computed in ``pool`` while the caller works."""
    if not items:
        return
    pending = pool.submit(function, items[0])
    for item in items[1:]:
        result = pending.result()
        pending = pool.submit(function, item)
        yield result
    yield pending.result()
