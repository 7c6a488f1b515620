"""Tests of the model-based project AUC (calibrated probabilities for the unlabeled rows)."""

from __future__ import annotations

import numpy as np
import pytest

from backend.metrics import roc_auc
from backend.pool_auc import (
    PoolLabels,
    calibrate_pool,
    fold_logits,
    optimistic,
    pessimistic,
    prequential_logits,
    project_auc,
    soft_auc,
)
from backend.probe import fit_probe
from backend.selection_bias import estimate_selection_bias
from conftest import logistic_population, near_boundary_sample, rotation


def test_soft_auc_with_hard_labels_is_the_auc():
    """With 0/1 probabilities (and with row weights) the soft AUC is the ordinary one."""
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    s = y + rng.normal(size=300)
    s[:20] = s[20:40]  # some ties
    w = rng.uniform(0.2, 3.0, 300)
    assert soft_auc(s, y.astype(float)) == pytest.approx(roc_auc(y, s))
    assert soft_auc(s, y.astype(float), w) == pytest.approx(roc_auc(y, s, w))


def test_soft_auc_is_the_expected_auc_over_drawn_labels():
    """The soft AUC is (nearly) the mean AUC over labels drawn from the probabilities."""
    rng = np.random.default_rng(2)
    s = rng.normal(size=400)
    p = 1 / (1 + np.exp(-2 * s))
    drawn = [roc_auc(rng.random(400) < p, s) for _ in range(400)]
    assert soft_auc(s, p) == pytest.approx(np.mean(drawn), abs=0.005)


@pytest.mark.parametrize("isotonic_share, within", [(0.0, 0.02), (1.0, 0.03)], ids=["platt", "isotonic"])
def test_model_based_estimate_recovers_the_pool_auc_where_the_weights_do_not(isotonic_share, within):
    """Labels chosen near the boundary: the calibrated model's estimate of a probe's AUC on the
    whole population is within 0.02 of the truth with Platt's map (the true link here is
    logistic) and within 0.03 with the isotonic one; the labeled rows' AUC and the old
    importance-weighted one are further off than 0.05."""
    X, y, rng = logistic_population(4000)
    labeled, _ = near_boundary_sample(X, rng)
    XL, yL, pool = X[labeled], y[labeled], X[~labeled]
    half = rng.random(len(yL)) < 0.5  # a probe trained on half the labels, scored on the rest
    probe = fit_probe(XL[half], yL[half])
    held_out = ~half
    s_lab, s_pool = probe.decision_function(XL[held_out]), probe.decision_function(pool)
    stand_for = len(yL) / held_out.sum()  # each held-out labeled row stands for this many labels
    w_truth = np.r_[np.full(held_out.sum(), stand_for), np.ones(len(s_pool))]
    truth = roc_auc(np.r_[yL[held_out], y[~labeled]], np.r_[s_lab, s_pool], w_truth)
    labels = calibrate_pool(XL, yL, pool, seed=0, isotonic_share=isotonic_share)
    model = project_auc(yL[held_out], s_lab, s_pool, labels, labeled_weight=stand_for)
    bias = estimate_selection_bias(XL, yL, pool, seed=0)
    weighted = roc_auc(yL[held_out], s_lab, bias.weights[held_out])
    assert abs(model - truth) < within, (model, truth)
    assert abs(weighted - truth) > 0.05, (weighted, truth)
    assert abs(roc_auc(yL[held_out], s_lab) - truth) > 0.1
    # the calibrated probabilities are calibrated on the pool, where no label was seen
    assert abs(labels.p.mean() - y[~labeled].mean()) < 0.03


@pytest.mark.parametrize(
    "args, message",
    [
        pytest.param(dict(pool=np.zeros((30, 3))), "features", id="pool-width"),
        pytest.param(dict(pool=np.zeros((0, 6))), "empty", id="pool-empty"),
        pytest.param(dict(pool_size=3), "pool_size", id="pool-size"),
    ],
)
def test_bad_input_is_named(args, message):
    """A pool of the wrong width, an empty one or a pool_size below it raise, naming it."""
    X, y, _ = logistic_population(200)
    kwargs = dict(pool=X[100:])
    kwargs.update(args)
    with pytest.raises(ValueError, match=message):
        calibrate_pool(X[:100], y[:100], kwargs.pop("pool"), **kwargs)


def _model_error(X, y, labeled, noise_share, **calibration):
    """Model-based estimate of a half-trained probe's project AUC minus the truth (pool labels
    known here), the calibration's slope and the pool's mean probability."""
    XL, yL, pool = X[labeled], y[labeled], X[~labeled]
    half = np.random.default_rng(5).random(len(yL)) < 0.5
    probe = fit_probe(XL[half], yL[half])
    held_out = ~half
    s_lab, s_pool = probe.decision_function(XL[held_out]), probe.decision_function(pool)
    stand_for = len(yL) / held_out.sum()
    w_truth = np.r_[np.full(held_out.sum(), stand_for), np.ones(len(s_pool))]
    truth = roc_auc(np.r_[yL[held_out], y[~labeled]], np.r_[s_lab, s_pool], w_truth)
    labels = calibrate_pool(XL, yL, pool, seed=0, noise_share=noise_share, **calibration)
    error = project_auc(yL[held_out], s_lab, s_pool, labels, labeled_weight=stand_for) - truth
    return error, labels.slope, labels.p.mean()


def _errors(sample, noise_share):
    out = []
    for seed in range(6):
        X, y, rng = logistic_population(3000, d=20, seed=seed)
        out.append(_model_error(X, y, sample(X, rng), noise_share, isotonic_share=0.0))
    return np.asarray(out)


def _boundary(X, rng):
    return near_boundary_sample(X, rng, near=0.15, far=0.01)[0]  # about 160 labels, most near the boundary


def _random(X, rng):
    labeled = np.zeros(len(X), dtype=bool)
    labeled[rng.choice(len(X), 160, replace=False)] = True
    return labeled


def test_noise_correction_steepens_the_calibration_of_boundary_labels():
    """About 160 labels in 20 dimensions, most near the boundary: Platt scaling of the fold
    probes' noisy logits is too flat, and the project AUC comes out too low; the map corrected
    for half the logits' estimated noise (noise_share=0.5) is steeper on every draw and its error is smaller."""
    platt, corrected = _errors(_boundary, 0.0), _errors(_boundary, 0.5)
    assert np.all(corrected[:, 1] > 1.2 * platt[:, 1]), (platt[:, 1], corrected[:, 1])
    assert platt[:, 0].mean() < -0.09, platt[:, 0]
    assert corrected[:, 0].mean() > platt[:, 0].mean() + 0.03, (platt[:, 0], corrected[:, 0])
    assert abs(corrected[:, 0].mean()) < abs(platt[:, 0].mean())


def test_noise_correction_barely_moves_random_labels():
    """160 random labels: labeled and pool logits are alike, so the correction moves the estimate
    by less than 0.01 on average, and the pool's share of positives by less than 0.02 on each draw."""
    platt, corrected = _errors(_random, 0.0), _errors(_random, 0.5)
    assert abs(corrected[:, 0].mean() - platt[:, 0].mean()) < 0.01, (platt[:, 0], corrected[:, 0])
    assert np.all(np.abs(corrected[:, 2] - platt[:, 2]) < 0.02), (platt[:, 2], corrected[:, 2])


def test_noise_share_out_of_range_is_named():
    """A noise share outside [0, 1] raises, naming it."""
    X, y, _ = logistic_population(200)
    with pytest.raises(ValueError, match="noise_share"):
        calibrate_pool(X[:100], y[:100], X[100:], noise_share=1.5)


def _band_population(n=3000, d=10, seed=0):
    """Embeddings whose label is a coin toss in a band around the boundary (``|x0| < 0.5``) and
    97 % certain outside it: a probability no logistic curve of the logit follows."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    p = np.where(np.abs(X[:, 0]) < 0.5, 0.5, np.where(X[:, 0] > 0, 0.97, 0.03))
    return X, (rng.random(n) < p).astype(np.int8), rng


def test_the_isotonic_map_keeps_the_clean_tails_that_platt_flattens():
    """About 160 labels, most in the band where the label is a coin toss, a few far from it:
    Platt's single slope, learned mostly from the band, is too flat for the confident unlabeled
    rows, and the project AUC comes out more than 0.09 too low; the isotonic map follows the few
    far labels and cuts that error by at least 40 % on every draw (by about half on average)."""
    platt, iso = [], []
    for seed in range(6):
        X, y, rng = _band_population(seed=seed)
        labeled = _boundary(X, rng)
        platt.append(_model_error(X, y, labeled, 0.0, isotonic_share=0.0)[0])
        iso.append(_model_error(X, y, labeled, 0.0, isotonic_share=1.0)[0])
    platt, iso = np.asarray(platt), np.asarray(iso)
    assert platt.mean() < -0.09, platt
    assert np.all(np.abs(iso) < 0.6 * np.abs(platt)), (platt, iso)
    assert np.mean(np.abs(iso) / np.abs(platt)) < 0.55, (platt, iso)


def test_isotonic_share_zero_is_platts_map_and_a_share_mixes_the_two():
    """Share 0 gives Platt's probabilities (never 0 or 1), share 1 the isotonic map's (0 and 1 in
    the tails where every label it saw was one class), and a share between them their mix."""
    X, y, rng = _band_population(seed=2)
    labeled = _boundary(X, rng)
    XL, yL, pool = X[labeled], y[labeled], X[~labeled]
    platt, iso, half = (calibrate_pool(XL, yL, pool, seed=0, isotonic_share=s) for s in (0.0, 1.0, 0.5))
    assert iso.p.min() == 0.0 and iso.p.max() == 1.0 and 0.0 < platt.p.min() and platt.p.max() < 1.0
    np.testing.assert_allclose(half.p, (platt.p + iso.p) / 2)


def test_the_isotonic_map_is_fitted_on_fold_logits():
    """``calibrate_pool``'s isotonic map is the isotonic fit of the labels on ``fold_logits``'
    out-of-fold logits, applied to the fold probes' mean logit of each pool row; ``fold_logits``
    names a bad input as ``calibrate_pool`` does."""
    from sklearn.isotonic import IsotonicRegression

    X, y, rng = _band_population(seed=2)
    labeled = _boundary(X, rng)
    XL, yL, pool = X[labeled], y[labeled], X[~labeled]
    oof, pool_logits = fold_logits(XL, yL, pool, seed=3)
    assert oof.shape == yL.shape and pool_logits.shape == (5, len(pool))
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(oof, yL)
    labels = calibrate_pool(XL, yL, pool, seed=3, isotonic_share=1.0)
    np.testing.assert_allclose(labels.p, iso.predict(pool_logits.mean(axis=0)))
    np.testing.assert_allclose(labels.logit, pool_logits.mean(axis=0))
    assert roc_auc(yL, oof) > 0.5  # out of fold, yet the probes see the boundary's side
    with pytest.raises(ValueError, match="2 labels of each class"):
        fold_logits(XL, np.r_[1, np.zeros(len(yL) - 1)], pool)
    with pytest.raises(ValueError, match="c_scale"):
        fold_logits(XL, yL, pool, c_scale=0.0)


@pytest.mark.parametrize("share", [-0.1, 1.5, float("nan"), True, "1"])
def test_isotonic_share_out_of_range_is_named(share):
    """An isotonic share that is not a number in [0, 1] raises, naming it."""
    X, y, _ = logistic_population(200)
    with pytest.raises(ValueError, match="isotonic_share"):
        calibrate_pool(X[:100], y[:100], X[100:], isotonic_share=share)


def _turned_errors(sample, c_scale, d=20):
    """``_model_error`` rows over 6 draws whose label direction is turned out of the features."""
    out = []
    for seed in range(6):
        X, y, rng = logistic_population(3000, d=d, seed=seed)
        labeled = sample(X, rng)  # chosen by the first coordinate, before the turn
        out.append(_model_error(X @ rotation(d), y, labeled, 0.0, c_scale=c_scale, isotonic_share=0.0))
    return np.asarray(out)


def test_weaker_penalty_keeps_the_direction_boundary_labels_barely_span():
    """About 160 labels in 20 dimensions, most near the boundary, the label driven by a direction
    that is no single feature: the labeled rows hardly vary along it, so the probe's penalty
    shrinks it most and the project AUC comes out too low; calibration probes with a 16 times
    weaker penalty (c_scale=16) halve that error on average and are closer on most draws."""
    usual, weaker = _turned_errors(_boundary, 1.0), _turned_errors(_boundary, 16.0)
    assert usual[:, 0].mean() < -0.1, usual[:, 0]
    assert abs(weaker[:, 0].mean()) < 0.6 * abs(usual[:, 0].mean()), (usual[:, 0], weaker[:, 0])
    assert np.sum(np.abs(weaker[:, 0]) < np.abs(usual[:, 0])) >= 5, (usual[:, 0], weaker[:, 0])


@pytest.mark.parametrize("c_scale", [0.0, -1.0, float("nan"), float("inf"), "16", True])
def test_c_scale_must_be_positive(c_scale):
    """A calibration penalty multiple that is not a positive number raises, naming it."""
    X, y, _ = logistic_population(200)
    with pytest.raises(ValueError, match="c_scale"):
        calibrate_pool(X[:100], y[:100], X[100:], c_scale=c_scale)


def test_noise_correction_is_skipped_when_the_unlabeled_rows_are_fewer_than_the_labeled():
    """About 160 labels near the boundary: with a pool of 100 unlabeled rows the noise correction
    is skipped (Platt's map exactly); when those 100 rows are a sample of 1,000 unlabeled tasks
    (pool_size) it applies and steepens the map."""
    X, y, rng = logistic_population(3000, d=20, seed=0)
    labeled = _boundary(X, rng)
    XL, yL, pool = X[labeled], y[labeled], X[~labeled][:100]
    assert len(yL) > 100
    platt = calibrate_pool(XL, yL, pool, seed=0, noise_share=0.0, isotonic_share=0.0)
    small = calibrate_pool(XL, yL, pool, seed=0, noise_share=0.5, isotonic_share=0.0)
    sampled = calibrate_pool(XL, yL, pool, seed=0, noise_share=0.5, pool_size=1000, isotonic_share=0.0)
    as_many = calibrate_pool(XL, yL, pool, seed=0, noise_share=0.5, pool_size=len(yL), isotonic_share=0.0)
    assert small.slope == platt.slope and np.array_equal(small.p, platt.p)
    assert sampled.slope > 1.2 * platt.slope
    assert as_many.slope > 1.2 * platt.slope  # as many unlabeled rows as labeled: corrected


def test_the_optimistic_pool_is_the_calibrated_probes_own_labels():
    """``optimistic`` keeps the pool and gives each row the class its calibrated p favours."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(120, 5))
    y = (X[:, 0] + rng.normal(size=120) > 0).astype(int)
    pool = rng.normal(size=(300, 5))
    labels = calibrate_pool(X, y, pool, pool_size=900)
    hard = optimistic(labels)
    assert 0 < hard.p.sum() < len(pool)
    favoured = (labels.p > 0.5) | ((labels.p == 0.5) & (labels.logit > 0))
    np.testing.assert_array_equal(hard.p, favoured.astype(float))
    assert hard.X is labels.X and hard.weight == labels.weight == 3.0
    # scored with those labels, the probe's own pool logits rank the pool perfectly: the map is
    # monotone, and its ties at one half go by the logit's side
    scores = labels.logit
    assert soft_auc(scores, hard.p) == pytest.approx(1.0)
    assert soft_auc(scores, labels.p) < 1.0


def test_the_optimistic_pool_breaks_ties_at_one_half_by_the_probes_side():
    """An isotonic block of balanced labels gives its rows p exactly one half: ``optimistic``
    gives them the class on their side of the probe's boundary (their mean logit), not all the
    negative class; without logits they stay negative."""
    p = np.array([0.2, 0.5, 0.5, 0.5, 0.9])
    logit = np.array([-2.0, -0.1, 0.0, 0.3, 2.0])
    labels = PoolLabels(X=np.zeros((5, 2)), p=p, weight=1.0, slope=1.0, intercept=0.0, logit=logit)
    np.testing.assert_array_equal(optimistic(labels).p, [0, 0, 0, 1, 1])
    no_logit = PoolLabels(X=np.zeros((5, 2)), p=p, weight=1.0, slope=1.0, intercept=0.0)
    np.testing.assert_array_equal(optimistic(no_logit).p, [0, 0, 0, 0, 1])


def _noise_replay(seed, n_labels=100, n=1000, d=14):
    """A project without signal (labels independent of the embeddings), labeled least sure first
    (``simulate.replay_order``, 20 random rows, then batches of 10): ``(labeled X, labeled y, pool
    X, pool y)`` in labeling order."""
    from backend.simulate import replay_order

    rng = np.random.default_rng(seed)
    X, y = rng.normal(size=(n, d)), (rng.random(n) < 0.5).astype(np.int8)
    index, _ = replay_order(X, y, "uncertainty", seed=seed, n_steps=n_labels)
    labeled, rest = index[:n_labels], index[n_labels:]
    return X[labeled], y[labeled], X[rest], y[rest]


def test_prequential_logits_carry_no_label_back_to_their_row():
    """After the 20 unsteered start rows, a row's prequential logit depends only on the labels
    before its block: flipping its own label and every later one leaves the logits of the rows up
    to it as they were; the start rows' logits (cross-fitted among themselves) do not move with
    any later label. Each block is scored by a probe fitted by hand on the rows before it; blocks
    hold 10 rows, or a quarter of the rows before them where that is more."""
    XL, yL, _, _ = _noise_replay(seed=1)
    z = prequential_logits(XL, yL, seed=4)
    assert not np.isnan(z).any()
    later_flipped = np.r_[yL[:20], 1 - yL[20:]]
    np.testing.assert_array_equal(prequential_logits(XL, later_flipped, seed=4)[:20], z[:20])
    for i in (20, 45, 63, 99):
        flipped = yL.copy()
        flipped[i:] = 1 - flipped[i:]
        np.testing.assert_array_equal(prequential_logits(XL, flipped, seed=4)[: i + 1], z[: i + 1])
    starts = [20, 30, 40, 50, 62, 77, 96]
    for start, end in zip(starts, starts[1:] + [100]):
        by_hand = fit_probe(XL[:start], yL[:start]).decision_function(XL[start:end])
        np.testing.assert_allclose(z[start:end], by_hand, rtol=1e-9, atol=1e-9)


def test_the_unsteered_start_is_what_is_cross_fitted():
    """``unsteered`` rows at the start are cross-fitted among themselves: all of them, the same
    out-of-fold logits as the calibration's cross-fitting; none, and the first block has no probe
    (NaN) while the next is scored by a probe of the rows before it. Anything but a whole number
    of rows >= 0 is refused, naming it; ``growth`` 0 scores blocks of 10 throughout."""
    XL, yL, pool, _ = _noise_replay(seed=2)
    oof, _ = fold_logits(XL, yL, pool, seed=5)
    np.testing.assert_allclose(prequential_logits(XL, yL, seed=5, unsteered=len(yL)), oof)
    z = prequential_logits(XL, yL, seed=5, unsteered=0)
    assert np.isnan(z[:10]).all()
    np.testing.assert_allclose(z[10:20], fit_probe(XL[:10], yL[:10]).decision_function(XL[10:20]))
    for bad in (-1, 2.5, True, "20"):
        with pytest.raises(ValueError, match="unsteered"):
            prequential_logits(XL, yL, unsteered=bad)
    tens = prequential_logits(XL, yL, seed=5, growth=0.0)  # blocks of 10 throughout
    np.testing.assert_allclose(tens[60:70], fit_probe(XL[:60], yL[:60]).decision_function(XL[60:70]))
    assert not np.allclose(tens[60:70], prequential_logits(XL, yL, seed=5)[60:70])  # there: rows 50 to 61
    for bad in (-0.1, float("inf"), "0.25", False):
        with pytest.raises(ValueError, match="growth"):
            prequential_logits(XL, yL, growth=bad)


def test_without_prequential_logits_of_each_class_the_share_changes_nothing():
    """The prequential map needs both classes among the rows that have a prequential logit; where
    they do not (a single positive before row 50), a prequential share leaves the cross-fitted map."""
    X, y, _ = logistic_population(400, seed=3)
    y = np.zeros(60, np.int8)
    y[[5, 50, 55]] = 1
    XL, pool = X[:60], X[60:]
    np.testing.assert_array_equal(
        calibrate_pool(XL, y, pool, prequential_share=1.0).p, calibrate_pool(XL, y, pool, prequential_share=0.0).p
    )


def test_prequential_logits_wait_for_two_labels_of_each_class():
    """NaN until a probe can be fitted: the first 20 rows hold one positive, so neither they nor
    the next block get a logit; the block after the second positive does."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 5))
    y = np.zeros(60, np.int8)
    y[[3, 25, 41]] = 1
    z = prequential_logits(X, y)
    assert np.isnan(z[:30]).all() and not np.isnan(z[30:]).any()


def test_the_cautious_map_does_not_learn_the_orders_leak():
    """No signal, labels chosen least sure first: the cross-fitted map learns a relation the
    labeling order put into the out-of-fold logits, and the full probe's model-based AUC on the
    unlabeled rows comes out far above their true AUC (about one half). The cautious view
    (Platt's map of the prequential logits) is near it on average, though one slope fitted to
    noise swings it widely from draw to draw. ``prequential_share`` mixes the
    prequential isotonic map into the isotonic part: 0 is the cross-fitted map, and a share
    between mixes the two."""
    crossed, cautious = [], []
    for seed in range(6):
        XL, yL, pool, y_pool = _noise_replay(seed)
        scores = fit_probe(XL, yL).decision_function(pool)
        truth = roc_auc(y_pool, scores)
        shipped, leak_free, half = (
            calibrate_pool(XL, yL, pool, seed=seed, prequential_share=s) for s in (0.0, 1.0, 0.5)
        )
        np.testing.assert_allclose(half.p, (shipped.p + leak_free.p) / 2)
        crossed.append(soft_auc(scores, shipped.p) - truth)
        cautious.append(soft_auc(scores, pessimistic(shipped, XL, yL, seed=seed).p) - truth)
    assert np.mean(crossed) > 0.25 and min(crossed) > 0.1, crossed
    assert abs(np.mean(cautious)) < 0.1 < np.mean(crossed) - np.mean(cautious), (crossed, cautious)


def test_the_cautious_map_is_lower_where_the_signal_is_strong_and_its_slope_is_shrunk(monkeypatch):
    """Where the label follows the embeddings closely, the cautious view gives the probe a lower
    AUC on the unlabeled rows than the calibrated probabilities do; it keeps the pool's logits and
    their order, and a weaker shrinkage (``CAUTIOUS_C`` 100, Platt's own) spreads its
    probabilities further; without prequential logits of each class there is no cautious view."""
    from backend import pool_auc

    X, y, rng = _band_population(seed=2)
    labeled = _boundary(X, rng)
    XL, yL, pool = X[labeled], y[labeled], X[~labeled]
    labels = calibrate_pool(XL, yL, pool, seed=1)
    cautious = pessimistic(labels, XL, yL, seed=1)
    np.testing.assert_array_equal(cautious.logit, labels.logit)
    order = np.argsort(labels.logit)
    assert np.all(np.diff(cautious.p[order]) >= 0)
    monkeypatch.setattr(pool_auc, "CAUTIOUS_C", 100.0)
    assert np.std(pessimistic(labels, XL, yL, seed=1).p) > 1.2 * np.std(cautious.p)
    scores = fit_probe(XL, yL).decision_function(pool)
    assert soft_auc(scores, cautious.p) < soft_auc(scores, labels.p) - 0.02
    one = np.zeros(len(yL), np.int8)
    one[[0, 30]] = 1  # one positive before row 30: no logit there, and only one after
    assert pessimistic(labels, XL[:40], one[:40]) is None


@pytest.mark.parametrize("share", [-0.1, 1.5, float("nan"), True, "1"])
def test_prequential_share_out_of_range_is_named(share):
    """A prequential share that is not a number in [0, 1] raises, naming it."""
    X, y, _ = logistic_population(200)
    with pytest.raises(ValueError, match="prequential_share"):
        calibrate_pool(X[:100], y[:100], X[100:], prequential_share=share)
