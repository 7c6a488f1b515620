#!/usr/bin/env python
"""Container health check of the LabelCast image (Docker's HEALTHCHECK and Compose's).

    python docker/healthcheck.py [web | worker]

web     GET http://127.0.0.1:$PORT/health (PORT defaults to 9090) must answer 200 with
        ``{"status": "UP"}`` or ``"degraded"`` (serving; some project's refit cannot run).
worker  Redis at ``$REDIS_URL`` (the queue the worker takes its jobs from) must answer PING.

Without an argument the role is read from the container's main process (PID 1): one started
as ``worker`` is a worker, anything else is the web process. Exit status 0 means healthy, 1
unhealthy, with one line saying why (``docker inspect`` shows it).
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
import urllib.error
import urllib.request

TIMEOUT_S = 5.0
"""Seconds each probe may take; Docker's own --timeout must be larger."""


def main(argv: list[str]) -> int:
    role = argv[0] if argv else detect_role()
    if role == "web":
        ok, why = check_web(int(os.environ.get("PORT") or 9090))
    elif role == "worker":
        ok, why = check_worker(os.environ.get("REDIS_URL", "").strip())
    else:
        print(f"unknown role {role!r}: expected 'web' or 'worker'", file=sys.stderr)
        return 1
    print(f"{role}: {why}", file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


def detect_role(cmdline_path: str = "/proc/1/cmdline") -> str:
    """``worker`` when the container's main process was started as a worker, else ``web``."""
    try:
        args = pathlib.Path(cmdline_path).read_bytes().split(b"\0")
    except OSError:
        return "web"
    return "worker" if b"worker" in args else "web"


def check_web(port: int) -> tuple[bool, str]:
    """Whether the backend's /health on ``port`` answers UP, and a sentence saying so."""
    url = f"http://127.0.0.1:{port}/health"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            body = response.read(65536)
    except urllib.error.HTTPError as exc:
        return False, f"{url} answered HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return False, f"{url} unreachable: {getattr(exc, 'reason', exc)}"
    try:
        answer = json.loads(body)
        status = answer.get("status")
    except (ValueError, AttributeError):
        return False, f"{url} answered something other than a JSON object"
    if status == "degraded":  # the process serves; a project's refit cannot run (a restart won't fix it)
        return True, f"{url} is degraded: {str(answer.get('reason'))[:300]}"
    if status != "UP":
        return False, f"{url} answered status {status!r}, expected 'UP' or 'degraded'"
    return True, f"{url} is UP"


def check_worker(redis_url: str) -> tuple[bool, str]:
    """Whether the worker's Redis answers PING, and a sentence saying so (no password shown)."""
    if not redis_url:
        return False, "REDIS_URL is not set; a separate worker needs Redis"
    import redis  # only the worker role needs it

    where = redis_url.rpartition("@")[2]
    try:
        client = redis.Redis.from_url(redis_url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S)
        client.ping()
    except redis.RedisError as exc:
        return False, f"Redis at {where} unreachable: {exc}"
    return True, f"Redis at {where} answers PING"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
