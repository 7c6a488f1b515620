"""Waiting for another SQLite connection's write transaction by polling, not SQLite's busy handler.

Used by the store (``backend.store._sqlite``) and the embedding file cache.
"""

from __future__ import annotations

import sqlite3
import time

BUSY_POLL_S = 0.001
"""How often a writer checks whether another process's write transaction has ended.

SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20, 25 ms and on: a webhook that found the
trainer's 10-ms transaction open waited 18 ms, one that found a 34-ms one waited 53 ms, with
every other writer of the web process queued behind it."""

BUSY_TIMEOUT_S = 30.0
"""How long a statement waits for another process's write transaction before it fails."""


def retry_busy(action, timeout: float = BUSY_TIMEOUT_S):
    """Run ``action()``, again every BUSY_POLL_S while SQLite answers SQLITE_BUSY (for at
    most ``timeout`` seconds); ``action`` must leave no transaction open when it raises."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return action()
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() > deadline:
                raise
        time.sleep(BUSY_POLL_S)


def is_busy(exc: BaseException) -> bool:
    """SQLite answered SQLITE_BUSY ("database is locked"): another connection holds the lock."""
    code = getattr(exc, "sqlite_errorcode", None) or 0
    return isinstance(exc, sqlite3.OperationalError) and (code & 0xFF) == sqlite3.SQLITE_BUSY
