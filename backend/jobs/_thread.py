"""The embedded worker: a dispatcher thread in the web process, started on the first request,
running jobs of different projects side by side.

The dispatcher keeps the queue and coalesces requests; it runs each job in a lane of its own
(at most ``lanes`` at once, one job per project at a time), so a project whose image host
trickles holds its own lane for its download budget, not every other project's refit. The
work itself runs either in the lane's thread (``isolate=False``) or, by default in
``labelcast serve``, in one long-lived child process that the lanes share (``isolate=True``):
each job goes to it tagged with a number and runs there in a thread of its own, on the one
trainer (the encoder is loaded once). The encoder and the refits then do not compete with the
request threads for the GIL, which keeps webhook latency low while refits run, and the web
process never imports torch.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future
from typing import Any

from backend.jobs._base import TRAINER_FACTORY, TRAINING_NICE_INCREMENT, Jobs, load_factory

log = logging.getLogger(__name__)

PROJECT_LANES = 4
"""Jobs (of as many projects) the embedded worker runs at once. A project's refit waits only
for that project's own job, and for a free lane when this many projects are busy: a project
whose image host trickles holds one lane for at most ``backend.training.FETCH_BUDGET_S``. The
encoder is shared (one batch at a time) and so is the CPU, so more lanes would not make
refits faster, only more of them slower at once."""

PUSH = "push"
"""The lane key of the push job (it belongs to no project)."""


class ThreadJobs(Jobs):
    """Coalescing in-process queue, running projects side by side.

    Parameters
    ----------
    settings, store
        Handed to the trainer, which is built on the first job (in a lane, or in the training
        process).
    trainer_factory : str
        Dotted path of the trainer class, or the class itself (tests substitute a fake).
    isolate : bool
        Run the trainer in a child process (spawned on the first job; the store must pickle,
        as :class:`~backend.store.SQLiteStore` does) instead of in the lanes' threads.
    lanes : int
        Most jobs at once, one per project (default :data:`PROJECT_LANES`).
    """

    def __init__(
        self, settings, store, trainer_factory=TRAINER_FACTORY, isolate: bool = False, lanes: int = PROJECT_LANES
    ) -> None:
        if int(lanes) < 1:
            raise ValueError(f"lanes={lanes!r}; expected a positive integer")
        self.settings = settings
        self.store = store
        self.trainer_factory = trainer_factory
        self.isolate = isolate
        self.lanes = int(lanes)
        self._child: _TrainingProcess | None = None  # when isolate
        self._child_lock = threading.Lock()
        self._cond = threading.Condition()
        self._refit: list[int] = []  # projects waiting for a refit, in request order
        self._sync: set[int] = set()  # of those, the ones to re-read from Label Studio first
        self._embed: dict[int, set[int]] = {}
        self._running: dict[int | str, str] = {}  # project id (or PUSH) -> "refit:7", in its lane
        self._push_at: float | None = None  # time.monotonic() when the trainer's push job is due
        self._thread: threading.Thread | None = None
        self._workers: set[threading.Thread] = set()
        self._stopped = False
        self._trainer = None
        self._trainer_lock = threading.Lock()
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
            self._cond.notify_all()
            return True

    def request_embed(self, project_id: int, task_ids: Iterable[int]) -> None:
        ids = {int(t) for t in task_ids}
        if not ids:
            return
        with self._cond:
            self._start()
            self._embed.setdefault(int(project_id), set()).update(ids)
            self._cond.notify_all()

    def status(self) -> dict[str, Any]:
        with self._cond:
            return {
                "kind": "thread",
                "refits_queued": len(self._refit),
                "embeds_queued": sum(len(v) for v in self._embed.values()),
                "running": ", ".join(sorted(self._running.values())) or None,
                "lanes": self.lanes,
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
            threads = [t for t in (self._thread, *self._workers) if t is not None]
        deadline = time.monotonic() + 30
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self._stop_child()

    # --- worker side ------------------------------------------------------------------------
    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="labelcast-worker", daemon=True)
            self._thread.start()

    def _pick(self) -> tuple[str, int, set[int] | bool | None] | None:
        """The next job a free lane may run (caller holds the lock): the push job when due,
        then embeds, then refits in request order, of projects with no job running."""
        if len(self._running) >= self.lanes:
            return None
        if self._push_at is not None and self._push_at <= time.monotonic() and PUSH not in self._running:
            self._push_at = None  # Label Studio missed a model version: the push job is due
            return ("push", 0, None)
        for project_id in self._embed:
            if project_id not in self._running:
                return ("embed", project_id, self._embed.pop(project_id))
        for index, project_id in enumerate(self._refit):
            if project_id not in self._running:
                del self._refit[index]
                sync = project_id in self._sync
                self._sync.discard(project_id)
                return ("refit", project_id, sync)
        return None

    def _loop(self) -> None:
        while True:
            with self._cond:
                task = None
                while not self._stopped and (task := self._pick()) is None:
                    due = self._push_at
                    if due is not None and PUSH not in self._running and len(self._running) < self.lanes:
                        self._cond.wait(max(0.0, due - time.monotonic()))
                    else:  # a job ending or a request wakes this up
                        self._cond.wait()
                if task is None:  # stopped
                    return
                key: int | str = PUSH if task[0] == "push" else task[1]
                self._running[key] = PUSH if key == PUSH else f"{task[0]}:{task[1]}"
                lane = threading.Thread(target=self._work, args=(key, task), name=f"labelcast-lane-{key}", daemon=True)
                self._workers.add(lane)
                lane.start()  # under the lock: close() never sees a lane not started yet

    def _work(self, key: int | str, task) -> None:
        """Run one job in its lane, then free the lane."""
        kind, project_id, _ = task
        push_in: float | None | _Unknown = UNKNOWN
        try:
            if self.isolate:
                push_in = self._run_in_child(task)
            else:
                _leave_a_core_for_requests()  # OpenMP's thread count is per thread: set it in this one
                push_in = _run(self._local_trainer(), task)
            outcome = None
        except Exception as exc:  # one bad job must not stop the worker
            log.exception("%s of project %s failed", kind, project_id)
            outcome = f"{kind} of project {project_id}: {exc}"
            push_in = getattr(exc, "push_in", UNKNOWN)
            if not self.isolate and self._trainer is not None:
                push_in = _next_push_in(self._trainer)
        with self._cond:
            if not isinstance(push_in, _Unknown):  # else (the training process died) keep the timer
                self._push_at = None if push_in is None else time.monotonic() + push_in
            self._running.pop(key, None)
            self._workers.discard(threading.current_thread())
            if outcome is None:
                self.completed += 1
            else:
                self.failed += 1
                self.last_error = outcome
            self._cond.notify_all()

    def _local_trainer(self):
        """The lanes' one trainer (``isolate=False``), built by the first job."""
        with self._trainer_lock:
            if self._trainer is None:
                self._trainer = load_factory(self.trainer_factory)(self.settings, self.store)
            return self._trainer

    def _run_in_child(self, task, retried: bool = False) -> float | None:
        """Run the task in the training process; returns its :meth:`Trainer.next_push_in`."""
        with self._child_lock:
            if self._child is None or not self._child.alive():
                if self._stopped:  # closing: the job ends with the training process
                    raise RuntimeError("the queue was closed while the job ran")
                self._child = _TrainingProcess(self.settings, self.store, self.trainer_factory)
            child = self._child
        try:
            error, push_in = child.run(task)
        except (EOFError, OSError) as exc:
            child.process.join(timeout=5)
            with self._child_lock:
                if self._child is child:
                    self._child = None
            if not retried and not self._stopped:  # killed mid-job (OOM killer, kill -9): run it once more
                log.warning(
                    "the training process exited (code %s) during %s of project %s; running it again in a new one",
                    child.process.exitcode,
                    task[0],
                    task[1],
                )
                return self._run_in_child(task, retried=True)
            raise RuntimeError(f"the training process exited (code {child.process.exitcode})") from exc
        if error:
            raise _JobError(error, push_in)
        return push_in

    def _stop_child(self) -> None:
        with self._child_lock:
            child, self._child = self._child, None
        if child is not None:
            child.stop()


class _TrainingProcess:
    """The training process and its pipe: jobs go in as ``(number, task)``; a reader thread
    hands each report ``(number, error, push_in)`` to the lane waiting for it, and fails every
    waiting lane with EOFError when the process is gone."""

    def __init__(self, settings, store, trainer_factory) -> None:
        context = multiprocessing.get_context("spawn")  # no fork of a threaded server
        parent, child = context.Pipe()
        self.process = context.Process(
            target=_child_main,
            args=(child, settings, store, trainer_factory),
            name="labelcast-trainer",
            daemon=True,
        )
        self.process.start()
        child.close()
        self.connection = parent
        self._numbers = itertools.count()
        self._lock = threading.Lock()  # guards _waiting and _gone
        self._send_lock = threading.Lock()
        self._waiting: dict[int, Future] = {}
        self._gone = False
        threading.Thread(target=self._read, name="labelcast-trainer-reports", daemon=True).start()

    def alive(self) -> bool:
        return not self._gone and self.process.is_alive()

    def run(self, task) -> tuple[str | None, float | None]:
        """``(error or None, push_in)`` of the task; EOFError if the process dies first."""
        future: Future = Future()
        with self._lock:
            if self._gone:
                raise EOFError("the training process is gone")
            number = next(self._numbers)
            self._waiting[number] = future
        try:
            with self._send_lock:
                self.connection.send((number, task))
        except OSError:
            with self._lock:
                self._waiting.pop(number, None)
            raise
        return future.result()

    def _read(self) -> None:
        while True:
            try:
                number, error, push_in = self.connection.recv()
            except (EOFError, OSError):
                break
            with self._lock:
                future = self._waiting.pop(number, None)
            if future is not None:
                future.set_result((error, push_in))
        with self._lock:
            self._gone = True
            waiting, self._waiting = self._waiting, {}
        for future in waiting.values():
            future.set_exception(EOFError("the training process exited"))

    def stop(self) -> None:
        try:
            with self._send_lock:
                self.connection.send(None)
        except OSError:
            pass
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout=5)


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
    trainer.retry_version_pushes()  # every job first tells Label Studio the versions it missed
    if kind == "embed":
        trainer.embed_tasks(project_id, sorted(arg))
    elif kind == "refit":
        trainer.refit(project_id, sync=arg)
    return trainer.next_push_in()


def _child_main(connection, settings, store, trainer_factory) -> None:
    """Body of the training process: build the trainer, then run each job it is sent in a
    thread of its own (the parent bounds how many), until told to stop."""
    from backend.settings import configure_logging

    configure_logging(settings.log_level)
    # Started as a daemon, so the web process ends it when it exits; in here that flag would
    # forbid the embedding pipeline's decoding processes (they end with this one: their pipes
    # close).
    multiprocessing.current_process().daemon = False
    os.nice(TRAINING_NICE_INCREMENT)  # this process only: requests go first on shared cores
    _leave_a_core_for_requests()
    trainer = load_factory(trainer_factory)(settings, store)
    send_lock = threading.Lock()

    def work(number: int, task) -> None:
        report: tuple[str | None, float | None]
        try:
            _leave_a_core_for_requests()  # OpenMP's thread count is per thread: set it in this one
            report = (None, _run(trainer, task))
        except Exception as exc:  # reported to the lane, which counts and logs it
            log.exception("%s of project %s failed", task[0], task[1])
            report = (f"{type(exc).__name__}: {exc}", _next_push_in(trainer))
        try:
            with send_lock:
                connection.send((number, *report))
        except OSError:  # the web process is gone
            pass

    while True:
        try:
            message = connection.recv()
        except (EOFError, OSError):  # the web process is gone
            return
        if message is None:
            return
        number, task = message
        threading.Thread(target=work, args=(number, task), name=f"labelcast-{task[0]}-{task[1]}", daemon=True).start()


def _next_push_in(trainer) -> float | None:
    """The trainer's :meth:`next_push_in` after a failed job; None (no timer: the next job
    pushes) if that fails too, so the lane is still freed and the failure still reported."""
    try:
        return trainer.next_push_in()
    except Exception:
        log.exception("could not read when the next version push is due")
        return None


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
