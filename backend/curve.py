"""Fit the learning curve ``AUC(n)`` to (training size, AUC) points and forecast from it.

Pure numpy/scipy. :func:`fit_learning_curve` is the public entry point; it returns a frozen fit
object that predicts, inverts (labels needed for a target AUC) and gives intervals:
:class:`AnalogCurveFit` for the default method, :class:`LearningCurveFit` for the power laws.

Methods
-------
``"ensemble"`` (default)
    The analog forecast below moved half-way (:data:`GAIN_WEIGHT`) towards a learned gain model
    (:mod:`backend.curve_gain`) beyond the last observed size; each draw moves a random share of
    that way, so the intervals hold the two models' disagreement.
``"analog"``
    Forecast by analogy with real learning curves (:mod:`backend.curve_prior`): the shipped
    library of LCDB curves (even OpenML ids), each shifted in level to match the observed mean
    AUCs and weighted by how well it matches them; the forecast is the weighted mixture.
    Intervals are draws from the mixture (a curve by weight, its shift from its posterior).

    For both, the labels needed for a target is the median over the draws that reach it
    (``math.inf`` when fewer than :data:`REACH_SHARE` do), and :meth:`AnalogCurveFit.reach_share`
    says how many do. Both were chosen by grouped cross-validation over LCDB datasets
    (``benchmarks/forecast_accuracy.py --lcdb``): from the points at n <= 64 they err less on the
    AUC at n <= 4,096 than the power laws, and their labels needed is within 2x of the truth
    far more often.
``"pow3"``
    The reference of arXiv 2510.11553: plain least squares of ``a - b * n**(-c)`` on every
    point (repeats included), from several starting points, within the bounds below.
``"pow3-bma"``
    Bayesian model averaging of the power law over the exponent. For each ``c`` on a grid of 60
    values from 0.05 to 3 (log-spaced), ``a`` and ``b`` have a closed-form least-squares
    solution; each ``c`` is weighted by ``exp(-SSE / (2 sigma^2))`` times a log-normal prior
    ``log c ~ N(log 0.5, 1)``, where ``sigma^2`` is the mean within-size variance of the
    repeats. The forecast is the weighted mixture of the 60 curves.

Bounds for every curve: ``0 <= a <= 1``, ``b >= 0`` (and ``b <= 50`` for ``pow3``),
``0.02 <= c <= 4``.

Power-law intervals come from a bootstrap over the points: at each size the repeats are resampled with
replacement, and the whole size is shifted by a normal draw with the standard deviation of its
repeats. The shift stands for what the repeats cannot show: they are subsets of the *same*
labels, so their mean still varies from one labeled pool to the next by about one subset's
spread. ``interval(n)`` gives quantiles of the refitted predictions, ``plateau_interval`` of the
refitted plateaus, ``labels_interval`` of the refitted labels-needed.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from backend.curve_gain import gain_model_for
from backend.curve_prior import GRID, LOG_GRID, CurvePrior, load_default_prior, posterior

__all__ = ["AnalogCurveFit", "LearningCurveFit", "fit_learning_curve", "pow3", "METHODS", "DEFAULT_METHOD"]

METHODS = ("ensemble", "analog", "pow3", "pow3-bma")
DEFAULT_METHOD = "ensemble"
# In "ensemble", the share of the gain model in the forecast beyond the last observed size.
GAIN_WEIGHT = 0.5
# The analog and ensemble forecasts give the labels needed for a target only when at least this
# share of their draws reach it (otherwise math.inf); the figure is then "if it is reached", and
# reach_share says how likely that is. Chosen with the labels rule by grouped cross-validation
# over LCDB datasets (0.05 and 0.2 gave the same figures on reachable targets). A higher share
# says "never" more often for targets the curve does not reach, at a cost on those it does
# (README: "How the forecast is computed").
REACH_SHARE = 0.1

# Parameter bounds (a, b, c) of the least-squares reference fit.
_LOWER = np.array([0.0, 0.0, 0.02])
_UPPER = np.array([1.0, 50.0, 4.0])
# Exponents averaged over by pow3-bma, and their prior log(c) ~ Normal(log 0.5, 1).
_C_GRID = np.geomspace(0.05, 3.0, 60)
_PRIOR_LOG_C = math.log(0.5)
_PRIOR_LOG_C_SD = 1.0
# Smallest standard deviation assumed for the AUC of one subset, and the fallback when no
# size has repeats to estimate it from.
_MIN_SD = 0.01
_FALLBACK_SD = 0.05
# Starting exponents tried by the multi-start least-squares fit.
_START_C = (0.15, 0.5, 1.5)
# Labels-needed search stops here: beyond a billion labels the answer is "never".
_MAX_LABELS = 1e9


def pow3(n: Any, a: Any, b: Any, c: Any) -> np.ndarray:
    """Evaluate ``a - b * n**(-c)``, broadcasting ``n`` against the parameters."""
    n = np.asarray(n, dtype=np.float64)
    return a - b * np.power(n, -c)


@dataclass(frozen=True, eq=False)
class LearningCurveFit:
    """A fitted learning curve: a weighted mixture of ``a_k - b_k * n**(-c_k)`` curves.

    ``pow3`` has one component; ``pow3-bma`` one per exponent on its grid.

    Attributes
    ----------
    params : ndarray of shape (n_components, 3)
        ``(a, b, c)`` of each component.
    weights : ndarray of shape (n_components,)
        Mixture weights, summing to 1.
    method : str
        One of :data:`METHODS`.
    sizes : ndarray of shape (k,)
        The distinct training sizes fitted.
    means, sds : ndarray of shape (k,)
        Mean AUC at each size and the standard deviation of its repeats.
    counts : ndarray of shape (k,)
        Number of repeats at each size.
    boot_params : ndarray of shape (n_boot, n_components, 3)
    boot_weights : ndarray of shape (n_boot, n_components)
        The mixture refitted on bootstrap resamples.
    """

    params: np.ndarray
    weights: np.ndarray
    method: str
    sizes: np.ndarray
    means: np.ndarray
    sds: np.ndarray
    counts: np.ndarray
    boot_params: np.ndarray = field(repr=False)
    boot_weights: np.ndarray = field(repr=False)

    @property
    def plateau(self) -> float:
        """The predicted final AUC: the limit of the curve as ``n`` grows."""
        return float(self.weights @ self.params[:, 0])

    @property
    def exponent(self) -> float:
        """The weighted mean exponent ``c`` (how fast the curve approaches its plateau)."""
        return float(self.weights @ self.params[:, 2])

    def predict(self, n: Any) -> np.ndarray:
        """Predicted AUC at training sizes ``n`` (array-like of shape (k,)), shape (k,)."""
        return _mixture(_check_sizes_for_query(n), self.params, self.weights)

    def labels_for(self, target: float) -> float:
        """Smallest whole number of labels whose predicted AUC is at least ``target``.

        Returns ``math.inf`` when ``target`` is at or above the plateau.
        """
        return _labels_for(self.params, self.weights, _check_target(target))

    def interval(self, n: Any, level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        """Bootstrap interval of the predicted AUC at ``n``; two arrays of shape (k,)."""
        n = _check_sizes_for_query(n)
        lo_q, hi_q = _quantiles(level)
        preds = np.stack([_mixture(n, p, w) for p, w in zip(self.boot_params, self.boot_weights)])
        return np.quantile(preds, lo_q, axis=0), np.quantile(preds, hi_q, axis=0)

    def plateau_interval(self, level: float = 0.9) -> tuple[float, float]:
        """Bootstrap interval of the plateau."""
        lo_q, hi_q = _quantiles(level)
        plateaus = np.einsum("bk,bk->b", self.boot_weights, self.boot_params[:, :, 0])
        return float(np.quantile(plateaus, lo_q)), float(np.quantile(plateaus, hi_q))

    def labels_interval(self, target: float, level: float = 0.9) -> tuple[float, float]:
        """Bootstrap interval of :meth:`labels_for`; either end may be ``math.inf``."""
        return _count_interval(self._boot_labels(_check_target(target)), level)

    def reach_share(self, target: float) -> float:
        """Share of the bootstrap refits that reach ``target``."""
        return float(np.mean(np.isfinite(self._boot_labels(_check_target(target)))))

    def _boot_labels(self, target: float) -> np.ndarray:
        return np.array([_labels_for(p, w, target) for p, w in zip(self.boot_params, self.boot_weights)])

    def describe(self) -> dict:
        """JSON-safe description of the fitted curve."""
        return {
            "method": self.method,
            "plateau": self.plateau,
            "exponent": self.exponent,
            "params": self.params.tolist(),
            "weights": self.weights.tolist(),
        }


@dataclass(frozen=True, eq=False)
class AnalogCurveFit:
    """A forecast by analogy: the weighted mixture of shifted real curves, on a grid of sizes.

    Attributes
    ----------
    method : str
        ``"analog"``.
    grid : ndarray of shape (G,)
        Training sizes the curve is tabulated at (:data:`backend.curve_prior.GRID`); beyond
        the last the curve stays at its last value, its plateau.
    values : ndarray of shape (G,)
        The forecast AUC at each grid size, non-decreasing.
    draws : ndarray of shape (n_draws, G)
        Curves drawn from the mixture, for the intervals.
    shape_draws : ndarray of shape (n_draws, G)
        The same draws without the pool's luck (``pooled``: one subset's spread added to each
        draw's level); the labels needed and :meth:`reach_share` come from these, as they were
        chosen on LCDB's independent curves. ``draws`` itself when not ``pooled``.
    weights : ndarray of shape (m,)
        Weights of the library curves that make the forecast (largest first).
    sizes, means, sds, counts : ndarray of shape (k,)
        As in :class:`LearningCurveFit`.
    """

    method: str
    grid: np.ndarray
    values: np.ndarray
    draws: np.ndarray = field(repr=False)
    shape_draws: np.ndarray = field(repr=False)
    weights: np.ndarray
    sizes: np.ndarray
    means: np.ndarray
    sds: np.ndarray
    counts: np.ndarray

    @property
    def plateau(self) -> float:
        """The predicted final AUC: the forecast at the largest grid size (about a million)."""
        return float(self.values[-1])

    def predict(self, n: Any) -> np.ndarray:
        """Predicted AUC at training sizes ``n`` (array-like of shape (k,)), shape (k,)."""
        return np.interp(np.log(_check_sizes_for_query(n)), LOG_GRID, self.values)

    def labels_for(self, target: float) -> float:
        """Labels needed to reach ``target``, where the forecast reaches it at all: the median
        labels needed over the :attr:`shape_draws` that reach it (a whole number).

        Returns ``math.inf`` when fewer than :data:`REACH_SHARE` of them reach ``target``
        on the grid. With no draws (``n_boot=0``) it is the smallest whole number of labels
        whose predicted AUC is at least ``target``.

        Why not where :attr:`values` crosses ``target``: the mixture averages curves that
        climb early with curves that climb late into one that climbs more slowly than most, so
        its crossing overstates the labels needed (median ×2.4 against ×1.8 on held-out LCDB
        curves from 64 labels, see README). :meth:`reach_share` says how sure the reaching is.
        """
        needed = self._draw_labels(_check_target(target))
        reached = needed[np.isfinite(needed)]
        if reached.size == 0 or reached.size < REACH_SHARE * needed.size:
            return math.inf
        return float(np.quantile(reached, 0.5, method="higher"))

    def reach_share(self, target: float) -> float:
        """Share of the :attr:`shape_draws` that reach ``target`` (before the grid's last size)."""
        return float(np.mean(np.isfinite(self._draw_labels(_check_target(target)))))

    def _draw_labels(self, target: float) -> np.ndarray:
        return np.array([_table_labels_for(d, target) for d in self.shape_draws])

    def interval(self, n: Any, level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        """Interval of the predicted AUC at ``n`` from the mixture's draws; two arrays of shape (k,)."""
        log_n = np.log(_check_sizes_for_query(n))
        lo_q, hi_q = _quantiles(level)
        preds = np.stack([np.interp(log_n, LOG_GRID, d) for d in self.draws])
        return np.quantile(preds, lo_q, axis=0), np.quantile(preds, hi_q, axis=0)

    def plateau_interval(self, level: float = 0.9) -> tuple[float, float]:
        """Interval of the plateau."""
        lo_q, hi_q = _quantiles(level)
        return float(np.quantile(self.draws[:, -1], lo_q)), float(np.quantile(self.draws[:, -1], hi_q))

    def labels_interval(self, target: float, level: float = 0.9) -> tuple[float, float]:
        """Interval of the labels needed over all draws, the pool's luck included (those that
        never reach ``target`` count as infinite), widened where needed to hold
        :meth:`labels_for`, which comes from the :attr:`shape_draws`; either end may be
        ``math.inf``."""
        target = _check_target(target)
        low, high = _count_interval(np.array([_table_labels_for(d, target) for d in self.draws]), level)
        needed = self.labels_for(target)
        if math.isfinite(needed):
            low, high = min(low, needed), max(high, needed)
        return low, high

    def describe(self) -> dict:
        """JSON-safe description of the forecast curve."""
        return {
            "method": self.method,
            "plateau": self.plateau,
            "grid": self.grid.tolist(),
            "values": self.values.tolist(),
            "n_analogs": int(len(self.weights)),
            "top_weight": float(self.weights[0]),
        }


def fit_learning_curve(
    sizes: Any,
    scores: Any,
    method: str = DEFAULT_METHOD,
    n_boot: int = 200,
    seed: int = 0,
    *,
    prior: CurvePrior | None = None,
    pooled: bool = False,
) -> LearningCurveFit | AnalogCurveFit:
    """Fit a learning curve to (size, AUC) points.

    Parameters
    ----------
    sizes : array-like of shape (n_points,)
        Training-set size of each point (>= 1); a size may repeat, one entry per subset.
    scores : array-like of shape (n_points,)
        AUC of each point, in [0, 1].
    method : {"analog", "pow3", "pow3-bma"}
        See the module docstring; ``"pow3"`` is the paper's plain least-squares fit.
    n_boot : int
        Bootstrap refits (power laws) or mixture draws (analog) for the intervals; 0 gives
        intervals of zero width.
    seed : int
        Seed of the bootstrap or the draws.
    prior : CurvePrior, optional
        The library of the analog method (default: the shipped prior).
    pooled : bool
        The repeats are subsets of one labeled pool (the product's own curve), not independent
        samples: their mean still moves with the pool's luck by about one repeat's spread.
        The analog intervals then add that spread (the largest size's) to every draw's level;
        the power-law bootstrap always does.

    Returns
    -------
    AnalogCurveFit for ``"analog"``, else LearningCurveFit

    Raises
    ------
    ValueError
        Mismatched lengths, non-finite values, sizes below 1, scores outside [0, 1], fewer
        than 3 distinct sizes, or an unknown method. Valid input never raises.
    """
    sizes, scores = _check_points(sizes, scores)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 0:
        raise ValueError(f"n_boot must be a non-negative integer, got {n_boot!r}")
    uniq = np.unique(sizes)
    groups = [scores[sizes == n] for n in uniq]
    sds = _spreads(groups)
    if method in ("analog", "ensemble"):
        gain_weight = GAIN_WEIGHT if method == "ensemble" else 0.0
        return _fit_analog(uniq, groups, sds, prior or load_default_prior(), int(n_boot), seed, pooled, gain_weight)
    fit_one = _fit_pow3 if method == "pow3" else _fit_bma
    params, weights = fit_one(uniq, groups, sds, start=None)

    rng = np.random.default_rng(seed)
    boot_p, boot_w = [], []
    for _ in range(int(n_boot)):
        resampled = [
            np.clip(g[rng.integers(0, len(g), len(g))] + rng.normal(0.0, sd), 0.0, 1.0) for g, sd in zip(groups, sds)
        ]
        p, w = fit_one(uniq, resampled, _spreads(resampled), start=params)
        boot_p.append(p)
        boot_w.append(w)
    if not boot_p:
        boot_p, boot_w = [params], [weights]
    return LearningCurveFit(
        params=params,
        weights=weights,
        method=method,
        sizes=uniq,
        means=np.array([g.mean() for g in groups]),
        sds=sds,
        counts=np.array([len(g) for g in groups]),
        boot_params=np.stack(boot_p),
        boot_weights=np.stack(boot_w),
    )


# --- validation ----------------------------------------------------------------------------


def _check_points(sizes: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    try:
        sizes = np.asarray(sizes, dtype=np.float64)
        scores = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"sizes and scores must be numeric arrays: {exc}") from exc
    if sizes.ndim != 1 or scores.ndim != 1:
        raise ValueError(f"sizes and scores must be 1-D, got shapes {sizes.shape} and {scores.shape}")
    if sizes.shape != scores.shape:
        raise ValueError(f"sizes and scores must have equal length, got {len(sizes)} and {len(scores)}")
    if not np.all(np.isfinite(sizes)):
        raise ValueError("sizes contain NaN or inf")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or inf")
    if np.any(sizes < 1):
        raise ValueError(f"sizes must be >= 1, got minimum {sizes.min():g}")
    if np.any((scores < 0) | (scores > 1)):
        bad = scores[(scores < 0) | (scores > 1)][0]
        raise ValueError(f"scores must lie in [0, 1] (AUC), got {bad:g}")
    n_distinct = len(np.unique(sizes))
    if n_distinct < 3:
        raise ValueError(f"need at least 3 distinct sizes to fit a 3-parameter curve, got {n_distinct}")
    return sizes, scores


def _check_sizes_for_query(n: Any) -> np.ndarray:
    n = np.atleast_1d(np.asarray(n, dtype=np.float64))
    if n.ndim != 1:
        raise ValueError(f"n must be a scalar or 1-D array, got shape {n.shape}")
    if np.any(~np.isfinite(n)) or np.any(n < 1):
        raise ValueError(f"n must be finite sizes >= 1, got {n[~np.isfinite(n) | (n < 1)][:3]}")
    return n


def _check_target(target: float) -> float:
    target = float(target)
    if not (0.0 < target < 1.0):
        raise ValueError(f"target AUC must lie strictly between 0 and 1, got {target:g}")
    return target


def _quantiles(level: float) -> tuple[float, float]:
    level = float(level)
    if not (0.0 < level < 1.0):
        raise ValueError(f"level must lie strictly between 0 and 1, got {level:g}")
    return (1.0 - level) / 2.0, (1.0 + level) / 2.0


def _count_interval(needed: np.ndarray, level: float) -> tuple[float, float]:
    lo_q, hi_q = _quantiles(level)
    return float(np.quantile(needed, lo_q, method="lower")), float(np.quantile(needed, hi_q, method="higher"))


# --- the mixture ---------------------------------------------------------------------------


def _mixture(n: np.ndarray, params: np.ndarray, weights: np.ndarray) -> np.ndarray:
    a, b, c = (params[:, i : i + 1] for i in range(3))
    return weights @ pow3(n[None, :], a, b, c)


def _labels_for(params: np.ndarray, weights: np.ndarray, target: float) -> float:
    """Smallest integer n >= 1 with mixture(n) >= target (the mixture never decreases)."""

    def reaches(n: float) -> bool:
        return float(_mixture(np.array([n]), params, weights)[0]) >= target

    if reaches(1.0):
        return 1.0
    if float(weights @ params[:, 0]) <= target or not reaches(_MAX_LABELS):
        return math.inf
    lo, hi = 1.0, _MAX_LABELS  # reaches(lo) is False, reaches(hi) is True
    while hi - lo > 1:
        mid = math.floor((lo + hi) / 2)
        lo, hi = (lo, mid) if reaches(mid) else (mid, hi)
    return float(hi)


def _table_labels_for(values: np.ndarray, target: float) -> float:
    """Smallest integer n >= 1 where the tabulated (non-decreasing) curve reaches target.

    A target first reached at the grid's last size (about a million labels) counts as never.
    """
    above = np.flatnonzero(values >= target)
    if above.size == 0 or above[0] == len(values) - 1:
        return math.inf
    i = int(above[0])
    if i == 0:
        return 1.0
    lo, hi = values[i - 1], values[i]
    frac = (target - lo) / (hi - lo) if hi > lo else 1.0
    return float(max(1.0, math.ceil(math.exp(LOG_GRID[i - 1] + frac * (LOG_GRID[i] - LOG_GRID[i - 1])) - 1e-9)))


# --- fitting -------------------------------------------------------------------------------


def _spreads(groups: list[np.ndarray]) -> np.ndarray:
    """Standard deviation of the repeats at each size (fallbacks for single repeats)."""
    sds = np.array([g.std(ddof=1) if len(g) > 1 else np.nan for g in groups])
    known = sds[np.isfinite(sds)]
    fallback = float(np.median(known)) if known.size else _FALLBACK_SD
    return np.maximum(np.where(np.isfinite(sds), sds, fallback), _MIN_SD)


def _fit_bma(sizes: np.ndarray, groups, sds: np.ndarray, start=None) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form (a, b) for every exponent on the grid, weighted by likelihood x prior."""
    n = np.concatenate([np.full(len(g), s) for s, g in zip(sizes, groups)])
    y = np.concatenate(groups)
    sigma2 = float(np.mean(sds**2))
    x = np.power(n[None, :], -_C_GRID[:, None])  # (K, P)
    xm = x.mean(axis=1)
    ym = y.mean()
    sxx = ((x - xm[:, None]) ** 2).sum(axis=1)
    sxy = ((x - xm[:, None]) * (y - ym)).sum(axis=1)
    b = np.maximum(0.0, -np.divide(sxy, sxx, out=np.zeros_like(sxy), where=sxx > 0))
    a = ym + b * xm
    # Where the unconstrained plateau passes 1, fix a = 1 and refit b alone.
    over = a > 1.0
    if np.any(over):
        xo = x[over]
        b[over] = np.maximum(0.0, ((1.0 - y)[None, :] * xo).sum(axis=1) / (xo**2).sum(axis=1))
        a[over] = 1.0
    sse = ((y[None, :] - (a[:, None] - b[:, None] * x)) ** 2).sum(axis=1)
    log_w = -0.5 * sse / sigma2 - 0.5 * ((np.log(_C_GRID) - _PRIOR_LOG_C) / _PRIOR_LOG_C_SD) ** 2
    w = np.exp(log_w - log_w.max())
    return np.column_stack([a, b, _C_GRID]), w / w.sum()


def _fit_analog(
    sizes: np.ndarray,
    groups,
    sds: np.ndarray,
    prior: CurvePrior,
    n_draws: int,
    seed: int,
    pooled: bool,
    gain_weight: float = 0.0,
) -> AnalogCurveFit:
    """Weight and shift the prior's library curves by the observed means (variance sd**2 / count).

    Points below the library's smallest measured size are left out of the match when at least
    two sizes lie above it: there the library holds extrapolations, not measurements. With
    ``gain_weight`` > 0 the forecast beyond the last observed size is that share of the gain
    model's curve (:mod:`backend.curve_gain`) and the rest the mixture's; the interval draws
    move with it.
    """
    counts = np.array([len(g) for g in groups])
    means = np.array([g.mean() for g in groups])
    match = sizes >= prior.measured_from
    if match.sum() < 2:
        match = np.ones(len(sizes), dtype=bool)
    post = posterior(prior, sizes[match], means[match], sds[match] ** 2 / counts[match])
    values = post.mean_curve()
    rng = np.random.default_rng(seed)
    if n_draws > 0:
        shapes = post.sample(n_draws, prior.spread, rng, prior.draw_temperature)
        draws = np.clip(shapes + rng.normal(0.0, sds[-1], (n_draws, 1)), 0.0, 1.0) if pooled else shapes
    else:
        shapes = draws = values[None, :]
    gain_model = gain_model_for(prior) if gain_weight > 0 else None
    if gain_model is None:  # "analog", or a prior without measured curves to learn gains from
        gain_weight = 0.0
    else:
        # Point forecast: the gain model's share of the way from the mixture to it. Each draw
        # moves a uniform random share in [0, 2 * gain_weight] of that way: the intervals keep
        # the two models' disagreement.
        later = GRID > sizes[match][-1]
        towards = np.zeros_like(values)
        towards[later] = gain_model.curve(sizes[match], means[match], GRID[later]) - values[later]
        share = rng.uniform(0.0, 2.0 * gain_weight, (len(draws), 1)) if n_draws > 0 else np.full((1, 1), gain_weight)
        shapes = np.maximum.accumulate(np.clip(shapes + share * towards, 0.0, 1.0), axis=1)
        draws = np.maximum.accumulate(np.clip(draws + share * towards, 0.0, 1.0), axis=1) if pooled else shapes
        values = np.maximum.accumulate(np.clip(values + gain_weight * towards, 0.0, 1.0))
    return AnalogCurveFit(
        method="ensemble" if gain_weight > 0 else "analog",
        grid=GRID.copy(),
        values=values,
        draws=draws,
        shape_draws=shapes,
        weights=post.weights,
        sizes=sizes,
        means=means,
        sds=sds,
        counts=counts,
    )


def _fit_pow3(sizes: np.ndarray, groups, sds: np.ndarray, start=None) -> tuple[np.ndarray, np.ndarray]:
    """The paper's plain least-squares fit of the power law to every point."""
    n = np.concatenate([np.full(len(g), s) for s, g in zip(sizes, groups)])
    y = np.concatenate(groups)

    def residuals(p):
        return pow3(n, *p) - y

    starts = [start[0]] if start is not None else _starts(sizes, np.array([g.mean() for g in groups]))
    best, best_cost = starts[0], math.inf
    for x0 in starts:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res = least_squares(residuals, x0, bounds=(_LOWER, _UPPER), method="trf", max_nfev=200)
        if np.all(np.isfinite(res.x)) and res.cost < best_cost:
            best, best_cost = res.x, res.cost
    return np.clip(best, _LOWER, _UPPER)[None, :], np.ones(1)


def _starts(n: np.ndarray, means: np.ndarray) -> list[np.ndarray]:
    top = float(np.max(means))
    first = float(means[np.argmin(n)])
    n0 = float(np.min(n))
    starts = []
    for a in (min(1.0, top + 0.01), min(1.0, top + 0.08), 1.0):
        for c in _START_C:
            b = max(a - first, 1e-3) * n0**c
            starts.append(np.clip([a, b, c], _LOWER + 1e-9, _UPPER - 1e-9))
    return starts
