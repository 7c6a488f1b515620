"""How work is queued: an in-process worker running projects side by side (embedded mode) or an
RQ queue (Redis mode).

Both implement :class:`Jobs`. Refit requests coalesce per project: requests that arrive while a
refit is queued or running lead to one more refit, not one per label. The web process only
calls ``request_*``; the work itself (``backend.training``) is imported by dotted path in the
worker, never by the web code.
"""

from __future__ import annotations

from backend.jobs._base import TRAINER_FACTORY, TRAINING_NICE_INCREMENT, Jobs
from backend.jobs._rq import RQJobs, run_worker
from backend.jobs._thread import ThreadJobs

__all__ = ["Jobs", "ThreadJobs", "RQJobs", "open_jobs", "run_worker", "TRAINER_FACTORY", "TRAINING_NICE_INCREMENT"]


def open_jobs(settings, store) -> Jobs:
    """RQ jobs when ``settings.redis_url`` is set, else the embedded worker (its lanes feeding
    one training child process)."""
    if settings.redis_url:
        import redis

        return RQJobs(redis.Redis.from_url(settings.redis_url))
    return ThreadJobs(settings, store, isolate=True)
