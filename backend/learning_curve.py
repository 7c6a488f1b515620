"""Build the empirical learning curve from the labels collected so far.

How the points are made (``empirical_learning_curve``), for ``n`` labels of which a share ``p``
is in the rarer class:

1. **Cross-validation at (nearly) full size.** Stratified ``k``-fold cross-validation
   (``k = 5``, fewer when a class has fewer than 5 labels), repeated ``cv_repeats`` times with
   different shuffles. Each fold trains a probe on ``n - n/k`` labels and scores ROC-AUC on the
   held-out fold: one point per fold at size ``n - ceil(n/k)``. The *current AUC* is the AUC of
   the pooled out-of-fold scores, averaged over the repetitions; its confidence interval is
   DeLong's, from the first repetition's pooled scores.
2. **Random subsets at smaller sizes.** A geometric grid of ``n_sizes - 1`` sizes from the
   smallest size ``m_min`` that holds ``min_per_class`` labels of each class
   (``m_min = max(2 * min_per_class, ceil(min_per_class / p))``) up to, not including, the
   cross-validation size. At each size, ``n_repeats`` random stratified subsets (class shares
   as in all labels); each trains a probe and is scored by ROC-AUC on *every labeled row outside
   the subset* (out-of-sample, cross-fitting).
3. **Large pools.** Above ``LARGE_SIZE = 2000`` labels the cross-validation runs once and
   subsets larger than 2,000 get half the repeats: their AUCs vary little.

Every point is therefore an out-of-sample AUC of a probe trained on exactly that many labels.

4. **Weights** (``weights``, from :mod:`backend.selection_bias`). When the labels are not a
   random sample of the project, each held-out AUC is importance-weighted: a pair of held-out
   rows counts with the product of their weights, so the point estimates the AUC on the whole
   project rather than on rows like the labeled ones. The current AUC's interval is then the
   DeLong interval moved to the weighted AUC and widened by ``sqrt(n / effective n)``.
5. **The pool** (``pool``, from :mod:`backend.pool_auc`). Instead of weights: unlabeled rows with
   calibrated probabilities of being positive. Each point is then the probe's estimated AUC on
   the whole project: its held-out labeled rows (standing for every labeled row) with their
   labels and the pool rows with their probabilities. The current AUC is that estimate for the
   out-of-fold scores of the labeled rows and the fold probes' mean score of the pool rows; its
   interval is the DeLong interval moved to it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from backend.blas import one_blas_thread
from backend.metrics import auc_interval, roc_auc
from backend.pool_auc import PoolLabels, project_auc
from backend import readiness as _readiness
from backend.probe import check_embeddings, default_C, fit_probe, stratified_fold_ids

__all__ = [
    "EmpiricalCurve",
    "CrossValidatedAUC",
    "empirical_learning_curve",
    "empirical_learning_curves",
    "cross_validated_auc",
    "minimum_labels",
    "MIN_CLASS_LABELS",
]

# Defaults, each documented in the module docstring.
N_SIZES = 6  # distinct training sizes, the cross-validation size included
N_REPEATS = 8  # random subsets per smaller size
N_FOLDS = 5  # cross-validation folds at full size
CV_REPEATS = 2  # repetitions of the cross-validation
MIN_PER_CLASS = 3  # labels of each class in the smallest subset
# Labels of each class before a forecast is made: backend.readiness, where the rule lives.
MIN_CLASS_LABELS = _readiness.MIN_CLASS_LABELS
LARGE_SIZE = 2000  # above this many labels: one cross-validation, half the subset repeats


@dataclass(frozen=True, eq=False)
class EmpiricalCurve:
    """Out-of-sample AUC points of probes trained on subsets of the labels.

    Attributes
    ----------
    sizes : ndarray of shape (n_points,)
        Training size of each point (repeats share a size).
    scores : ndarray of shape (n_points,)
        Out-of-sample ROC-AUC of each point.
    cv_size : int
        Training size of the cross-validation folds (the largest size).
    auc, auc_low, auc_high : float
        Cross-validated AUC of the probe at ``cv_size`` and its DeLong interval.
    level : float
        Confidence level of that interval.
    n_labels, n_positive : int
    """

    sizes: np.ndarray
    scores: np.ndarray
    cv_size: int
    auc: float
    auc_low: float
    auc_high: float
    level: float
    n_labels: int
    n_positive: int

    @property
    def n_distinct_sizes(self) -> int:
        return int(len(np.unique(self.sizes)))


def minimum_labels(n_positive: int, n_negative: int, per_class: int = MIN_CLASS_LABELS) -> tuple[int, int]:
    """Labels of each class needed before a forecast is made.

    Parameters
    ----------
    per_class : int
        Labels required of each class (>= 4: the smallest subset holds ``MIN_PER_CLASS`` of
        each class and one more must stay outside it to score it).

    Returns
    -------
    (positives_needed, negatives_needed) : tuple of int
        How many *more* positive and negative labels are needed (0 when enough).
    """
    if isinstance(per_class, bool) or not isinstance(per_class, (int, np.integer)) or per_class < MIN_PER_CLASS + 1:
        raise ValueError(f"per_class must be an integer >= {MIN_PER_CLASS + 1}, got {per_class!r}")
    return max(0, per_class - n_positive), max(0, per_class - n_negative)


def empirical_learning_curve(
    X: Any,
    y: Any,
    seed: int = 0,
    *,
    n_sizes: int = N_SIZES,
    n_repeats: int = N_REPEATS,
    n_folds: int = N_FOLDS,
    cv_repeats: int = CV_REPEATS,
    min_per_class: int = MIN_PER_CLASS,
    C: float | None = None,
    level: float = 0.9,
    weights: Any | None = None,
    pool: PoolLabels | None = None,
) -> EmpiricalCurve:
    """Build the empirical learning curve of a linear probe on ``(X, y)``.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Embeddings.
    y : array-like of shape (n_samples,)
        0/1 labels.
    seed : int
        Seed for subsets and fold shuffles; same seed, same points.
    C : float, optional
        Probe regularisation (default :func:`backend.probe.default_C`).
    weights : array-like of shape (n_samples,), optional
        Importance weight of each row in every held-out AUC (see the module docstring); not
        with ``pool``.
    pool : PoolLabels, optional
        Unlabeled rows with calibrated probabilities: every held-out AUC becomes the estimated
        AUC on the whole project (see the module docstring).

    Returns
    -------
    EmpiricalCurve

    Raises
    ------
    ValueError
        When a class has ``min_per_class`` labels or fewer (the curve may still have fewer
        than 3 distinct sizes when one class is very rare; check ``n_distinct_sizes``).
    """
    if weights is not None and pool is not None:
        raise ValueError("give weights or pool, not both: they are two corrections of the same AUCs")
    return empirical_learning_curves(
        X,
        y,
        seed,
        views=[(weights, pool)],
        n_sizes=n_sizes,
        n_repeats=n_repeats,
        n_folds=n_folds,
        cv_repeats=cv_repeats,
        min_per_class=min_per_class,
        C=C,
        level=level,
    )[0]


def empirical_learning_curves(
    X: Any,
    y: Any,
    seed: int = 0,
    *,
    views: Sequence[tuple[Any | None, PoolLabels | None]],
    n_sizes: int = N_SIZES,
    n_repeats: int = N_REPEATS,
    n_folds: int = N_FOLDS,
    cv_repeats: int = CV_REPEATS,
    min_per_class: int = MIN_PER_CLASS,
    C: float | None = None,
    level: float = 0.9,
) -> list[EmpiricalCurve]:
    """Several learning curves from the same probes, each scored its own way.

    Every probe is fitted once and scored for each ``(weights, pool)`` pair of ``views``
    (``(None, None)``: plain held-out AUCs; one of the two: as in
    :func:`empirical_learning_curve`), so a raw and a corrected curve cost one curve's fits.
    Each curve is the one :func:`empirical_learning_curve` gives with those arguments.

    Returns
    -------
    list of EmpiricalCurve
        One per view, in order.
    """
    X, y = check_embeddings(X, y)
    n = len(y)
    n_pos = int(y.sum())
    need_pos, need_neg = minimum_labels(n_pos, n - n_pos, min_per_class + 1)
    if need_pos or need_neg:
        raise ValueError(
            f"too few labels for a learning curve: {n_pos} positive and {n - n_pos} negative; "
            f"need {need_pos} more positive and {need_neg} more negative"
        )
    C = default_C(X.shape[1]) if C is None else C
    checked = [(_check_weights(w, n), pool) for w, pool in views]
    if not checked or any(w is not None and pool is not None for w, pool in checked):
        raise ValueError("views must be (weights, pool) pairs with at most one of the two given")
    rng = np.random.default_rng(seed)
    with one_blas_thread():
        return _build_curves(X, y, seed, rng, n_sizes, n_repeats, n_folds, cv_repeats, min_per_class, C, level, checked)


def _check_weights(weights: Any | None, n: int) -> np.ndarray | None:
    if weights is None:
        return None
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n,) or not np.all(np.isfinite(w)) or np.any(w <= 0):
        raise ValueError(f"weights must be {n} finite positive numbers, one per row")
    return w


def _build_curves(X, y, seed, rng, n_sizes, n_repeats, n_folds, cv_repeats, min_per_class, C, level, views):
    # One BLAS thread: the matrices are small and many, and threads only contend with each
    # other and with the web process on a shared machine.
    n = len(y)
    n_pos = int(y.sum())
    # Large pools vary little between shuffles: one cross-validation and half the subsets
    # at sizes above LARGE_SIZE keep a refit at 10,000 labels within seconds.
    cv_repeats = cv_repeats if n <= LARGE_SIZE else 1
    k = int(min(n_folds, n_pos, n - n_pos))
    cvs = _cross_validate(X, y, seed, k, cv_repeats, C, level, rng, views)
    cv_size = cvs[0].train_size
    sizes: list[float] = list(cvs[0].fold_sizes)
    scores: list[list[float]] = [list(cv.fold_scores) for cv in cvs]
    for m in _subset_sizes(n, n_pos, cv_size, n_sizes, min_per_class):
        for _ in range(n_repeats if m <= LARGE_SIZE else max(3, n_repeats // 2)):
            train = _stratified_subset(y, m, min_per_class, rng)
            rest = np.ones(n, dtype=bool)
            rest[train] = False
            rows = np.flatnonzero(rest)
            probe = fit_probe(X[train], y[train], C=C, seed=seed, check=False)
            sizes.append(m)
            held_out = probe.decision_function(X[rows], check=False)
            pools = _pool_scores(probe, views)
            for view_scores, (weights, pool), pool_scores in zip(scores, views, pools):
                view_scores.append(_held_out_auc(y, rows, held_out, weights, pool, pool_scores))
    sizes_arr = np.asarray(sizes, dtype=np.float64)
    return [
        EmpiricalCurve(
            sizes=sizes_arr,
            scores=np.asarray(view_scores),
            cv_size=int(cv_size),
            auc=cv.auc,
            auc_low=cv.low,
            auc_high=cv.high,
            level=level,
            n_labels=n,
            n_positive=n_pos,
        )
        for view_scores, cv in zip(scores, cvs)
    ]


@dataclass(frozen=True, eq=False)
class CrossValidatedAUC:
    """Repeated stratified k-fold cross-validation of the probe.

    Attributes
    ----------
    auc, low, high : float
        Mean over repetitions of the pooled out-of-fold AUC, and the DeLong interval of the
        first repetition's pooled out-of-fold scores.
    train_size : int
        Training size of the smallest fold.
    fold_sizes, fold_scores : ndarray of shape (n_folds * repeats,)
        Training size and held-out AUC of every fold.
    """

    auc: float
    low: float
    high: float
    train_size: int
    fold_sizes: np.ndarray
    fold_scores: np.ndarray


def cross_validated_auc(
    X: Any,
    y: Any,
    seed: int = 0,
    *,
    n_folds: int = N_FOLDS,
    repeats: int = CV_REPEATS,
    C: float | None = None,
    level: float = 0.9,
    rng: np.random.Generator | None = None,
    weights: Any | None = None,
    pool: PoolLabels | None = None,
) -> CrossValidatedAUC:
    """Repeated stratified ``n_folds``-fold cross-validated AUC of the probe on ``(X, y)``.

    Uses fewer folds when a class has fewer than ``n_folds`` labels (at least 2 of each
    class are required). With ``weights`` (shape (n_samples,)) every AUC is
    importance-weighted and the interval is moved and widened (see the module docstring).
    """
    X, y = check_embeddings(X, y)
    n = len(y)
    n_pos = int(y.sum())
    k = int(min(n_folds, n_pos, n - n_pos))
    if k < 2:
        raise ValueError(f"cross-validation needs 2 labels of each class, got {n_pos} positive of {n}")
    C = default_C(X.shape[1]) if C is None else C
    rng = np.random.default_rng(seed) if rng is None else rng
    weights = _check_weights(weights, n)
    if weights is not None and pool is not None:
        raise ValueError("give weights or pool, not both: they are two corrections of the same AUCs")
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    return _cross_validate(X, y, seed, k, repeats, C, level, rng, [(weights, pool)])[0]


def _cross_validate(X, y, seed, k, repeats, C, level, rng, views) -> list[CrossValidatedAUC]:
    """:func:`cross_validated_auc` for each ``(weights, pool)`` view, from the same probes."""
    n = len(y)
    fold_sizes: list[int] = []
    fold_scores: list[list[float]] = [[] for _ in views]
    pooled: list[list[float]] = [[] for _ in views]
    intervals: list[tuple[float, float, float]] = []
    for _ in range(repeats):
        oof = np.empty(n)
        pool_scores = [np.zeros(0 if pool is None else len(pool.p)) for _, pool in views]
        for train, test in _stratified_folds(y, k, rng):
            probe = fit_probe(X[train], y[train], C=C, seed=seed, check=False)
            oof[test] = probe.decision_function(X[test], check=False)
            fold_sizes.append(len(train))
            for v, ((weights, pool), scored) in enumerate(zip(views, _pool_scores(probe, views))):
                fold_scores[v].append(_held_out_auc(y, test, oof[test], weights, pool, scored))
                if pool is not None:
                    pool_scores[v] += scored / k
        for v, (weights, pool) in enumerate(views):
            if pool is None:
                pooled[v].append(roc_auc(y, oof, weights))
            else:  # the labeled rows' out-of-fold scores and the fold probes' mean pool score
                pooled[v].append(project_auc(y, oof, pool_scores[v], pool))
        if not intervals:
            plain = auc_interval(y, oof, level)
            for v, (weights, pool) in enumerate(views):
                if weights is None and pool is None:
                    intervals.append(plain)
                else:  # moved to the corrected AUC (and widened by the weights)
                    intervals.append(
                        _weighted_interval(plain, pooled[v][-1], np.ones(n) if weights is None else weights)
                    )
    return [
        CrossValidatedAUC(
            auc=float(np.mean(pooled[v])),
            low=intervals[v][1],
            high=intervals[v][2],
            train_size=int(min(fold_sizes)),
            # Folds differ by a row or two; every fold point sits at the smallest training size.
            fold_sizes=np.full(len(fold_sizes), float(min(fold_sizes))),
            fold_scores=np.asarray(fold_scores[v]),
        )
        for v in range(len(views))
    ]


def _held_out_auc(y, rows, scores, weights, pool, pool_scores) -> float:
    """AUC of a probe's ``scores`` of the labeled ``rows`` (not its training rows): importance-
    weighted with ``weights``, on the whole project with ``pool`` (its rows scored
    ``pool_scores``)."""
    if pool is None:
        return roc_auc(y[rows], scores, None if weights is None else weights[rows])
    # the held-out rows stand for every labeled row
    return project_auc(y[rows], scores, pool_scores, pool, labeled_weight=len(y) / len(rows))


def _pool_scores(probe, views) -> list[np.ndarray | None]:
    """The probe's scores of each view's pool rows (``None`` without a pool), each distinct set of
    rows scored once (the model-based, optimistic and cautious views share theirs)."""
    scored: dict[int, np.ndarray] = {}
    out: list[np.ndarray | None] = []
    for _, pool in views:
        if pool is not None and id(pool.X) not in scored:
            scored[id(pool.X)] = probe.decision_function(pool.X, check=False)
        out.append(None if pool is None else scored[id(pool.X)])
    return out


def _weighted_interval(interval, weighted_auc: float, weights: np.ndarray) -> tuple[float, float, float]:
    """DeLong's interval moved to the weighted AUC, widened by sqrt(n / Kish's effective n)."""
    auc, low, high = interval
    widen = math.sqrt(len(weights) * float(np.sum(weights**2)) / float(weights.sum()) ** 2)
    return (
        weighted_auc,
        max(0.0, weighted_auc - (auc - low) * widen),
        min(1.0, weighted_auc + (high - auc) * widen),
    )


def _subset_sizes(n: int, n_pos: int, cv_size: int, n_sizes: int, min_per_class: int) -> list[int]:
    minority = min(n_pos, n - n_pos) / n
    m_min = max(2 * min_per_class, math.ceil(min_per_class / minority))
    if m_min >= cv_size:
        return []
    grid = np.geomspace(m_min, cv_size, max(n_sizes, 2))[:-1]
    return sorted({int(round(m)) for m in grid if round(m) < cv_size})


def _stratified_subset(y: np.ndarray, m: int, min_per_class: int, rng: np.random.Generator) -> np.ndarray:
    pos = np.flatnonzero(y == 1)
    neg = np.flatnonzero(y == 0)
    k_pos = int(round(m * len(pos) / len(y)))
    # Keep min_per_class of each class in the subset and at least one outside it.
    k_pos = min(max(k_pos, min_per_class), m - min_per_class, len(pos) - 1)
    k_neg = min(m - k_pos, len(neg) - 1)
    return np.concatenate([rng.choice(pos, k_pos, replace=False), rng.choice(neg, k_neg, replace=False)])


def _stratified_folds(y: np.ndarray, k: int, rng: np.random.Generator):
    """Yield (train, test) index arrays of a shuffled stratified k-fold split."""
    fold_of = stratified_fold_ids(y, k, rng)
    for f in range(k):
        test = np.flatnonzero(fold_of == f)
        yield np.flatnonzero(fold_of != f), test
