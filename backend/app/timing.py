"""A ``Server-Timing`` header on every response: how long the app itself took.

``Server-Timing: app;dur=1.23`` (milliseconds, W3C Server Timing) measures from the start of
the request's handling in the app to the response, so a client can tell the backend's own time
from network, queueing and client-side overhead (``benchmarks/load_test.py`` reports both).
"""

from __future__ import annotations

import time

from flask import Flask, g


def register(app: Flask) -> None:
    """Install the timer on ``app`` (first, so that it covers the other request hooks)."""

    @app.before_request
    def _start_timer():
        g.labelcast_started = time.perf_counter()

    @app.after_request
    def _server_timing(response):
        started = g.get("labelcast_started")
        if started is not None:
            response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.2f}"
        return response
