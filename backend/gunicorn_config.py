"""Gunicorn settings of every LabelCast web process, ``labelcast serve`` and the Docker image's
(``gunicorn --config python:backend.gunicorn_config 'backend.app:create_app()'``).

Gunicorn reads the lower-case names that are its settings; the rest is ignored.
"""

from __future__ import annotations

worker_class = "backend.http_worker.RequestReadingWorker"
"""gthread, except that a request thread gets a connection only once its request has arrived
(see :mod:`backend.http_worker`): slow clients cannot hold the threads."""

SWITCH_INTERVAL_S = 0.001
"""Python's GIL switch interval in a web worker (seconds; Python's default is 0.005): how long
a thread that wants the GIL waits before it asks a busy thread to hand it over."""

LAZY_MODULES = ("backend.fetch", "backend.forecast", "backend.probe")
"""Modules the request path imports on first use (scipy comes with ``backend.probe``); a
worker imports them at start, before it freezes what it has loaded."""


def post_worker_init(worker=None) -> None:
    """Gunicorn's ``post_worker_init`` hook: keep a burst of webhooks from waiting on the GIL.

    Two pauses made the webhooks of a burst wait in ``benchmarks/load_test.py`` (2 cores, the
    load generator and the trainer on them too):

    - A full (generation 2) garbage collection walks every tracked object while it holds the
      GIL: 60–80 ms in a worker that has loaded Flask, numpy and scipy. What is loaded at start
      lives as long as the process, so the worker imports what requests would import later,
      collects once and moves everything left into the permanent generation (``gc.freeze``,
      meant for servers); later collections walk only what requests create.
    - Gunicorn's accepting thread gives up the GIL at every accept, and waited up to Python's
      switch interval (5 ms) each time to get it back from a thread busy with a request.
      :data:`SWITCH_INTERVAL_S` shortens that wait.
    """
    import gc
    import importlib
    import sys

    for name in LAZY_MODULES:
        importlib.import_module(name)
    gc.collect()
    gc.freeze()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
