"""One BLAS thread for a block of numeric work, correct when several threads run such blocks.

``threadpoolctl.threadpool_limits`` sets a limit for the whole process and, on exit, restores
the one it found on entry. When two blocks overlap (the embedded worker refits several projects
side by side, :mod:`backend.jobs`), the first to leave lifts the limit under the other, and the
last to leave "restores" the limit of one thread for good. Handing the restore to whichever
thread leaves last is not enough either: OpenBLAS did not always take a thread count set from
another thread than the one that lowered it (1 of 30 tries here). So the blocks take turns:
each sets and restores the limit in its own thread, one block at a time. They are the CPU-bound
part of a refit (the learning curve, the selection-bias check), so the turns cost little: a
refit waits for another's numbers at most, never for its downloads.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from threadpoolctl import threadpool_limits

__all__ = ["one_blas_thread"]

_TURN = threading.RLock()
"""Held by the block running with one BLAS thread (the limit is process-wide, so is this).
Re-entrant: a block may call code that opens its own (the inner one keeps the limit at one)."""


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the block with one BLAS/OpenMP thread (many small matrices: threads only contend),
    after any other thread's such block."""
    with _TURN, threadpool_limits(limits=1):
        yield
