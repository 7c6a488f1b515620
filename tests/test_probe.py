"""Tests of backend.probe: the standardised, class-balanced logistic-regression probe."""

from __future__ import annotations

import json

import numpy as np
import pytest

from backend.metrics import roc_auc
from backend.probe import LinearProbe, check_embeddings, default_C, fit_probe


def _data(n=200, d=16, seed=0, pos_share=0.5):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < pos_share).astype(int)
    X = rng.normal(size=(n, d)) + 1.5 * y[:, None] * (np.arange(d) < 3)
    return X, y


def test_probe_separates_classes():
    """A probe on separable-ish data ranks held-out positives above negatives."""
    X, y = _data()
    probe = fit_probe(X[:150], y[:150])
    assert roc_auc(y[150:], probe.predict_proba(X[150:])) > 0.9


def test_probe_is_deterministic():
    """Same data and seed give identical weights."""
    X, y = _data()
    np.testing.assert_array_equal(fit_probe(X, y, seed=1).coef_, fit_probe(X, y, seed=1).coef_)


def test_dict_round_trip_through_json():
    """to_dict then from_dict (through JSON) predicts exactly the same."""
    X, y = _data()
    probe = fit_probe(X, y)
    again = LinearProbe.from_dict(json.loads(json.dumps(probe.to_dict())))
    np.testing.assert_allclose(again.predict_proba(X), probe.predict_proba(X))


def test_imbalanced_classes_still_rank():
    """With 10 % positives the balanced probe still finds the signal."""
    X, y = _data(n=400, pos_share=0.1, seed=2)
    probe = fit_probe(X[:300], y[:300])
    assert roc_auc(y[300:], probe.decision_function(X[300:])) > 0.85


def test_constant_feature_is_harmless():
    """A constant column does not produce NaN weights."""
    X, y = _data()
    X[:, 0] = 3.0
    assert np.all(np.isfinite(fit_probe(X, y).coef_))


def test_default_C_shrinks_with_width():
    """Wider embeddings get a smaller C (stronger penalty per weight)."""
    assert default_C(1024) < default_C(64) < default_C(1)


@pytest.mark.parametrize(
    "X, y, message",
    [
        pytest.param(np.zeros(5), [0, 1, 0, 1, 0], "2-D", id="1d-X"),
        pytest.param(np.zeros((4, 2)), [0, 1, 0], "shape", id="length-mismatch"),
        pytest.param(np.full((4, 2), np.nan), [0, 1, 0, 1], "non-finite", id="nan-X"),
        pytest.param(np.zeros((4, 2)), [0, 1, 2, 1], "only 0 and 1", id="label-2"),
        pytest.param(np.zeros((4, 2)), [0, 0, 0, 0], "no positive", id="one-class"),
        pytest.param(np.zeros((4, 0)), [0, 1, 0, 1], "no features", id="no-features"),
    ],
)
def test_bad_input(X, y, message):
    """Bad embeddings or labels raise ValueError naming the problem."""
    with pytest.raises(ValueError, match=message):
        fit_probe(X, y)


def test_wrong_width_at_predict():
    """Predicting with the wrong embedding width names both widths."""
    X, y = _data(d=8)
    with pytest.raises(ValueError, match="trained on 8"):
        fit_probe(X, y).predict_proba(np.zeros((2, 5)))


def test_from_dict_rejects_garbage():
    """A stored probe with missing fields is refused clearly."""
    with pytest.raises(ValueError, match="not a stored linear probe"):
        LinearProbe.from_dict({"coef": [1.0]})


def test_check_embeddings_accepts_booleans():
    """Boolean labels are accepted as 0/1."""
    _, y = check_embeddings(np.zeros((3, 2)), [True, False, True])
    assert y.tolist() == [1, 0, 1]


def test_matches_scikit_learn_logistic_regression():
    """The probe solves exactly scikit-learn's balanced L2 logistic regression."""
    from sklearn.linear_model import LogisticRegression

    X, y = _data(n=120, d=40, pos_share=0.3, seed=9)
    probe = fit_probe(X, y, C=0.2)
    Z = (X - X.mean(axis=0)) / X.std(axis=0)
    ref = LogisticRegression(C=0.2, class_weight="balanced", tol=1e-10, max_iter=5000).fit(Z, y)
    np.testing.assert_allclose(probe.coef_, ref.coef_[0], atol=2e-4)
    assert probe.intercept_ == pytest.approx(ref.intercept_[0], abs=2e-4)


def test_stratified_fold_ids_deal_each_class_round_the_folds():
    """Every fold gets each class's rows within one of its share, and the same rng state gives the
    same split."""
    from backend.probe import stratified_fold_ids

    y = np.r_[np.zeros(23, int), np.ones(7, int)]
    fold = stratified_fold_ids(y, 5, np.random.default_rng(0))
    assert set(fold.tolist()) == set(range(5))
    for cls, count in ((0, 23), (1, 7)):
        sizes = np.bincount(fold[y == cls], minlength=5)
        assert sizes.sum() == count and sizes.max() - sizes.min() <= 1
    np.testing.assert_array_equal(fold, stratified_fold_ids(y, 5, np.random.default_rng(0)))


def test_cross_fitted_logits_come_from_the_probe_that_did_not_see_the_row():
    """Each row's out-of-fold logit is that of the probe fitted without its fold, and probe ``f``
    is the probe fitted on the rows outside fold ``f``."""
    from backend.probe import cross_fitted, fit_probe, stratified_fold_ids

    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 4))
    y = (X[:, 0] + 0.5 * rng.normal(size=60) > 0).astype(np.int8)
    fold = stratified_fold_ids(y, 3, np.random.default_rng(1))
    oof, probes = cross_fitted(X, y, fold)
    assert len(probes) == 3
    for f, probe in enumerate(probes):
        by_hand = fit_probe(X[fold != f], y[fold != f])
        np.testing.assert_allclose(probe.decision_function(X), by_hand.decision_function(X))
        np.testing.assert_allclose(oof[fold == f], by_hand.decision_function(X[fold == f]))
