"""A learned model of how much a learning curve still gains, from the shape of its start.

The analog forecast (:mod:`backend.curve_prior`) weighs whole library curves by how well they
match the observed points; it is a kernel regression, and it under-forecasts curves whose early
slope is steeper than most of its library's. :class:`GainModel` looks at the same library the
other way round: from a curve's level and slopes over its last one and two doublings it predicts
the gain ``AUC(h) - level`` at each later size ``h``: a ridge regression on the cubic
polynomial of the standardised features and ``log2(h / last size)``, clipped to the room left
below 1 and made non-decreasing in ``h``. (Gradient-boosted trees did as well in the grouped
cross-validation but took seconds to fit; a k-nearest-neighbour regression did a little worse.)

Training rows come from the library's *measured* curves (:attr:`CurvePrior.measured`, the raw
mean AUC at each LCDB size, never the extrapolated tails): each curve is cut after each of
:data:`CUTS` labels, its features are computed from the points up to the cut, and every measured
later size gives one row. The model is fitted when first asked for (well under a second, once
per process and prior, in closed form): the same prior gives the same model. Beyond the largest
ratio of sizes it was trained on, the gain stays at that ratio's (the analog half of the
ensemble carries the curve further).

Pure numpy and scikit-learn.
"""

from __future__ import annotations

import functools
import math
import threading
from typing import Any

import numpy as np

__all__ = ["GainModel", "NothingToLearnError", "curve_features", "gain_model_for", "CUTS", "N_FEATURES"]

# Where each library curve is cut to make training rows: the sizes the features are computed up
# to (LCDB measures at 16 * sqrt(2)**k; product curves end anywhere from ~16 to thousands).
CUTS = (32, 45, 64, 91, 128, 181, 256)
N_FEATURES = 6
# Degree of the polynomial and the ridge penalty, chosen by grouped cross-validation over LCDB
# datasets (penalties 0.1 to 100 did the same).
DEGREE = 3
RIDGE_ALPHA = 10.0


def curve_features(sizes: Any, means: Any) -> np.ndarray:
    """Features of an observed curve, shape (N_FEATURES,).

    The straight line in ``log2(n)`` through the points of the last two doublings gives the
    level at the last size and its slope per doubling; the last doubling alone gives a second
    slope; then the rise since the first point, ``log2`` of the last size, and the doublings
    spanned.

    Parameters
    ----------
    sizes : array-like of shape (k,)
        Distinct training sizes, ascending, k >= 2.
    means : array-like of shape (k,)
        Mean AUC at each size.
    """
    ln = np.log2(np.asarray(sizes, dtype=np.float64))
    y = np.asarray(means, dtype=np.float64)
    if ln.ndim != 1 or ln.shape != y.shape or len(ln) < 2:
        raise ValueError(f"need at least 2 (size, mean) points of equal length, got {ln.shape} and {y.shape}")
    level, slope_two = _line(ln, y, 2.01)
    _, slope_one = _line(ln, y, 1.01)
    return np.array([level, slope_two, slope_one, level - y[0], ln[-1], ln[-1] - ln[0]])


def _line(ln: np.ndarray, y: np.ndarray, doublings: float) -> tuple[float, float]:
    """Level at the last size and slope per doubling of the least-squares line over the last
    ``doublings`` doublings (at least the last two points)."""
    use = ln >= ln[-1] - doublings
    if use.sum() < 2:
        use[-2:] = True
    x = ln[use] - ln[-1]
    design = np.stack([np.ones_like(x), x], axis=1)
    (level, slope), *_ = np.linalg.lstsq(design, y[use], rcond=None)
    return float(level), float(slope)


class NothingToLearnError(ValueError):
    """No library curve is measured past a cut: there are no gains to learn from."""


class GainModel:
    """Predicts a curve's later course from its start; fitted on measured library curves.

    Parameters
    ----------
    measured : sequence of (sizes, means) pairs
        Measured curves: distinct ascending sizes and the mean AUC at each.
    """

    def __init__(self, measured) -> None:
        from sklearn.linear_model import Ridge
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import PolynomialFeatures, StandardScaler

        rows, gains = _training_rows(measured)
        if not rows:
            raise NothingToLearnError(f"no library curve is measured past a cut in {CUTS}: nothing to learn gains from")
        X = np.array(rows)
        self.n_rows_ = len(rows)
        self.max_ratio_ = float(X[:, -1].max())
        self.model_ = make_pipeline(StandardScaler(), PolynomialFeatures(DEGREE), Ridge(RIDGE_ALPHA)).fit(
            X, np.array(gains)
        )

    def curve(self, sizes: Any, means: Any, at: Any) -> np.ndarray:
        """Predicted AUC at sizes ``at`` (array-like of shape (m,), each >= the last observed
        size), shape (m,): the observed level plus the predicted gain, non-decreasing in ``at``."""
        sizes = np.asarray(sizes, dtype=np.float64)
        at = np.asarray(at, dtype=np.float64)
        features = curve_features(sizes, means)
        ratio = np.log2(np.maximum(at / sizes[-1], 1.0))
        rows = np.column_stack([np.tile(features, (len(at), 1)), np.minimum(ratio, self.max_ratio_)])
        gains = np.where(ratio > 0, np.clip(self.model_.predict(rows), 0.0, 1.0 - features[0]), 0.0)
        order = np.argsort(at, kind="stable")
        out = np.empty_like(gains)
        out[order] = np.maximum.accumulate(features[0] + gains[order])
        return np.clip(out, 0.0, 1.0)


def _training_rows(measured) -> tuple[list[list[float]], list[float]]:
    rows: list[list[float]] = []
    gains: list[float] = []
    for sizes, means in measured:
        sizes = np.asarray(sizes, dtype=np.float64)
        means = np.asarray(means, dtype=np.float64)
        best = np.maximum.accumulate(means)
        for cut in CUTS:
            seen = np.flatnonzero(sizes <= cut * 1.01)
            if len(seen) < 3 or not math.isclose(sizes[seen[-1]], cut, rel_tol=0.02):
                continue
            features = curve_features(sizes[seen], means[seen])
            for j in range(seen[-1] + 1, len(sizes)):
                rows.append([*features, math.log2(sizes[j] / sizes[seen[-1]])])
                gains.append(float(best[j] - features[0]))
    return rows, gains


_lock = threading.Lock()


def gain_model_for(prior) -> GainModel | None:
    """The gain model of ``prior`` (a :class:`~backend.curve_prior.CurvePrior`), fitted once;
    ``None`` when the prior holds no curve measured past a cut (a hand-made library without
    measurements): the forecast is then the analog mixture alone."""
    with _lock:
        return _cached(prior)


@functools.lru_cache(maxsize=8)
def _cached(prior) -> GainModel | None:
    try:
        return GainModel(prior.measured)
    except NothingToLearnError:
        return None
