"""The AUC on the whole project, with calibrated probabilities standing in for unknown labels.

When the labels are not a random sample of the project (uncertainty sampling, import order) an
AUC measured on the labeled rows describes rows like them, not the project. Under covariate
shift ``P(y | x)`` is the same for labeled and unlabeled rows, so a probe *calibrated* on the
labeled rows gives each unlabeled (pool) row a probability ``p`` of being positive. The expected
AUC of a scorer ``s`` over the project is then

    sum_{i != j} p_i (1 - p_j) 1[s_i > s_j]  /  sum_{i != j} p_i (1 - p_j)

over the project's rows, with ``p = y`` (0 or 1) for the labeled ones (ties count one half).
It is unbiased when ``p`` is the true ``P(y = 1 | x)``; for the probe whose calibration it is,
calibration (``P(y = 1 | p) = p``) is enough.

:func:`calibrate_pool` fits that calibration: cross-fitted probes give every labeled row an
out-of-fold logit, a logistic regression of the labels on those logits (Platt scaling) maps
logits to probabilities, and the pool rows get the mapped mean logit of the fold probes.
:func:`project_auc` is the estimate above for one scorer.

Pure numpy/scipy/scikit-learn; used by :mod:`backend.learning_curve` and :mod:`backend.forecast`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from backend.blas import one_blas_thread
from backend.metrics import pair_sums
from backend.probe import check_embeddings, fit_probe

__all__ = ["PoolLabels", "calibrate_pool", "project_auc", "soft_auc"]

N_FOLDS = 5
"""Folds of the cross-fitting that gives the labeled rows out-of-fold logits for calibration."""

PLATT_C = 100.0
"""Inverse L2 strength of the Platt scaling (two parameters: barely regularised)."""


@dataclass(frozen=True, eq=False)
class PoolLabels:
    """Unlabeled rows with calibrated probabilities of being positive.

    Attributes
    ----------
    X : ndarray of shape (n_pool, n_features)
        Embeddings of the pool rows (a random sample of the project's unlabeled rows).
    p : ndarray of shape (n_pool,)
        Calibrated ``P(y = 1 | x)`` of each pool row.
    weight : float
        Unlabeled tasks each pool row stands for (``pool_size / n_pool``, at least 1).
    labeled_p : ndarray of shape (n_labeled,)
        Calibrated out-of-fold probability of each labeled row.
    slope, intercept : float
        The Platt map ``p = 1 / (1 + exp(-(slope * logit + intercept)))``.
    """

    X: np.ndarray
    p: np.ndarray
    weight: float
    labeled_p: np.ndarray
    slope: float
    intercept: float


def calibrate_pool(
    X: Any, y: Any, pool: Any, seed: int = 0, *, pool_size: int | None = None, C: float | None = None
) -> PoolLabels:
    """Calibrate the probe on the labeled rows and give every pool row its probability.

    Parameters
    ----------
    X : array-like of shape (n_labeled, n_features)
    y : array-like of shape (n_labeled,)
        0/1 labels, at least 2 of each class.
    pool : array-like of shape (n_pool, n_features)
        Embeddings of unlabeled rows.
    seed : int
        Seed of the fold split.
    pool_size : int, optional
        Unlabeled tasks the project has when ``pool`` is a random sample of them.
    C : float, optional
        The probe's regularisation (default :func:`backend.probe.default_C`).

    Returns
    -------
    PoolLabels
    """
    from sklearn.linear_model import LogisticRegression

    X, y = check_embeddings(X, y)
    pool, _ = check_embeddings(pool)
    if pool.shape[1] != X.shape[1]:
        raise ValueError(f"pool has {pool.shape[1]} features, the labeled rows have {X.shape[1]}")
    if len(pool) == 0:
        raise ValueError("pool is empty: there are no unlabeled rows to calibrate")
    n_pos = int(y.sum())
    k = min(N_FOLDS, n_pos, len(y) - n_pos)
    if k < 2:
        raise ValueError(f"calibration needs 2 labels of each class, got {n_pos} positive of {len(y)}")
    if pool_size is not None and int(pool_size) < len(pool):
        raise ValueError(f"pool_size must be at least the {len(pool)} pool rows given, got {pool_size}")
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), dtype=np.int64)
    for cls in (0, 1):
        idx = rng.permutation(np.flatnonzero(y == cls))
        fold[idx] = np.arange(len(idx)) % k
    oof = np.empty(len(y))
    pool_logit = np.zeros(len(pool))
    with one_blas_thread():  # small problems: threads only contend
        for f in range(k):
            train = fold != f
            probe = fit_probe(X[train], y[train], C=C, seed=seed, check=False)
            oof[~train] = probe.decision_function(X[~train], check=False)
            pool_logit += probe.decision_function(pool, check=False) / k
    platt = LogisticRegression(C=PLATT_C, max_iter=1000).fit(oof[:, None], y)
    slope, intercept = float(platt.coef_[0, 0]), float(platt.intercept_[0])
    return PoolLabels(
        X=pool,
        p=_sigmoid(slope * pool_logit + intercept),
        weight=max(1.0, (len(pool) if pool_size is None else int(pool_size)) / len(pool)),
        labeled_p=_sigmoid(slope * oof + intercept),
        slope=slope,
        intercept=intercept,
    )


def project_auc(
    y: np.ndarray,
    scores: np.ndarray,
    pool_scores: np.ndarray,
    pool: PoolLabels,
    *,
    labeled_weight: float = 1.0,
) -> float:
    """Estimated AUC of a scorer over the whole project: labeled rows with their labels, pool
    rows with their calibrated probabilities.

    Parameters
    ----------
    y : ndarray of shape (n,)
        Labels of the labeled rows scored (held out from the scorer's training).
    scores : ndarray of shape (n,)
        The scorer's scores of those rows.
    pool_scores : ndarray of shape (n_pool,)
        The scorer's scores of ``pool.X``.
    pool : PoolLabels
    labeled_weight : float
        Labeled rows each scored row stands for (all labeled / scored, when the scorer's own
        training rows are left out).

    Returns
    -------
    float
    """
    y = np.asarray(y, dtype=np.float64)
    s = np.concatenate([np.asarray(scores, dtype=np.float64), np.asarray(pool_scores, dtype=np.float64)])
    w = np.concatenate([np.full(len(y), float(labeled_weight)), np.full(len(pool.p), pool.weight)])
    return soft_auc(s, w=w, p=np.concatenate([y, pool.p]))


def soft_auc(scores: np.ndarray, p: np.ndarray, w: np.ndarray | None = None) -> float:
    """AUC with soft labels: pair ``(i, j)``, ``i != j``, counts ``w_i p_i w_j (1 - p_j)``.

    Parameters
    ----------
    scores, p : ndarray of shape (n,)
        Scores, and probabilities in [0, 1] of being positive (0/1 for known labels).
    w : ndarray of shape (n,), optional
        Non-negative row weights (default 1).
    """
    s, p = np.asarray(scores, float), np.asarray(p, float)
    w = np.ones(len(s)) if w is None else np.asarray(w, float)
    if not (s.shape == p.shape == w.shape) or np.any(p < 0) or np.any(p > 1) or np.any(w < 0):
        raise ValueError("scores, p (in [0, 1]) and weights (>= 0) must be arrays of one length")
    num, den = pair_sums(s, p, w)
    if den <= 0:
        raise ValueError("soft_auc needs some weight on both classes")
    return float(min(1.0, max(0.0, num / den)))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))
