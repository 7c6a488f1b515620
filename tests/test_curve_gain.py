"""Tests of backend.curve_gain: the gain model learned from measured library curves."""

from __future__ import annotations

import numpy as np
import pytest

from backend.curve import fit_learning_curve
from backend.curve_gain import N_FEATURES, GainModel, curve_features, gain_model_for
from backend.curve_library import build_prior
from backend.curve_prior import CurvePrior, load_default_prior

SIZES = np.array([16, 23, 32, 45, 64, 91, 128, 181, 256, 362, 512, 724, 1024, 1448, 2048], dtype=float)


def _library(n_curves=60, seed=0):
    """Power-law curves whose gain after 64 labels grows with their slope before it."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_curves):
        a, b, c = rng.uniform(0.75, 0.98), rng.uniform(0.3, 3.0), rng.uniform(0.3, 0.9)
        out.append((SIZES, np.clip(a - b * SIZES ** (-c), 0.5, 1.0)))
    return out


def test_features_of_a_straight_line_in_log_size():
    """On AUC = 0.6 + 0.05 * log2(n) the level is the last point and both slopes are 0.05 per doubling."""
    sizes = np.array([16, 32, 64, 128], dtype=float)
    f = curve_features(sizes, 0.6 + 0.05 * np.log2(sizes))
    assert f.shape == (N_FEATURES,)
    assert f[0] == pytest.approx(0.6 + 0.05 * 7)
    assert f[1] == pytest.approx(0.05) and f[2] == pytest.approx(0.05)
    assert f[3] == pytest.approx(0.15) and f[4] == pytest.approx(7) and f[5] == pytest.approx(3)


@pytest.mark.parametrize("sizes, means", [([16], [0.7]), ([16, 32], [0.7]), ([[16, 32]], [[0.7, 0.8]])])
def test_features_refuse_bad_shapes(sizes, means):
    """Fewer than two points or mismatched shapes raise a ValueError naming the shapes."""
    with pytest.raises(ValueError, match="at least 2"):
        curve_features(sizes, means)


def test_the_model_learns_the_library_gains():
    """Cut at 64 labels, held-out curves of the same family are forecast at 1,024 with less than
    half the error of "the AUC stays where it is"."""
    model = GainModel(_library())
    errors, naive = [], []
    for sizes, means in _library(20, seed=1):
        seen = sizes <= 64
        predicted = model.curve(sizes[seen], means[seen], [1024.0])[0]
        errors.append(abs(predicted - means[sizes == 1024][0]))
        naive.append(abs(means[sizes == 64][0] - means[sizes == 1024][0]))
    assert np.mean(errors) < 0.5 * np.mean(naive)


def test_the_forecast_never_falls_and_starts_at_the_level():
    """More labels never lower the predicted AUC; at the last observed size it is the observed level."""
    model = GainModel(_library())
    sizes, means = _library(1, seed=2)[0]
    seen = sizes <= 64
    at = np.array([4096.0, 64.0, 128.0, 1e6, 90.0])
    curve = model.curve(sizes[seen], means[seen], at)
    order = np.argsort(at)
    assert np.all(np.diff(curve[order]) >= 0)
    assert curve[1] == pytest.approx(curve_features(sizes[seen], means[seen])[0])


def test_the_model_is_deterministic():
    """The same library gives the same predictions."""
    sizes, means = _library(1, seed=3)[0]
    one = GainModel(_library()).curve(sizes[:5], means[:5], [500.0, 2000.0])
    two = GainModel(_library()).curve(sizes[:5], means[:5], [500.0, 2000.0])
    assert np.array_equal(one, two)


def test_a_library_measured_only_up_to_the_cuts_is_refused():
    """Curves that end before any cut give no training rows: a clear error, not an empty model."""
    with pytest.raises(ValueError, match="nothing to learn gains from"):
        GainModel([(np.array([16.0, 23.0, 32.0]), np.array([0.6, 0.65, 0.7]))])


def test_one_model_per_prior():
    """The model of a prior is fitted once and reused."""
    prior = build_prior(_library(12))
    assert gain_model_for(prior) is gain_model_for(prior)


def test_the_shipped_prior_carries_its_measured_curves():
    """Every library curve's measurements ship with the prior, within LCDB's sizes."""
    prior = load_default_prior()
    assert len(prior.measured) == len(prior.curves)
    for sizes, means in prior.measured:
        assert sizes[0] >= 16 and np.all(np.diff(sizes) > 0) and np.all((means >= 0) & (means <= 1))


@pytest.mark.parametrize(
    "measured, message",
    [
        pytest.param([([16, 32], [0.7])], "equal length", id="lengths"),
        pytest.param([([32, 16], [0.7, 0.8])], "strictly increasing", id="order"),
        pytest.param([([16, 32], [0.7, 1.2])], "AUCs in", id="range"),
    ],
)
def test_bad_measured_curves_are_refused(measured, message):
    """A prior with a malformed measured curve is refused with a message saying what is wrong."""
    with pytest.raises(ValueError, match=message):
        CurvePrior(curves=load_default_prior().curves[:1], measured=measured)


def test_the_ensemble_moves_the_forecast_towards_the_gain_model():
    """The default forecast lies between the analog mixture and the gain model beyond the data,
    and its interval still holds its point forecast."""
    prior = build_prior(_library())
    sizes, means = _library(1, seed=4)[0]
    seen = sizes <= 64
    points = np.repeat(sizes[seen], 4)
    scores = np.repeat(means[seen], 4) + np.tile([-0.004, -0.001, 0.001, 0.004], seen.sum())
    analog = fit_learning_curve(points, scores, method="analog", prior=prior, n_boot=100)
    ensemble = fit_learning_curve(points, scores, method="ensemble", prior=prior, n_boot=100)
    gained = gain_model_for(prior).curve(sizes[seen], means[seen], [2048.0])[0]
    lo, hi = sorted((analog.predict([2048])[0], gained))
    assert lo - 0.005 <= ensemble.predict([2048])[0] <= hi + 0.005
    i_lo, i_hi = ensemble.interval([2048])
    assert i_lo[0] <= ensemble.predict([2048])[0] <= i_hi[0]
    assert ensemble.method == "ensemble"


def test_a_prior_without_measured_curves_forecasts_by_analogy_alone():
    """The default method on a hand-made library with no measurements to learn gains from does
    not raise: it is the analog mixture (valid input never raises)."""
    prior = CurvePrior(curves=load_default_prior().curves[:20])
    assert gain_model_for(prior) is None
    sizes = np.repeat([16.0, 32.0, 64.0], 3)
    scores = np.repeat([0.70, 0.75, 0.78], 3) + np.tile([-0.01, 0.0, 0.01], 3)
    fit = fit_learning_curve(sizes, scores, prior=prior, n_boot=20)
    assert fit.method == "analog" and 0.78 <= fit.predict([1000])[0] <= 1.0
