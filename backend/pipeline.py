"""The embedding pipeline: image references in, embeddings out, streaming, in bounded memory.

::

    refs ──fetch (threads: FETCH_WORKERS in flight, FETCH_PER_HOST per host)──▶ bytes
         ──SHA-256, cache lookup──▶ (cached: out at once)
         ──decode + preprocess: a process pool on every core; on CUDA the JPEGs nvJPEG can take
           are decoded and preprocessed on the GPU in a thread of their own, the rest (PNG, DICOM,
           CMYK or rotated JPEGs, and any JPEG nvJPEG refuses) in the process pool, both batches
           ahead of the encoder──▶ pixels ──one batched encoder call──▶ cache.put_many

One :class:`Pipeline` serves the worker (:meth:`backend.training.Trainer.embed_tasks`) and
``labelcast embed``. Several :meth:`Pipeline.run` may go on at once in threads (jobs of
different projects): each has its own downloads and byte budget; they share the decoding
processes, the per-host limits and the encoder, which takes one batch at a time. The caller brings the fetching function (the SSRF-safe
:meth:`backend.labelstudio.client.LabelStudioClient.fetch_image`, with its deadline) and the
cache (anything with ``get_many(encoder_id, hashes)`` and ``put_many(encoder_id, vectors)``:
the store). Results come out a batch at a time, as soon as they are ready, each with the key
the caller gave it; they are stored before they are handed out.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import multiprocessing
import os
import threading
import time
import urllib.parse
from collections.abc import Callable, Hashable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np

from backend.exceptions import ImageDecodeError, ImageFetchError

log = logging.getLogger(__name__)

Key = TypeVar("Key", bound=Hashable)
"""The caller's key for one reference (a task id, a row number), handed back on its Result."""

EMBED_BATCH = 32
"""Images per encoder call (the pixel budget may cut a batch shorter)."""

EMBED_BATCH_PIXELS = 50_000_000
"""Most decoded pixels (width × height, read from the headers) in one batch: a batch whose
images add up to more is cut. One image may have as many (``backend.images.DEFAULT_MAX_PIXELS``);
eight 7,000 × 7,000 PNGs of 150 KB each held 1.8 GB when a batch had no such limit."""

BATCHES_AHEAD = 2
"""Batches being decoded while the encoder works on the current one. With the fetches in
flight this bounds what the pipeline holds: at most ``EMBED_BATCH * (BATCHES_AHEAD + 1)``
encoded images plus ``FETCH_WORKERS`` downloads, whatever the number of references (and at
most HELD_BYTES of them, whatever their size)."""

HELD_BYTES = 512 * 1024 * 1024
"""Most bytes of downloaded images the pipeline holds at once: fetched, or in batches not yet
embedded (one :meth:`Pipeline.run`). A download starts only while the bytes held plus, for each
download in flight, the largest image seen so far (before any: ``HELD_BYTES / FETCH_WORKERS``)
fit; one download always may, so an image larger than this still goes through, alone. A batch
holds at most ``HELD_BYTES / (BATCHES_AHEAD + 1)`` so that three fit. Without it a batch of
112 images of up to 128 MiB each (``backend.fetch.MAX_IMAGE_BYTES``) could be held: 14 GiB."""

GPU_BATCHES_PER_CALL = 4
"""On CUDA, encoder batches in one pipeline batch (fewer, larger batches: fewer cache round
trips, larger nvJPEG calls). The device decodes later batches while the encoder runs this one;
the host pixel budget (:data:`EMBED_BATCH_PIXELS`) cuts a batch by the pixels that are decoded
on the CPU only, and the device decodes in chunks of at most
``backend.encoders.device_decode.DEVICE_CHUNK_PIXELS``."""

FETCH_WORKERS = 16
"""Downloads in flight at once: slow hosts are waited for side by side."""

FETCH_PER_HOST = 8
"""Downloads in flight to one host (``scheme://host:port``; Label Studio's own media paths and
``data:`` URIs count as one host each)."""


@dataclass(frozen=True)
class Result(Generic[Key]):
    """What became of one reference: an embedding, or the reason there is none.

    ``sha`` is the SHA-256 of the image bytes (None when they were not fetched); ``vector`` an
    ndarray of shape (dim,), float32; ``error`` a sentence starting "image not fetched" or
    "image not decoded".
    """

    key: Key
    sha: str | None
    vector: np.ndarray | None = None
    error: str | None = None


@dataclass
class Stats:
    """Counters of the pipeline's work (seconds are summed over its threads and processes).

    ``decode_s`` counts decoding and preprocessing wherever they ran; ``device_decode_s`` and
    ``device_decoded`` the part of it on the device decoder (seconds and images), so that the
    CPU's share is the difference.
    """

    fetched: int = 0
    cached: int = 0
    embedded: int = 0
    device_decoded: int = 0
    errors: collections.Counter = field(default_factory=collections.Counter)
    fetch_s: float = 0.0
    decode_s: float = 0.0
    device_decode_s: float = 0.0
    encode_s: float = 0.0
    held_bytes_peak: int = 0  # most image bytes one run held at once (see HELD_BYTES)

    def as_dict(self) -> dict[str, Any]:
        return {
            "fetched": self.fetched,
            "cached": self.cached,
            "embedded": self.embedded,
            "device_decoded": self.device_decoded,
            "errors": dict(self.errors),
            "fetch_s": round(self.fetch_s, 3),
            "decode_s": round(self.decode_s, 3),
            "device_decode_s": round(self.device_decode_s, 3),
            "encode_s": round(self.encode_s, 3),
            "held_bytes_peak": self.held_bytes_peak,
        }


class Pipeline:
    """Fetch, hash, look up, decode and embed images, streaming.

    Parameters
    ----------
    encoder : backend.encoders.Encoder
        Needs ``id``, ``dim``, ``preprocess``, ``max_pixels``, ``is_cuda``, ``embed_pixels``
        and (on CUDA) ``device`` and ``batch_size``.
    cache : object
        ``get_many(encoder_id, hashes) -> {sha: vector}`` and ``put_many(encoder_id, {sha: vector})``.
    decode_workers : int, optional
        Processes decoding on the CPU; default every core. 0 decodes in this process (threads).
    fetch_workers, per_host, batch_size, batch_pixels, batches_ahead, held_bytes : int, optional
        Default :data:`FETCH_WORKERS`, :data:`FETCH_PER_HOST`, :data:`EMBED_BATCH`,
        :data:`EMBED_BATCH_PIXELS`, :data:`BATCHES_AHEAD`, :data:`HELD_BYTES`.
    device_decoder : object, optional
        Decodes JPEGs on the encoder's device: ``accepts(data) -> bool`` from the header, and
        ``device_decoder(datas) -> list of uint8 tensors (C, H, W)`` raising
        :class:`~backend.exceptions.ImageDecodeError` for what it cannot decode (those images
        are then decoded on the CPU). Default: on a CUDA encoder
        :class:`backend.encoders.device_decode.JpegDecoder` (nvJPEG) on its device; otherwise
        none, and every image is decoded on the CPU.
    """

    def __init__(
        self,
        encoder,
        cache,
        *,
        decode_workers: int | None = None,
        fetch_workers: int = FETCH_WORKERS,
        per_host: int = FETCH_PER_HOST,
        batch_size: int = EMBED_BATCH,
        batch_pixels: int = EMBED_BATCH_PIXELS,
        batches_ahead: int = BATCHES_AHEAD,
        device_decoder=None,
        held_bytes: int = HELD_BYTES,
    ) -> None:
        for name, value in (
            ("fetch_workers", fetch_workers),
            ("per_host", per_host),
            ("batch_size", batch_size),
            ("batch_pixels", batch_pixels),
            ("held_bytes", held_bytes),
        ):
            if int(value) < 1:
                raise ValueError(f"{name}={value!r}; expected a positive integer")
        if batches_ahead < 0 or (decode_workers is not None and decode_workers < 0):
            raise ValueError(f"batches_ahead={batches_ahead!r}, decode_workers={decode_workers!r}; expected >= 0")
        self.encoder = encoder
        self.cache = cache
        self.decode_workers = (os.cpu_count() or 1) if decode_workers is None else int(decode_workers)
        self.fetch_workers = int(fetch_workers)
        self.per_host = int(per_host)
        self.batch_size = int(batch_size)
        self.batch_pixels = int(batch_pixels)
        self.batches_ahead = int(batches_ahead)
        self.held_bytes = int(held_bytes)
        if encoder.is_cuda:
            self.batch_size = max(self.batch_size, GPU_BATCHES_PER_CALL * int(encoder.batch_size))
            if device_decoder is None:
                from backend.encoders.device_decode import JpegDecoder

                device_decoder = JpegDecoder(encoder.device)
        self.device_decoder = device_decoder
        self.stats = Stats()
        self._pool: Any = None
        self._hosts: dict[str, threading.Semaphore] = {}
        self._hosts_lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self._pool_lock = threading.Lock()
        self._encoding = threading.Lock()  # one encoder call at a time, whatever runs share it

    @property
    def max_held(self) -> int:
        """Most fetched images held at once (waiting, or in batches not yet embedded)."""
        return self.batch_size * (self.batches_ahead + 1) + self.fetch_workers

    @property
    def batch_bytes(self) -> int:
        """Most image bytes in one batch (one image at least): :attr:`held_bytes` shared by
        the batch being embedded and those decoding ahead."""
        return max(1, self.held_bytes // (self.batches_ahead + 1))

    def close(self) -> None:
        """Stop the decoding processes (a later :meth:`run` starts new ones)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def embed_all(self, items: Iterable[tuple[Key, str]], fetch: Callable[[Key, str], bytes]) -> list[Result[Key]]:
        """Every result of :meth:`run`, in one list."""
        return [result for batch in self.run(items, fetch) for result in batch]

    def run(self, items: Iterable[tuple[Key, str]], fetch: Callable[[Key, str], bytes]) -> Iterator[list[Result[Key]]]:
        """Embed ``(key, reference)`` pairs; yields lists of :class:`Result`, as they are ready.

        ``fetch(key, reference) -> bytes`` raises :class:`~backend.exceptions.ImageFetchError`
        for an image it cannot get; that image's result carries the reason. References are
        read from ``items`` only as room frees up (see :attr:`max_held` and :attr:`held_bytes`).
        Results come in the order they are ready (cached ones first), not in input order: use
        their keys.
        """
        items = iter(items)
        fetching: dict[Future, Key] = {}
        fetched: list[tuple[Key, str, bytes]] = []  # (key, name, bytes) not in a batch yet
        batches: collections.deque = collections.deque()  # batches being decoded, oldest first
        decoding: dict[str, _Batch] = {}  # image hash -> the batch embedding it
        exhausted = False
        largest = 0  # bytes of the largest image fetched so far: what a download in flight may add
        with (
            ThreadPoolExecutor(self.fetch_workers, thread_name_prefix="labelcast-fetch") as fetchers,
            ThreadPoolExecutor(1, thread_name_prefix="labelcast-device-decode") as device_thread,
        ):
            try:
                while True:
                    held = len(fetching) + len(fetched) + sum(len(b.keys) for b in batches)
                    held_bytes = sum(len(data) for *_, data in fetched) + sum(b.nbytes for b in batches)
                    full = False  # the byte budget stops the next download
                    while not exhausted and len(fetching) < self.fetch_workers and held < self.max_held:
                        full = not self._room(held_bytes, len(fetching), largest)
                        if full:
                            break
                        try:
                            key, ref = next(items)
                        except StopIteration:
                            exhausted = True
                            break
                        fetching[fetchers.submit(self._fetch, fetch, key, ref)] = key
                        held += 1
                    done = [f for f in fetching if f.done()]
                    for future in done:
                        del fetching[future]
                        outcome = future.result()  # a bug in fetch (not ImageFetchError) raises here
                        if isinstance(outcome, Result):
                            yield [outcome]
                        else:
                            fetched.append(outcome)
                            largest = max(largest, len(outcome[2]))
                    if done:
                        self._note_held(sum(len(data) for *_, data in fetched) + sum(b.nbytes for b in batches))
                    last = exhausted and not fetching
                    while len(fetched) >= self.batch_size or (fetched and (last or full)):
                        batch, cached = self._start_batch(fetched, decoding, device_thread)
                        if cached:
                            yield cached
                        if batch is not None:
                            batches.append(batch)
                    if batches and (len(batches) > self.batches_ahead or not fetching or full or batches[0].ready()):
                        batch = batches.popleft()
                        for sha in batch.todo:
                            decoding.pop(sha, None)
                        yield self._finish_batch(batch)
                        continue
                    if last and not batches:
                        return
                    waiting = set(fetching) | (batches[0].pending() if batches else set())
                    if waiting:
                        wait(waiting, return_when=FIRST_COMPLETED)
            finally:
                for future in fetching:
                    future.cancel()
                for batch in batches:
                    batch.cancel()

    # --- stages -------------------------------------------------------------------------------
    def _room(self, held_bytes: int, in_flight: int, largest: int) -> bool:
        """Whether one more download fits :attr:`held_bytes`: the bytes held, and each download
        in flight counted as the largest image so far (before any, an equal share of the
        budget), plus this one. With nothing held or in flight, one download always fits."""
        if held_bytes == 0 and in_flight == 0:
            return True
        each = largest or self.held_bytes // self.fetch_workers
        return held_bytes + (in_flight + 1) * each <= self.held_bytes

    def _fetch(self, fetch, key, ref: str):
        """``(key, name, bytes)``, or a Result with the reason the image was not fetched."""
        started = time.perf_counter()
        with self._host_slot(ref):
            try:
                data = fetch(key, ref)
            except ImageFetchError as exc:
                self._count(errors="not fetched", fetch_s=time.perf_counter() - started)
                return Result(key, None, error=f"image not fetched: {exc}")
        self._count(fetched=1, fetch_s=time.perf_counter() - started)
        name = None if ref.startswith("data:") else ref.split("?", 1)[0][-200:]
        return key, name, data

    def _host_slot(self, ref: str) -> threading.Semaphore:
        try:
            parts = urllib.parse.urlsplit(ref) if "://" in ref[:12] else None
        except ValueError:  # malformed: the fetcher refuses it, under the shared slot
            parts = None
        host = f"{parts.scheme}://{parts.netloc}".lower() if parts else ref[:5]
        with self._hosts_lock:
            if host not in self._hosts:
                self._hosts[host] = threading.Semaphore(self.per_host)
            return self._hosts[host]

    def _start_batch(
        self, fetched: list, decoding: dict[str, _Batch], device_thread: ThreadPoolExecutor
    ) -> tuple[_Batch | None, list[Result]]:
        """Take up to a batch off ``fetched`` (by count, and by the pixels to decode on the CPU):
        hash, look up, submit the decoding of what the cache lacks (to the device decoder in
        ``device_thread``, or to the CPU). Returns the batch (None when nothing to decode) and
        the results known at once (cached, or a bad header). An image that an earlier batch is
        embedding (``decoding``: hash -> batch) joins that batch's results instead."""
        from backend.images import read_size

        taken: list[tuple[Hashable, str, _Image]] = []
        pixels, nbytes, done = 0, 0, []
        errors_before = 0
        while fetched and len(taken) < self.batch_size:
            key, name, data = fetched[0]
            try:
                width, height = read_size(data, name, max_pixels=self.encoder.max_pixels)
            except ImageDecodeError as exc:
                fetched.pop(0)
                self._count(errors="not decoded")
                done.append(Result(key, _sha(data), error=f"image not decoded: {exc}"))
                errors_before += 1
                continue
            on_device = self.device_decoder is not None and self.device_decoder.accepts(data)
            if taken and not on_device and pixels + width * height > self.batch_pixels:
                break
            if taken and nbytes + len(data) > self.batch_bytes:
                break
            fetched.pop(0)
            taken.append((key, _sha(data), _Image(name, data, width * height, on_device)))
            pixels += 0 if on_device else width * height
            nbytes += len(data)
        vectors = self.cache.get_many(self.encoder.id, {sha for _, sha, _ in taken}) if taken else {}
        todo: dict[str, _Image] = {}
        keys: list[tuple[Hashable, str]] = []
        for key, sha, image in taken:
            if sha in vectors:
                done.append(Result(key, sha, vectors[sha]))
            elif sha in decoding:
                decoding[sha].keys.append((key, sha))
            else:
                todo.setdefault(sha, image)
                keys.append((key, sha))
        self._count(cached=len(done) - errors_before)
        if not todo:
            return None, done
        batch = _Batch(self, keys, todo, device_thread)
        decoding.update(dict.fromkeys(todo, batch))
        return batch, done

    def _finish_batch(self, batch: _Batch) -> list[Result]:
        """Wait for the batch's pixels, embed them, store the vectors; its results."""
        vectors, errors = batch.embed()
        batch.todo.clear()  # its images' bytes are free now (the byte budget counts on it)
        if vectors:
            self.cache.put_many(self.encoder.id, vectors)
        self._count(embedded=len(vectors))
        out = []
        for key, sha in batch.keys:
            if sha in vectors:
                out.append(Result(key, sha, vectors[sha]))
            else:
                self._count(errors="not decoded")
                out.append(Result(key, sha, error=f"image not decoded: {errors[sha]}"))
        return out

    def _decoder_pool(self):
        """The decoding processes, started on first use and kept for later runs; started again
        when one of them died (killed for memory, a crash in a decoder library), which breaks
        the whole pool: its pending images become image errors, later batches go to new ones."""
        with self._pool_lock:
            if self._pool is not None and getattr(self._pool, "_broken", False):
                log.warning("a decoding process died; starting the decoding processes again")
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    self.decode_workers,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_exit_with_parent,
                    initargs=(os.getpid(),),
                )
            return self._pool

    def _note_held(self, held_bytes: int) -> None:
        with self._stats_lock:
            self.stats.held_bytes_peak = max(self.stats.held_bytes_peak, held_bytes)

    def _count(self, errors: str | None = None, **amounts) -> None:
        with self._stats_lock:
            if errors:
                self.stats.errors[errors] += 1
            for name, amount in amounts.items():
                setattr(self.stats, name, getattr(self.stats, name) + amount)


@dataclass(frozen=True)
class _Image:
    """Encoded bytes waiting to be decoded: their name, size from the header (width × height)
    and whether they go to the device decoder."""

    name: str | None
    data: bytes
    pixels: int
    on_device: bool


class _Batch:
    """Images of one encoder call, decoding from the moment the batch is made: JPEGs the device
    decoder takes in the pipeline's device thread (decoded and preprocessed there, on the
    encoder's device), the rest in the process pool (or, with no pool, here at :meth:`embed`).
    JPEGs the device refuses are handed to the CPU as soon as this thread sees the device done."""

    def __init__(
        self,
        pipeline: Pipeline,
        keys: list[tuple[Hashable, str]],
        todo: dict[str, _Image],
        device_thread: ThreadPoolExecutor,
    ):
        self.pipeline = pipeline
        self.keys = keys
        self.todo = todo
        self.nbytes = sum(len(image.data) for image in todo.values())  # held until the batch is embedded
        self.cpu: dict[str, Future | None] = {}  # sha -> its decoding in the pool (None: decoded at embed)
        self.device: Future | None = None
        self._device_result: tuple[Any, list[str], dict[str, str], float] | None = None
        self._to_cpu([sha for sha, image in todo.items() if not image.on_device])
        on_device = [sha for sha, image in todo.items() if image.on_device]
        if on_device:
            self.device = device_thread.submit(self._decode_on_device, on_device)

    def _to_cpu(self, shas: list[str]) -> None:
        pipeline = self.pipeline
        pool = pipeline._decoder_pool() if shas and pipeline.decode_workers > 0 else None
        encoder = pipeline.encoder
        for sha in shas:
            image = self.todo[sha]
            self.cpu[sha] = None  # decoded in this process at embed, unless the pool takes it
            if pool is not None:
                try:
                    self.cpu[sha] = pool.submit(
                        decode_pixels, image.data, image.name, encoder.max_pixels, encoder.preprocess
                    )
                except BrokenProcessPool:  # died since it was handed out: the next batch gets new ones
                    pool = None

    def _decode_on_device(self, shas: list[str]) -> tuple[Any, list[str], dict[str, str], float]:
        """Runs in the device thread: (pixels on the device, their hashes, {hash: why the device
        refused it}, seconds)."""
        from backend.encoders.device_decode import decode_on_device

        started = time.perf_counter()
        images = [self.todo[sha] for sha in shas]
        out = decode_on_device(
            self.pipeline.device_decoder,
            [image.data for image in images],
            self.pipeline.encoder.preprocess,
            [image.pixels for image in images],
        )
        refused = {shas[index]: reason for index, reason in out.refused.items()}
        return out.pixels, [shas[index] for index in out.taken], refused, time.perf_counter() - started

    def _device_outcome(self) -> tuple[Any, list[str], dict[str, str], float]:
        """The device thread's result (waiting for it); the first call sends what it refused
        to the CPU."""
        if self._device_result is None:
            assert self.device is not None
            self._device_result = self.device.result()  # a bug in the device thread raises here
            refused = self._device_result[2]
            if refused:
                log.info("%d JPEG(s) refused by %r decoded on the CPU", len(refused), self.pipeline.device_decoder)
            self._to_cpu(list(refused))
        return self._device_result

    def pending(self) -> set[Future]:
        if self.device is not None and self.device.done():
            self._device_outcome()
        futures = {f for f in self.cpu.values() if f is not None and not f.done()}
        if self.device is not None and not self.device.done():
            futures.add(self.device)
        return futures

    def ready(self) -> bool:
        asynchronous = self.device is not None or any(f is not None for f in self.cpu.values())
        return asynchronous and not self.pending()

    def cancel(self) -> None:
        for future in [self.device, *self.cpu.values()]:
            if future is not None:
                future.cancel()

    def embed(self) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        """``({sha: vector}, {sha: reason it was not decoded})``: the device's pixels and the
        CPU's, preprocessed by the same :class:`~backend.encoders.preprocess.Preprocess`, in one
        encoder call."""
        encoder, stats = self.pipeline.encoder, self.pipeline
        errors: dict[str, str] = {}
        device_pixels, good = None, []
        if self.device is not None:
            device_pixels, taken, _, seconds = self._device_outcome()
            good.extend(taken)
            stats._count(decode_s=seconds, device_decode_s=seconds, device_decoded=len(taken))
        pixels = []
        for sha, future in self.cpu.items():
            if future is not None:
                try:
                    outcome, seconds = future.result()
                except BrokenProcessPool as exc:  # its process died (memory?): this image's error
                    outcome, seconds = ImageDecodeError(f"the decoding process died while decoding it ({exc})"), 0.0
            else:
                image = self.todo[sha]
                outcome, seconds = decode_pixels(image.data, image.name, encoder.max_pixels, encoder.preprocess)
            stats._count(decode_s=seconds)
            if isinstance(outcome, ImageDecodeError):
                errors[sha] = str(outcome)
            else:
                pixels.append(outcome)
                good.append(sha)
        self.cpu.clear()
        self.device = self._device_result = None
        if not good:
            return {}, errors
        batch: Any = np.stack(pixels) if pixels else None
        if device_pixels is not None:
            batch = _on_device_with(device_pixels, batch)
        started = time.perf_counter()
        with self.pipeline._encoding:
            rows = np.asarray(encoder.embed_pixels(batch), dtype=np.float32)
        stats._count(encode_s=time.perf_counter() - started)
        return dict(zip(good, rows)), errors


def _on_device_with(device_pixels, host_pixels: np.ndarray | None):
    """The device decoder's pixels (a tensor on the encoder's device, made on the decoder's own
    stream) followed by the CPU's (an ndarray, copied to that device): one tensor."""
    import torch

    if device_pixels.is_cuda:  # its memory is not reused while this stream still reads it
        device_pixels.record_stream(torch.cuda.current_stream(device_pixels.device))
    if host_pixels is None:
        return device_pixels
    host = torch.from_numpy(host_pixels).to(device_pixels.device, non_blocking=True)
    return torch.cat([device_pixels, host.to(device_pixels.dtype)])


PARENT_CHECK_S = 1.0
"""How often a decoding process checks that the process that started it is still there."""


def _exit_with_parent(parent_pid: int) -> None:
    """Initializer of a decoding process: exit when the parent is gone (killed, or ended without
    shutting the pool down). The pool's queues keep their pipes open in every process, so a
    decoding process would otherwise wait for work forever as an orphan."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_CHECK_S)
        os._exit(0)

    threading.Thread(target=watch, name="labelcast-parent-watch", daemon=True).start()


def decode_pixels(data: bytes, name: str | None, max_pixels: int, preprocess) -> tuple[Any, float]:
    """Decode and preprocess one image (runs in a decoding process).

    Returns
    -------
    (ndarray of shape (3, S, S) float32, or the ImageDecodeError), seconds taken
    """
    from backend.images import decode_image

    started = time.perf_counter()
    try:
        image = decode_image(data, name, max_pixels=max_pixels, target_size=preprocess.min_decode_size)
        outcome: Any = preprocess.image(image)
    except ImageDecodeError as exc:
        outcome = exc
    return outcome, time.perf_counter() - started


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
