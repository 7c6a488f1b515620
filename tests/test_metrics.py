"""Tests of backend.metrics: ROC-AUC and the DeLong interval."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from backend.metrics import auc_interval, roc_auc


def test_matches_scikit_learn_with_ties():
    """roc_auc equals scikit-learn's, ties included."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.normal(size=300) + y, 1)
    assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s))


def test_interval_brackets_and_narrows_with_n():
    """The DeLong interval contains the AUC and shrinks as data grows."""
    rng = np.random.default_rng(1)
    widths = []
    for n in (50, 500, 5000):
        y = rng.integers(0, 2, n)
        auc, lo, hi = auc_interval(y, rng.normal(size=n) + y, 0.9)
        assert lo <= auc <= hi
        widths.append(hi - lo)
    assert widths[0] > widths[1] > widths[2]


def test_interval_coverage_is_near_nominal():
    """Over repeated samples the 90 % interval covers the true AUC about 90 % of the time."""
    from scipy.stats import norm

    rng = np.random.default_rng(2)
    true_auc = norm.cdf(1.0 / np.sqrt(2))  # two unit normals one apart
    hits = 0
    for _ in range(300):
        y = rng.integers(0, 2, 120)
        _, lo, hi = auc_interval(y, rng.normal(size=120) + y, 0.9)
        hits += lo <= true_auc <= hi
    assert 0.83 <= hits / 300 <= 0.96


def test_one_class_raises():
    """AUC of a single class is refused with the counts."""
    with pytest.raises(ValueError, match="both classes"):
        roc_auc(np.zeros(5), np.arange(5))


def test_weighted_auc_matches_scikit_learn_with_ties():
    """A weighted AUC equals scikit-learn's with sample_weight, ties included."""
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.normal(size=300) + y, 1)
    w = rng.random(300) * 3
    assert roc_auc(y, s, w) == pytest.approx(roc_auc_score(y, s, sample_weight=w), abs=1e-12)


def test_integer_weights_equal_repeated_rows():
    """Weight 2 on a row is the same as that row twice; weight 1 everywhere is the plain AUC."""
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 80)
    s = rng.normal(size=80) + y
    w = rng.integers(1, 3, 80)
    assert roc_auc(y, s, w) == pytest.approx(roc_auc(np.repeat(y, w), np.repeat(s, w)))
    assert roc_auc(y, s, np.ones(80)) == pytest.approx(roc_auc(y, s))


def test_bad_weights_raise():
    """Negative weights are named as an error."""
    with pytest.raises(ValueError, match="sample_weight"):
        roc_auc([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4], [1, -1, 1, 1])
