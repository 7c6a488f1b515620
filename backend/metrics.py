"""ROC-AUC and its confidence interval (DeLong), in plain numpy/scipy."""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm, rankdata

__all__ = ["roc_auc", "auc_interval"]


def roc_auc(y: np.ndarray, scores: np.ndarray, sample_weight: np.ndarray | None = None) -> float:
    """ROC-AUC of ``scores`` for binary labels ``y`` (ties count one half).

    Parameters
    ----------
    y : ndarray of shape (n,)
        0/1 labels; both classes present.
    scores : ndarray of shape (n,)
    sample_weight : ndarray of shape (n,), optional
        Non-negative weight of each row: every positive-negative pair counts with the product
        of its weights (an importance-weighted AUC). None: every row counts once.
    """
    y = np.asarray(y).astype(bool)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"AUC needs both classes, got {n_pos} positive and {n_neg} negative")
    if sample_weight is not None:
        return _weighted_auc(y, np.asarray(scores, dtype=np.float64), np.asarray(sample_weight, dtype=np.float64))
    ranks = rankdata(scores)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _weighted_auc(y: np.ndarray, scores: np.ndarray, w: np.ndarray) -> float:
    if w.shape != y.shape or not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError(f"sample_weight must be {len(y)} finite non-negative numbers")
    num, den = pair_sums(scores, y.astype(np.float64), w)
    if den <= 0:
        raise ValueError("sample_weight gives one class no weight")
    return float(min(1.0, max(0.0, num / den)))


def pair_sums(scores: np.ndarray, p: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """Numerator and denominator of a weighted AUC with soft labels: pair ``(i, j)``, ``i != j``,
    counts ``w_i p_i w_j (1 - p_j)``, half when the scores tie.

    Parameters
    ----------
    scores, p, w : ndarray of shape (n,)
        Scores, probabilities of being positive (0/1 for known labels), row weights.
    """
    wp, wn = w * p, w * (1.0 - p)
    values, group = np.unique(scores, return_inverse=True)
    pos = np.bincount(group, weights=wp, minlength=len(values))
    neg = np.bincount(group, weights=wn, minlength=len(values))
    below = np.cumsum(neg) - neg
    self_pairs = float(np.sum(wp * wn))  # 0 with hard labels
    num = float(np.sum(pos * (below + 0.5 * neg))) - 0.5 * self_pairs
    den = float(pos.sum() * neg.sum()) - self_pairs
    return num, den


def auc_interval(y: np.ndarray, scores: np.ndarray, level: float = 0.9) -> tuple[float, float, float]:
    """AUC with DeLong's confidence interval, clipped to [0, 1].

    Returns
    -------
    (auc, low, high) : tuple of float
    """
    y = np.asarray(y).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    auc = roc_auc(y, scores)
    pos, neg = scores[y], scores[~y]
    m, n = len(pos), len(neg)
    # Structural components (DeLong 1988) via mid-ranks (Sun & Xu 2014).
    all_ranks = rankdata(np.concatenate([pos, neg]))
    v10 = (all_ranks[:m] - rankdata(pos)) / n
    v01 = 1.0 - (all_ranks[m:] - rankdata(neg)) / m
    var = (np.var(v10, ddof=1) / m if m > 1 else 0.25) + (np.var(v01, ddof=1) / n if n > 1 else 0.25)
    half = norm.ppf(0.5 + level / 2.0) * math.sqrt(max(var, 0.0))
    return auc, max(0.0, auc - half), min(1.0, auc + half)
