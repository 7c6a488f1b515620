"""Latency of the running backend: webhook under load, /predict, last label → new forecast.

Starts ``labelcast serve`` (and, with ``--mode redis``, a private ``redis-server`` and one
``labelcast worker``) on loopback, with a tiny random CLIP encoder unless ``--encoder`` names
another, and images served by a local HTTP server. Label Studio itself is not involved: the
benchmark posts the same JSON Label Studio posts.

1. webhook: ``--rounds`` rounds of 20 concurrent ANNOTATION_CREATED posts while the worker
   refits (p50 / p99 of the HTTP round trip; target p99 <= 50 ms);
2. /predict for 100 tasks whose embeddings are cached (p50 over 20 calls; target <= 100 ms);
3. seconds from posting the last label to ``/forecast`` showing it, at 200 and 2,000 labels
   (every earlier image already embedded; includes fetching and embedding the last image,
   the probe and learning-curve refit, the plot, and the store write).

    python benchmarks/service_latency.py --mode sqlite
    python benchmarks/service_latency.py --mode redis
"""

from __future__ import annotations

import argparse
import concurrent.futures
import io
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import requests

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from conftest import _save_tiny_clip, free_port, serve_folder, start_redis, stop_process, wait_http  # noqa: E402
from load_test import Client  # noqa: E402

CONFIG = (ROOT / "plugin_config" / "one_finding.xml").read_text()
PROJECT = 1


def make_png(seed: int, positive: bool, size: int = 128) -> bytes:
    """A noisy synthetic radiograph; positives carry a faint opacity (not trivially separable)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    image = 0.5 + 0.2 * rng.standard_normal((size, size))
    if positive:
        image += 0.15 * np.exp(-((xx - 0.3) ** 2 + (yy - 0.75) ** 2) / 0.02)
    buffer = io.BytesIO()
    Image.fromarray((np.clip(image, 0, 1) * 255).astype(np.uint8), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def annotation(task_id: int, image_url: str, positive: bool, project: int = PROJECT) -> dict:
    return {
        "action": "ANNOTATION_CREATED",
        "project": {"id": project, "label_config": CONFIG},
        "task": {"id": task_id, "data": {"image": image_url}},
        "annotation": {
            "id": 10_000 + task_id,
            "was_cancelled": False,
            "updated_at": "2026-01-01T00:00:00Z",
            "result": [
                {
                    "from_name": "finding",
                    "to_name": "image",
                    "type": "choices",
                    "value": {"choices": ["Effusion" if positive else "No effusion"]},
                }
            ],
        },
    }


def percentile(values, q):
    return float(np.percentile(np.asarray(values) * 1000, q))


def wait_forecast(url: str, n_labels: int, timeout: float = 600, project: int = PROJECT) -> float:
    """Poll /forecast until it reports ``n_labels``; returns the monotonic time it did."""
    deadline = time.monotonic() + timeout
    session = requests.Session()
    while time.monotonic() < deadline:
        r = session.get(f"{url}/forecast", params={"project": project}, timeout=10)
        if r.ok and r.json()["n_labels"] == n_labels:
            return time.monotonic()
        time.sleep(0.02)
    raise TimeoutError(f"no forecast on {n_labels} labels within {timeout} s")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("sqlite", "redis"), default="sqlite")
    parser.add_argument("--encoder", help="encoder spec (default: a tiny random CLIP)")
    parser.add_argument("--rounds", type=int, default=10, help="rounds of 20 concurrent webhook posts")
    parser.add_argument("--sizes", default="200,2000", help="label counts for the last-label timing")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    # Project 1 (timed refits) labels images [0, max(sizes)); project 2 (webhook load) the rest.
    load_base = max(sizes)
    n_images = load_base + 40 + 20 * args.rounds

    work = pathlib.Path(tempfile.mkdtemp(prefix="labelcast-bench-"))
    processes = []
    try:
        encoder = args.encoder or str(_save_tiny_clip(work / "tiny-clip"))
        images = work / "images"
        images.mkdir()
        truth = {}
        for i in range(n_images):
            truth[i] = bool(i % 3 == 0)
            (images / f"{i:05d}.png").write_bytes(make_png(i, truth[i]))
        image_base, _ = serve_folder(images)
        image_url = lambda i: f"{image_base}/{i:05d}.png"  # noqa: E731

        port = free_port()
        env = {
            **os.environ,
            "MODEL_DIR": str(work / "model"),
            "ENCODER": encoder,
            "DEVICE": "cpu",
            "LOG_LEVEL": "WARNING",
            "MIN_LABELS": "30",
            "ALLOWED_IMAGE_HOSTS": "127.0.0.1",
        }  # the image server is on loopback
        env.pop("LABEL_STUDIO_URL", None)
        if args.mode == "redis":
            env["REDIS_URL"], redis_process = start_redis(work, appendonly=False)
            processes.append(redis_process)
            processes.append(subprocess.Popen([sys.executable, "-m", "backend.cli", "worker"], cwd=ROOT, env=env))
        serve = [sys.executable, "-m", "backend.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
        if args.mode == "redis":
            serve += ["--workers", "2"]
        processes.append(subprocess.Popen(serve, cwd=ROOT, env=env))
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/health", 60, processes[-1])
        session = requests.Session()
        for project in (PROJECT, PROJECT + 1):  # the measured project and the load one
            session.post(f"{url}/setup", json={"project": project, "schema": CONFIG}).raise_for_status()

        # Warm up on project 2: the encoder loads on the first job.
        load_project = PROJECT + 1
        next_load = load_base
        for _ in range(40):
            session.post(
                f"{url}/webhook", json=annotation(next_load, image_url(next_load), truth[next_load], load_project)
            )
            next_load += 1
        wait_forecast(url, 40, timeout=300, project=load_project)

        # 1. webhook latency: 20 concurrent posts per round on project 2, while it refits.
        latencies = []

        def post(task_id):
            # A new connection per webhook, as Label Studio sends them, through the load test's
            # http.client Client: `requests` costs this process, on the same 2 cores, several
            # times the CPU per call, and its own queueing would be counted as latency.
            body = annotation(task_id, image_url(task_id), truth[task_id], load_project)
            status, elapsed, _ = Client(url, keep_alive=False).post("/webhook", body)
            if status != 200:
                raise RuntimeError(f"webhook answered {status}")
            return elapsed

        with concurrent.futures.ThreadPoolExecutor(20) as pool:
            for _ in range(args.rounds):
                ids = range(next_load, next_load + 20)
                next_load += 20
                latencies += list(pool.map(post, ids))
        print(
            f"[{args.mode}] webhook, 20 concurrent x {args.rounds} rounds: "
            f"p50 {percentile(latencies, 50):.1f} ms, p99 {percentile(latencies, 99):.1f} ms, "
            f"max {max(latencies) * 1000:.1f} ms"
        )
        wait_forecast(url, next_load - load_base, project=load_project)  # let project 2 settle
        next_task = 0

        # 3 (prepared): label up to each size, then time the last label.
        results = {}
        for size in sizes:
            while next_task < size - 1:
                batch = range(next_task, min(next_task + 100, size - 1))
                for t in batch:
                    session.post(f"{url}/webhook", json=annotation(t, image_url(t), truth[t]))
                next_task = batch[-1] + 1
                wait_forecast(url, next_task)
            started = time.monotonic()
            session.post(f"{url}/webhook", json=annotation(next_task, image_url(next_task), truth[next_task]))
            next_task += 1
            results[size] = wait_forecast(url, next_task) - started
            print(f"[{args.mode}] last label -> new forecast at {size} labels: {results[size]:.2f} s")

        # 2. /predict for 100 tasks with cached embeddings (labeled tasks are embedded).
        tasks = [{"id": t, "data": {"image": image_url(t)}} for t in range(100)]
        body = {"project": PROJECT, "label_config": CONFIG, "tasks": tasks}
        assert "score" in session.post(f"{url}/predict", json=body).json()["results"][0]
        predict = []
        for _ in range(20):
            started = time.perf_counter()
            session.post(f"{url}/predict", json=body).raise_for_status()
            predict.append(time.perf_counter() - started)
        print(
            f"[{args.mode}] /predict, 100 tasks, cached embeddings: p50 {percentile(predict, 50):.1f} ms, "
            f"p90 {percentile(predict, 90):.1f} ms"
        )
        print(session.get(f"{url}/forecast", params={"project": PROJECT}).json()["message"])
    finally:
        for process in reversed(processes):
            stop_process(process)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
