"""Turn measured learning curves into the library of a :class:`~backend.curve_prior.CurvePrior`.

Each curve (mean AUC at distinct training sizes) is tabulated on :data:`~backend.curve_prior.GRID`:

* inside the measured range, the measured means, interpolated linearly in log-size;
* below the smallest size, the curve's power-law fit (``pow3`` on all its points), shifted to
  meet the first measured mean, and no lower than chance (0.5, or the first mean if lower);
* above the largest size, the power-law fit of its tail (sizes >= 128 where it has 3 of them,
  else all points), shifted to meet the last measured mean;

then clipped to [0, 1] and made non-decreasing (a running maximum): more labels never make the
forecast worse, and a dip in a measured curve is noise of its splits.

Used by ``scripts/build_curve_prior.py`` (the shipped prior) and by the grouped
cross-validation in ``benchmarks/forecast_accuracy.py``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from backend.curve import fit_learning_curve
from backend.curve_prior import GRID, LOG_GRID, SETTINGS, CurvePrior

__all__ = ["tabulate_curve", "build_prior", "MIN_SIZES", "TAIL_FROM"]

MIN_SIZES = 4  # a library curve needs this many measured sizes
TAIL_FROM = 128  # sizes from which the extrapolating tail is fitted


def tabulate_curve(sizes: Any, means: Any) -> np.ndarray:
    """One measured curve on :data:`GRID`, shape (len(GRID),); see the module docstring.

    Raises
    ------
    ValueError
        Fewer than :data:`MIN_SIZES` distinct sizes, repeated sizes, or values out of range.
    """
    sizes = np.asarray(sizes, dtype=np.float64)
    means = np.asarray(means, dtype=np.float64)
    if sizes.ndim != 1 or sizes.shape != means.shape or len(np.unique(sizes)) != len(sizes):
        raise ValueError("sizes and means must be 1-D of equal length with distinct sizes")
    if len(sizes) < MIN_SIZES:
        raise ValueError(f"a library curve needs at least {MIN_SIZES} sizes, got {len(sizes)}")
    order = np.argsort(sizes)
    sizes, means = sizes[order], means[order]
    whole = fit_learning_curve(sizes, means, method="pow3", n_boot=0)
    tail_mask = sizes >= TAIL_FROM
    tail = (
        fit_learning_curve(sizes[tail_mask], means[tail_mask], method="pow3", n_boot=0)
        if tail_mask.sum() >= 3
        else whole
    )
    out = np.interp(LOG_GRID, np.log(sizes), means)
    below, above = GRID < sizes[0], GRID > sizes[-1]
    if below.any():
        head = whole.predict(GRID[below]) - whole.predict([sizes[0]])[0] + means[0]
        out[below] = np.maximum(head, min(0.5, means[0]))
    if above.any():
        out[above] = tail.predict(GRID[above]) - tail.predict([sizes[-1]])[0] + means[-1]
    return np.maximum.accumulate(np.clip(out, 0.0, 1.0))


def _sorted(sizes: np.ndarray, means: Any) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(sizes)
    return sizes[order], np.asarray(means, dtype=np.float64)[order]


def build_prior(curves: Iterable[tuple[Any, Any]], source: dict | None = None, **settings) -> CurvePrior:
    """A prior whose library is ``curves``: an iterable of ``(sizes, means)`` pairs.

    Curves with fewer than :data:`MIN_SIZES` sizes are left out. ``settings`` override
    :data:`~backend.curve_prior.SETTINGS`.
    """
    kept = [_sorted(np.asarray(s, dtype=np.float64), m) for s, m in curves if len(s) >= MIN_SIZES]
    if not kept:
        raise ValueError(f"no curve with at least {MIN_SIZES} sizes to build a prior from")
    return CurvePrior(
        curves=np.stack([tabulate_curve(s, m) for s, m in kept]),
        measured_from=float(min(s[0] for s, _ in kept)),
        measured=tuple(kept),
        source=dict(source or {}),
        **(SETTINGS | settings),
    )
