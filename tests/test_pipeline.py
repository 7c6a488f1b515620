"""Tests of backend.pipeline: real image files behind a real loopback HTTP server, the real
SSRF-safe fetcher, the tiny encoder, a real SQLite store as the cache."""

from __future__ import annotations

import http.server
import threading
import os
import time
from types import SimpleNamespace

import numpy as np
import pytest

from backend.pipeline import Pipeline
from conftest import xray_png


class ImageServer:
    """Serves ``/N.png`` (image N), ``/bad`` (not an image) and 404s; ``/slow/N.png`` after
    ``slow_s``. Counts requests and the most served at once."""

    def __init__(self, images: dict[str, bytes], slow_s: float = 0.0, latency_s: float = 0.0):
        self.images, self.slow_s, self.latency_s = images, slow_s, latency_s
        self.hits = 0
        self.active = self.most_active = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                with outer.lock:
                    outer.hits += 1
                    outer.active += 1
                    outer.most_active = max(outer.most_active, outer.active)
                try:
                    path = self.path.split("?", 1)[0].lstrip("/")
                    delay = outer.latency_s
                    if path.startswith("slow/"):
                        path, delay = path[5:], outer.slow_s
                    time.sleep(delay)
                    body = outer.images.get(path)
                    if body is None:
                        self.send_response(404)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(200)
                    self.send_header("Content-Type", "image/png")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                finally:
                    with outer.lock:
                        outer.active -= 1

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def encoder(tiny_encoder_spec):
    from backend.encoders import load_encoder

    return load_encoder(tiny_encoder_spec, device="cpu")


@pytest.fixture
def images():
    out = {f"{i}.png": xray_png(i, i % 2 == 0) for i in range(40)}
    out["bad"] = b"not an image at all"
    return out


@pytest.fixture
def server(images):
    server = ImageServer(images, slow_s=2.0)
    yield server
    server.close()


@pytest.fixture
def fetch():
    from backend.labelstudio.client import LabelStudioClient

    client = LabelStudioClient(None, None, allowed_hosts="127.0.0.1")
    return lambda key, ref: client.fetch_image(ref, key)


def proxy_encoder(encoder, embed_pixels):
    """A CPU encoder that is ``encoder`` but for ``embed_pixels`` (to stall, count or watch its
    calls)."""
    return SimpleNamespace(
        id=encoder.id,
        dim=encoder.dim,
        max_pixels=encoder.max_pixels,
        is_cuda=False,
        preprocess=encoder.preprocess,
        embed_pixels=embed_pixels,
    )


def _pipeline(encoder, store, **kwargs):
    pipeline = Pipeline(encoder, store, **{"decode_workers": 0, **kwargs})
    return pipeline


def test_results_carry_their_keys_and_the_right_vectors_whatever_the_order(
    encoder, sqlite_store, server, images, fetch
):
    """Image 0 answers last: results come as they are ready, each with its key, and each
    vector is the encoder's own embedding of that image."""
    pipeline = _pipeline(encoder, sqlite_store, batch_size=4)
    refs = [(0, f"{server.url}/slow/0.png")] + [(i, f"{server.url}/{i}.png") for i in range(1, 12)]
    batches = list(pipeline.run(refs, fetch))
    keys = [r.key for batch in batches for r in batch]
    assert sorted(keys) == list(range(12))
    assert keys[-1] == 0  # the slow one did not hold up the others
    expected = encoder.embed_bytes([images[f"{i}.png"] for i in range(12)])
    for batch in batches:
        for result in batch:
            assert result.error is None
            np.testing.assert_allclose(result.vector, expected[result.key], atol=1e-5)


def test_every_failure_is_a_result_with_its_reason(encoder, sqlite_store, server, fetch):
    """A 404, a refused host, bytes that are not an image and a malformed URL are results
    with a reason; the good images around them are embedded."""
    pipeline = _pipeline(encoder, sqlite_store, batch_size=3)
    refs = {
        "good1": f"{server.url}/1.png",
        "missing": f"{server.url}/nope.png",
        "refused": "http://images.example.com/1.png",
        "bad": f"{server.url}/bad",
        "malformed": "http://[::1/x",
        "good2": f"{server.url}/2.png",
    }
    results = {r.key: r for r in pipeline.embed_all(refs.items(), fetch)}
    assert results["good1"].vector is not None and results["good2"].vector is not None
    assert results["missing"].error.startswith("image not fetched") and "404" in results["missing"].error
    assert (
        results["refused"].error.startswith("image not fetched") and "ALLOWED_IMAGE_HOSTS" in results["refused"].error
    )
    assert results["bad"].error.startswith("image not decoded") and results["bad"].sha
    assert results["malformed"].error.startswith("image not fetched")
    assert pipeline.stats.errors == {"not fetched": 3, "not decoded": 1}


def test_a_bug_in_the_fetcher_is_raised_not_swallowed(encoder, sqlite_store, server):
    """Only ImageFetchError is an image error: a TypeError from the fetcher propagates."""

    def broken(key, ref):
        raise TypeError("bug")

    with pytest.raises(TypeError, match="bug"):
        _pipeline(encoder, sqlite_store).embed_all([(1, f"{server.url}/1.png")], broken)


def test_cached_images_are_looked_up_before_decoding(encoder, sqlite_store, server, fetch):
    """A second run over the same images decodes and embeds nothing; identical bytes under two
    keys are embedded once; the vectors are in the store as soon as a batch is out."""
    pipeline = _pipeline(encoder, sqlite_store, batch_size=4)
    refs = [(i, f"{server.url}/{i}.png") for i in range(8)] + [("copy", f"{server.url}/3.png")]
    first = {r.key: r for r in pipeline.embed_all(refs, fetch)}
    assert pipeline.stats.embedded == 8
    assert sqlite_store.get_many(encoder.id, [first[5].sha])[first[5].sha] is not None
    again = Pipeline(encoder, sqlite_store, decode_workers=0)
    second = {r.key: r for r in again.embed_all(refs, fetch)}
    assert again.stats.embedded == 0 and again.stats.cached == 9
    np.testing.assert_allclose(second["copy"].vector, first[3].vector)


def test_the_process_pool_decodes_like_this_process(encoder, sqlite_store, tmp_path, server, fetch):
    """Decoding in two worker processes gives the same vectors as decoding here."""
    from backend.store import SQLiteStore

    refs = [(i, f"{server.url}/{i}.png") for i in range(10)] + [("bad", f"{server.url}/bad")]
    here = {r.key: r for r in _pipeline(encoder, sqlite_store).embed_all(refs, fetch)}
    pool = Pipeline(encoder, SQLiteStore(tmp_path / "other.sqlite"), decode_workers=2, batch_size=4)
    try:
        there = {r.key: r for r in pool.embed_all(refs, fetch)}
    finally:
        pool.close()
    assert pool.stats.embedded == 10 and pool.stats.decode_s > 0
    assert there["bad"].error.startswith("image not decoded")
    for i in range(10):
        np.testing.assert_allclose(there[i].vector, here[i].vector, atol=1e-5)


def test_a_stalled_encoder_stops_the_fetching(encoder, sqlite_store, images, fetch):
    """Back-pressure: while the encoder is stuck, at most ``max_held`` images are fetched of
    300; once it goes on, every one comes out."""
    server = ImageServer(images)
    release = threading.Event()
    calls = []

    def stalling(pixels):
        calls.append(len(pixels))
        release.wait(30)
        return encoder.embed_pixels(pixels)

    pipeline = Pipeline(
        proxy_encoder(encoder, stalling), sqlite_store, decode_workers=0, batch_size=4, batches_ahead=1, fetch_workers=4
    )
    refs = [(i, f"{server.url}/{i % 40}.png?copy={i}") for i in range(300)]
    out = []
    worker = threading.Thread(target=lambda: out.extend(pipeline.embed_all(refs, fetch)))
    try:
        worker.start()
        time.sleep(1.5)
        assert calls  # the first batch reached the encoder
        assert server.hits <= pipeline.max_held + pipeline.fetch_workers, server.hits
    finally:
        release.set()
        worker.join(60)
        server.close()
    assert len(out) == 300 and all(r.vector is not None for r in out)


def padded_png(png: bytes, extra: int, seed: int) -> bytes:
    """``png`` with a private ancillary chunk of ``extra`` random bytes after its header: as
    many bytes to download and hold, the same pixels (decoders skip the chunk)."""
    import struct
    import zlib

    data = np.random.default_rng(seed).bytes(extra)
    chunk = struct.pack(">I", len(data)) + b"prVt" + data + struct.pack(">I", zlib.crc32(b"prVt" + data))
    end_of_header = 8 + 25  # signature, then IHDR (length, type, 13 bytes, CRC)
    return png[:end_of_header] + chunk + png[end_of_header:]


def test_the_bytes_held_stay_within_the_budget(encoder, sqlite_store):
    """Back-pressure by bytes: 2-MB images, a 9-MB budget, the encoder stuck: at most the
    budget plus one image is downloaded (count alone would allow 12 images, 24 MB); once the
    encoder goes on, all 40 come out, embedded as their unpadded selves would be. (Before any
    size is known a download counts as a quarter of the budget here, 2.25 MB: the first four
    fit.)"""
    size = 2 * 1024 * 1024
    images = {f"{i}.png": padded_png(xray_png(i, i % 2 == 0), size, i) for i in range(40)}
    server = ImageServer(images)
    release = threading.Event()
    calls = []

    def stalling(pixels):
        calls.append(len(pixels))
        release.wait(30)
        return encoder.embed_pixels(pixels)

    fetched = []

    def counting_fetch(key, ref):
        data = fetch_bytes(ref)
        fetched.append(len(data))
        return data

    from backend.labelstudio.client import LabelStudioClient

    fetch_bytes = LabelStudioClient(None, None, allowed_hosts="127.0.0.1").fetch_image
    budget = 9 * 1024 * 1024
    pipeline = Pipeline(
        proxy_encoder(encoder, stalling),
        sqlite_store,
        decode_workers=0,
        batch_size=4,
        batches_ahead=1,
        fetch_workers=4,
        held_bytes=budget,
    )
    assert pipeline.max_held * size > 2 * budget  # the count alone would not bound it
    out = []
    worker = threading.Thread(
        target=lambda: out.extend(pipeline.embed_all([(i, f"{server.url}/{i}.png") for i in range(40)], counting_fetch))
    )
    try:
        worker.start()
        wait = time.monotonic() + 10
        while not calls and time.monotonic() < wait:
            time.sleep(0.05)
        time.sleep(1.0)  # the fetchers had time to overrun, if they would
        assert calls  # a batch reached the encoder, which holds it
        assert sum(fetched) <= budget + max(fetched), (len(fetched), sum(fetched))
    finally:
        release.set()
        worker.join(60)
        server.close()
    assert sorted(r.key for r in out) == list(range(40))
    expected = encoder.embed_bytes([xray_png(i, i % 2 == 0) for i in range(40)])
    for result in out:
        np.testing.assert_allclose(result.vector, expected[result.key], atol=1e-5)


def test_fetches_to_one_host_are_limited(encoder, sqlite_store, images, fetch):
    """With 12 fetch workers and a per-host limit of 3, the server never sees more than 3
    requests at once, and does see 3 (they run side by side)."""
    server = ImageServer(images, latency_s=0.1)
    try:
        pipeline = _pipeline(encoder, sqlite_store, fetch_workers=12, per_host=3)
        results = pipeline.embed_all([(i, f"{server.url}/{i}.png") for i in range(24)], fetch)
    finally:
        server.close()
    assert len(results) == 24
    assert server.most_active == 3


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        pytest.param({"batch_size": 0}, "batch_size=0", id="batch-size"),
        pytest.param({"per_host": 0}, "per_host=0", id="per-host"),
        pytest.param({"decode_workers": -1}, "decode_workers=-1", id="decode-workers"),
        pytest.param({"held_bytes": 0}, "held_bytes=0", id="held-bytes"),
    ],
)
def test_bad_settings_are_named(encoder, sqlite_store, kwargs, match):
    """A setting out of range raises ValueError naming it."""
    with pytest.raises(ValueError, match=match):
        Pipeline(encoder, sqlite_store, **kwargs)


# --- the device decoder (nvJPEG on CUDA) -----------------------------------------------------
# There is no GPU here. These tests inject backend.encoders.device_decode.JpegDecoder on the CPU:
# the same torchvision.io.decode_jpeg call that runs nvJPEG on CUDA, decoding with libjpeg-turbo
# instead. That is the only stand-in; the encoder, the process pool, the fetcher, the HTTP server
# and the store are real. The CUDA stream handling itself runs only on a GPU.


class RecordingJpegDecoder:
    """JpegDecoder on the CPU (see above), recording the bytes it was given."""

    def __init__(self):
        from backend.encoders.device_decode import JpegDecoder

        self.decoder = JpegDecoder("cpu")
        self.seen: list[bytes] = []

    def accepts(self, data):
        return self.decoder.accepts(data)

    def __call__(self, datas):
        self.seen.extend(datas)
        return self.decoder(datas)


def _jpeg(png: bytes, mode: str = "L", side: int = 320, **kwargs) -> bytes:
    """A JPEG of ``side`` × 1.2 ``side`` pixels. Sides are multiples of 8 here: the CPU path's
    JPEG draft mode rounds the aspect ratio of its reduced image (a 301 × 320 image drafted to
    38 × 40 resizes to 32 × 33, not 32 × 34, at the tiny encoder's 32 px), which shifts the
    centre crop by a row whichever decoder is compared."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert(mode).resize((side, side * 6 // 5))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90, **kwargs)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def mixed_images(chest_xray_png_bytes):
    """The real radiograph (pydicom-data RG1_UNCR) as DICOM, PNG, and JPEGs the device takes
    (gray, RGB, progressive, 1,024 px) or not (CMYK); one JPEG the device refuses only when it
    tries (no end-of-image marker: decode_jpeg refuses it, Pillow decodes it); bytes that are
    no image."""
    from pydicom.data import get_testdata_file

    from test_encoders_device_decode import cut_jpeg

    with open(get_testdata_file("RG1_UNCR.dcm"), "rb") as handle:
        dicom = handle.read()
    png = chest_xray_png_bytes
    import io

    from PIL import Image

    return {
        "chest.dcm": dicom,
        "chest.png": png,
        "gray.jpg": _jpeg(png),
        "rgb.jpg": _jpeg(png, "RGB"),
        "progressive.jpg": _jpeg(png, progressive=True),
        "large.jpg": _jpeg(png, side=1024),
        "cmyk.jpg": _jpeg(png, "CMYK"),
        "cut.jpg": cut_jpeg(Image.open(io.BytesIO(png))),
        "other.png": xray_png(3, True),
        "bad": b"not an image at all",
    }


DEVICE_JPEGS = ("gray.jpg", "rgb.jpg", "progressive.jpg", "large.jpg")
"""Of mixed_images, the JPEGs the device decodes (cut.jpg it is given, and refuses)."""


@pytest.fixture
def mixed_server(mixed_images):
    server = ImageServer(mixed_images)
    yield server
    server.close()


def _run(pipeline, server, names, fetch):
    try:
        return {r.key: r for r in pipeline.embed_all([(name, f"{server.url}/{name}") for name in names], fetch)}
    finally:
        pipeline.close()


def test_a_batch_is_split_at_submission_jpegs_to_the_device_the_rest_to_the_pool(encoder, sqlite_store, mixed_images):
    """When a batch is made, the JPEGs the device takes go to the device thread and everything
    else (DICOM, PNG, CMYK JPEG) is submitted to the process pool at once, before the batch
    is embedded. (The device decoder is decode_jpeg on the CPU: there is no GPU here.)"""
    import hashlib
    from concurrent.futures import Future, ThreadPoolExecutor

    decoder = RecordingJpegDecoder()
    pipeline = Pipeline(encoder, sqlite_store, decode_workers=2, device_decoder=decoder)
    names = [n for n in mixed_images if n not in ("bad", "cut.jpg")]
    fetched = [(name, name, mixed_images[name]) for name in names]
    try:
        with ThreadPoolExecutor(1) as device_thread:
            batch, cached = pipeline._start_batch(fetched, {}, device_thread)
            assert not cached and batch is not None
            sha = {name: hashlib.sha256(mixed_images[name]).hexdigest() for name in names}
            on_cpu = {name for name in names if sha[name] in batch.cpu}
            assert on_cpu == {"chest.dcm", "chest.png", "cmyk.jpg", "other.png"}
            assert all(isinstance(future, Future) for future in batch.cpu.values())
            assert batch.device is not None
            batch.device.result(timeout=60)
            assert sorted(decoder.seen) == sorted(mixed_images[name] for name in DEVICE_JPEGS)
            vectors, errors = batch.embed()
    finally:
        pipeline.close()
    assert not errors and set(vectors) == set(sha.values())
    stats = pipeline.stats
    assert stats.device_decoded == len(DEVICE_JPEGS) and stats.decode_s > stats.device_decode_s > 0
    assert stats.encode_s > 0


def test_a_jpeg_the_device_refuses_is_decoded_on_the_cpu(encoder, sqlite_store, tmp_path, mixed_server, fetch):
    """cut.jpg passes the header check, the device decoder refuses it, the CPU decodes it: it
    is embedded, with the very vector the CPU-only pipeline gives it; no error is counted. (The
    device decoder is decode_jpeg on the CPU: there is no GPU here.)"""
    from backend.store import SQLiteStore

    decoder = RecordingJpegDecoder()
    names = ["gray.jpg", "cut.jpg", "rgb.jpg"]
    split = _run(Pipeline(encoder, sqlite_store, decode_workers=2, device_decoder=decoder), mixed_server, names, fetch)
    cpu_only = _run(
        Pipeline(encoder, SQLiteStore(tmp_path / "cpu.sqlite"), decode_workers=0), mixed_server, names, fetch
    )
    assert any(data.startswith(b"\xff\xd8") and data.endswith(b"\0" * 10) for data in decoder.seen)  # it was tried
    assert split["cut.jpg"].error is None
    np.testing.assert_allclose(split["cut.jpg"].vector, cpu_only["cut.jpg"].vector, atol=1e-5)


@pytest.mark.parametrize("decode_workers", [pytest.param(0, id="no-pool"), pytest.param(2, id="pool")])
def test_a_mixed_batch_gives_the_cpu_pipelines_vectors(
    encoder, sqlite_store, tmp_path, mixed_server, mixed_images, fetch, decode_workers
):
    """JPEG, PNG and DICOM in one batch, with the device decoder: every image has a result,
    'bad' its reason; images decoded on the CPU have the CPU-only pipeline's vectors, and the
    device's JPEGs agree with them within 2.5e-3 (the route's resampling; on this tiny encoder a
    mirrored image moves a vector by 1.3e-2). (The device decoder is decode_jpeg on the CPU:
    there is no GPU here.)"""
    from backend.store import SQLiteStore

    names = list(mixed_images)
    split_pipeline = Pipeline(
        encoder, sqlite_store, decode_workers=decode_workers, device_decoder=RecordingJpegDecoder(), batch_size=16
    )
    split = _run(split_pipeline, mixed_server, names, fetch)
    cpu_only = _run(
        Pipeline(encoder, SQLiteStore(tmp_path / "cpu.sqlite"), decode_workers=0), mixed_server, names, fetch
    )
    assert split["bad"].error.startswith("image not decoded") and split_pipeline.stats.errors == {"not decoded": 1}
    assert split_pipeline.stats.embedded == len(names) - 1
    assert split_pipeline.stats.device_decoded == len(DEVICE_JPEGS)  # not cut.jpg: it was refused
    for name in names[:-1]:
        assert split[name].error is None, split[name].error
        atol = 2.5e-3 if name in DEVICE_JPEGS else 1e-5
        np.testing.assert_allclose(split[name].vector, cpu_only[name].vector, atol=atol, err_msg=name)


def test_decoding_processes_exit_when_their_parent_is_killed(tiny_encoder_spec, tmp_path):
    """A process that used the pool and dies without shutting it down (kill -9, os._exit)
    leaves no decoding process behind: each one exits within a few seconds."""
    import os
    import pathlib
    import subprocess
    import sys

    from conftest import PROJECT_ROOT

    (tmp_path / "x.png").write_bytes(xray_png(1, True))
    code = (
        "import os, pathlib, sys; from backend.encoders import load_encoder; from backend.pipeline import Pipeline;"
        "from backend.store import SQLiteStore;"
        f"p = Pipeline(load_encoder({tiny_encoder_spec!r}, device='cpu'), SQLiteStore({str(tmp_path / 's.sqlite')!r}), decode_workers=2);"
        f"data = pathlib.Path({str(tmp_path / 'x.png')!r}).read_bytes();"
        "assert p.embed_all([(0, 'x.png')], lambda k, r: data)[0].vector is not None;"
        "print(' '.join(str(pid) for pid in p._pool._processes), flush=True); os._exit(0)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
    )
    pids = [int(pid) for pid in out.stdout.split()]
    assert pids, out.stderr[-2000:]  # the pool starts its processes as work arrives

    def alive(pid):
        status = pathlib.Path(f"/proc/{pid}/status")
        try:
            return "\nState:\tZ" not in status.read_text()
        except FileNotFoundError:
            return False

    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(alive(pid) for pid in pids)


def test_runs_in_two_threads_share_the_encoder_one_batch_at_a_time(encoder, sqlite_store, server, images, fetch):
    """Two runs of one pipeline at once (jobs of two projects): every image comes out of its
    own run with the encoder's own embedding, and the encoder is never called twice at once."""
    lock, active, most = threading.Lock(), [0], [0]

    def counting(pixels):
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        time.sleep(0.05)  # long enough for the other run's batch to arrive meanwhile
        try:
            return encoder.embed_pixels(pixels)
        finally:
            with lock:
                active[0] -= 1

    pipeline = Pipeline(proxy_encoder(encoder, counting), sqlite_store, decode_workers=0, batch_size=2)
    out: dict = {}

    def run(name, seeds):
        out[name] = pipeline.embed_all([(i, f"{server.url}/{i}.png") for i in seeds], fetch)

    threads = [threading.Thread(target=run, args=(n, s)) for n, s in (("a", range(0, 20)), ("b", range(20, 40)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(r.key for r in out["a"]) == list(range(20)) and sorted(r.key for r in out["b"]) == list(range(20, 40))
    expected = encoder.embed_bytes([images[f"{i}.png"] for i in range(40)])
    for result in out["a"] + out["b"]:
        np.testing.assert_allclose(result.vector, expected[result.key], atol=1e-5)
    assert most[0] == 1


def test_a_dead_decoding_process_costs_its_images_not_the_pipeline(encoder, sqlite_store, server, fetch):
    """When the decoding processes die between runs (killed for memory, say), the next run starts
    new ones and embeds everything."""
    import signal

    pipeline = Pipeline(encoder, sqlite_store, decode_workers=1, batch_size=4)
    try:
        first = pipeline.embed_all([(i, f"{server.url}/{i}.png") for i in range(4)], fetch)
        assert all(r.vector is not None for r in first)
        pids = [process.pid for process in pipeline._pool._processes.values()]
        assert pids
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        deadline = time.time() + 30
        while not getattr(pipeline._pool, "_broken", False) and time.time() < deadline:
            time.sleep(0.05)
        assert pipeline._pool._broken
        again = pipeline.embed_all([(i, f"{server.url}/{i}.png") for i in range(4, 10)], fetch)
    finally:
        pipeline.close()
    assert sorted(r.key for r in again) == list(range(4, 10))
    assert all(r.vector is not None for r in again), [r.error for r in again if r.vector is None]
