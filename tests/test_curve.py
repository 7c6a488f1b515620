"""Tests of backend.curve: fitting AUC(n) = a - b * n**(-c)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from backend.curve import DEFAULT_METHOD, METHODS, fit_learning_curve, pow3

SIZES = np.repeat([10, 20, 40, 80, 160, 320], 8).astype(float)


def _points(a, b, c, noise, seed=0, sizes=SIZES):
    rng = np.random.default_rng(seed)
    scores = np.clip(pow3(sizes, a, b, c) + rng.normal(0, noise, len(sizes)), 0, 1)
    return sizes, scores


@pytest.mark.parametrize("method", METHODS)
def test_recovers_known_curve(method):
    """A curve sampled from known parameters with little noise is recovered."""
    sizes, scores = _points(0.92, 0.9, 0.6, 0.005)
    fit = fit_learning_curve(sizes, scores, method=method, n_boot=50)
    assert fit.plateau == pytest.approx(0.92, abs=0.02)
    assert fit.predict([1000])[0] == pytest.approx(pow3(1000, 0.92, 0.9, 0.6), abs=0.015)


def test_default_is_the_ensemble():
    """The default method forecasts from the learned prior of real curves (analog + gain model)."""
    assert DEFAULT_METHOD == "ensemble"


@pytest.mark.parametrize("method", METHODS)
def test_labels_for_inverts_predict(method):
    """predict(labels_for(t)) >= t and predict(labels_for(t) - 1) < t."""
    sizes, scores = _points(0.9, 0.8, 0.5, 0.01)
    fit = fit_learning_curve(sizes, scores, method=method, n_boot=0)
    target = float(fit.predict([500])[0])
    n = fit.labels_for(target)
    assert math.isfinite(n)
    assert fit.predict([n])[0] >= target
    assert n == 1 or fit.predict([n - 1])[0] < target


@pytest.mark.parametrize("method", METHODS)
def test_labels_for_unreachable_is_inf(method):
    """A target at or above the plateau needs infinitely many labels."""
    fit = fit_learning_curve(*_points(0.85, 0.5, 0.5, 0.01), method=method, n_boot=0)
    assert fit.labels_for(fit.plateau) == math.inf
    assert fit.labels_for(min(0.999, fit.plateau + 0.05)) == math.inf


@pytest.mark.parametrize("method", ["ensemble", "analog"])
def test_labels_needed_is_the_median_over_the_draws_that_reach_the_target(method):
    """At the mixture's own plateau (which the mixture never crosses before the grid ends) part of
    the draws still reach the target: the labels needed is their median, within the interval."""
    from backend.curve import REACH_SHARE

    fit = fit_learning_curve(*_points(0.85, 0.8, 0.5, 0.01), method=method, n_boot=200, seed=3)
    target = fit.plateau
    needed_now = fit.labels_for(target)
    reaching = []
    for draw in fit.draws:
        above = np.flatnonzero(draw >= target)
        if above.size and above[0] < len(draw) - 1:
            reaching.append(above[0])
    share = fit.reach_share(target)
    assert share == pytest.approx(len(reaching) / len(fit.draws))
    assert REACH_SHARE <= share < 1.0
    assert math.isfinite(needed_now) and fit.predict([needed_now])[0] < target  # not the mixture's crossing
    low, high = fit.labels_interval(target)
    assert low <= needed_now <= high
    # Exactly half of the reaching draws need at most that many labels, at most half fewer.
    needed = np.array([_draw_labels(d, target) for d in fit.draws])
    needed = needed[np.isfinite(needed)]
    assert np.mean(needed <= needed_now) >= 0.5 and np.mean(needed < needed_now) <= 0.5


@pytest.mark.parametrize("target", [0.8, 0.84, 0.995])
def test_pooled_labels_come_from_the_shape_draws_and_lie_in_the_interval(target):
    """The product's curve (pooled): the intervals carry the pool's luck, the labels needed and
    the reach share come from the same draws without it, and the interval holds the figure."""
    fit = fit_learning_curve(*_points(0.85, 0.8, 0.5, 0.02), n_boot=200, seed=4, pooled=True)
    assert not np.array_equal(fit.draws, fit.shape_draws)
    needed = np.array([_draw_labels(d, target) for d in fit.shape_draws])
    reached = needed[np.isfinite(needed)]
    assert fit.reach_share(target) == pytest.approx(reached.size / needed.size)
    if reached.size >= 0.1 * needed.size:
        assert fit.labels_for(target) == np.quantile(reached, 0.5, method="higher")
        low, high = fit.labels_interval(target)
        assert low <= fit.labels_for(target) <= high
    else:
        assert fit.labels_for(target) == math.inf


def _draw_labels(draw, target):
    from backend.curve import _table_labels_for

    return _table_labels_for(draw, target)


@pytest.mark.parametrize("method", METHODS)
def test_a_target_far_above_the_data_is_never_reached(method):
    """Far above the data: fewer than REACH_SHARE of the draws (or bootstrap refits) reach it and
    labels needed is infinite (for the analog methods because of REACH_SHARE, for the power laws
    because their fitted plateau is below it); a target below the data is reached by all."""
    from backend.curve import REACH_SHARE

    fit = fit_learning_curve(*_points(0.8, 0.5, 0.5, 0.01), method=method, n_boot=40, seed=1)
    assert fit.reach_share(0.999) < REACH_SHARE
    assert fit.labels_for(0.999) == math.inf
    assert fit.reach_share(0.55) == 1.0


def test_labels_for_already_reached_is_one():
    """A target below the curve at n = 1 needs one label."""
    fit = fit_learning_curve(*_points(0.9, 0.1, 0.5, 0.002), n_boot=0)
    assert fit.labels_for(0.6) == 1


def test_intervals_are_ordered_and_contain_estimate():
    """Bootstrap intervals are ordered and bracket the point estimate."""
    fit = fit_learning_curve(*_points(0.9, 0.8, 0.5, 0.03), n_boot=100, seed=1)
    low, high = fit.interval([50, 500, 5000])
    pred = fit.predict([50, 500, 5000])
    assert np.all(low <= high)
    assert np.all(low <= pred + 0.01) and np.all(pred - 0.01 <= high)
    p_low, p_high = fit.plateau_interval(0.9)
    assert p_low <= fit.plateau + 0.01 and fit.plateau - 0.01 <= p_high <= 1.0
    n_low, n_high = fit.labels_interval(0.85)
    assert n_low <= n_high


def test_wider_level_gives_wider_interval():
    """A 99 % interval is at least as wide as a 50 % one."""
    fit = fit_learning_curve(*_points(0.9, 0.8, 0.5, 0.03), n_boot=100)
    lo50, hi50 = fit.interval([300], 0.5)
    lo99, hi99 = fit.interval([300], 0.99)
    assert lo99[0] <= lo50[0] and hi99[0] >= hi50[0]


def test_same_seed_same_fit():
    """The bootstrap is deterministic for a seed."""
    pts = _points(0.9, 0.8, 0.5, 0.03)
    a = fit_learning_curve(*pts, seed=3)
    b = fit_learning_curve(*pts, seed=3)
    assert a.plateau_interval() == b.plateau_interval()


@pytest.mark.parametrize(
    "sizes, scores, message",
    [
        pytest.param([10, 20], [0.7, 0.8], "equal length|3 distinct", id="too-few-points"),
        pytest.param([10, 10, 20, 20], [0.7, 0.7, 0.8, 0.8], "3 distinct", id="two-sizes"),
        pytest.param([10, 20, 40], [0.7, 0.8], "equal length", id="mismatched"),
        pytest.param([10, 20, np.nan], [0.7, 0.8, 0.9], "NaN", id="nan-size"),
        pytest.param([10, 20, 40], [0.7, np.inf, 0.9], "NaN or inf", id="inf-score"),
        pytest.param([10, 20, 40], [0.7, 1.2, 0.9], r"\[0, 1\]", id="score-above-1"),
        pytest.param([10, 20, 40], [-0.1, 0.8, 0.9], r"\[0, 1\]", id="score-below-0"),
        pytest.param([0, 20, 40], [0.7, 0.8, 0.9], ">= 1", id="size-zero"),
        pytest.param([[10, 20, 40]], [[0.7, 0.8, 0.9]], "1-D", id="two-d"),
        pytest.param(["a", "b", "c"], [0.7, 0.8, 0.9], "numeric", id="strings"),
    ],
)
def test_bad_input_raises_value_error(sizes, scores, message):
    """Bad input raises ValueError naming the problem."""
    with pytest.raises(ValueError, match=message):
        fit_learning_curve(sizes, scores)


def test_unknown_method_raises():
    """An unknown method name is refused with the allowed ones listed."""
    with pytest.raises(ValueError, match="pow3-bma"):
        fit_learning_curve([10, 20, 40], [0.7, 0.8, 0.9], method="magic")


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    "scores",
    [
        pytest.param([0.8, 0.8, 0.8, 0.8], id="flat"),
        pytest.param([0.9, 0.8, 0.7, 0.6], id="decreasing"),
        pytest.param([0.5, 0.5, 0.5, 0.5], id="chance"),
        pytest.param([1.0, 1.0, 1.0, 1.0], id="perfect"),
        pytest.param([0.0, 1.0, 0.0, 1.0], id="zigzag"),
    ],
)
def test_degenerate_curves_do_not_raise(method, scores):
    """Flat, decreasing and noisy curves fit without error and stay within bounds."""
    fit = fit_learning_curve([5, 10, 20, 40], scores, method=method, n_boot=20)
    assert 0.0 <= fit.plateau <= 1.0
    assert np.all(np.isfinite(fit.predict([1, 10, 1e6])))
    fit.labels_for(0.9)
    fit.labels_interval(0.9)


point_lists = st.integers(3, 7).flatmap(
    lambda k: st.tuples(
        st.lists(st.integers(1, 5000), min_size=k, max_size=k, unique=True),
        st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=k, max_size=k),
    )
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(point_lists, st.sampled_from(METHODS))
def test_never_raises_on_valid_input(points, method):
    """Any valid set of points fits, with finite predictions inside [0, 1] at the plateau."""
    sizes, scores = points
    fit = fit_learning_curve(sizes, scores, method=method, n_boot=5)
    assert 0.0 <= fit.plateau <= 1.0
    assert np.all(np.isfinite(fit.predict([1, 100, 10**6])))


@settings(max_examples=40, deadline=None)
@given(
    a=st.floats(0.7, 0.99),
    b=st.floats(0.2, 3.0),
    c=st.floats(0.2, 1.2),
    seed=st.integers(0, 1000),
)
def test_property_recovers_sampled_curve(a, b, c, seed):
    """Curves sampled from known parameters with small noise are recovered near the data."""
    assume(pow3(10, a, b, c) >= 0.5)  # an AUC curve starts at chance or above
    sizes, scores = _points(a, b, c, 0.004, seed=seed)
    fit = fit_learning_curve(sizes, scores, n_boot=0)
    truth = pow3([20, 160, 640], a, b, c)
    np.testing.assert_allclose(fit.predict([20, 160, 640]), np.clip(truth, 0, 1), atol=0.03)


@settings(max_examples=40, deadline=None)
@given(a=st.floats(0.75, 0.99), b=st.floats(0.2, 3.0), c=st.floats(0.2, 1.2), t=st.floats(0.05, 0.95))
def test_property_labels_for_and_predict_are_inverse(a, b, c, t):
    """For any reachable target, labels_for is the smallest n with predict(n) >= target."""
    assume(pow3(10, a, b, c) >= 0.5)
    fit = fit_learning_curve(*_points(a, b, c, 0.004), n_boot=0)
    target = float(fit.predict([1])[0] + t * (fit.plateau - fit.predict([1])[0]))
    if not 0 < target < 1:
        return
    n = fit.labels_for(target)
    if math.isinf(n):
        assert target >= fit.plateau - 1e-9 or fit.predict([1e9])[0] < target
        return
    assert fit.predict([n])[0] >= target
    assert n == 1 or fit.predict([n - 1])[0] < target
