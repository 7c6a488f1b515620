"""The refit: labels and embeddings in; probes, forecasts, plots and the version record out.

Pure: no store, no Label Studio, no encoder. :meth:`backend.training.Trainer.refit` reads the
inputs, calls :func:`refit` and saves and publishes what it returns.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from backend.exceptions import UnusableLabelsError
from backend.labelstudio.config import LabelingConfig
from backend.labelstudio.protocol import collecting_message, model_version

log = logging.getLogger(__name__)

PROBE_MIN_PER_CLASS = 2
"""A probe is fitted once each class of a finding has at least this many labels."""

IMAGE_ERRORS_SHOWN = 100
"""Tasks whose image failed listed in a forecast record (all are counted in ``n_image_errors``)."""

FORECAST_SEED = 0
"""Seed of the learning curve's resampling, so a refit on the same labels gives the same forecast."""


@dataclass(frozen=True)
class Refit:
    """What one refit produced, to be saved (``store.put_result(project, model, record, plots)``).

    Attributes
    ----------
    model : dict
        The model record: ``version``, ``revision``, ``encoder``, ``encoder_spec``, ``n_labels``,
        ``fingerprint``, ``probes`` (finding -> ``LinearProbe.to_dict()``), ``score_quantiles``,
        ``trained_at``.
    record : dict
        The forecast record (status ``ok``) that /forecast shows and Label Studio is told.
    plots : dict of str to bytes
        Learning-curve PNG per finding (findings without a curve have none).
    """

    model: dict[str, Any]
    record: dict[str, Any]
    plots: dict[str, bytes]


def refit(
    project_id: int,
    labels: Mapping[int, list[str]],
    vectors: Mapping[int, np.ndarray],
    config: LabelingConfig,
    settings,
    *,
    encoder_id: str,
    encoder_spec: str,
    dim: int,
    pool: np.ndarray,
    pool_size: int,
    n_tasks: int,
    previous: Mapping[str, Any] | None,
    image_errors: Mapping[int, str],
    base_url: str | None,
    started: float,
) -> Refit:
    """Fit a probe and forecast the learning curve of every finding of a project.

    Parameters
    ----------
    project_id : int
    labels : mapping of task id to list of str
        Every label of the project (the chosen values).
    vectors : mapping of task id to ndarray of shape (dim,)
        Embeddings of the labeled tasks whose image could be used; others are left out.
    config : LabelingConfig
    settings : backend.settings.Settings
        The project's settings (``target_auc``, ``min_labels``, ``sampling``, ``random_start``).
    encoder_id, encoder_spec : str
        The encoder's id (of the embeddings) and the spec it was configured by (in the version).
    dim : int
        Embedding size (for a project without usable labels yet).
    pool : ndarray of shape (n_pool, dim)
        Embeddings of unlabeled tasks to compare the labels with (may be empty).
    pool_size : int
        Unlabeled embedded tasks in all (``pool`` may be a sample of them).
    n_tasks : int
        Tasks of the project (for ``sampling="mixed"``).
    previous : mapping or None
        The model record saved last; the same labels keep its version.
    image_errors : mapping of task id to str
        Labeled tasks whose image could not be used, with the reason.
    base_url : str or None
        The backend's public URL, for the /report link in the message.
    started : float
        ``time.perf_counter()`` when the refit began (``refit_seconds`` counts from it).

    Returns
    -------
    Refit

    Raises
    ------
    UnusableLabelsError
        When labels arrived but none has a usable embedding.
    """
    from backend.forecast import MIN_LABELS, forecast
    from backend.probe import fit_probe
    from backend.sampling import selection_probabilities, unsteered_labels

    task_ids = [t for t in labels if t in vectors]
    n = len(task_ids)
    if labels and not n:
        raise UnusableLabelsError(len(labels), dict(image_errors))
    X = np.stack([vectors[t] for t in task_ids]) if n else np.zeros((0, dim), np.float32)
    targets = [config.targets(labels[t]) for t in task_ids]
    known = (
        selection_probabilities(project_id, task_ids, n_tasks, settings.random_start)
        if settings.sampling == "mixed" and n
        else None
    )
    unsteered = unsteered_labels(settings.sampling, n, settings.random_start)
    min_labels = settings.min_labels or MIN_LABELS
    forecasts, probes, plots = {}, {}, {}
    for finding in config.findings:
        y = np.array([row[finding] for row in targets], dtype=np.int8)
        fc = forecast(
            X,
            y,
            settings.target_auc,
            seed=FORECAST_SEED,
            min_labels=min_labels,
            positive_name=finding,
            pool=pool if len(pool) else None,
            selection_prob=known,
            pool_size=pool_size,
            project_size=n_tasks or None,
            unsteered=unsteered,
        )
        forecasts[finding] = fc
        n_pos = int(y.sum())
        if min(n_pos, n - n_pos) >= PROBE_MIN_PER_CLASS:
            probes[finding] = fit_probe(X, y, seed=FORECAST_SEED).to_dict()
        png = _plot(fc)
        if png:
            plots[finding] = png

    fingerprint = _fingerprint({t: labels[t] for t in task_ids}, config.findings)
    previous = previous or {}
    revision = 1
    if previous.get("n_labels") == n and previous.get("encoder_spec") == encoder_spec:
        same = previous.get("fingerprint") == fingerprint
        revision = int(previous.get("revision", 1)) + (0 if same else 1)
    version = model_version(encoder_spec, n, revision)
    message = summary_message(config, forecasts, n, min_labels) + left_out_note(len(labels), image_errors)
    message = with_report_link(message, base_url, project_id)
    needed = summary_labels_needed(forecasts, min_labels)
    seconds = time.perf_counter() - started
    model = {
        "version": version,
        "revision": revision,
        "encoder": encoder_id,
        "encoder_spec": encoder_spec,
        "n_labels": n,
        "fingerprint": fingerprint,
        "probes": probes,
        # Where audit tasks' scores are drawn from under sampling=mixed (backend.sampling).
        "score_quantiles": _score_quantiles(config, probes, X, pool),
        "trained_at": time.time(),
    }
    record = {
        "status": "ok",
        "version": version,
        "n_labels": n,
        "n_labels_recorded": len(labels),
        "target_auc": settings.target_auc,
        "message": message,
        "labels_needed": needed,
        "findings": {f: fc.to_dict() for f, fc in forecasts.items()},
        "updated_at": time.time(),
        "refit_seconds": round(seconds, 3),
        # Labeled tasks left out of this refit, with the reason (shown by /forecast).
        "image_errors": {str(t): reason[:300] for t, reason in sorted(image_errors.items())[:IMAGE_ERRORS_SHOWN]},
        "n_image_errors": len(image_errors),
        # The unlabeled tasks' embeddings the forecast compared the labels with.
        "n_pool": pool_size,
        "sampling": settings.sampling,
        # mixed only: labels taken in random order before least-sure-first began.
        "random_start": settings.random_start if settings.sampling == "mixed" else 0,
    }
    return Refit(model=model, record=record, plots=plots)


def summary_message(config: LabelingConfig, forecasts: dict[str, Any], n_labels: int, min_labels: int) -> str:
    """One sentence (or one per finding) for the forecast TextArea."""
    if n_labels == 0:
        return collecting_message(0, min_labels)
    if len(forecasts) == 1:
        return next(iter(forecasts.values())).message
    return " | ".join(f"{finding}: {fc.message}" for finding, fc in forecasts.items())


def image_error_summary(errors: Mapping[int, str]) -> str:
    """Image errors grouped by kind, with one example each and the fix: ``"40 images refused
    (task 7: image host 'x' is not allowed ...); add the host to ALLOWED_IMAGE_HOSTS"``."""
    groups: dict[str, list[int]] = {}
    for task_id, reason in sorted(errors.items()):
        groups.setdefault(error_kind(reason), []).append(task_id)
    if not groups:
        return "their tasks have no image"
    parts = []
    for kind, tasks in sorted(groups.items(), key=lambda item: -len(item[1])):
        example = errors[tasks[0]][:200]
        parts.append(
            f"{len(tasks)} image{'s' if len(tasks) != 1 else ''} {kind} (task {tasks[0]}: {example}); "
            f"{_ERROR_FIX[kind]}"
        )
    return "; ".join(parts)


_ERROR_FIX = {
    "refused": "add the image host to ALLOWED_IMAGE_HOSTS, or serve the images through Label Studio",
    "not fetched": "check that the image server is reachable from the backend and the URLs are right",
    "not decoded": "the files are not images LabelCast reads (PNG, JPEG, DICOM, ...) or are too large",
}


def error_kind(reason: str) -> str:
    if not reason.startswith("image not fetched"):
        return "not decoded"
    if "ALLOWED_IMAGE_HOSTS" in reason or "is not allowed" in reason or "refused" in reason:
        return "refused"
    return "not fetched"


def left_out_note(n_labels: int, errors: Mapping[int, str]) -> str:
    """`` (40 labels arrived; 3 left out: ...)`` when some labels' images could not be used."""
    if not errors:
        return ""
    return f" ({n_labels} labels arrived; {len(errors)} left out: {image_error_summary(errors)}.)"


def with_report_link(message: str, base_url: str | None, project_id: int) -> str:
    """``message`` plus where the project's report is: a link when the backend's address is
    configured (``base_url``: ``PUBLIC_URL``, or the concrete address ``labelcast serve``
    listens on), else the path on the backend, without an address. Never an address a request
    named: a caller that could set it would set the link annotators follow."""
    path = f"/report?project={int(project_id)}"
    if base_url:
        return f"{message} Details: {base_url.rstrip('/')}{path}"
    return f"{message} Details: {path} on the LabelCast backend."


# Label Studio's "labels still needed" Number shows a count only when at least this share of the
# slowest finding's forecast curves reach the target.
NUMBER_REACH_SHARE = 0.5


def summary_labels_needed(forecasts: dict[str, Any], min_labels: int) -> float | None:
    """More labels needed for every finding to reach the target (the slowest finding counts).

    While collecting, the labels still missing for a first forecast; None when some finding
    is not expected to reach the target at all, or when fewer than :data:`NUMBER_REACH_SHARE`
    of its forecast curves reach it (a lone number cannot say "if it is reached"; the sentence
    does).
    """
    values = []
    for fc in forecasts.values():
        if fc.status == "target_reached":
            values.append(0.0)
        elif fc.status == "collecting":
            values.append(float(max(min_labels - fc.n_labels, fc.positives_needed + fc.negatives_needed, 0)))
        elif fc.labels_remaining is None or not math.isfinite(fc.labels_remaining):
            return None
        elif fc.reach_share is not None and fc.reach_share < NUMBER_REACH_SHARE:
            return None
        else:
            values.append(float(fc.labels_remaining))
    return max(values) if values else float(min_labels)


def _score_quantiles(config: LabelingConfig, probes: dict[str, Any], X: np.ndarray, pool: np.ndarray) -> list[float]:
    """Quantiles of the probes' confidence over every embedded task of the project."""
    from backend.labelstudio.config import MULTILABEL
    from backend.labelstudio.protocol import confidence
    from backend.probe import LinearProbe
    from backend.sampling import score_quantiles

    findings = [f for f in config.findings if f in probes]
    if not findings or (config.mode != MULTILABEL and len(findings) != len(config.findings)):
        return []
    every = np.vstack([X, pool]) if len(pool) else X
    p = {f: LinearProbe.from_dict(probes[f]).predict_proba(every) for f in findings}
    return score_quantiles([confidence(config, {f: p[f][i] for f in findings}) for i in range(len(every))])


def _fingerprint(labels: dict[int, list[str]], findings) -> str:
    """Hash of the training labels: the same labels and findings keep the same model version."""
    payload = json.dumps([sorted((int(t), sorted(c)) for t, c in labels.items()), list(findings)])
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _plot(fc) -> bytes | None:
    """The learning-curve PNG of a forecast, None when there is no curve or plotting fails."""
    if fc.curve is None:
        return None
    try:
        from backend.plotting import plot_forecast

        buffer = io.BytesIO()
        plot_forecast(fc, buffer)
        return buffer.getvalue()
    except Exception:  # the plot is a convenience; never lose a refit over it
        log.exception("plotting the forecast failed")
        return None
