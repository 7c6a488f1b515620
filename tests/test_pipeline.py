"""Tests of backend.pipeline: real image files behind a real loopback HTTP server, the real
SSRF-safe fetcher, the tiny encoder, a real SQLite store as the cache."""

from __future__ import annotations

import http.server
import threading
import time

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

    class Stalling:
        id, dim, max_pixels, is_cuda, preprocess = (
            encoder.id,
            encoder.dim,
            encoder.max_pixels,
            False,
            encoder.preprocess,
        )

        def embed_pixels(self, pixels):
            calls.append(len(pixels))
            release.wait(30)
            return encoder.embed_pixels(pixels)

    pipeline = Pipeline(Stalling(), sqlite_store, decode_workers=0, batch_size=4, batches_ahead=1, fetch_workers=4)
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

    class Stalling:
        id, dim, max_pixels, is_cuda, preprocess = (
            encoder.id,
            encoder.dim,
            encoder.max_pixels,
            False,
            encoder.preprocess,
        )

        def embed_pixels(self, pixels):
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
        Stalling(), sqlite_store, decode_workers=0, batch_size=4, batches_ahead=1, fetch_workers=4, held_bytes=budget
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


def test_on_cuda_the_encoder_decodes_several_batches_per_call(encoder, sqlite_store, server, fetch):
    """With a CUDA encoder the pipeline hands whole byte batches (GPU_BATCHES_PER_CALL encoder
    batches) to embed_bytes (nvJPEG one batch ahead) and takes its decode errors as results.
    The GPU is stood in for by the CPU encoder behind the same interface."""
    from backend.pipeline import GPU_BATCHES_PER_CALL

    calls = []

    class OnCuda:
        id, dim, max_pixels, preprocess, is_cuda, batch_size = (
            encoder.id,
            encoder.dim,
            encoder.max_pixels,
            encoder.preprocess,
            True,
            2,
        )

        def embed_bytes(self, datas, names, on_error=None):
            calls.append(len(datas))
            return encoder.embed_bytes(datas, names, on_error=on_error)

    pipeline = Pipeline(OnCuda(), sqlite_store, decode_workers=0, batch_size=1)
    assert pipeline.batch_size == GPU_BATCHES_PER_CALL * 2
    refs = [(i, f"{server.url}/{i}.png") for i in range(10)] + [("bad", f"{server.url}/bad")]
    results = {r.key: r for r in pipeline.embed_all(refs, fetch)}
    assert results["bad"].error.startswith("image not decoded")
    assert all(results[i].vector is not None for i in range(10))
    assert sum(calls) == 10 and max(calls) == pipeline.batch_size  # "bad" fails at its header


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

    class Counting:
        id, dim, max_pixels, is_cuda, preprocess = (
            encoder.id,
            encoder.dim,
            encoder.max_pixels,
            False,
            encoder.preprocess,
        )

        def embed_pixels(self, pixels):
            with lock:
                active[0] += 1
                most[0] = max(most[0], active[0])
            time.sleep(0.05)  # long enough for the other run's batch to arrive meanwhile
            try:
                return encoder.embed_pixels(pixels)
            finally:
                with lock:
                    active[0] -= 1

    pipeline = Pipeline(Counting(), sqlite_store, decode_workers=0, batch_size=2)
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
