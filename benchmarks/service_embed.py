"""Embedding throughput of the whole service, as a user meets it: connect a project of N labeled
tasks to a real Label Studio and time until the model version names all N labels.

Starts a real Label Studio 1.23 (``LABEL_STUDIO_BIN`` or ``--label-studio-bin``), an image
server on loopback that answers each request after ``--latency-ms``, and ``labelcast serve`` on
its embedded defaults (SQLite, a training process) with a tiny random CLIP encoder (or
``--encoder``). N tasks are imported *with* their annotations (Label Studio sends no webhook
for those: connecting reads them), the backend is connected, and the clock runs from the
connect call to ``/forecast`` reporting N labels. Prints images/s and the time split from the
backend's log (sync, encoder load, fetch, decode, encode, refit; fetch, decode and encode are
summed over their threads and processes, so they overlap the wall time).

    LABEL_STUDIO_BIN=.ls-venv/bin/label-studio python benchmarks/service_embed.py --n 600 --size 1024 --latency-ms 30
"""

from __future__ import annotations

import argparse
import http.server
import io
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import requests

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import _save_tiny_clip, free_port, start_label_studio, stop_process, wait_http  # noqa: E402

CONFIG = (ROOT / "plugin_config" / "one_finding.xml").read_text()
TOKEN = "labelcast-bench-token-0123456789abcdef"


def make_jpeg(seed: int, positive: bool, size: int) -> bytes:
    """A smooth synthetic radiograph (a JPEG of typical size, ~100 KB at 1024²)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    small = rng.random((size // 32, size // 32))
    image = Image.fromarray((small * 200).astype(np.uint8), mode="L").resize((size, size), Image.BICUBIC)
    pixels = np.asarray(image, dtype=np.float32) + rng.normal(0, 6, (size, size))
    if positive:
        yy, xx = np.mgrid[0:size, 0:size] / size
        pixels += 60 * np.exp(-((xx - 0.3) ** 2 + (yy - 0.75) ** 2) / 0.01)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="L").save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def serve_images(images: dict[str, bytes], latency_s: float):
    """A loopback server answering ``/NAME`` after ``latency_s``; returns (url, server)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            time.sleep(latency_s)
            body = images.get(self.path.lstrip("/"))
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", server


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=600, help="labeled tasks (default 600)")
    parser.add_argument("--size", type=int, default=1024, help="image side in pixels (default 1024)")
    parser.add_argument("--latency-ms", type=float, default=30.0, help="image server delay per request")
    parser.add_argument("--encoder", help="encoder spec (default: a tiny random CLIP folder)")
    parser.add_argument("--label-studio-bin", default=os.environ.get("LABEL_STUDIO_BIN"))
    args = parser.parse_args(argv)
    if not args.label_studio_bin:
        parser.error("set LABEL_STUDIO_BIN or --label-studio-bin (a label-studio 1.23 executable)")

    folder = pathlib.Path(tempfile.mkdtemp(prefix="labelcast-service-embed-"))
    print(f"making {args.n} {args.size}² JPEGs ...", file=sys.stderr)
    truth = {f"cxr{i:05d}.jpg": i % 2 == 0 for i in range(args.n)}
    images = {name: make_jpeg(i, positive, args.size) for i, (name, positive) in enumerate(truth.items())}
    image_url, image_server = serve_images(images, args.latency_ms / 1000)
    encoder = args.encoder or str(_save_tiny_clip(folder / "encoder"))
    print("starting Label Studio ...", file=sys.stderr)
    ls_url, ls_process, _ = start_label_studio(
        args.label_studio_bin, folder, "bench@example.com", "bench-pass-123", TOKEN
    )
    port = free_port()
    backend_log = folder / "backend.log"
    env = {
        **os.environ,
        "LABEL_STUDIO_URL": ls_url,
        "LABEL_STUDIO_API_KEY": TOKEN,
        "MODEL_DIR": str(folder / "model"),
        "ENCODER": encoder,
        "DEVICE": os.environ.get("DEVICE", "cpu"),
        "LOG_LEVEL": "INFO",
        "ALLOWED_IMAGE_HOSTS": "127.0.0.1",
    }
    env.pop("REDIS_URL", None)
    with open(backend_log, "wb") as log:
        backend = subprocess.Popen(
            [sys.executable, "-m", "backend.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    backend_url = f"http://127.0.0.1:{port}"
    try:
        wait_http(backend_url + "/health", timeout=120, process=backend)
        session = requests.Session()
        session.headers["Authorization"] = f"Token {TOKEN}"
        pid = session.post(
            f"{ls_url}/api/projects", json={"title": "bench", "label_config": CONFIG}, timeout=60
        ).json()["id"]
        names = list(truth)

        def choice(name):
            label = "Effusion" if truth[name] else "No effusion"
            return [{"from_name": "finding", "to_name": "image", "type": "choices", "value": {"choices": [label]}}]

        for start in range(0, len(names), 200):
            answer = session.post(
                f"{ls_url}/api/projects/{pid}/import",
                timeout=300,
                json=[
                    {"data": {"image": f"{image_url}/{name}"}, "annotations": [{"result": choice(name)}]}
                    for name in names[start : start + 200]
                ],
            )
            answer.raise_for_status()
        print(f"imported {args.n} labeled tasks; connecting the backend", file=sys.stderr)
        started = time.perf_counter()
        session.post(
            f"{ls_url}/api/ml", json={"project": pid, "url": backend_url, "title": "LabelCast"}, timeout=60
        ).raise_for_status()
        deadline = time.monotonic() + 1800
        record = {}
        while time.monotonic() < deadline:
            answer = requests.get(f"{backend_url}/forecast", params={"project": pid}, timeout=10)
            record = answer.json() if answer.ok else {}
            if record.get("n_labels") == args.n or record.get("status") == "error":
                break
            time.sleep(0.2)
        seconds = time.perf_counter() - started
        if record.get("n_labels") != args.n:
            print(f"no forecast on {args.n} labels: {record.get('message')}", file=sys.stderr)
            return 1
        text = backend_log.read_text(errors="replace")
        print(
            f"service_embed: N={args.n}, {args.size}² JPEG, {args.latency_ms:g} ms latency, "
            f"{os.cpu_count()} cores: connect → version {record['version']} in {seconds:.1f} s, "
            f"{args.n / seconds:.1f} images/s"
        )
        print("time split (backend log):")
        for what, pattern in (
            ("sync", r"synced \d+ tasks, \d+ labels from Label Studio in ([\d.]+) s"),
            ("encoder load", r"loaded encoder \S+ in ([\d.]+) s"),
            ("embedding (wall)", r"embedded \d+ images in ([\d.]+) s"),
            ("  fetch (summed)", r"fetch ([\d.]+) s"),
            ("  decode (summed)", r"decode ([\d.]+) s"),
            ("  encode", r"encode ([\d.]+) s"),
        ):
            values = [float(v) for v in re.findall(pattern, text)]
            print(f"  {what:18s} {sum(values):7.2f} s")
        print(f"  {'refit (whole job)':18s} {record.get('refit_seconds') or 0:7.2f} s")
        return 0
    finally:
        stop_process(backend)
        stop_process(ls_process)
        image_server.shutdown()


if __name__ == "__main__":
    sys.exit(main())
