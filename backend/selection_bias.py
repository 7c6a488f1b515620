"""How unlike the project's images are the labeled ones? Detection and importance weights.

The learning curve assumes the labels are a random sample of the project's images. When the
annotators followed uncertainty sampling, or Label Studio's import order, they are not: the
labeled rows over-represent some kinds of image, and an AUC measured on them says little about
the probe on the whole project. Given the embeddings of the *unlabeled* tasks too (the pool),
:func:`estimate_selection_bias` measures the difference and returns a weight per labeled row,
so that weighted AUCs estimate AUCs on the whole project (labeled and unlabeled together):

**Estimated propensities (covariate shift).** A classifier learns to tell labeled rows from
pool rows; its cross-fitted probability ``e(x)`` that a row with embedding ``x`` is labeled is
the row's *propensity*, and ``1 / e(x)`` its weight (the density ratio of the whole project to
the labeled set, up to a constant). Its features: the first principal components of the
embeddings and the probe's margin (same-noise margins, below), with its square: uncertainty
sampling selects rows near the probe's boundary, a slab that no linear function of the
embeddings alone can tell apart.

**Known propensities.** Where LabelCast chose the order (``sampling=mixed``) the probability
with which each labeled task was chosen is known (``selection_prob``). Unequal known
probabilities count as detected. They give the weights (``1 / selection_prob``,
Horvitz-Thompson) only when there is no usable pool: measured on synthetic embeddings
(``benchmarks/sampling_bias.py``, README), the exact but few-row Horvitz-Thompson weights gave
larger forecast errors at 50 and 100 labels than the classifier's flattened weights.

**Same-noise margins.** A labeled row's margin comes from a fold probe that did not see it;
each pool row's from one fold probe drawn at random, not from the probe fitted on all labels.
So under random sampling a labeled row and a pool row have margins of the same distribution.
The full probe's margins on the pool are larger than out-of-fold ones (more labels, no held-out
noise), and on near-separable data that difference alone told random samples from the pool
(round 7: 90 % of random orders flagged on a held-out set).

**Detection.** Two z-scores against their spread when the labeled rows are a random sample;
either at ``DETECT_Z`` or above flags the labels:

* ``z``: the cross-fitted AUC of that classifier, labeled against pool (any shift the first
  components or the margin show);
* ``margin_z``: a one-sided rank test that the labeled rows lie nearer the probe's boundary
  (smaller ``|margin|``) than the pool's: the mark of uncertainty sampling, which this one
  feature shows with far more power than a classifier on eighteen (``benchmarks/sampling_bias.py
  --calibrate``, tuning sets, README).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from backend.blas import one_blas_thread
from backend.metrics import roc_auc
from backend.probe import check_embeddings, cross_fitted, stratified_fold_ids

__all__ = ["SelectionBias", "estimate_selection_bias", "DETECT_Z", "MIN_POOL"]

DETECT_Z = 2.5
"""z-score above which the labeled set counts as unlike the pool (either statistic, module
docstring). Chosen on synthetic embeddings (``benchmarks/sampling_bias.py --calibrate``) for the
classifier; kept for the margin test, whose false flags on the tuning sets stayed at or below
10 % with it."""

MIN_POOL = 20
"""Fewest unlabeled embeddings before the pool is compared with the labeled set."""

MAX_POOL = 5000
"""Pool rows the classifier sees at most (a seeded random subset of a larger pool; the weights
are rescaled to the whole pool): keeps a refit of a 100,000-task project within seconds."""

N_COMPONENTS = 16
"""Principal components of the embeddings the labeled-vs-pool classifier sees."""

N_FOLDS = 5
"""Folds of the cross-fitting (the propensities and the probe margins are out of fold)."""

WEIGHT_POWER = 0.5
"""Estimated weights are ``(1 / e(x)) ** WEIGHT_POWER``: below 1 they are flattened, trading a
little of the correction for much less noise (Shimodaira 2000). Chosen on synthetic embeddings."""

MAX_WEIGHT_RATIO = 5.0
"""Largest weight, as a multiple of the median weight: a few rows with tiny propensities
would otherwise carry the whole weighted AUC (truncated importance weights)."""


@dataclass(frozen=True, eq=False)
class SelectionBias:
    """How the labeled rows differ from the pool, and the weights that correct for it.

    Attributes
    ----------
    weights : ndarray of shape (n_labeled,)
        Weight of each labeled row (mean 1): weighted statistics of the labeled rows estimate
        those of the whole project.
    statistic : float
        Cross-fitted AUC of the labeled-vs-pool classifier (0.5: indistinguishable); nan
        without a pool.
    z : float
        ``statistic`` as a z-score against random samples (nan without a pool).
    margin_z : float
        z-score of the one-sided rank test that the labeled rows lie nearer the probe's
        boundary than the pool rows (nan without a pool).
    detected : bool
        Whether the labeled set is detectably unlike the pool.
    effective_n : float
        Kish's effective sample size of the weights (``n_labeled`` when all are equal).
    source : str
        ``"classifier"`` (estimated propensities) or ``"known"`` (``selection_prob``).
    n_pool : int
    """

    weights: np.ndarray
    statistic: float
    z: float
    margin_z: float
    detected: bool
    effective_n: float
    source: str
    n_pool: int

    def to_dict(self) -> dict:
        """JSON-safe summary (without the weights)."""

        def num(x):
            return None if not math.isfinite(x) else round(float(x), 4)

        return {
            "statistic": num(self.statistic),
            "z": num(self.z),
            "margin_z": num(self.margin_z),
            "detected": bool(self.detected),
            "effective_n": num(self.effective_n),
            "source": self.source,
            "n_pool": int(self.n_pool),
        }


def estimate_selection_bias(
    X: Any,
    y: Any,
    pool: Any | None = None,
    selection_prob: Any | None = None,
    seed: int = 0,
    *,
    detect_z: float = DETECT_Z,
    pool_size: int | None = None,
) -> SelectionBias:
    """Compare the labeled rows ``X`` with the unlabeled ``pool`` and weight the labeled rows.

    Parameters
    ----------
    X : array-like of shape (n_labeled, n_features)
        Embeddings of the labeled rows.
    y : array-like of shape (n_labeled,)
        Their 0/1 labels (the probe margin is a feature of the classifier).
    pool : array-like of shape (n_pool, n_features), optional
        Embeddings of the project's unlabeled rows; ignored below ``MIN_POOL`` rows.
    selection_prob : array-like of shape (n_labeled,), optional
        Known probability in (0, 1] with which each labeled row was chosen: unequal ones count
        as detected; without a usable pool the weights are its inverse.
    seed : int
        Seed of the fold split.
    pool_size : int, optional
        Unlabeled rows the project has when ``pool`` is a random sample of them (default
        ``len(pool)``); the weights are scaled to the whole pool.

    Returns
    -------
    SelectionBias
    """
    X, y = check_embeddings(X, y)
    n = len(y)
    if selection_prob is not None:
        prob = np.asarray(selection_prob, dtype=np.float64)
        if prob.shape != (n,) or not np.all(np.isfinite(prob)) or np.any(prob <= 0) or np.any(prob > 1):
            raise ValueError(f"selection_prob must be {n} numbers in (0, 1], one per labeled row")
    if pool is not None:
        pool, _ = check_embeddings(pool)
        if pool.shape[1] != X.shape[1]:
            raise ValueError(f"pool has {pool.shape[1]} features, the labeled rows have {X.shape[1]}")
    n_pool = 0 if pool is None else len(pool)
    if pool_size is not None and pool is not None:
        if int(pool_size) < n_pool:
            raise ValueError(f"pool_size must be at least the {n_pool} pool rows given, got {pool_size}")
        n_pool_total = int(pool_size)
    else:
        n_pool_total = n_pool
    if pool is not None and n_pool > MAX_POOL:
        pool = pool[np.random.default_rng(seed).choice(n_pool, MAX_POOL, replace=False)]
    statistic = z = margin_z = math.nan
    weights = np.ones(n)
    source = "classifier"
    if pool is not None and n_pool >= MIN_POOL and n >= 2 * N_FOLDS and min(int(y.sum()), n - int(y.sum())) >= 2:
        with one_blas_thread():
            margin = _margins(X, y, pool, seed)
            propensity = _propensities(X, pool, margin, seed)
        m = len(pool)
        is_labeled = np.r_[np.ones(n, bool), np.zeros(m, bool)]
        statistic = roc_auc(is_labeled, propensity)
        z = _rank_z(statistic, n, m)
        margin_z = _rank_z(roc_auc(is_labeled, -np.abs(margin)), n, m)
        # density ratio whole project / labeled set, up to a constant: 1 + (N_pool / m) * odds(pool)
        e = np.clip(propensity[:n], 1e-6, 1.0)
        weights = (1.0 + (n_pool_total / m) * (1.0 - e) / e) ** WEIGHT_POWER
    detected = bool(z >= detect_z or margin_z >= detect_z)
    if selection_prob is not None:
        detected = detected or bool(np.ptp(prob) > 1e-12)
    if selection_prob is not None and math.isnan(statistic):
        weights = _truncate(1.0 / prob, math.inf)
        source = "known"
    else:
        weights = _truncate(weights, MAX_WEIGHT_RATIO)
    return SelectionBias(
        weights=weights,
        statistic=float(statistic),
        z=float(z),
        margin_z=float(margin_z),
        detected=detected,
        effective_n=float(weights.sum() ** 2 / np.sum(weights**2)),
        source=source,
        n_pool=n_pool_total,
    )


def _rank_z(auc: float, n: int, m: int) -> float:
    """An AUC of ``n`` rows against ``m`` as a z-score against its spread when they are alike
    (Mann-Whitney's null variance)."""
    return (auc - 0.5) / math.sqrt((n + m + 1) / (12.0 * n * m))


def _propensities(X: np.ndarray, pool: np.ndarray, margin: np.ndarray, seed: int) -> np.ndarray:
    """Cross-fitted probability that each row (labeled first, then pool) is labeled."""
    from sklearn.linear_model import LogisticRegression

    n, n_pool = len(X), len(pool)
    features = _features(X, pool, margin, seed)
    target = np.r_[np.ones(n, int), np.zeros(n_pool, int)]
    fold = stratified_fold_ids(target, N_FOLDS, np.random.default_rng(seed))
    out = np.empty(n + n_pool)
    for f in range(N_FOLDS):
        train, test = fold != f, fold == f
        model = LogisticRegression(C=1.0, max_iter=500).fit(features[train], target[train])
        out[test] = model.predict_proba(features[test])[:, 1]
    return out


def _features(X: np.ndarray, pool: np.ndarray, margin: np.ndarray, seed: int) -> np.ndarray:
    """Principal components of all embeddings plus the probe margin and its square."""
    union = np.vstack([X, pool])
    mean, scale = union.mean(axis=0), union.std(axis=0)
    Z = (union - mean) / np.where(scale > 1e-8, scale, 1.0)
    k = min(N_COMPONENTS, Z.shape[1], len(Z) - 1)
    if k < min(Z.shape) // 2:  # the leading components only: ~10x faster than a full SVD
        from sklearn.utils.extmath import randomized_svd

        _, _, vt = randomized_svd(Z, k, random_state=seed)
    else:
        _, _, vt = np.linalg.svd(Z, full_matrices=False)
    comps = Z @ vt[:k].T
    comps /= np.maximum(comps.std(axis=0), 1e-8)
    margin = margin / max(float(np.std(margin)), 1e-8)
    return np.column_stack([comps, margin, margin**2])


def _margins(X: np.ndarray, y: np.ndarray, pool: np.ndarray, seed: int) -> np.ndarray:
    """Probe margins of the labeled rows (out of fold), then of the pool rows, each from one fold
    probe drawn at random: the same noise as the labeled rows' (module docstring)."""
    rng = np.random.default_rng(seed + 1)
    fold = stratified_fold_ids(y, N_FOLDS, rng)
    pool_fold = rng.integers(0, N_FOLDS, len(pool))
    # each class has 2 labels or more: every training set holds both
    oof, probes = cross_fitted(X, y, fold, seed=seed)
    unlabeled = np.empty(len(pool))
    for f, probe in enumerate(probes):
        unlabeled[pool_fold == f] = probe.decision_function(pool[pool_fold == f], check=False)
    return np.concatenate([oof, unlabeled])


def _truncate(weights: np.ndarray, ratio: float) -> np.ndarray:
    cap = ratio * float(np.median(weights))
    weights = np.minimum(weights, cap)
    return weights / weights.mean()
