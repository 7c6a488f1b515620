"""Tests of backend.learning_curve: the empirical AUC-vs-size points."""

from __future__ import annotations

import numpy as np
import pytest

from backend.learning_curve import cross_validated_auc, empirical_learning_curve, minimum_labels


def _data(n, d=8, seed=0, pos_share=0.5):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < pos_share).astype(int)
    return rng.normal(size=(n, d)) + 1.0 * y[:, None] * (np.arange(d) < 2), y


def test_points_cover_a_geometric_grid_up_to_cv_size():
    """Sizes run from a small subset to the cross-validation training size, several each."""
    X, y = _data(200)
    curve = empirical_learning_curve(X, y, seed=0)
    sizes = np.unique(curve.sizes)
    assert len(sizes) >= 5
    assert sizes.max() == curve.cv_size
    assert 155 <= curve.cv_size <= 160
    assert sizes.min() <= 12
    ratios = sizes[1:] / sizes[:-1]
    assert np.all(ratios > 1.2)
    assert np.all((curve.scores >= 0) & (curve.scores <= 1))
    assert curve.auc_low <= curve.auc <= curve.auc_high


def test_curve_rises_with_size():
    """On informative data, big subsets score higher than small ones."""
    X, y = _data(400, seed=3)
    curve = empirical_learning_curve(X, y, seed=0)
    small = curve.scores[curve.sizes == curve.sizes.min()].mean()
    large = curve.scores[curve.sizes == curve.sizes.max()].mean()
    assert large > small


def test_same_seed_same_points():
    """The curve is deterministic for a seed, different for another."""
    X, y = _data(120)
    a, b, c = (empirical_learning_curve(X, y, seed=s) for s in (1, 1, 2))
    np.testing.assert_array_equal(a.scores, b.scores)
    assert not np.array_equal(a.scores, c.scores)


def test_rare_class_moves_smallest_size_up():
    """With 10 % positives the smallest subset still holds a few positives."""
    X, y = _data(400, pos_share=0.1, seed=4)
    curve = empirical_learning_curve(X, y, seed=0)
    assert curve.sizes.min() >= 3 / (y.mean()) - 1


def test_too_few_of_a_class_raises():
    """A learning curve with 3 positives (the smallest subset's share alone) is refused with how many more are needed."""
    X, y = _data(60)
    y[:] = 0
    y[:3] = 1
    with pytest.raises(ValueError, match="need 1 more positive"):
        empirical_learning_curve(X, y)


def test_five_positives_make_a_curve():
    """Five positives among 60 labels are enough for a curve of at least 3 sizes."""
    X, y = _data(60)
    y[:] = 0
    y[:5] = 1
    assert empirical_learning_curve(X, y).n_distinct_sizes >= 3


def test_minimum_labels_counts_missing_per_class():
    """minimum_labels reports the shortfall per class and zero when enough."""
    assert minimum_labels(3, 20) == (5, 0)
    assert minimum_labels(3, 20, per_class=12) == (9, 0)
    assert minimum_labels(8, 8) == (0, 0)
    with pytest.raises(ValueError, match="per_class must be an integer >= 4"):
        minimum_labels(3, 20, per_class=3)


def test_cross_validated_auc_uses_fewer_folds_for_rare_class():
    """With 3 positives, cross-validation runs 3 folds."""
    X, y = _data(40)
    y[:] = 0
    y[:3] = 1
    cv = cross_validated_auc(X, y, repeats=1)
    assert len(cv.fold_scores) == 3
    assert 40 - 15 <= cv.train_size <= 40 - 13


def test_equal_weights_give_the_unweighted_curve():
    """Weights all equal to 2 change no point and no AUC; bad weights are named."""
    rng = np.random.default_rng(8)
    y = rng.integers(0, 2, 90)
    X = rng.normal(size=(90, 5)) + y[:, None]
    plain = empirical_learning_curve(X, y, seed=1)
    weighted = empirical_learning_curve(X, y, seed=1, weights=np.full(90, 2.0))
    np.testing.assert_allclose(weighted.scores, plain.scores)
    assert weighted.auc == pytest.approx(plain.auc)
    assert (weighted.auc_low, weighted.auc_high) == pytest.approx((plain.auc_low, plain.auc_high))
    with pytest.raises(ValueError, match="weights"):
        empirical_learning_curve(X, y, weights=np.zeros(90))


def test_weights_move_the_current_auc_towards_the_upweighted_rows():
    """Up-weighting the easy rows (far from the boundary) raises the weighted AUC."""
    rng = np.random.default_rng(9)
    y = rng.integers(0, 2, 200)
    X = rng.normal(size=(200, 3)) + 1.2 * y[:, None] * np.array([1, 0, 0])
    easy = np.abs(X[:, 0] - 0.6) > 1.0
    weighted = empirical_learning_curve(X, y, seed=0, weights=np.where(easy, 5.0, 1.0))
    plain = empirical_learning_curve(X, y, seed=0)
    assert weighted.auc > plain.auc + 0.03
    assert weighted.auc_high - weighted.auc_low > plain.auc_high - plain.auc_low


def test_several_views_from_the_same_probes_equal_the_single_curves():
    """empirical_learning_curves scores the same probes for each view: each curve is exactly the
    one empirical_learning_curve builds with that view's weights or pool alone."""
    from backend.learning_curve import empirical_learning_curves
    from backend.pool_auc import calibrate_pool

    rng = np.random.default_rng(4)
    X = rng.normal(size=(300, 5))
    y = (rng.random(300) < 1 / (1 + np.exp(-2 * X[:, 0]))).astype(np.int8)
    weights = rng.uniform(0.5, 2.0, 120)
    labels = calibrate_pool(X[:120], y[:120], X[120:], seed=3)
    views = [(None, None), (weights, None), (None, labels)]
    curves = empirical_learning_curves(X[:120], y[:120], 3, views=views)
    for curve, (w, pool) in zip(curves, views):
        alone = empirical_learning_curve(X[:120], y[:120], 3, weights=w, pool=pool)
        np.testing.assert_array_equal(curve.sizes, alone.sizes)
        np.testing.assert_array_equal(curve.scores, alone.scores)
        assert (curve.auc, curve.auc_low, curve.auc_high) == (alone.auc, alone.auc_low, alone.auc_high)
    assert not np.array_equal(curves[0].scores, curves[2].scores)
    with pytest.raises(ValueError, match="at most one"):
        empirical_learning_curves(X[:120], y[:120], views=[(weights, labels)])
