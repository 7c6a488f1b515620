"""Tests of backend.blas: the one-thread limit when threads run such blocks at once."""

import threading

import numpy as np  # noqa: F401 (loads OpenBLAS, whose limit is checked)
from threadpoolctl import threadpool_info

from backend.blas import one_blas_thread


def _threads() -> list[int]:
    return [pool["num_threads"] for pool in threadpool_info()]


def test_blocks_in_two_threads_take_turns_and_leave_the_limits_as_found():
    """Thread B's block starts only once thread A's has ended; each runs with one thread; then
    the process has its limits from before (nested threadpool_limits in two threads left one
    thread for good)."""
    before = _threads()
    a_in, b_started = threading.Event(), threading.Event()
    order, inside = [], {}

    def block_a():
        with one_blas_thread():
            a_in.set()
            b_started.wait(10)
            threading.Event().wait(0.2)  # B is now waiting for its turn
            inside["a"] = _threads()
            order.append("a out")

    def block_b():
        a_in.wait(10)
        b_started.set()
        with one_blas_thread():
            order.append("b in")
            inside["b"] = _threads()

    threads = [threading.Thread(target=block_a), threading.Thread(target=block_b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert order == ["a out", "b in"]
    assert all(n == 1 for n in inside["a"] + inside["b"]), inside
    assert _threads() == before
