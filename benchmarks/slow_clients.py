"""/health latency while slow clients trickle request heads (issue 13, item 6), loopback only.

Starts the web process the way the Docker image does (gunicorn with
``backend/gunicorn_config.py``, 1 worker, 8 threads, embedded SQLite store), opens ``--slow``
connections that each send one header byte every ``--interval`` seconds (and reconnect when
the server closes them), and asks ``/health`` every 0.5 s on a new connection for
``--seconds``. Prints the latencies and how long the server kept a slow connection.
``--worker-class gthread`` runs plain gthread for comparison.

    python benchmarks/slow_clients.py                        # the LabelCast worker
    python benchmarks/slow_clients.py --worker-class gthread # before

Bounded: at most 16 slow connections, at most 120 s, 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
HEALTH_TIMEOUT_S = 10.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slow", type=int, default=8, help="slow connections (default 8, at most 16)")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between a slow client's bytes")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to measure (at most 120)")
    parser.add_argument("--worker-class", default=None, help="gunicorn worker class (default: the config's)")
    args = parser.parse_args()
    slow, seconds = min(args.slow, 16), min(args.seconds, 120.0)

    port = _free_port()
    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "MODEL_DIR": folder, "LOG_LEVEL": "WARNING"}
        for name in ("REDIS_URL", "LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY", "BASIC_AUTH_USER", "BASIC_AUTH_PASS"):
            env.pop(name, None)
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "--config",
            "python:backend.gunicorn_config",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--threads",
            "8",
        ]
        if args.worker_class:
            command += ["--worker-class", args.worker_class]
        server = subprocess.Popen(
            [*command, "backend.app:create_app()"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_up(port)
            stop = threading.Event()
            held: list[float] = []
            threads = [
                threading.Thread(target=_slow_client, args=(port, args.interval, stop, held), daemon=True)
                for _ in range(slow)
            ]
            for thread in threads:
                thread.start()
            time.sleep(1.0)
            latencies, failures = [], 0
            ends = time.monotonic() + seconds
            while time.monotonic() < ends:
                latency = _health(port)
                if latency is None:
                    failures += 1
                else:
                    latencies.append(latency)
                time.sleep(0.5)
            stop.set()
            for thread in threads:
                thread.join(timeout=args.interval + 2)
        finally:
            server.terminate()
            server.wait(timeout=20)

    print(
        f"worker class: {args.worker_class or 'backend.gunicorn_config (RequestReadingWorker)'}; "
        f"{slow} slow connections, a header byte every {args.interval:g} s; {seconds:g} s measured"
    )
    if latencies:
        ordered = sorted(latencies)
        p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
        print(
            f"/health: {len(latencies)} answered, {failures} timed out (> {HEALTH_TIMEOUT_S:g} s); "
            f"latency p50 {statistics.median(ordered) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, "
            f"max {ordered[-1] * 1000:.1f} ms"
        )
    else:
        print(f"/health: none answered, {failures} timed out (> {HEALTH_TIMEOUT_S:g} s)")
    if held:
        print(f"slow connections closed by the server after {min(held):.1f}-{max(held):.1f} s ({len(held)} closes)")
    else:
        print("slow connections: none closed by the server while measured")
    return 0


def _slow_client(port: int, interval: float, stop: threading.Event, held: list[float]) -> None:
    head = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 10_000
    while not stop.is_set():
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            stop.wait(0.5)
            continue
        opened = time.monotonic()
        with sock:
            for byte in head:
                try:
                    sock.send(bytes([byte]))
                except OSError:
                    held.append(time.monotonic() - opened)
                    break
                if _closed_within(sock, interval, stop):
                    held.append(time.monotonic() - opened)
                    break
                if stop.is_set():
                    return


def _closed_within(sock: socket.socket, seconds: float, stop: threading.Event) -> bool:
    """Wait ``seconds`` (less if ``stop`` is set); True as soon as the server closes ``sock``."""
    ends = time.monotonic() + seconds
    while not stop.is_set() and (left := ends - time.monotonic()) > 0:
        readable, _, _ = select.select([sock], [], [], min(left, 0.2))
        if readable:
            try:
                return sock.recv(1) == b""
            except OSError:
                return True
    return False


def _health(port: int) -> float | None:
    started = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=HEALTH_TIMEOUT_S) as sock:
            sock.settimeout(HEALTH_TIMEOUT_S)
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            if not sock.recv(65536).startswith(b"HTTP/1.1 200"):
                return None
    except OSError:
        return None
    return time.monotonic() - started


def _wait_up(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _health(port) is not None:
            return
        time.sleep(0.5)
    raise SystemExit(f"the server on port {port} did not answer /health within {timeout:.0f} s")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


if __name__ == "__main__":
    sys.exit(main())
