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
out-of-fold logit, a monotone map of logits to probabilities is fitted to the labels, and the pool
rows get the mapped mean logit of the fold probes. :func:`project_auc` is the estimate above for
one scorer.

**The map is isotonic** (``ISOTONIC_SHARE = 1``, round 9): the monotone fit of pool-adjacent
violators to the labels on the out-of-fold logits (constant blocks, linear between them, clipped
beyond the outermost labeled logits). Where the labels were chosen near the boundary, those
labels are close to coin tosses, while the images the probe is sure of are mostly right. One
logistic slope (Platt scaling) learns the coin tosses and carries them into the tails, so the
confident pool rows got probabilities near one half and the project AUC came out too low (one
draw of the tuning set ``mnist-even``, 200 labels in ``mixed`` order: 0.76 where the truth was
0.93; with Platt's map fitted on the pool's *true* labels, 0.59; with an isotonic map fitted
there, 0.94; ``benchmarks/sampling_bias.py --calibration-check``). The isotonic map lets the few
labeled rows far from the boundary (the first, random ones; ``mixed``'s audits) set the tails. A
share below 1 mixes Platt's map back in (0: Platt alone, as before round 9). Chosen on the
tuning sets and kept by a rule fixed before the held-out run (``benchmarks/sampling_bias.py``,
README).

**Errors in the logits** (corrected in Platt's map only: while ``ISOTONIC_SHARE`` is 1 the
correction moves nothing, though the noise still flattens the isotonic fit too). A fold probe's
logit is the logit of the probe it estimates plus estimation noise. Where the labeled rows were
chosen near the boundary (uncertainty sampling), their true logits spread little and the noise
is a large part of their out-of-fold logits' spread, so Platt scaling learns too flat a slope (regression dilution) and carries it to the
confident pool rows, whose logits spread far more: their probabilities come out too close to
one half and the project AUC too low. The noise variance is estimated from how the fold
probes disagree on the pool rows (a grouped jackknife), and the map is corrected for it
(regression calibration): the slope is divided by the labeled rows' reliability
``1 - noise / var(out-of-fold logit)`` and the pool rows' logits are shrunk by their own
reliability towards their mean. With random labels both reliabilities are alike and the map
barely moves (``NOISE_SHARE`` scales the noise estimate; 0 is plain Platt scaling). The
correction is skipped when the project has fewer unlabeled rows than labeled ones.

**A weaker penalty for the calibration probes.** Labels chosen near the boundary hardly vary
along the direction that separates the classes, so the probe's L2 penalty, sized for a random
sample, shrinks that direction most and the pool rows' logits lose what separates them. The
fold probes here are fitted with ``C_SCALE`` times the probe's ``C``.

**The leak, and a cautious view** (rounds 11 and 12). Where a label steered which rows were
chosen after it (uncertainty sampling), the fold probes that score a row "out of fold" are fitted
on those rows and carry its label back, so the map learns a relation the unlabeled rows do not
have. :func:`prequential_logits` scores each row with a probe fitted only on the rows before it;
:func:`pessimistic` maps the pool with Platt's map of those logits, the forecast's worst case.
``PREQUENTIAL_SHARE`` mixes their isotonic map into the calibration itself (off: it helped the
sets without signal and cost those with a strong one).

Pure numpy/scipy/scikit-learn; used by :mod:`backend.learning_curve` and :mod:`backend.forecast`.
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from backend.blas import one_blas_thread
from backend.metrics import pair_sums
from backend.probe import check_embeddings, cross_fitted, default_C, fit_probe, stratified_fold_ids

__all__ = [
    "PoolLabels",
    "calibrate_pool",
    "fold_logits",
    "optimistic",
    "pessimistic",
    "prequential_logits",
    "project_auc",
    "soft_auc",
]

N_FOLDS = 5
"""Folds of the cross-fitting that gives the labeled rows out-of-fold logits for calibration."""

PLATT_C = 100.0
"""Inverse L2 strength of the Platt scaling (two parameters: barely regularised)."""

NOISE_SHARE = 0.0
"""Share of the jackknife estimate of the fold probes' logit noise Platt's map corrects for
(module docstring; 0: plain Platt scaling, the default; it moves only Platt's share of the map).
Two rounds chose 0.5 on their tuning sets (``benchmarks/sampling_bias.py``). Alone, chosen on
seven sets, it made both TB sets worse at 100 labels. With ``C_SCALE = 16``, chosen on nine
sets, it made the five held-out sets worse on average (the ``fair`` table over-corrected by
+0.10). So it is not the default (README, "Calibration with a weaker penalty")."""

C_SCALE = 1.0
"""The calibration probes' inverse L2 strength as a multiple of the probe's ``C`` (1: the probe's
own penalty, the default). Labels chosen near the boundary hardly vary along the direction that
separates the classes, so a penalty sized for a random sample shrinks exactly that direction
most, and the pool's probabilities come out too flat; a weaker penalty keeps it. Only the pool's
probabilities use these probes (the probes whose AUC is estimated keep the probe's ``C``). With
``NOISE_SHARE = 0.5`` and 16 it was the best of the settings tried on nine tuning sets, and worse
than the default on the five held-out sets (README, "Calibration with a weaker penalty"), so it
is not the default."""

ISOTONIC_SHARE = 1.0
"""Share of the isotonic map in each calibrated probability, the rest Platt's (0: Platt alone;
module docstring). Chosen from 0 / 0.25 / 0.5 / 0.75 / 1 on nine tuning sets (round 9); 1 met
the rule fixed for the held-out sets (README, "Round 9")."""

PREQUENTIAL_SHARE = 0.0
"""Share of the *prequential* isotonic map in the isotonic part of each calibrated probability,
the rest the cross-fitted one's (round 12; 0: cross-fitted alone). The cross-fitting leaks labels
through the order they were chosen in: a label steers which rows are chosen after it, and the
fold probes that score a row "out of fold" are fitted on those rows. The prequential map is
fitted on logits no row's own label can have steered (:func:`prequential_logits`)."""

PREQUENTIAL_START = 20
"""Rows at the start of the labeling order that :func:`prequential_logits` cross-fits among
themselves when the caller does not say how many no label steered (``unsteered``): the random
start of the benchmark's least-sure-first replays and of ``mixed``'s default."""

PREQUENTIAL_BLOCK = 10
"""Fewest rows one prequential probe scores (the batch of the benchmark's replays)."""

PREQUENTIAL_GROWTH = 0.25
"""A block of :func:`prequential_logits` holds this share of the rows before it where that is
more than ``PREQUENTIAL_BLOCK``: after a start of 20, 17 block probes score 1,000 labels (7 score
100), besides the start's fold probes."""

CAUTIOUS_C = 0.1
"""Inverse L2 strength of the cautious view's Platt map (:func:`pessimistic`): its slope is
shrunk towards none, since a slope fitted to the noise of prequential logits swings the view
widely. Chosen from 100 (Platt's own) and 0.1 on the tuning sets (README, round 12)."""

MIN_RELIABILITY = 0.1
"""Floor of a reliability ``1 - noise / variance``: the slope grows at most tenfold."""


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
    slope, intercept : float
        Platt's share of the map, ``1 / (1 + exp(-(slope * t + intercept)))`` of a pool row's
        expected true logit ``t`` (Platt's own map when no noise is corrected for); ``p`` is
        this map only when the isotonic share is 0.
    logit : ndarray of shape (n_pool,), optional
        Each pool row's mean logit of the fold probes, the map's input (breaks the ties of
        :func:`optimistic`).
    """

    X: np.ndarray
    p: np.ndarray
    weight: float
    slope: float
    intercept: float
    logit: np.ndarray | None = None


def calibrate_pool(
    X: Any,
    y: Any,
    pool: Any,
    seed: int = 0,
    *,
    pool_size: int | None = None,
    C: float | None = None,
    noise_share: float | None = None,
    c_scale: float | None = None,
    isotonic_share: float | None = None,
    prequential_share: float | None = None,
    unsteered: int | None = None,
) -> PoolLabels:
    """Calibrate the probe on the labeled rows and give every pool row its probability.

    Parameters
    ----------
    X : array-like of shape (n_labeled, n_features)
        In labeling order (the prequential map depends on it).
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
    noise_share : float, optional
        Share in [0, 1] of the estimated logit noise Platt's map is corrected for (default
        ``NOISE_SHARE``; 0: plain Platt scaling). Skipped when the project has fewer unlabeled
        rows (``pool_size``, or ``len(pool)``) than labeled ones.
    c_scale : float, optional
        Multiple of ``C`` the calibration probes are fitted with (default ``C_SCALE``).
    isotonic_share : float, optional
        Share in [0, 1] of the isotonic map in each probability, the rest Platt's (default
        ``ISOTONIC_SHARE``).
    prequential_share : float, optional
        Share in [0, 1] of the prequential isotonic map in the isotonic part (default
        ``PREQUENTIAL_SHARE``; 0: the cross-fitted map alone).
    unsteered : int, optional
        As in :func:`prequential_logits` (used only for the prequential map).

    Returns
    -------
    PoolLabels
    """
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LogisticRegression

    X, y, pool, k, C = _calibration_inputs(X, y, pool, C, c_scale)
    noise_share = _share("noise_share", NOISE_SHARE if noise_share is None else noise_share)
    isotonic_share = _share("isotonic_share", ISOTONIC_SHARE if isotonic_share is None else isotonic_share)
    prequential_share = _share(
        "prequential_share", PREQUENTIAL_SHARE if prequential_share is None else prequential_share
    )
    if pool_size is not None and int(pool_size) < len(pool):
        raise ValueError(f"pool_size must be at least the {len(pool)} pool rows given, got {pool_size}")
    oof, pool_logits = _fold_logits(X, y, pool, k, C, seed)
    platt = LogisticRegression(C=PLATT_C, max_iter=1000).fit(oof[:, None], y)
    slope, intercept = float(platt.coef_[0, 0]), float(platt.intercept_[0])
    pool_logit = pool_logits.mean(axis=0)
    mean_logit = pool_logit
    n_unlabeled = len(pool) if pool_size is None else int(pool_size)
    if noise_share > 0 and len(pool) > 1 and n_unlabeled >= len(y):
        # Variance of one fold probe's logit about the probe it estimates: k - 1 times the
        # variance between the k fold probes, which share (k - 2) / (k - 1) of their rows.
        noise = noise_share * (k - 1) * float(np.mean(pool_logits.var(axis=0, ddof=1)))
        slope, intercept, pool_logit = _deattenuate(slope, intercept, oof, pool_logit, noise, k)
    p = _sigmoid(slope * pool_logit + intercept)
    if isotonic_share > 0:
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(oof, y)
        p_iso = iso.predict(mean_logit)
        if prequential_share > 0:
            z = _prequential_logits(X, y, C, seed, _unsteered(unsteered))
            seen = ~np.isnan(z)
            if len(np.unique(y[seen])) == 2:  # else no leak-free logits: the cross-fitted map alone
                iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(z[seen], y[seen])
                p_iso = (1 - prequential_share) * p_iso + prequential_share * iso.predict(mean_logit)
        p = (1 - isotonic_share) * p + isotonic_share * p_iso
    return PoolLabels(
        X=pool,
        p=p,
        weight=max(1.0, n_unlabeled / len(pool)),
        slope=slope,
        intercept=intercept,
        logit=mean_logit,
    )


def fold_logits(
    X: Any, y: Any, pool: Any, seed: int = 0, *, C: float | None = None, c_scale: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The cross-fitting :func:`calibrate_pool` maps to probabilities, for diagnostics.

    Parameters
    ----------
    X, y, pool, seed, C, c_scale
        As in :func:`calibrate_pool`.

    Returns
    -------
    oof : ndarray of shape (n_labeled,)
        Each labeled row's logit from the fold probe that did not see it.
    pool_logits : ndarray of shape (k, n_pool)
        Every fold probe's logits of the pool rows (``k = min(N_FOLDS, positives, negatives)``).
    """
    X, y, pool, k, C = _calibration_inputs(X, y, pool, C, c_scale)
    return _fold_logits(X, y, pool, k, C, seed)


def prequential_logits(
    X: Any,
    y: Any,
    seed: int = 0,
    *,
    C: float | None = None,
    unsteered: int | None = None,
    growth: float | None = None,
) -> np.ndarray:
    """Each labeled row's logit from a probe its own label cannot have reached (round 12).

    Rows in labeling order. The first ``unsteered``, chosen before any label could steer the
    choice (a random start), are cross-fitted among themselves (5 folds, fewer when a class is
    short): their logits carry the labels of the other start rows, never a later one. Each later
    block is scored by a probe fitted on all the rows labeled before it; a block holds
    ``PREQUENTIAL_BLOCK`` rows, or ``PREQUENTIAL_GROWTH`` of the rows before it where that is
    more. A row's label can steer which rows are chosen *after* it, never those before it, so
    unlike the cross-fitting's these logits carry no label back to its row. That holds only if
    the first ``unsteered`` rows really were chosen without looking at labels: pass 0 where the
    order was steered from the first probe on (``sampling=uncertainty``).

    Parameters
    ----------
    X : array-like of shape (n_labeled, n_features)
    y : array-like of shape (n_labeled,)
        0/1 labels.
    seed : int
        Seed of the first rows' fold split.
    C : float, optional
        The probes' regularisation (default :func:`backend.probe.default_C`, times ``C_SCALE``
        as in :func:`calibrate_pool`).
    unsteered : int, optional
        Rows at the start chosen without any label's influence (default ``PREQUENTIAL_START``).
    growth : float, optional
        A block's largest share of the rows before it (default ``PREQUENTIAL_GROWTH``; 0: blocks
        of ``PREQUENTIAL_BLOCK`` rows throughout, as round 11's diagnostic scored them).

    Returns
    -------
    ndarray of shape (n_labeled,)
        NaN where no probe could be fitted (fewer than 2 labels of a class among the start rows,
        or before the block).
    """
    X, y = check_embeddings(X, y)
    growth = PREQUENTIAL_GROWTH if growth is None else growth
    if isinstance(growth, bool) or not isinstance(growth, numbers.Real) or not (0.0 <= float(growth) < np.inf):
        raise ValueError(f"growth must be a number >= 0, got {growth!r}")
    return _prequential_logits(X, y, _calibration_C(X, C, C_SCALE), seed, _unsteered(unsteered), float(growth))


def _unsteered(unsteered: Any) -> int:
    """A checked ``unsteered`` (default ``PREQUENTIAL_START``)."""
    if unsteered is None:
        return PREQUENTIAL_START
    if isinstance(unsteered, bool) or not isinstance(unsteered, numbers.Integral) or unsteered < 0:
        raise ValueError(f"unsteered must be a whole number of rows >= 0, got {unsteered!r}")
    return int(unsteered)


def _prequential_logits(
    X: np.ndarray, y: np.ndarray, C: float, seed: int, unsteered: int, growth: float = PREQUENTIAL_GROWTH
) -> np.ndarray:
    """:func:`prequential_logits` of checked inputs, ``C`` the probes' own."""
    z = np.full(len(y), np.nan)
    first = y[:unsteered]
    k = min(N_FOLDS, int(first.sum()), len(first) - int(first.sum()))
    with one_blas_thread():
        if k >= 2:
            folds = stratified_fold_ids(first, k, np.random.default_rng(seed))
            z[: len(first)], _ = cross_fitted(X[: len(first)], first, folds, C, seed)
        at = len(first)
        while at < len(y):
            end = at + max(PREQUENTIAL_BLOCK, int(growth * at))
            n_pos = int(y[:at].sum())
            if min(n_pos, at - n_pos) >= 2:
                probe = fit_probe(X[:at], y[:at], C=C, seed=seed, check=False)
                z[at:end] = probe.decision_function(X[at:end], check=False)
            at = end
    return z


def _share(name: str, value: Any) -> float:
    """A share in [0, 1], or a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (0.0 <= float(value) <= 1.0):
        raise ValueError(f"{name} must lie in [0, 1], got {value!r}")
    return float(value)


def _calibration_inputs(X, y, pool, C, c_scale):
    """Checked embeddings, labels and pool, the number of folds and the calibration probes' C."""
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
    c_scale = C_SCALE if c_scale is None else c_scale
    if isinstance(c_scale, bool) or not isinstance(c_scale, numbers.Real) or not (0 < c_scale < np.inf):
        raise ValueError(f"c_scale must be a positive number, got {c_scale!r}")
    return X, y, pool, k, _calibration_C(X, C, c_scale)


def _calibration_C(X: np.ndarray, C: float | None, c_scale: float) -> float:
    """The calibration probes' C: ``c_scale`` times the probe's (``C``, or the default for
    ``X``'s width)."""
    return c_scale * (default_C(X.shape[1]) if C is None else float(C))


def _fold_logits(X: np.ndarray, y: np.ndarray, pool: np.ndarray, k: int, C: float, seed: int):
    """:func:`fold_logits` of checked inputs."""
    with one_blas_thread():  # small problems: threads only contend
        oof, probes = cross_fitted(X, y, stratified_fold_ids(y, k, np.random.default_rng(seed)), C, seed)
        return oof, np.stack([probe.decision_function(pool, check=False) for probe in probes])


def optimistic(labels: PoolLabels) -> PoolLabels:
    """The pool as the calibrated probe would label it: ``p`` 1 where it favours the positive
    class (``p`` above one half, or exactly one half on the positive side of the boundary), 0
    elsewhere.

    An optimistic extreme for labels chosen near the boundary. Those labels show how often the
    probe is wrong *there*; how often it is wrong on the images it is sure of they cannot show,
    and calibration only extrapolates. This view counts it never wrong on any. Estimated with it,
    the project AUC of the probe that made ``labels`` comes out near 1; that of a probe trained on
    fewer labels, its agreement with that probe.
    """
    favoured = labels.p > 0.5
    if labels.logit is not None:  # an isotonic block at exactly one half: the probe's own side
        favoured |= (labels.p == 0.5) & (labels.logit > 0)
    return dataclasses.replace(labels, p=favoured.astype(np.float64))


def pessimistic(
    labels: PoolLabels, X: Any, y: Any, seed: int = 0, *, C: float | None = None, unsteered: int | None = None
) -> PoolLabels | None:
    """The pool with probabilities from a map no row's own label reaches: Platt's map fitted on
    the labeled rows' :func:`prequential_logits`, applied to the pool rows' logits (round 12).

    A cautious extreme, the counterpart of :func:`optimistic`. Where labels steered the choice
    of later rows (uncertainty sampling), the cross-fitted logits carry labels back to their rows,
    so the calibrated probe looks surer of the unlabeled images than it has earned; on a project
    whose embeddings do not predict the finding at all the model-based AUC then comes out far
    above one half. Prequential logits cannot carry a row's own label, and one logistic slope,
    shrunk towards none (``CAUTIOUS_C``), hardly chases their noise, so this view is near the
    truth there on average. It is too flat where the
    signal is strong: the early probes that score the first rows are weaker than the probe whose
    pool it calibrates (README, round 12).

    Parameters
    ----------
    labels : PoolLabels
        From :func:`calibrate_pool` on the same rows (its ``logit`` is the map's input).
    X, y : array-like
        The labeled rows, in labeling order.
    seed, C, unsteered
        As in :func:`prequential_logits`.

    Returns
    -------
    PoolLabels or None
        ``None`` when the prequential logits do not hold 2 rows of each class.
    """
    from sklearn.linear_model import LogisticRegression

    if labels.logit is None:
        raise ValueError("pessimistic needs the pool's logits (PoolLabels from calibrate_pool)")
    X, y = check_embeddings(X, y)
    z = _prequential_logits(X, y, _calibration_C(X, C, C_SCALE), seed, _unsteered(unsteered))
    seen = ~np.isnan(z)
    n_pos = int(y[seen].sum())
    if min(n_pos, int(seen.sum()) - n_pos) < 2:
        return None
    platt = LogisticRegression(C=CAUTIOUS_C, max_iter=1000).fit(z[seen, None], y[seen])
    return dataclasses.replace(labels, p=platt.predict_proba(labels.logit[:, None])[:, 1])


def _deattenuate(
    slope: float, intercept: float, oof: np.ndarray, pool_logit: np.ndarray, noise: float, k: int
) -> tuple[float, float, np.ndarray]:
    """Platt's map of noisy logits turned into a map of the pool's expected true logits.

    With ``z = t + e`` (noise variance ``noise``), the best linear guess of ``t`` is
    ``mean + r (z - mean)``, ``r = 1 - noise / var(z)`` (the reliability). Platt's fit on the
    labeled rows' ``z`` is a fit on ``r_lab`` times the true logit's spread: the slope of the true
    logit is ``slope / r_lab``. The pool's logit (the mean of ``k`` fold probes, noise
    ``noise (k - 1) / k``) is shrunk by its own reliability before it is mapped.
    """
    r_lab = max(MIN_RELIABILITY, 1.0 - noise / max(float(np.var(oof)), 1e-12))
    r_pool = max(MIN_RELIABILITY, 1.0 - noise * (k - 1) / k / max(float(np.var(pool_logit)), 1e-12))
    true_slope = slope / r_lab
    # the fitted line at the labeled mean is kept: slope * z + b = true_slope * (mean + r_lab (z - mean)) + b'
    mean_lab = float(oof.mean())
    true_intercept = intercept - true_slope * mean_lab * (1.0 - r_lab)
    mean_pool = float(pool_logit.mean())
    return true_slope, true_intercept, mean_pool + r_pool * (pool_logit - mean_pool)


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
