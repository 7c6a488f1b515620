"""Load test on loopback: annotations in bursts from many clients while /predict runs non-stop.

Starts ``labelcast serve`` (``--mode sqlite``, the embedded default; or ``--mode redis`` with a
private ``redis-server`` started with AOF, one ``labelcast worker`` and two web processes), a
tiny random CLIP encoder, and a local image server (allow-listed with ALLOWED_IMAGE_HOSTS).
First ``--warmup`` labels of another project arrive in the same bursts (a backend that has
been running: encoder loaded, training process and request threads up). Then ``--clients``
threads post ``--annotations`` ANNOTATION_CREATED webhooks in bursts (every client posts one
annotation per burst, all at once, each on a new connection as Label Studio sends webhooks;
``--keep-alive`` reuses one per client), re-delivering ``--duplicates`` of them a second time,
while one more client calls /predict for 20 tasks in a loop. Bounded: it stops after
``--max-seconds`` whatever happens.

Webhook latency is reported twice: as the client sees it (connect, send, answer) and as the
app itself took it (its ``Server-Timing`` header), which leaves out the time the request
spent in the kernel and in gunicorn, and the load generator's own share of the 2 cores.

Checks, each printed with its figure (exit status 1 if one fails):
- every label recorded exactly once (the store holds exactly the posted annotation ids, each
  with its choice) and the last forecast counts them all;
- no 5xx answer, no connection error;
- webhook p99 within ``--p99-ms`` (the service target: 50 ms);
- memory bounded: the backend's processes (with their children) stay under ``--max-rss-mb``.

    python benchmarks/load_test.py                      # 200 annotations, 20 clients, sqlite
    python benchmarks/load_test.py --mode redis
    python benchmarks/load_test.py --json               # the figures as one JSON line
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

import requests

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from conftest import _save_tiny_clip, free_port, serve_folder, start_redis, stop_process, wait_http, xray_png  # noqa: E402

CONFIG = (ROOT / "plugin_config" / "one_finding.xml").read_text()
PROJECT = 1


def annotation(task_id: int, image_url: str, positive: bool, project: int = PROJECT) -> dict:
    return {
        "action": "ANNOTATION_CREATED",
        "project": {"id": project, "label_config": CONFIG},
        "task": {"id": task_id, "data": {"image": image_url}},
        "annotation": {
            "id": 50_000 + task_id,
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


def tree_rss_mb(pids: list[int]) -> float:
    """Resident memory of the given processes and all their descendants (MiB, from /proc)."""
    parents: dict[int, int] = {}
    for entry in pathlib.Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    todo, seen = list(pids), set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        todo += [child for child, parent in parents.items() if parent == pid]
    total = 0
    for pid in seen:
        try:
            for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


class Client:
    """One keep-alive connection (http.client), like one Label Studio worker sending webhooks.

    It costs the load generator, which shares the cores with the backend, a fraction of the
    CPU that ``requests`` costs per call, so its own overhead adds less to the latencies it
    measures. ``post`` returns (status, seconds from sending to the full answer, the app's own
    seconds from the Server-Timing header) and raises OSError or HTTPException.
    """

    def __init__(self, url: str, keep_alive: bool = True) -> None:
        parts = urllib.parse.urlsplit(url)
        self.address = (parts.hostname, parts.port)
        self.keep_alive = keep_alive
        self.connection = http.client.HTTPConnection(*self.address, timeout=30)

    def post(self, path: str, body: dict) -> tuple[int, float, float]:
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if not self.keep_alive:  # a new connection per request, as Label Studio's webhooks make
            self.connection = http.client.HTTPConnection(*self.address, timeout=30)
            headers["Connection"] = "close"
        started = time.perf_counter()
        try:
            self.connection.request("POST", path, data, headers)
            response = self.connection.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            self.connection.close()  # the next call reconnects
            raise
        finally:
            if not self.keep_alive:
                self.connection.close()
        elapsed = time.perf_counter() - started
        return response.status, elapsed, server_timing_s(response.getheader("Server-Timing", ""))


def server_timing_s(header: str) -> float:
    """The app's own time (seconds) from a ``Server-Timing: app;dur=MS`` header."""
    for metric in header.split(","):
        name, _, params = metric.strip().partition(";")
        if name == "app" and params.startswith("dur="):
            return float(params[4:]) / 1000
    return float("nan")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index] * 1000


def run(args) -> dict:
    work = pathlib.Path(tempfile.mkdtemp(prefix="labelcast-load-"))
    processes: list[subprocess.Popen] = []
    deadline = time.monotonic() + args.max_seconds
    figures: dict = {
        "mode": args.mode,
        "annotations": args.annotations,
        "clients": args.clients,
        "predict_pause_s": args.predict_pause,
        "warmup_labels": args.warmup,
    }
    image_server = None
    try:
        encoder = str(_save_tiny_clip(work / "tiny-clip"))
        images = work / "images"
        images.mkdir()
        truth = {t: t % 3 == 0 for t in range(args.annotations)}
        for t, positive in truth.items():
            (images / f"{t}.png").write_bytes(xray_png(t, positive, size=64))
        image_base, image_server = serve_folder(images)

        port = free_port()
        env = {
            **os.environ,
            "MODEL_DIR": str(work / "model"),
            "ENCODER": encoder,
            "DEVICE": "cpu",
            "LOG_LEVEL": "WARNING",
            "MIN_LABELS": "30",
            "ALLOWED_IMAGE_HOSTS": "127.0.0.1",
        }
        for name in ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY", "REDIS_URL", "BASIC_AUTH_USER", "BASIC_AUTH_PASS"):
            env.pop(name, None)
        serve = [sys.executable, "-m", "backend.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
        if args.threads:
            serve += ["--threads", str(args.threads)]
        if args.mode == "redis":
            env["REDIS_URL"], redis_process = start_redis(work, appendonly=True)
            processes.append(redis_process)
            processes.append(subprocess.Popen([sys.executable, "-m", "backend.cli", "worker"], cwd=ROOT, env=env))
            serve += ["--workers", "2"]
        processes.append(subprocess.Popen(serve, cwd=ROOT, env=env))
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/health", 60, processes[-1])
        for project in (PROJECT, PROJECT + 1):  # the measured project and the warm-up one
            requests.post(f"{url}/setup", json={"project": project, "schema": CONFIG}, timeout=30).raise_for_status()
        backend_pids = [p.pid for p in processes if p.args[0] != shutil.which("redis-server")]
        if args.warmup:
            # A backend that has been running: encoder loaded, training process up, and request
            # threads started with their store connections (so the warm-up comes in bursts too).
            def warm_up(task_id: int) -> None:
                body = annotation(task_id, f"{image_base}/{task_id}.png", truth[task_id], project=PROJECT + 1)
                status, _, _ = Client(url, keep_alive=False).post("/webhook", body)
                if status != 200:
                    raise RuntimeError(f"warm-up webhook answered {status}")

            with concurrent.futures.ThreadPoolExecutor(args.clients) as pool:
                list(pool.map(warm_up, range(args.warmup)))
            warm = requests.Session()
            while time.monotonic() < deadline:
                r = warm.get(f"{url}/forecast", params={"project": PROJECT + 1}, timeout=30)
                if r.status_code == 200 and r.json().get("n_labels") == args.warmup:
                    break
                time.sleep(0.5)

        statuses: dict[int, int] = {}
        errors: list[str] = []
        lock = threading.Lock()
        webhook_ms: list[float] = []
        webhook_app_ms: list[float] = []  # the app's own time, from its Server-Timing header
        predict_ms: list[float] = []
        rss_samples: list[float] = []
        stop = threading.Event()

        def call(client: Client, path: str, body: dict, what: str) -> tuple[float, float] | None:
            """Post; count the status; (seconds, app seconds), or None after a connection error."""
            try:
                status, elapsed, app_s = client.post(path, body)
            except (OSError, http.client.HTTPException) as exc:
                with lock:
                    errors.append(f"{what}: {exc!r}")
                return None
            with lock:
                statuses[status] = statuses.get(status, 0) + 1
            return elapsed, app_s

        def post(task_id: int, client: Client) -> None:
            body = annotation(task_id, f"{image_base}/{task_id}.png", truth[task_id])
            timing = call(client, "/webhook", body, f"webhook {task_id}")
            if timing:
                with lock:
                    webhook_ms.append(timing[0])
                    webhook_app_ms.append(timing[1])

        def predictor() -> None:
            client = Client(url)
            tasks = [{"id": t, "data": {"image": f"{image_base}/{t}.png"}} for t in range(20)]
            body = {"project": PROJECT, "label_config": CONFIG, "tasks": tasks}
            while not stop.is_set() and time.monotonic() < deadline:
                timing = call(client, "/predict", body, "predict")
                if timing:
                    with lock:
                        predict_ms.append(timing[0])
                if args.predict_pause:
                    stop.wait(args.predict_pause)

        def sampler() -> None:
            while not stop.is_set():
                rss_samples.append(tree_rss_mb(backend_pids))
                stop.wait(0.25)

        background = [threading.Thread(target=predictor, daemon=True), threading.Thread(target=sampler, daemon=True)]
        for thread in background:
            thread.start()

        # Bursts: every client posts one annotation at once; a few annotations come twice.
        ids = list(range(args.annotations))
        duplicates = ids[:: max(1, args.annotations // max(1, args.duplicates))][: args.duplicates]
        deliveries = ids + duplicates
        clients = [Client(url, keep_alive=args.keep_alive) for _ in range(args.clients)]
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(args.clients) as pool:
            for first in range(0, len(deliveries), args.clients):
                if time.monotonic() > deadline:
                    errors.append("stopped at --max-seconds before every annotation was posted")
                    break
                burst = deliveries[first : first + args.clients]
                list(pool.map(post, burst, clients[: len(burst)]))
                time.sleep(args.pause)
        figures["post_seconds"] = round(time.monotonic() - started, 2)

        # Let the refits catch up while /predict keeps running.
        forecast = {}
        while time.monotonic() < deadline:
            response = requests.get(f"{url}/forecast", params={"project": PROJECT}, timeout=30)
            if response.status_code == 200:
                forecast = response.json()
                if (
                    forecast.get("n_labels_recorded") == args.annotations
                    and forecast.get("n_labels") == args.annotations
                ):
                    break
            time.sleep(0.5)
        figures["settle_seconds"] = round(time.monotonic() - started - figures["post_seconds"], 2)
        # What `labelcast serve` tuned in its web worker: the objects it froze at start, the
        # collections of each generation since (a full one walks everything not frozen), the
        # GIL switch interval.
        figures["web_python"] = requests.get(f"{url}/metrics", timeout=30).json().get("python")
        stop.set()
        for thread in background:
            thread.join(timeout=35)

        labels = recorded_labels(env, work)
        expected = {50_000 + t: ["Effusion" if truth[t] else "No effusion"] for t in ids}
        figures.update(
            {
                "deliveries": len(deliveries),
                "duplicates": len(duplicates),
                "labels_recorded": len(labels),
                "labels_lost": len(set(expected) - set(labels)),
                "labels_wrong": sum(1 for a, c in labels.items() if expected.get(a) != c),
                "forecast_n_labels": forecast.get("n_labels"),
                "webhook_p50_ms": round(percentile(webhook_ms, 50), 1),
                "webhook_p99_ms": round(percentile(webhook_ms, 99), 1),
                "webhook_max_ms": round(max(webhook_ms, default=float("nan")) * 1000, 1),
                "webhook_app_p50_ms": round(percentile(webhook_app_ms, 50), 1),
                "webhook_app_p99_ms": round(percentile(webhook_app_ms, 99), 1),
                "predict_calls": len(predict_ms),
                "predict_p50_ms": round(percentile(predict_ms, 50), 1),
                "predict_p99_ms": round(percentile(predict_ms, 99), 1),
                "status_counts": {str(k): v for k, v in sorted(statuses.items())},
                "http_5xx": sum(v for k, v in statuses.items() if k >= 500),
                "connection_errors": len(errors),
                "rss_peak_mb": round(max(rss_samples, default=0.0), 1),
                "rss_end_mb": round(rss_samples[-1] if rss_samples else 0.0, 1),
                "errors": errors[:5],
            }
        )
        figures["checks"] = {
            "every label exactly once": figures["labels_recorded"] == args.annotations
            and figures["labels_lost"] == 0
            and figures["labels_wrong"] == 0
            and figures["forecast_n_labels"] == args.annotations,
            "no 5xx, no connection error": figures["http_5xx"] == 0 and not errors and set(statuses) <= {200},
            f"webhook p99 <= {args.p99_ms:g} ms": figures["webhook_p99_ms"] <= args.p99_ms,
            f"memory <= {args.max_rss_mb:g} MiB": figures["rss_peak_mb"] <= args.max_rss_mb,
        }
        return figures
    finally:
        for process in reversed(processes):
            stop_process(process)
        if image_server is not None:
            image_server.shutdown()
        shutil.rmtree(work, ignore_errors=True)


def recorded_labels(env: dict, work: pathlib.Path) -> dict[int, list[str]]:
    """``{annotation_id: choices}`` straight from the store (one row per annotation id)."""
    if env.get("REDIS_URL"):
        import redis

        raw = redis.Redis.from_url(env["REDIS_URL"]).hgetall(f"labelcast:project:{PROJECT}:labels")
        return {int(a): json.loads(v)["choices"] for a, v in raw.items()}
    import sqlite3

    with sqlite3.connect(work / "model" / "labelcast.sqlite3") as conn:
        rows = conn.execute("SELECT annotation_id, choices FROM labels WHERE project_id = ?", (PROJECT,))
        return {int(a): json.loads(c) for a, c in rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=("sqlite", "redis"), default="sqlite")
    parser.add_argument("--annotations", type=int, default=200)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--duplicates", type=int, default=20, help="annotations delivered twice (default 20)")
    parser.add_argument("--pause", type=float, default=0.05, help="seconds between bursts (default 0.05)")
    parser.add_argument(
        "--warmup",
        type=int,
        default=30,
        help="labels posted to another project first, to start the trainer (default 30; 0: none)",
    )
    parser.add_argument(
        "--predict-pause", type=float, default=0.0, help="seconds between /predict calls (default 0: back to back)"
    )
    parser.add_argument(
        "--keep-alive",
        action="store_true",
        help="webhook clients reuse one connection each (default: a new connection "
        "per webhook, as Label Studio sends them)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="request threads per web process (default: labelcast serve's own default)",
    )
    parser.add_argument("--p99-ms", type=float, default=50.0, help="webhook p99 target (default 50 ms)")
    parser.add_argument("--max-rss-mb", type=float, default=2048.0, help="memory bound (default 2048 MiB)")
    parser.add_argument("--max-seconds", type=float, default=300.0, help="hard stop (default 300 s)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON line")
    args = parser.parse_args(argv)
    figures = run(args)
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            if key != "checks":
                print(f"{key:>20}: {value}")
        for name, ok in figures["checks"].items():
            print(f"{'PASS' if ok else 'FAIL'}  {name}")
    return 0 if all(figures["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
