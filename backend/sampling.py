"""Which order the prediction score steers annotators to, and what that order's labels weigh.

Label Studio's Data Manager sorts tasks by prediction ``score``; LabelCast writes that score so
that sorting it ascending gives the project's ``sampling`` order:

``uncertainty``
    The probe's confidence (lowest = least sure first). Best for the probe, worst for the
    forecast: the labels are the hardest images, not a random sample.
``random``
    A stable pseudo-random number per task (a hash of the project and task id): the same
    order on every /predict, independent of the image.
``mixed`` (default)
    First a *random start*: until the project has ``random_start`` labels (setting
    ``random_start``, default :data:`backend.settings.DEFAULT_RANDOM_START`) every task's score
    is its ``random`` one (scaled into the confidences' range), so the first labels are a
    random sample of the project and the forecast made from them needs no correction (round 11
    of the forecast work, README). Then as
    ``uncertainty``, except that a known share ``AUDIT_SHARE`` of the project's tasks, picked
    by a hash of the task id, are *audit* tasks whose score is a stable pseudo-random draw from
    the distribution of the probe's confidences over the project's tasks (its quantiles are
    saved with the probe at each refit; :func:`score_quantiles`). So audit tasks are spread
    evenly through the least-sure-first list: about ``AUDIT_SHARE`` of any first ``k`` tasks. Whether a task is
    an audit task depends only on its id, never on its image, so the labeled audit tasks are a
    random sample of the project: :func:`selection_probabilities` gives the refit their
    selection probability (labels drawn at random, the random start's and the audits, / tasks in
    the project; 1 for a task chosen as least sure, which stands only for itself), and the
    forecast weights by its inverse. The random start's labels are the project's first
    ``random_start`` in annotation order (the order the store reads them in): labels made before
    LabelCast was connected, or before a project switched to ``mixed`` or raised its
    ``random_start``, count as random too, so change these settings before labeling starts.
    Until the project has a probe (2 labels of each class) the random order goes on; those
    extra random labels count as least sure (probability 1: they stand only for themselves).

Pure numpy; the web process calls :func:`prediction_scores` on every /predict.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from backend.settings import SAMPLING_MODES

__all__ = [
    "SAMPLING_MODES",
    "AUDIT_SHARE",
    "task_uniform",
    "audit_mask",
    "prediction_scores",
    "selection_probabilities",
    "score_quantiles",
    "unsteered_labels",
]


AUDIT_SHARE = 0.2
"""Share of a project's tasks that are audit tasks under ``sampling=mixed``."""

N_QUANTILES = 101
"""Quantiles of the confidences saved with the probe (every percent)."""

_SALT_RANK = np.uint64(0x9E3779B97F4A7C15)
_SALT_AUDIT = np.uint64(0xD1B54A32D192ED03)


def task_uniform(project_id: int, task_ids: Iterable[int], salt: np.uint64 = _SALT_RANK) -> np.ndarray:
    """A stable number in [0, 1) per task (splitmix64 of project, task id and ``salt``).

    Returns
    -------
    ndarray of shape (n_tasks,)
    """
    ids = np.fromiter((int(t) for t in task_ids), dtype=np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        z = ids * np.uint64(0x100000001B3) + np.uint64(int(project_id) & 0xFFFFFFFF) * salt + salt
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def audit_mask(project_id: int, task_ids: Iterable[int], share: float = AUDIT_SHARE) -> np.ndarray:
    """Whether each task is an audit task of ``sampling=mixed`` (shape (n_tasks,), bool)."""
    return task_uniform(project_id, task_ids, _SALT_AUDIT) < share


def prediction_scores(
    mode: str,
    project_id: int,
    confidence: Mapping[int, float],
    task_ids: list[int],
    low: float = 0.5,
    quantiles: list[float] | None = None,
    *,
    n_labels: int = 0,
    random_start: int = 0,
    has_probe: bool = True,
) -> dict[int, float]:
    """The ``score`` to write for each task so that sorting ascending gives ``mode``'s order.

    Parameters
    ----------
    mode : str
        One of ``SAMPLING_MODES``.
    confidence : mapping of task id to float
        The probe's confidence in its choice for tasks it scored (absent: no probe or no
        embedding yet).
    task_ids : list of int
        Every task of the request.
    low : float
        Lowest possible confidence (0.5 for binary and multi-label, 1/k for k classes).
    quantiles : list of float, optional
        :func:`score_quantiles` of the project's confidences; without them audit scores are
        uniform between ``low`` and 1.
    n_labels, random_start : int
        Labels the project has, and how many ``mixed`` takes in random order first: while
        ``n_labels < random_start`` every task gets its ``random`` score scaled into
        ``[low, 1)`` (the same order, in the range of the confidences).
    has_probe : bool
        Whether the project has a probe yet; ``mixed`` keeps the random order until it has one
        (a class with fewer than 2 labels after the random start), never import order.

    Returns
    -------
    dict of task id to float
        Tasks absent get no score: under ``uncertainty`` and ``mixed``, those the probe has not
        scored (no probe or no embedding yet: there is no least-sure-first order to mix into).
    """
    if mode not in SAMPLING_MODES:
        raise ValueError(f"sampling must be one of {', '.join(SAMPLING_MODES)}, got {mode!r}")
    if mode == "uncertainty":
        return dict(confidence)
    rank = task_uniform(project_id, task_ids)
    if mode == "random":
        return dict(zip(task_ids, rank.tolist()))
    if int(n_labels) < int(random_start) or not has_probe:  # mixed's random start, in the confidences' range
        return dict(zip(task_ids, (low + (1.0 - low) * rank).tolist()))
    out = dict(confidence)
    audit = audit_mask(project_id, task_ids)
    if quantiles is not None and len(quantiles) >= 2:
        q = np.asarray(quantiles, dtype=np.float64)
        drawn = np.interp(rank, np.linspace(0.0, 1.0, len(q)), q)
    else:
        drawn = low + (1.0 - low) * rank
    for i in np.flatnonzero(audit).tolist():
        if task_ids[i] in out:
            out[task_ids[i]] = float(drawn[i])
    return out


def score_quantiles(confidences: Sequence[float] | np.ndarray) -> list[float]:
    """``N_QUANTILES`` evenly spaced quantiles of the probe's confidences over the project."""
    confidences = np.asarray(confidences, dtype=np.float64)
    if confidences.size == 0:
        return []
    return np.quantile(confidences, np.linspace(0.0, 1.0, N_QUANTILES)).round(6).tolist()


def selection_probabilities(
    project_id: int, labeled_task_ids: list[int], n_tasks: int, random_start: int = 0
) -> np.ndarray:
    """Selection probability of each labeled task under ``sampling=mixed``.

    The labels drawn at random (the first ``random_start`` of ``labeled_task_ids``, in
    annotation order, and the audit tasks) are each labeled with probability ``their number /
    n_tasks`` (a random sample of the project); a task chosen as least sure gets 1.

    Returns
    -------
    ndarray of shape (n_labeled,)
    """
    at_random = audit_mask(project_id, labeled_task_ids)
    at_random[: max(int(random_start), 0)] = True
    n_tasks = max(int(n_tasks), len(labeled_task_ids), 1)
    prob = np.ones(len(labeled_task_ids))
    if at_random.any():
        prob[at_random] = at_random.sum() / n_tasks
    return prob


def unsteered_labels(order: str, n_labels: int, random_start: int = 0, uncertainty_start: int = 0) -> int:
    """How many labels at the start of the annotation order no label can have steered: the rows
    the cautious curve may cross-fit among themselves (:func:`backend.pool_auc.prequential_logits`).

    All of them under ``random`` (a stable order fixed by task ids); the random start under
    ``mixed`` (``random_start``); ``uncertainty_start`` under ``uncertainty`` (0 in the service,
    which steers from the first probe on; the replays of :mod:`backend.simulate` draw a random
    start); none for any other order (a file's order may have been steered by anything).
    """
    start = {"random": n_labels, "mixed": random_start, "uncertainty": uncertainty_start}.get(order, 0)
    return min(max(int(start), 0), int(n_labels))
