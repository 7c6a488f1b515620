"""The queue interface and the dotted path of the work."""

from __future__ import annotations

import abc
import importlib
from collections.abc import Iterable
from typing import Any

TRAINER_FACTORY = "backend.training:Trainer"
"""Dotted path of the class that does the work; called as ``Trainer(settings, store)``.

The queues call its ``refit(project_id, sync=...)``, ``embed_tasks(project_id, task_ids)``
and ``retry_version_pushes()`` (the push job), and after each job ``next_push_in()``: seconds
until the push job is due (None: none is). When and why a push is retried is the trainer's
(``backend.publish.Retry``); a queue only runs the push job when it is told to."""

TRAINING_NICE_INCREMENT = 10
"""Added to the niceness (0 is normal, 19 the lowest CPU priority) of the processes that train:
the embedded mode's training process and ``labelcast worker``. Where they share cores with the
web processes and Redis, requests go first and a refit takes what is left; where the cores are
idle it changes nothing. On the 2 shared cores of ``benchmarks/load_test.py`` the webhook p99
was 29–46 ms in 8 runs with it and 22–53 ms in 7 without (SQLite: under the 50-ms target in
every run with it), 29–59 ms in 9 runs with it and 32–45 ms in 3 without (Redis)."""


class Jobs(abc.ABC):
    """Where the web process hands work to."""

    @abc.abstractmethod
    def request_refit(self, project_id: int, sync: bool = False) -> bool:
        """Ask for a refit of a project; False when one is already queued (coalesced).

        ``sync``: first re-read every task and annotation from Label Studio (on connect and on
        "Start training"); a coalesced request keeps the sync.
        """

    @abc.abstractmethod
    def request_embed(self, project_id: int, task_ids: Iterable[int]) -> None:
        """Ask for the images of these tasks to be fetched and embedded ahead of time."""

    @abc.abstractmethod
    def status(self) -> dict[str, Any]:
        """Queue state for ``/metrics`` (JSON-safe)."""

    def close(self) -> None:  # noqa: B027 (optional: a queue without background work keeps it)
        """Stop background work (optional)."""


def load_factory(path=TRAINER_FACTORY):
    """Import ``module:attribute`` and return the attribute (a callable is returned as is)."""
    if callable(path):
        return path
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)
