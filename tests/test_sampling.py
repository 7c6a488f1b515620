"""Tests of backend.sampling: the score that steers the Data Manager's order."""

from __future__ import annotations

import numpy as np
import pytest

from backend.sampling import (
    AUDIT_SHARE,
    audit_mask,
    prediction_scores,
    score_quantiles,
    selection_probabilities,
    task_uniform,
    unsteered_labels,
)


def test_task_uniform_is_stable_uniform_and_per_project():
    """The hash is the same on every call, roughly uniform, and differs between projects."""
    ids = list(range(20000))
    u = task_uniform(3, ids)
    np.testing.assert_array_equal(u, task_uniform(3, ids))
    assert u.min() >= 0 and u.max() < 1
    assert np.histogram(u, bins=10, range=(0, 1))[0].min() > 1800
    assert np.corrcoef(u, task_uniform(4, ids))[0, 1] < 0.05
    assert np.corrcoef(u[:-1], u[1:])[0, 1] < 0.05  # neighbouring ids are not ordered alike


def test_audit_share_is_the_known_share():
    """About AUDIT_SHARE of the tasks are audit tasks."""
    assert abs(audit_mask(1, range(50000)).mean() - AUDIT_SHARE) < 0.01


def test_uncertainty_scores_are_the_confidences():
    """uncertainty: the probe's confidence; tasks without one get no score."""
    conf = {1: 0.9, 2: 0.55}
    assert prediction_scores("uncertainty", 1, conf, [1, 2, 3]) == conf


def test_random_scores_ignore_the_probe():
    """random: every task, probe or not, gets its stable hash."""
    scores = prediction_scores("random", 1, {1: 0.9}, [1, 2, 3])
    assert scores == dict(zip([1, 2, 3], task_uniform(1, [1, 2, 3]).tolist()))


def test_mixed_interleaves_audit_tasks_among_least_sure():
    """mixed: non-audit tasks keep their confidence; audit tasks get a hashed draw from the
    confidences' quantiles, so about AUDIT_SHARE of any first k sorted tasks are audits."""
    ids = list(range(5000))
    rng = np.random.default_rng(0)
    conf = dict(zip(ids, 0.5 + 0.5 * rng.random(5000) ** 3))  # most tasks fairly unsure
    scores = prediction_scores("mixed", 7, conf, ids, quantiles=score_quantiles(list(conf.values())))
    audit = audit_mask(7, ids)
    assert all(scores[t] == conf[t] for t, a in zip(ids, audit) if not a)
    audit_scores = np.array([scores[t] for t, a in zip(ids, audit) if a])
    assert audit_scores.min() >= 0.5 and audit_scores.max() <= 1.0
    ranked = sorted(ids, key=scores.get)
    for k in (100, 500, 2000):  # the first k an annotator would label
        assert abs(audit[ranked[:k]].mean() - AUDIT_SHARE) < 0.07
    assert max(conf[t] for t in ranked[:500] if not audit[t]) < np.quantile(list(conf.values()), 0.15)
    # without quantiles, audit scores are uniform over the confidences' range: fewer early
    plain = prediction_scores("mixed", 7, conf, ids)
    assert audit[sorted(ids, key=plain.get)[:500]].mean() < 0.1


def test_mixed_gives_the_random_order_until_its_random_start_is_labeled():
    """mixed with random_start: every task, scored by the probe or not, gets its random score
    (scaled into the confidences' range, 0.5 to 1 here) while the project has fewer labels; from
    then on the least-sure order with audits."""
    ids = list(range(300))
    conf = {t: 0.5 + 0.5 * ((t * 37) % 100) / 100 for t in ids[:200]}  # 100 tasks not scored yet
    early = prediction_scores("mixed", 7, conf, ids, n_labels=49, random_start=50)
    np.testing.assert_allclose([early[t] for t in ids], 0.5 + 0.5 * task_uniform(7, ids))
    late = prediction_scores("mixed", 7, conf, ids, n_labels=50, random_start=50)
    assert late == prediction_scores("mixed", 7, conf, ids) and set(late) == set(conf)
    # no probe yet after the random start (a class still short of 2 labels): still random, not import order
    no_probe = prediction_scores("mixed", 7, {}, ids, n_labels=80, random_start=50, has_probe=False)
    assert no_probe == early


def test_selection_probabilities_count_the_random_start_as_drawn_at_random():
    """The first random_start labeled tasks (annotation order) and the audits are the labels
    drawn at random: each gets (their number / tasks); a least-sure task 1."""
    labeled = list(range(1000, 1200))
    prob = selection_probabilities(7, labeled, 1000, random_start=50)
    drawn = audit_mask(7, labeled)
    drawn[:50] = True
    assert np.all(prob[~drawn] == 1.0)
    np.testing.assert_allclose(prob[drawn], drawn.sum() / 1000)
    assert 50 < drawn.sum() < 200 and np.all(prob[:50] < 1)


def test_selection_probabilities_of_mixed():
    """Labeled audit tasks get (audits labeled / tasks), the others 1."""
    labeled = list(range(200))
    prob = selection_probabilities(7, labeled, 1000)
    audit = audit_mask(7, labeled)
    assert np.all(prob[~audit] == 1.0)
    np.testing.assert_allclose(prob[audit], audit.sum() / 1000)


def test_unknown_mode_is_named():
    """A mode outside the three raises, naming it."""
    with pytest.raises(ValueError, match="sorted"):
        prediction_scores("sorted", 1, {}, [1])


def test_unsteered_labels_per_order():
    """No label steers a random order, nor ``mixed``'s random start; the service's uncertainty
    order steers from the first probe on, a replay's after its random start; a file's order may
    have been steered by anything. Never more than the labels there are."""
    assert unsteered_labels("random", 120) == 120
    assert unsteered_labels("mixed", 120, random_start=20) == 20
    assert unsteered_labels("mixed", 12, random_start=20) == 12
    assert unsteered_labels("uncertainty", 120, random_start=20) == 0
    assert unsteered_labels("uncertainty", 120, uncertainty_start=20) == 20
    assert unsteered_labels("file", 120, random_start=20, uncertainty_start=20) == 0
