"""The Redis mode: jobs on an RQ queue, run by ``labelcast worker`` processes.

Coalescing uses a ``pending`` flag per project: a request sets it (``SET NX``) and enqueues a
job only when the flag was not set; the job clears the flag before it starts working, so labels
that arrive during a refit enqueue exactly one more. A per-project lock keeps two workers from
refitting the same project at once.

Projects run side by side as far as there are ``labelcast worker`` processes: each runs one job
at a time, so a project whose image host trickles holds one worker (for at most
``backend.training.FETCH_BUDGET_S``) and the others go on. A refit job whose project is already
being refitted by another worker does not wait for the lock (that would hold a second worker
behind the slow project): it requests the refit again (back of the queue, coalesced like any
request) and returns, so the worker takes other projects' jobs meanwhile. The requested refit
runs once the lock is free: when the other worker is done, or when its lock expires because
it died.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Iterable
from typing import Any

from backend.jobs._base import TRAINER_FACTORY, Jobs, load_factory

log = logging.getLogger(__name__)

QUEUE_NAME = "labelcast"
"""Name of the RQ queue the web process fills and ``labelcast worker`` drains."""

JOB_TIMEOUT_S = 3600
"""Longest a single job may run (seconds) before RQ kills it."""

LOCK_TIMEOUT_S = 15
"""Expiry of the per-project refit lock (seconds). A running refit extends it every third of
that; a worker killed mid-refit (``kill -9``) frees it within this time."""

BUSY_REQUEUE_S = 1.0
"""Seconds a refit job whose project's lock is taken waits before it requests the refit again
and returns (so that a lone waiting job does not spin on the queue)."""

KEY_PREFIX = "labelcast"

# The trainer of the current ``labelcast worker`` process; set by :func:`run_worker`.
_trainer: contextvars.ContextVar[Any] = contextvars.ContextVar("labelcast_trainer")


def _key(project_id: int, name: str) -> str:
    return f"{KEY_PREFIX}:project:{int(project_id)}:{name}"


class RQJobs(Jobs):
    """RQ-backed queue used by the web processes.

    Parameters
    ----------
    connection : redis.Redis
    queue_name : str
    """

    def __init__(self, connection, queue_name: str = QUEUE_NAME) -> None:
        from rq import Queue

        self.connection = connection
        self.queue = Queue(queue_name, connection=connection)

    def request_refit(self, project_id: int, sync: bool = False) -> bool:
        if sync:
            self.connection.set(_key(project_id, "sync-pending"), 1)
        if not self.connection.set(_key(project_id, "refit-pending"), 1, nx=True):
            return False
        self.queue.enqueue(f"{__name__}.refit_job", int(project_id), job_timeout=JOB_TIMEOUT_S, result_ttl=600)
        return True

    def request_embed(self, project_id: int, task_ids: Iterable[int]) -> None:
        ids = [int(t) for t in task_ids]
        if not ids:
            return
        self.connection.sadd(_key(project_id, "embed-tasks"), *ids)
        if self.connection.set(_key(project_id, "embed-pending"), 1, nx=True):
            self.queue.enqueue(f"{__name__}.embed_job", int(project_id), job_timeout=JOB_TIMEOUT_S, result_ttl=600)

    def status(self) -> dict[str, Any]:
        from rq.registry import FailedJobRegistry, StartedJobRegistry

        return {
            "kind": "rq",
            "queued": self.queue.count,
            "running": StartedJobRegistry(queue=self.queue).count,
            "failed": FailedJobRegistry(queue=self.queue).count,
        }


def refit_job(project_id: int) -> None:
    """RQ job: refit one project (runs in ``labelcast worker``).

    While it runs, an ``inflight`` key (without expiry) records the refit; a worker that dies
    mid-refit leaves it behind, and the next ``labelcast worker`` to start requests the refit
    again (:func:`requeue_interrupted`).
    """
    trainer = _trainer.get()
    trainer.retry_version_pushes()  # every job first tells Label Studio the versions it missed
    connection = trainer.store.connection
    connection.delete(_key(project_id, "refit-pending"))
    lock = connection.lock(_key(project_id, "refit-lock"), timeout=LOCK_TIMEOUT_S)
    if not lock.acquire(blocking=False):  # another worker refits it: do not wait here
        time.sleep(BUSY_REQUEUE_S)
        RQJobs(connection, _queue_name()).request_refit(project_id)
        log.debug("project %s: being refitted by another worker; requested the refit again", project_id)
        return
    try:
        with _keep_extended(lock):
            pipe = connection.pipeline(transaction=True)
            pipe.get(_key(project_id, "sync-pending"))
            pipe.delete(_key(project_id, "sync-pending"))
            sync, _ = pipe.execute()
            connection.set(_key(project_id, "refit-inflight"), "sync" if sync else "refit")
            try:
                trainer.refit(project_id, sync=bool(sync))
            finally:
                connection.delete(_key(project_id, "refit-inflight"))
                _schedule_version_pushes(trainer)
    finally:
        _release(lock)


def _release(lock) -> None:
    from redis.exceptions import LockError

    try:
        lock.release()
    except LockError:  # it expired (the worker stalled past LOCK_TIMEOUT_S): nothing to free
        log.warning("the refit lock had expired before the refit ended")


def _queue_name() -> str:
    from rq import get_current_job

    job = get_current_job()
    return job.origin if job else QUEUE_NAME


def requeue_interrupted(connection, queue_name: str = QUEUE_NAME) -> list[int]:
    """Request a refit for every project whose refit was interrupted (its worker died).

    Returns the project ids. A refit that another live worker is running gets one extra,
    coalesced refit after it, which is harmless.
    """
    jobs = RQJobs(connection, queue_name)
    projects = []
    for key in connection.scan_iter(match=f"{KEY_PREFIX}:project:*:refit-inflight"):
        key = key.decode() if isinstance(key, bytes) else key
        project_id = int(key.split(":")[2])
        sync = connection.get(key) in (b"sync", "sync")
        jobs.request_refit(project_id, sync=sync)
        projects.append(project_id)
        log.warning("project %s: a refit was interrupted (worker died); requested it again", project_id)
    return projects


class _keep_extended:
    """Extend a redis lock every third of its timeout while the block runs."""

    def __init__(self, lock) -> None:
        import threading

        self.lock = lock
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="labelcast-lock-keeper", daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(LOCK_TIMEOUT_S / 3):
            try:
                self.lock.extend(LOCK_TIMEOUT_S, replace_ttl=True)
            except Exception:  # lost the lock or Redis is briefly away: try again next time
                log.warning("could not extend the refit lock", exc_info=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


def embed_job(project_id: int) -> None:
    """RQ job: embed the tasks queued for one project."""
    trainer = _trainer.get()
    trainer.retry_version_pushes()  # every job first tells Label Studio the versions it missed
    connection = trainer.store.connection
    connection.delete(_key(project_id, "embed-pending"))
    pipe = connection.pipeline(transaction=True)
    pipe.smembers(_key(project_id, "embed-tasks"))
    pipe.delete(_key(project_id, "embed-tasks"))
    members, _ = pipe.execute()
    try:
        if members:
            trainer.embed_tasks(project_id, sorted(int(t) for t in members))
    finally:
        _schedule_version_pushes(trainer)


def push_job(project_id: int | None = None) -> None:
    """RQ job (scheduled): tell Label Studio the model versions it missed (it was unreachable)
    whose retry time has come; the deadlines are the trainer's, kept in the store.

    ``project_id`` is ignored: push jobs scheduled by an older LabelCast carry one, and every
    due project is pushed anyway."""
    trainer = _trainer.get()
    trainer.store.connection.delete(_key_push_scheduled())
    try:
        trainer.retry_version_pushes()
    finally:
        _schedule_version_pushes(trainer)


def _key_push_scheduled() -> str:
    return f"{KEY_PREFIX}:push-scheduled"


def _schedule_version_pushes(trainer) -> None:
    """Put one :func:`push_job` on RQ's schedule for when the trainer says the next missed
    model version is due (at most one scheduled at a time), so Label Studio is told even if no
    job comes."""
    from datetime import timedelta

    from rq import Queue, get_current_job

    seconds = trainer.next_push_in()
    if seconds is None:
        return
    connection = trainer.store.connection
    job = get_current_job()
    queue = Queue(job.origin if job else QUEUE_NAME, connection=connection)
    if connection.set(_key_push_scheduled(), 1, nx=True, ex=int(seconds) + 60):
        queue.enqueue_in(timedelta(seconds=seconds), f"{__name__}.push_job", job_timeout=JOB_TIMEOUT_S, result_ttl=600)


def run_worker(
    settings, store, *, burst: bool = False, queue_name: str = QUEUE_NAME, trainer_factory=TRAINER_FACTORY
) -> bool:
    """Run an RQ worker with one trainer (encoder loaded once) for this process.

    Uses RQ's ``SimpleWorker`` (no fork per job), so the loaded encoder stays warm across jobs.
    Returns whether any job was processed (``burst`` mode stops when the queue is empty).
    """
    from rq import Queue, SimpleWorker

    trainer = load_factory(trainer_factory)(settings, store)
    token = _trainer.set(trainer)
    try:
        requeue_interrupted(store.connection, queue_name)
        queue = Queue(queue_name, connection=store.connection)
        worker = SimpleWorker([queue], connection=store.connection)
        # with_scheduler: this worker also moves due scheduled jobs (push_job) to the queue.
        return worker.work(burst=burst, logging_level=settings.log_level, with_scheduler=True)
    finally:
        _trainer.reset(token)
