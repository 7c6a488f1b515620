"""Tests of the labeled-vs-pool comparison and its weights, on data with a known bias."""

from __future__ import annotations

import numpy as np
import pytest

from backend.metrics import roc_auc
from backend.selection_bias import DETECT_Z, estimate_selection_bias
from backend.simulate import replay_order
from conftest import logistic_population, near_boundary_sample, rotation


def test_random_sample_is_not_flagged():
    """A random 10 % of the pool is not detected as unlike it; its weights stay near equal."""
    X, y, _ = logistic_population()
    for seed in range(5):
        labeled = np.random.default_rng(seed).random(len(y)) < 0.1
        bias = estimate_selection_bias(X[labeled], y[labeled], X[~labeled], seed=seed)
        assert not bias.detected, bias.z
        assert abs(bias.statistic - 0.5) < 0.1
        assert bias.effective_n > 0.8 * labeled.sum()


def test_random_samples_of_separable_classes_are_not_flagged():
    """Classes a plane separates without error (14 % positive, as a rare finding): the probe
    fitted on all labels is surer on the pool than its fold probes are on the labels, and
    comparing those margins flagged 3 of these 20 random samples (mean z 0.83). With each pool
    row scored by one fold probe (the labels' own noise) the classifier's z centres on 0 (0.06)
    and at most one sample is flagged (none, as measured)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 18))
    y = (X[:, 0] + 0.5 * X[:, 1] > 1.2).astype(np.int8)
    zs, flagged = [], 0
    for n in (100, 200):
        for seed in range(10):
            labeled = np.zeros(len(y), bool)
            labeled[np.random.default_rng(seed).choice(len(y), n, replace=False)] = True
            bias = estimate_selection_bias(X[labeled], y[labeled], X[~labeled], seed=seed)
            zs.append(bias.z)
            flagged += bias.detected
    assert flagged <= 1 and np.mean(zs) < 0.5, (flagged, np.mean(zs))


def test_few_least_sure_labels_are_caught_by_the_margin_test():
    """50 labels, 20 random then 30 least sure (uncertainty sampling at its start): the labels lie
    nearer the boundary than the pool, which the one-sided margin test sees in most replays
    where the classifier on all features sees it in few."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 16))
    y = (rng.random(2000) < 1 / (1 + np.exp(-6 * X[:, 0]))).astype(np.int8)
    X = X @ rotation(16)
    by_classifier = by_either = 0
    for seed in range(10):
        index, _ = replay_order(X, y, "uncertainty", seed=seed, n_steps=50)
        bias = estimate_selection_bias(X[index[:50]], y[index[:50]], X[index[50:]], seed=seed)
        by_classifier += bias.z >= DETECT_Z
        by_either += bias.detected
        assert bias.detected == (max(bias.z, bias.margin_z) >= DETECT_Z)
    # measured: 9 by either statistic, 2 by the classifier alone
    assert by_either >= 8, (by_classifier, by_either)


def test_near_boundary_sample_is_flagged_and_weights_recover_the_population_auc():
    """Labels chosen near the boundary are flagged; the weighted AUC of a fixed score moves
    from the labeled set's towards the whole population's (part of the way: the estimated
    weights are flattened and truncated on purpose)."""
    X, y, rng = logistic_population()
    labeled, _ = near_boundary_sample(X, rng)
    score = X[:, 0]
    bias = estimate_selection_bias(X[labeled], y[labeled], X[~labeled], seed=0)
    assert bias.detected and bias.z > 5 and bias.margin_z > 5 and bias.source == "classifier"
    population = roc_auc(y, score)
    raw = roc_auc(y[labeled], score[labeled])
    weighted = roc_auc(y[labeled], score[labeled], bias.weights)
    assert population - raw > 0.1
    assert weighted - raw > 0.25 * (population - raw)
    assert weighted < population + 0.02
    assert bias.weights.mean() == pytest.approx(1.0)
    # rows far from the boundary are rare among the labels: they carry the larger weights
    far = np.abs(X[labeled, 0]) >= 0.4
    assert bias.weights[far].mean() > 1.5 * bias.weights[~far].mean()


def test_known_selection_probabilities_are_inverted_without_a_pool():
    """Without a pool, known selection probabilities give Horvitz-Thompson weights and count as
    detected; with a pool the classifier's weights are used (measured better), still detected."""
    X, y, rng = logistic_population()
    labeled, prob = near_boundary_sample(X, rng)
    with_pool = estimate_selection_bias(X[labeled], y[labeled], X[~labeled], selection_prob=prob[labeled])
    assert with_pool.source == "classifier" and with_pool.detected
    bias = estimate_selection_bias(X[labeled], y[labeled], None, selection_prob=prob[labeled])
    assert bias.source == "known" and bias.detected
    expected = 1 / prob[labeled]
    np.testing.assert_allclose(bias.weights, expected / expected.mean())
    population = roc_auc(y, X[:, 0])
    weighted = roc_auc(y[labeled], X[labeled, 0], bias.weights)
    assert abs(weighted - population) < 0.03


def test_without_pool_nothing_is_detected():
    """No pool (or one too small): equal weights, statistic nan, not detected."""
    X, y, _ = logistic_population(200)
    for pool in (None, X[:5]):
        bias = estimate_selection_bias(X, y, pool)
        assert not bias.detected and np.isnan(bias.statistic)
        np.testing.assert_allclose(bias.weights, 1.0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        pytest.param({"selection_prob": [0.5] * 3}, "selection_prob", id="prob-length"),
        pytest.param({"selection_prob": [0.0] * 40}, "selection_prob", id="prob-zero"),
        pytest.param({"pool": np.zeros((30, 3))}, "features", id="pool-width"),
    ],
)
def test_bad_input_is_named(kwargs, message):
    """Mismatched shapes and probabilities outside (0, 1] raise, naming the argument."""
    X, y, _ = logistic_population(40)
    with pytest.raises(ValueError, match=message):
        estimate_selection_bias(X, y, **kwargs)


def test_a_large_pool_is_sampled_and_the_weights_scaled_to_all_of_it(monkeypatch):
    """Above MAX_POOL rows the classifier sees a sample; pool_size scales the weights to the
    whole pool, so a sample gives about the weights of the whole pool."""
    import backend.selection_bias as sb

    X, y, rng = logistic_population(6000)
    labeled, _ = near_boundary_sample(X, rng)
    whole = estimate_selection_bias(X[labeled], y[labeled], X[~labeled], seed=0)
    monkeypatch.setattr(sb, "MAX_POOL", 1500)
    sampled = estimate_selection_bias(X[labeled], y[labeled], X[~labeled], seed=0)
    assert sampled.detected and sampled.n_pool == (~labeled).sum()
    assert np.corrcoef(sampled.weights, whole.weights)[0, 1] > 0.9
    part = np.flatnonzero(~labeled)[:1000]
    scaled = estimate_selection_bias(X[labeled], y[labeled], X[part], seed=0, pool_size=int((~labeled).sum()))
    assert scaled.n_pool == (~labeled).sum()
    assert np.corrcoef(scaled.weights, whole.weights)[0, 1] > 0.9
    unscaled = estimate_selection_bias(X[labeled], y[labeled], X[part], seed=0)
    assert np.abs(scaled.weights - whole.weights).mean() < 0.75 * np.abs(unscaled.weights - whole.weights).mean()
    with pytest.raises(ValueError, match="pool_size"):
        estimate_selection_bias(X[labeled], y[labeled], X[part], pool_size=10)


def test_import_order_grouped_by_folder_is_flagged():
    """Labels taken in an import order grouped by 'folder' (a cluster of the embeddings: a
    scanner, a hospital) are flagged, though each folder holds both classes."""
    rng = np.random.default_rng(5)
    folder = rng.integers(0, 4, 2000)
    centres = rng.normal(size=(4, 6)) * 1.5
    X = centres[folder] + rng.normal(size=(2000, 6))
    y = (rng.random(2000) < 1 / (1 + np.exp(-2 * X[:, 1]))).astype(np.int8)
    order = np.argsort(folder, kind="stable")  # folder 0 first, then 1, ...
    labeled, pool = order[:200], order[200:]
    assert len(np.unique(y[labeled])) == 2
    bias = estimate_selection_bias(X[labeled], y[labeled], X[pool])
    assert bias.detected and bias.statistic > 0.8
