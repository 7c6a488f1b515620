"""A prior over learning-curve shapes, learned from real learning curves.

A three-parameter curve fitted to a few noisy points cannot pin its own shape down; a library
of real curves can. :class:`CurvePrior` holds ``K`` real learning curves (LCDB, even OpenML ids
only; ``scripts/build_curve_prior.py`` regenerates the shipped file), each tabulated on one
log-spaced grid of training sizes from 1 to 2**20 (``GRID``): measured values inside the
measured range, the curve's own power-law fit outside it, made non-decreasing.

:func:`posterior` forecasts a new curve by analogy. For library curve ``k`` the new curve is
``f_k(n) + delta_k``: the same shape, shifted in level. Given the observed mean AUCs ``y_j`` at
sizes ``n_j`` with variances ``v_j`` (plus ``noise_floor**2``) and a Gaussian prior
``delta ~ N(0, tau**2)``, the posterior of ``delta_k`` is closed form, and curve ``k`` is
weighted by its evidence (tempered by ``temperature``). The forecast is the weighted mixture of
the shifted library curves; interval draws pick a curve by weight and its shift from its
posterior, widened by ``spread``. The settings were chosen by grouped cross-validation over
LCDB datasets (``benchmarks/forecast_accuracy.py --lcdb``).

Pure numpy. The shipped prior is package data (``backend/data/curve_prior.json``), read with
:mod:`importlib.resources`.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np

__all__ = ["CurvePrior", "Posterior", "posterior", "load_default_prior", "GRID", "PRIOR_RESOURCE", "SETTINGS"]

# Training sizes every library curve is tabulated at: 1 to 2**20 in steps of sqrt(2).
GRID = np.geomspace(1.0, 2.0**20, 41)
LOG_GRID = np.log(GRID)
PRIOR_RESOURCE = "data/curve_prior.json"
FORMAT = "labelcast-curve-prior/2"
# The tunable settings and their defaults (the values chosen by grouped cross-validation).
SETTINGS = {"tau": 0.1, "noise_floor": 0.005, "temperature": 0.6, "spread": 2.5, "draw_temperature": 4.0}
# Library curves whose weight is below this share of the largest are dropped from the mixture.
_PRUNE = 1e-6
_MAX_COMPONENTS = 96


@dataclass(frozen=True, eq=False)
class CurvePrior:
    """A library of real learning curves on :data:`GRID` and the settings of the analogy.

    Attributes
    ----------
    curves : ndarray of shape (K, len(GRID))
        Each library curve's AUC at every grid size, non-decreasing, in [0, 1].
    tau : float
        Prior standard deviation of a new curve's level shift from a library curve.
    noise_floor : float
        Standard deviation added to every observed mean (misfit, correlated repeats).
    temperature : float
        Evidence tempering: below 1 sharpens the weights over library curves.
    spread : float
        Scale of each shift's posterior standard deviation in interval draws.
    draw_temperature : float
        Interval draws pick library curves with weights ``w ** (1 / draw_temperature)``:
        above 1 the intervals allow more shapes than the point forecast leans on.
    measured_from : float
        The smallest training size measured in the library (LCDB: 16). Below it the library
        curves are extrapolations, so observed points there are matched only when fewer than
        two sizes lie above it.
    measured : tuple of (ndarray, ndarray)
        Each library curve as measured: its distinct sizes, ascending, and the mean AUC at each
        (no extrapolation, no running maximum). What :mod:`backend.curve_gain` learns from.
    source : dict
        How the prior was made (data, learners, ids, settings); informational.
    """

    curves: np.ndarray
    tau: float = SETTINGS["tau"]
    noise_floor: float = SETTINGS["noise_floor"]
    temperature: float = SETTINGS["temperature"]
    spread: float = SETTINGS["spread"]
    draw_temperature: float = SETTINGS["draw_temperature"]
    measured_from: float = 1.0
    measured: tuple = ()
    source: dict = field(default_factory=dict)

    def __post_init__(self):
        curves = np.asarray(self.curves, dtype=np.float64)
        if curves.ndim != 2 or curves.shape[1] != len(GRID) or len(curves) == 0:
            raise ValueError(f"curves must have shape (K, {len(GRID)}) with K >= 1, got {curves.shape}")
        if not np.all(np.isfinite(curves)) or curves.min() < 0 or curves.max() > 1:
            raise ValueError("library curves must be finite AUCs in [0, 1]")
        if np.any(np.diff(curves, axis=1) < 0):
            raise ValueError("library curves must be non-decreasing in the training size")
        for name in (*SETTINGS, "measured_from"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        object.__setattr__(self, "curves", curves)
        object.__setattr__(self, "measured", tuple(_check_measured(pair) for pair in self.measured))

    def to_json(self) -> str:
        """Deterministic JSON text (AUCs to 5 decimals): the shipped file's exact bytes."""
        doc = {
            "format": FORMAT,
            "grid": [float(f"{g:.6g}") for g in GRID],
            "settings": {name: float(getattr(self, name)) for name in SETTINGS},
            "measured_from": float(self.measured_from),
            "source": self.source,
            "curves": [[round(v, 5) for v in row] for row in self.curves.tolist()],
            "measured": [
                [[float(f"{n:.6g}") for n in sizes.tolist()], [round(v, 5) for v in means.tolist()]]
                for sizes, means in self.measured
            ],
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n"

    @classmethod
    def from_json(cls, text: str) -> CurvePrior:
        """Parse :meth:`to_json` output; anything else raises ``ValueError`` saying what."""
        doc = json.loads(text)
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
            raise ValueError(f"not a LabelCast curve prior: format {found!r}, expected {FORMAT!r}")
        grid = np.asarray(doc.get("grid", []), dtype=np.float64)
        if grid.shape != GRID.shape or not np.allclose(grid, GRID, rtol=1e-5):
            raise ValueError("curve prior tabulated on another grid of sizes than this code's GRID")
        return cls(
            curves=np.array(doc["curves"], dtype=np.float64),
            measured_from=float(doc.get("measured_from", 1.0)),
            measured=tuple((sizes, means) for sizes, means in doc.get("measured", [])),
            source=doc.get("source", {}),
            **doc["settings"],
        )


def _check_measured(pair) -> tuple[np.ndarray, np.ndarray]:
    sizes, means = (np.asarray(a, dtype=np.float64) for a in pair)
    if sizes.ndim != 1 or sizes.shape != means.shape or len(sizes) < 2:
        raise ValueError(
            f"a measured curve needs 1-D sizes and means of equal length >= 2, got {sizes.shape}, {means.shape}"
        )
    if np.any(np.diff(sizes) <= 0) or sizes[0] < 1:
        raise ValueError("a measured curve's sizes must be >= 1 and strictly increasing")
    if not np.all(np.isfinite(means)) or means.min() < 0 or means.max() > 1:
        raise ValueError("a measured curve's means must be finite AUCs in [0, 1]")
    return sizes, means


@functools.lru_cache(maxsize=1)
def load_default_prior() -> CurvePrior:
    """The prior shipped with the package (read once per process)."""
    text = resources.files("backend").joinpath(PRIOR_RESOURCE).read_text(encoding="utf-8")
    return CurvePrior.from_json(text)


@dataclass(frozen=True, eq=False)
class Posterior:
    """The weighted, shifted library curves that make a forecast.

    Attributes
    ----------
    curves : ndarray of shape (m, len(GRID))
        The kept library curves (unshifted).
    weights : ndarray of shape (m,)
    shifts : ndarray of shape (m,)
        Posterior mean of each curve's level shift.
    shift_sd : float
        Posterior standard deviation of a shift (the same for every curve).
    """

    curves: np.ndarray
    weights: np.ndarray
    shifts: np.ndarray
    shift_sd: float

    def mean_curve(self) -> np.ndarray:
        """The forecast curve on :data:`GRID`, shape (len(GRID),): the weighted mixture."""
        return self.weights @ np.clip(self.curves + self.shifts[:, None], 0.0, 1.0)

    def sample(self, n_draws: int, spread: float, rng: np.random.Generator, flatten: float = 1.0) -> np.ndarray:
        """``n_draws`` curves drawn from the mixture, shape (n_draws, len(GRID)).

        Curves are picked with weights ``weights ** (1 / flatten)`` and shifted by their
        posterior mean plus ``spread`` times its standard deviation times a normal draw.
        """
        p = self.weights ** (1.0 / flatten)
        k = rng.choice(len(self.weights), size=n_draws, p=p / p.sum())
        shift = self.shifts[k] + spread * self.shift_sd * rng.standard_normal(n_draws)
        return np.clip(self.curves[k] + shift[:, None], 0.0, 1.0)


def posterior(prior: CurvePrior, sizes: Any, means: Any, variances: Any) -> Posterior:
    """Weight and shift the library curves by how well they match the observed points.

    Parameters
    ----------
    prior : CurvePrior
    sizes : array-like of shape (J,)
        Distinct training sizes (>= 1).
    means : array-like of shape (J,)
        Mean AUC at each size.
    variances : array-like of shape (J,)
        Variance of each mean (``noise_floor**2`` is added here).

    Returns
    -------
    Posterior
    """
    log_n = np.log(np.asarray(sizes, dtype=np.float64))
    y = np.asarray(means, dtype=np.float64)
    inv_v = 1.0 / (np.asarray(variances, dtype=np.float64) + prior.noise_floor**2)
    at_sizes = np.stack([np.interp(log_n, LOG_GRID, curve) for curve in prior.curves])  # (K, J)
    resid = y[None, :] - at_sizes
    precision = inv_v.sum() + 1.0 / prior.tau**2
    shifts = (resid * inv_v).sum(axis=1) / precision
    misfit = (((resid - shifts[:, None]) ** 2) * inv_v).sum(axis=1) + shifts**2 / prior.tau**2
    log_w = -0.5 * misfit / prior.temperature
    w = np.exp(log_w - log_w.max())
    keep = np.flatnonzero(w >= _PRUNE * w.max())
    keep = keep[np.argsort(-w[keep], kind="stable")][:_MAX_COMPONENTS]
    return Posterior(
        curves=prior.curves[keep],
        weights=w[keep] / w[keep].sum(),
        shifts=shifts[keep],
        shift_sd=float(1.0 / math.sqrt(precision)),
    )
