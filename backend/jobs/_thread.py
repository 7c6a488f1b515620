"""The embedded worker: one daemon thread in the web process, started on the first request.

The thread keeps the queue and coalesces requests. The work itself runs either in that thread
(``isolate=False``) or, by default in ``labelcast serve``, in one long-lived child process
that the thread feeds one job at a time (``isolate=True``): the encoder and the refits then do
not compete with the request threads for the GIL, which keeps webhook latency low while a refit
runs, and the web process never imports torch.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable
from typing import Any

from backend.jobs._base import TRAINER_FACTORY, TRAINING_NICE_INCREMENT, Jobs, load_factory

log = logging.getLogger(__name__)


class ThreadJobs(Jobs):
    """Coalescing in-process queue.

    Parameters
    ----------
    settings, store
        Handed to the trainer, which is built in the worker thread on its first job.
    trainer_factory : str
        Dotted path of the trainer class, or the class itself (tests substitute a fake).
    isolate : bool
        Run the trainer in a child process (spawned on the first job; the store must pickle,
        as :class:`~backend.store.SQLiteStore` does) instead of in the thread.
    """

    def __init__(self, settings, store, trainer_factory=TRAINER_FACTORY, isolate: bool = False) -> None:
        self.settings = settings
        self.store = store
        self.trainer_factory = trainer_factory
        self.isolate = isolate
        self._child = None  # (process, connection) when isolate
        self._cond = threading.Condition()
        self._refit: list[int] = []  # projects waiting for a refit, in request order
        self._sync: set[int] = set()  # of those, the ones to re-read from Label Studio first
        self._embed: dict[int, set[int]] = {}
        self._running: str | None = None
        self._push_at: float | None = None  # time.monotonic() when the trainer's push job is due
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._trainer = None
        self.completed = 0
        self.failed = 0
        self.last_error: str | None = None

    # --- web side ---------------------------------------------------------------------------
    def request_refit(self, project_id: int, sync: bool = False) -> bool:
        project_id = int(project_id)
        with self._cond:
            self._start()
            if sync:
                self._sync.add(project_id)
            if project_id in self._refit:
                return False
            self._refit.append(project_id)
            self._cond.notify()
            return True

    def request_embed(self, project_id: int, task_ids: Iterable[int]) -> None:
        ids = {int(t) for t in task_ids}
        if not ids:
            return
        with self._cond:
            self._start()
            self._embed.setdefault(int(project_id), set()).update(ids)
            self._cond.notify()

    def status(self) -> dict[str, Any]:
        with self._cond:
            return {
                "kind": "thread",
                "refits_queued": len(self._refit),
                "embeds_queued": sum(len(v) for v in self._embed.values()),
                "running": self._running,
                "version_push_in_s": None if self._push_at is None else max(0.0, self._push_at - time.monotonic()),
                "completed": self.completed,
                "failed": self.failed,
                "last_error": self.last_error,
            }

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Block until nothing is queued or running (tests and benchmarks); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._refit or self._embed or self._running:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def close(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._stop_child()

    # --- worker side ------------------------------------------------------------------------
    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="labelcast-worker", daemon=True)
            self._thread.start()

    def _next(self) -> tuple[str, int, set[int] | bool | None] | None:
        with self._cond:
            while not (self._refit or self._embed or self._stopped):
                if self._push_at is None:
                    self._cond.wait()
                    continue
                left = self._push_at - time.monotonic()
                if left <= 0:  # Label Studio missed a model version: the push job is due
                    self._push_at = None
                    self._running = "push"
                    return ("push", 0, None)
                self._cond.wait(left)
            if self._stopped:
                return None
            if self._embed:
                project_id = next(iter(self._embed))
                task = ("embed", project_id, self._embed.pop(project_id))
            else:
                project_id = self._refit.pop(0)
                task = ("refit", project_id, project_id in self._sync)
                self._sync.discard(project_id)
            self._running = f"{task[0]}:{task[1]}"
            return task

    def _loop(self) -> None:
        if not self.isolate:
            _leave_a_core_for_requests()
        while (task := self._next()) is not None:
            kind, project_id, arg = task
            push_in: float | None | _Unknown = UNKNOWN
            try:
                if self.isolate:
                    push_in = self._run_in_child(task)
                else:
                    if self._trainer is None:
                        self._trainer = load_factory(self.trainer_factory)(self.settings, self.store)
                    push_in = _run(self._trainer, task)
                outcome = None
            except Exception as exc:  # one bad job must not stop the worker
                log.exception("%s of project %s failed", kind, project_id)
                outcome = f"{kind} of project {project_id}: {exc}"
                push_in = getattr(exc, "push_in", UNKNOWN)
                if not self.isolate and self._trainer is not None:
                    push_in = self._trainer.next_push_in()
            with self._cond:
                if not isinstance(push_in, _Unknown):  # else (the training process died) keep the timer
                    self._push_at = None if push_in is None else time.monotonic() + push_in
                self._running = None
                if outcome is None:
                    self.completed += 1
                else:
                    self.failed += 1
                    self.last_error = outcome
                self._cond.notify_all()

    def _run_in_child(self, task, retried: bool = False) -> float | None:
        """Run the task in the training process; returns its :meth:`Trainer.next_push_in`."""
        if self._child is None or not self._child[0].is_alive():
            import multiprocessing

            context = multiprocessing.get_context("spawn")  # no fork of a threaded server
            parent, child = context.Pipe()
            process = context.Process(
                target=_child_main,
                args=(child, self.settings, self.store, self.trainer_factory),
                name="labelcast-trainer",
                daemon=True,
            )
            process.start()
            child.close()
            self._child = (process, parent)
        process, connection = self._child
        try:
            connection.send(task)
            error, push_in = connection.recv()
        except (EOFError, OSError) as exc:
            self._child = None
            process.join(timeout=5)
            if not retried:  # killed mid-job (OOM killer, kill -9): run the job once more
                log.warning(
                    "the training process exited (code %s) during %s of project %s; running it again in a new one",
                    process.exitcode,
                    task[0],
                    task[1],
                )
                return self._run_in_child(task, retried=True)
            raise RuntimeError(f"the training process exited (code {process.exitcode})") from exc
        if error:
            raise _JobError(error, push_in)
        return push_in

    def _stop_child(self) -> None:
        if self._child is None:
            return
        process, connection = self._child
        self._child = None
        try:
            connection.send(None)
        except OSError:
            pass
        process.join(timeout=10)
        if process.is_alive():
            process.terminate()
            process.join(timeout=5)


class _Unknown:
    """Type of :data:`UNKNOWN`."""


UNKNOWN = _Unknown()
"""What a job that ended without a report (its training process died) says about pushes."""


class _JobError(RuntimeError):
    """A job failed in the training process; ``push_in`` is what it reported."""

    def __init__(self, message: str, push_in: float | None) -> None:
        super().__init__(message)
        self.push_in = push_in


def _run(trainer, task) -> float | None:
    """Do one task; returns :meth:`Trainer.next_push_in` (seconds until the push job is due)."""
    kind, project_id, arg = task
    if kind == "embed":
        trainer.embed_tasks(project_id, sorted(arg))
    elif kind == "push":
        trainer.retry_version_pushes()
    else:
        trainer.refit(project_id, sync=arg)
    return trainer.next_push_in()


def _child_main(connection, settings, store, trainer_factory) -> None:
    """Body of the training process: build the trainer, then run jobs until told to stop."""
    from backend.settings import configure_logging

    import multiprocessing

    configure_logging(settings.log_level)
    # Started as a daemon, so the web process ends it when it exits; in here that flag would
    # forbid the embedding pipeline's decoding processes (they end with this one: their pipes
    # close).
    multiprocessing.current_process().daemon = False
    os.nice(TRAINING_NICE_INCREMENT)  # this process only: requests go first on shared cores
    _leave_a_core_for_requests()
    trainer = load_factory(trainer_factory)(settings, store)
    while True:
        try:
            task = connection.recv()
        except (EOFError, OSError):  # the web process is gone
            return
        if task is None:
            return
        try:
            connection.send((None, _run(trainer, task)))
        except Exception as exc:  # reported to the thread, which counts and logs it
            log.exception("%s of project %s failed", task[0], task[1])
            connection.send((f"{type(exc).__name__}: {exc}", trainer.next_push_in()))


def _leave_a_core_for_requests() -> None:
    """Cap torch's and BLAS's CPU threads at one less than the cores, so requests keep one.

    With every core busy in torch's and BLAS's thread pools, webhook latency under load grows
    several-fold (measured on 2 cores).
    """
    import os

    import torch
    from threadpoolctl import threadpool_limits

    threads = max(1, (os.cpu_count() or 2) - 1)
    torch.set_num_threads(threads)
    threadpool_limits(limits=threads)  # OpenBLAS/OpenMP of numpy, scipy, scikit-learn
