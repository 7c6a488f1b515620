"""The store interface shared by the SQLite and Redis implementations."""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np


class Store(abc.ABC):
    """Durable state of every project, isolated by Label Studio project id.

    Records are JSON-safe dicts; embeddings are float32 vectors keyed by
    ``(encoder_id, sha256 of the image bytes)``; forecast plots are PNG bytes per finding.
    """

    # --- projects ---------------------------------------------------------------------------
    @abc.abstractmethod
    def put_project(self, project_id: int, record: Mapping[str, Any]) -> None:
        """Create or replace a project's record (label_config, extra_params, hostname, ...)."""

    @abc.abstractmethod
    def get_project(self, project_id: int) -> dict[str, Any] | None:
        """A project's record, None if the backend has never seen it."""

    @abc.abstractmethod
    def project_ids(self) -> list[int]:
        """Ids of every known project, ascending."""

    # --- tasks (image reference and its content hash) ----------------------------------------
    @abc.abstractmethod
    def put_tasks(self, project_id: int, images: Mapping[int, str]) -> None:
        """Record ``{task_id: image reference}``; a changed reference forgets the old hash."""

    @abc.abstractmethod
    def set_task_hashes(self, project_id: int, hashes: Mapping[int, str]) -> None:
        """Record ``{task_id: sha256 hex}`` of tasks whose image was fetched."""

    @abc.abstractmethod
    def get_tasks(self, project_id: int, task_ids: Iterable[int] | None = None) -> dict[int, dict[str, Any]]:
        """``{task_id: {"image": ref, "sha": sha256 or None}}`` (all tasks when ids are None)."""

    # --- labels ------------------------------------------------------------------------------
    @abc.abstractmethod
    def put_label(
        self,
        project_id: int,
        annotation_id: int,
        task_id: int,
        choices: list[str] | None,
        image: str | None = None,
        updated_at: float | None = None,
    ) -> None:
        """Record (or replace) one annotation's chosen values durably, with its task's image.

        ``updated_at``: the annotation's update time in Label Studio (Unix seconds). When given,
        a record of the same annotation with a later time is kept: webhooks delivered twice or
        out of order leave the newest version. ``choices=None`` records that the annotation
        has no label (skipped, or without the project's choices): it counts for nothing, but
        an older version of it arriving late does not come back. (An empty list is a label:
        "none of the findings" in a multi-label project.) An annotation deleted with
        :meth:`delete_labels` is never recorded again.
        """

    @abc.abstractmethod
    def delete_labels(self, project_id: int, annotation_ids: Iterable[int]) -> int:
        """Forget annotations deleted in Label Studio; returns how many were labels.

        Each id leaves a tombstone, even an id never seen: a create or update of a deleted
        annotation that arrives late (webhooks out of order) is ignored, and so is one in a
        later :meth:`replace_labels`. Label Studio never reuses an annotation id.
        """

    @abc.abstractmethod
    def replace_labels(
        self, project_id: int, labels: Mapping[int, tuple[int, list[str]]], older_than: float | None = None
    ) -> None:
        """Make ``{annotation_id: (task_id, choices)}`` the project's labels.

        A value may carry Label Studio's update time as a third item, ``(task_id, choices,
        updated_at)``: then, as in :meth:`put_label`, a stored version with a later time is
        kept, and an older one arriving by webhook afterwards does not replace it.

        Labels recorded at or after ``older_than`` (a ``time.time()``; default now) are kept
        even when missing from ``labels``: they arrived by webhook while the caller was reading
        Label Studio. "No label" records (skips) and tombstones are kept too.
        """

    @abc.abstractmethod
    def has_label(self, project_id: int, annotation_id: int) -> bool:
        """Whether the annotation is recorded with a label (not deleted, not "no label")."""

    @abc.abstractmethod
    def get_labels(self, project_id: int) -> dict[int, list[str]]:
        """``{task_id: choices}``, the latest annotation (highest id) of each task."""

    # --- embeddings (the embedding-cache protocol) -------------------------------------------
    @abc.abstractmethod
    def get_many(self, encoder_id: str, sha256_list: Iterable[str]) -> dict[str, np.ndarray]:
        """Cached embeddings of the given image hashes (missing ones are left out)."""

    @abc.abstractmethod
    def put_many(self, encoder_id: str, vectors: Mapping[str, np.ndarray]) -> None:
        """Cache ``{sha256: vector}`` for an encoder."""

    @abc.abstractmethod
    def cached_shas(self, encoder_id: str, sha256_list: Iterable[str]) -> set[str]:
        """Which of the given image hashes have an embedding for ``encoder_id`` (no vector is
        read: for counting what is embedded)."""

    def get_pool_embeddings(self, project_id: int, encoder_id: str) -> dict[int, np.ndarray]:
        """Embeddings of every task of the project that has one for ``encoder_id``, labeled or
        not (the pool: what sampling and bias corrections draw from).

        Returns
        -------
        dict of task id to ndarray of shape (dim,), float32
            Tasks whose image was not fetched or embedded yet (or failed) are left out.
        """
        shas = {t: rec["sha"] for t, rec in self.get_tasks(project_id).items() if rec.get("sha")}
        vectors = self.get_many(encoder_id, set(shas.values()))
        return {t: vectors[sha] for t, sha in shas.items() if sha in vectors}

    # --- embedding progress ------------------------------------------------------------------
    @abc.abstractmethod
    def put_embedding_progress(self, project_id: int, progress: Mapping[str, Any]) -> None:
        """Replace the project's embedding progress record (written by the worker while it embeds:
        tasks embedded / total, images/s, errors by reason)."""

    @abc.abstractmethod
    def get_embedding_progress(self, project_id: int) -> dict[str, Any] | None:
        """The latest embedding progress record, None before the first embedding job."""

    # --- version pushes --------------------------------------------------------------------
    @abc.abstractmethod
    def set_push_due(self, project_id: int, at: float | None) -> None:
        """Record when the project's model version is to be pushed to Label Studio again
        (``time.time()`` seconds: Label Studio missed it), or, with None, that it has it."""

    @abc.abstractmethod
    def get_push_due(self) -> dict[int, float]:
        """``{project_id: time.time() of the next push}`` of every version Label Studio missed."""

    # --- models and forecasts ----------------------------------------------------------------
    @abc.abstractmethod
    def put_result(
        self, project_id: int, model: Mapping[str, Any], forecast: Mapping[str, Any], plots: Mapping[str, bytes]
    ) -> None:
        """Save a refit's model, forecast and plots together."""

    @abc.abstractmethod
    def get_model(self, project_id: int) -> dict[str, Any] | None:
        """The latest model record (version, probes), None before the first refit."""

    @abc.abstractmethod
    def get_forecast(self, project_id: int) -> dict[str, Any] | None:
        """The latest forecast record, None before the first refit."""

    @abc.abstractmethod
    def get_plot(self, project_id: int, finding: str) -> bytes | None:
        """The latest learning-curve PNG of one finding."""

    def get_history(self, project_id: int) -> list[dict[str, Any]]:
        """Summaries of the project's past forecasts, oldest first (at most ``HISTORY_LIMIT``).

        Each :meth:`put_result` appends :func:`history_entry` of its forecast.
        """
        return []

    def close(self) -> None:  # noqa: B027 (optional: a store without connections keeps it)
        """Release connections (optional)."""


HISTORY_LIMIT = 500
"""Past forecast summaries kept per project (one per refit; the oldest are dropped)."""


def history_entry(forecast: Mapping[str, Any]) -> dict[str, Any]:
    """The small part of a forecast record kept in the history: counts, AUC, labels needed."""
    keep = ("status", "auc", "labels_remaining", "labels_needed", "n_positive", "n_negative")
    return {
        "version": forecast.get("version"),
        "n_labels": forecast.get("n_labels"),
        "labels_needed": forecast.get("labels_needed"),
        "updated_at": forecast.get("updated_at"),
        "findings": {
            name: {k: (fc or {}).get(k) for k in keep} for name, fc in (forecast.get("findings") or {}).items()
        },
    }


def vector_to_bytes(vector: Any) -> bytes:
    """A 1-D float32 vector as raw bytes."""
    return np.ascontiguousarray(vector, dtype=np.float32).reshape(-1).tobytes()


def bytes_to_vector(raw: bytes) -> np.ndarray:
    """Inverse of :func:`vector_to_bytes`."""
    return np.frombuffer(raw, dtype=np.float32).copy()
