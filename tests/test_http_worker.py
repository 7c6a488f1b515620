"""Tests of backend.http_worker under the real `labelcast serve` (gunicorn) on loopback:
slow clients never hold the request threads."""

import os
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests

from conftest import PROJECT_ROOT, free_port, stop_process, wait_http


@pytest.fixture
def served(tmp_path):
    """``labelcast serve`` (1 worker, 8 threads) on a free loopback port: its base URL."""
    port = free_port()
    env = {**os.environ, "MODEL_DIR": str(tmp_path), "LOG_LEVEL": "WARNING", "MAX_BODY_BYTES": "4000000"}
    env.pop("REDIS_URL", None)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "backend.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--threads",
            "8",
            "--lazy-encoder",
        ],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/health", 60, process)
        yield url, port
    finally:
        stop_process(process)


def _trickle(port: int, stop: threading.Event, keepalive_first: bool) -> None:
    """Send a request head one byte every 0.5 s until ``stop`` (after one fast request on the
    same connection when ``keepalive_first``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        if keepalive_first:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.recv(65536)
        for byte in b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000:
            if stop.wait(0.5):
                return
            try:
                sock.send(bytes([byte]))
            except OSError:
                return


def test_eight_slow_clients_do_not_hold_the_threads(served):
    """Eight connections trickling a header byte every 0.5 s (four after a first request on the
    same kept-alive connection) take none of the 8 request threads: /health answers at once."""
    url, port = served
    stop = threading.Event()
    slow = [threading.Thread(target=_trickle, args=(port, stop, i % 2 == 1), daemon=True) for i in range(8)]
    for thread in slow:
        thread.start()
    try:
        time.sleep(1.5)  # every slow connection has sent its first bytes
        latencies = []
        for _ in range(5):
            started = time.monotonic()
            assert requests.get(url + "/health", timeout=5).status_code == 200
            latencies.append(time.monotonic() - started)
            time.sleep(0.2)
        assert max(latencies) < 1.0, latencies
    finally:
        stop.set()
        for thread in slow:
            thread.join(timeout=5)


def test_requests_still_work_kept_alive_and_with_large_bodies(served):
    """Kept-alive requests, a body above what the event loop reads ahead (1 MiB), and a body
    above MAX_BODY_BYTES all get their answers."""
    url, _ = served
    with requests.Session() as session:
        for _ in range(3):
            assert session.get(url + "/health", timeout=5).json()["status"] == "UP"
        large = b'{"action": "PING", "pad": "' + b"x" * 2_000_000 + b'"}'
        response = session.post(url + "/webhook", data=large, headers={"Content-Type": "application/json"}, timeout=10)
        assert response.status_code == 200 and response.json()["status"] == "ignored"
        too_large = session.post(
            url + "/webhook",
            data=b"{" + b" " * 5_000_000 + b"}",
            headers={"Content-Type": "application/json"},
            timeout=10,
        )
        assert too_large.status_code == 413
    with socket.create_connection(("127.0.0.1", served[1]), timeout=10) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 431")


def test_a_request_thread_reads_a_body_for_a_bounded_time():
    """The rest of a large body is read under one deadline for all reads: a client sending a
    byte every 0.1 s (never idle long) is cut off when it passes."""
    from backend.http_worker import _DeadlineSocket

    ours, theirs = socket.socketpair()
    stop = threading.Event()

    def trickle():
        while not stop.wait(0.1):
            try:
                theirs.send(b"x")
            except OSError:
                return

    sender = threading.Thread(target=trickle, daemon=True)
    sender.start()
    reader = _DeadlineSocket(ours, time.monotonic() + 0.5)
    started = time.monotonic()
    try:
        with pytest.raises(TimeoutError, match="did not arrive"):
            while True:
                reader.recv(1024)
        assert time.monotonic() - started < 1.0
    finally:
        stop.set()
        sender.join(timeout=2)
        ours.close()
        theirs.close()


def test_a_client_waiting_for_100_continue_is_not_kept_waiting(served):
    """A request with ``Expect: 100-continue`` hears "100 Continue" from the event loop, which
    then reads its body, instead of waiting for a body the client holds back (or handing a
    thread a body that may trickle)."""
    _, port = served
    body = b'{"action": "PING"}'
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Expect: 100-continue\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n"
        )
        sock.settimeout(3)
        assert sock.recv(100).startswith(b"HTTP/1.1 100")
        sock.sendall(body)
        answer = b""
        while b"ignored" not in answer:
            answer += sock.recv(65536)


def test_a_shorter_timeout_set_on_the_body_socket_is_kept():
    """gunicorn's drain of an unread body sets its own (shorter) timeout: it applies."""
    from backend.http_worker import _DeadlineSocket

    ours, theirs = socket.socketpair()
    try:
        reader = _DeadlineSocket(ours, time.monotonic() + 30)
        reader.settimeout(0.2)
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            reader.recv(10)
        assert time.monotonic() - started < 1.0 and reader.gettimeout() == 0.2
    finally:
        ours.close()
        theirs.close()
