"""Publishing: a project's model version and forecast sentence, told to Label Studio.

A version Label Studio could not be told (it was unreachable, or the store was while reading
the version) gets a deadline in the store (:meth:`backend.store.Store.set_push_due`), so any
worker process, and a training process started anew after a crash, pushes it again. When and
on which errors that happens is one :class:`Retry` policy, consulted here; the queues only run
the push job when :meth:`Publisher.next_push_in` says.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from backend.exceptions import LabelStudioError

log = logging.getLogger(__name__)

PUSH_RETRY_S = 30.0
"""Seconds before a model version that Label Studio could not be told is pushed again."""

SETUP_REPUSH_S = 5.0
"""Seconds after the first refit of a newly connected project before its version and message
are pushed once more. Label Studio (1.23, ``MLBackend.update_state``) calls /setup and then
saves the whole ML backend record it read before: a message pushed in between (a fast first
refit, such as one whose every image is refused) is overwritten by the old description."""


def store_errors() -> tuple[type[BaseException], ...]:
    """What a store raises when it is unreachable or busy for a while (worth a retry)."""
    import sqlite3

    from redis.exceptions import BusyLoadingError, ConnectionError, TimeoutError

    return (sqlite3.OperationalError, ConnectionError, TimeoutError, BusyLoadingError)


@dataclass(frozen=True)
class Retry:
    """When a push that failed is tried again (rq keeps its retry policy the same way).

    Parameters
    ----------
    interval_s : float
        Seconds from a failed push to the next try; never at once.
    on : tuple of exception classes
        The failures that are expected and retried: Label Studio unreachable
        (:class:`~backend.exceptions.LabelStudioError`) and the store unreachable or busy.
        Anything else (a ``TypeError``, say) is a bug: raised, and not retried.
    """

    interval_s: float = PUSH_RETRY_S
    on: tuple[type[BaseException], ...] = field(default_factory=lambda: (LabelStudioError, *store_errors()))

    def __post_init__(self) -> None:
        if not self.interval_s >= 0:
            raise ValueError(f"Retry interval_s must be >= 0 seconds, got {self.interval_s!r}")

    def covers(self, exc: BaseException) -> bool:
        """Whether ``exc`` is an expected failure, to be tried again after ``interval_s``."""
        return isinstance(exc, self.on)

    def next_try(self, now: float) -> float:
        """When (same clock as ``now``) a push failing at ``now`` is tried again."""
        return now + self.interval_s


class Publisher:
    """Tells Label Studio a project's model version, and keeps the missed ones' deadlines in
    the store.

    Parameters
    ----------
    settings : backend.settings.Settings
        ``basic_auth_user`` / ``basic_auth_pass`` are sent for Label Studio to call back with.
    store : backend.store.Store
    client_for : callable
        ``(project record) -> LabelStudioClient`` of that project.
    retry : Retry, optional
        Default: ``Retry()``.
    """

    def __init__(self, settings, store, client_for: Callable[[dict[str, Any]], Any], retry: Retry | None = None):
        self.settings = settings
        self.store = store
        self.client_for = client_for
        self.retry = retry or Retry()
        self._pushing = threading.Lock()  # one push_due at a time (jobs may run side by side)
        self._projects: dict[int, threading.RLock] = {}  # one push per project at a time
        self._projects_lock = threading.Lock()

    def _project_lock(self, project_id: int) -> threading.RLock:
        with self._projects_lock:
            return self._projects.setdefault(project_id, threading.RLock())

    def tell(self, project_id: int, project: dict[str, Any], version: str, message: str) -> None:
        """Set the project's model version and forecast sentence in Label Studio; Label Studio
        unreachable is logged and retried after ``retry.interval_s`` (not raised). One push per
        project at a time: a late push of an older version cannot land after a newer one."""
        with self._project_lock(project_id):
            self._tell(project_id, project, version, message)

    def _tell(self, project_id: int, project: dict[str, Any], version: str, message: str) -> None:
        client = self.client_for(project)
        if not (getattr(client, "url", None) and getattr(client, "api_key", None)):
            log.info("project %s: no Label Studio URL/API key; model version not pushed", project_id)
            return
        auth = self.basic_auth()
        try:
            backend_id = client.set_model_version(project_id, version, status=message, basic_auth=auth)
        except LabelStudioError as exc:
            log.warning("project %s: %s (retried in %.0f s)", project_id, exc, self.retry.interval_s)
            self.store.set_push_due(project_id, self.retry.next_try(time.time()))
            return
        self.store.set_push_due(project_id, None)
        if backend_id is None:
            log.info("project %s has no ML backend in Label Studio; model version not pushed", project_id)
            return
        if auth:
            try:
                if client.authorize_webhooks(project_id, *auth):
                    log.info("project %s: added basic auth to the ML backend's webhook", project_id)
            except LabelStudioError as exc:
                log.warning("project %s: %s", project_id, exc)

    def show_status(self, project_id: int, project: dict[str, Any], status: str, default_version: str) -> bool:
        """Show ``status`` (progress: "embedding 3,200 of 10,000 images") as the backend's
        description in Label Studio, beside the latest saved model version (``default_version``
        before there is one), in the project's push turn. A courtesy: Label Studio unreachable
        is logged, not retried. Returns whether Label Studio took it."""
        with self._project_lock(project_id):
            client = self.client_for(project)
            if not (getattr(client, "url", None) and getattr(client, "api_key", None)):
                return False
            version = (self.store.get_model(project_id) or {}).get("version") or default_version
            try:
                client.set_model_version(project_id, version, status=status, basic_auth=self.basic_auth())
            except LabelStudioError as exc:
                log.info("project %s: progress not shown in Label Studio: %s", project_id, exc)
                return False
            return True

    def basic_auth(self) -> tuple[str, str] | None:
        """The backend's basic-auth credentials, None when it has none."""
        if self.settings.basic_auth_user and self.settings.basic_auth_pass:
            return (self.settings.basic_auth_user, self.settings.basic_auth_pass)
        return None

    def push(self, project_id: int) -> None:
        """Tell Label Studio the project's latest saved model version and message (whichever
        worker saved it). An expected failure (``retry.on``) is retried after
        ``retry.interval_s``, never at once, and raised; any other error is a bug: raised (the
        queues log it and count it) and not retried."""
        try:
            with self._project_lock(project_id):  # read the latest version while no push runs
                model, record = self.store.get_model(project_id), self.store.get_forecast(project_id)
                project = self.store.get_project(project_id)
                if not (model and record and project):
                    self.store.set_push_due(project_id, None)
                    return
                self.tell(project_id, project, model["version"], record.get("message") or "")
        except Exception as exc:
            if self.retry.covers(exc):
                self.store.set_push_due(project_id, self.retry.next_try(time.time()))
            else:  # a bug: surfaced once, not retried in a loop
                self.store.set_push_due(project_id, None)
            raise

    def push_due(self) -> None:
        """Push every missed version whose deadline has come. A job that starts while another
        is pushing goes on without waiting (that one pushes them)."""
        if not self._pushing.acquire(blocking=False):
            return
        try:
            now = time.time()
            for project_id, at in sorted(self.store.get_push_due().items()):
                if at <= now:
                    self.push(project_id)
        finally:
            self._pushing.release()

    def push_again_in(self, project_id: int, seconds: float) -> None:
        """Push the project's latest version and message again in ``seconds`` (sooner if a
        push is already due sooner), through the same deadlines as a missed push."""
        at = time.time() + seconds
        due = self.store.get_push_due().get(project_id)
        if due is None or due > at:
            self.store.set_push_due(project_id, at)

    def pending(self) -> dict[int, float]:
        """``{project_id: seconds until the next try}`` of versions Label Studio was not told
        (or is to be told again: :meth:`push_again_in`)."""
        now = time.time()
        return {project_id: max(0.0, at - now) for project_id, at in self.store.get_push_due().items()}

    def next_push_in(self) -> float | None:
        """Seconds until the next push is due (0: now), None when Label Studio has every
        version. The store unreachable: look again after ``retry.interval_s``."""
        try:
            pending = self.pending()
        except store_errors():
            return self.retry.interval_s
        return min(pending.values()) if pending else None
