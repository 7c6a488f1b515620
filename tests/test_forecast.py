"""Tests of backend.forecast: every status, the message, the JSON form."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from backend.forecast import BIAS_SENTENCE, OPTIMISTIC_SENTENCE, STATUSES, forecast


def _data(n, signal, seed=0, d=8, pos_share=0.5, flip=0.0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < pos_share).astype(int)
    X = rng.normal(size=(n, d)) + signal * y[:, None] * (np.arange(d) < 2)
    if flip:
        y = np.where(rng.random(n) < flip, 1 - y, y)
    return X, y


def test_collecting_with_few_labels_says_what_is_missing():
    """Below the minimum, the status is collecting and the message counts what is missing."""
    X, y = _data(20, 1.0)
    y[:] = 0
    y[:4] = 1
    fc = forecast(X, y, 0.9)
    assert fc.status == "collecting"
    assert fc.positives_needed == 4 and fc.negatives_needed == 0
    assert "4 more positive" in fc.message and "10 more labels" in fc.message
    assert fc.auc is None and fc.labels_needed is None


def test_eleven_positives_in_fifty_are_forecast():
    """Eleven positives among the first 50 labels are enough for a forecast (MIN_CLASS_LABELS = 8)."""
    X, y = _data(50, 1.0)
    y[:] = 0
    y[:11] = 1
    fc = forecast(X, y, 0.9, n_boot=20)
    assert fc.status != "collecting" and fc.fit is not None


def test_collecting_names_the_finding():
    """The collecting message uses the finding's name."""
    X, y = _data(10, 1.0)
    assert "Effusion" in forecast(X, y, 0.9, positive_name="Effusion").message


def test_target_reached_on_easy_data():
    """A clear signal with a modest target is reached, and the message says labeling can stop."""
    X, y = _data(300, 3.0)
    fc = forecast(X, y, 0.8)
    assert fc.status == "target_reached"
    assert fc.auc_interval[0] >= 0.8
    assert "reached" in fc.message


def test_unreachable_when_labels_are_noise():
    """Labels independent of the embeddings cannot reach AUC 0.95."""
    X, y = _data(400, 0.0, seed=5)
    fc = forecast(X, y, 0.95)
    assert fc.status == "unreachable"
    assert fc.plateau_interval[1] < 0.95
    assert fc.labels_needed == math.inf
    assert "out of reach" in fc.message


def test_on_track_reports_labels_remaining():
    """A rising curve below a reachable target gives a finite number of labels to go."""
    X, y = _data(2000, 1.2, seed=7, d=32)
    fc = forecast(X[:120], y[:120], 0.87)
    assert fc.status == "on_track", fc.message
    assert fc.labels_remaining_interval[0] <= fc.labels_remaining <= fc.labels_remaining_interval[1]
    if math.isfinite(fc.labels_remaining):
        assert fc.labels_needed == fc.labels_remaining + 120 or fc.labels_remaining == 0
    # The labels needed is the median over the forecast curves that reach the target; their share
    # is reported (and survives JSON).
    assert 0.1 <= fc.reach_share <= 1.0
    assert fc.to_dict()["reach_share"] == fc.reach_share


def test_statuses_are_the_documented_four():
    """The status vocabulary is fixed."""
    assert STATUSES == ("collecting", "on_track", "target_reached", "unreachable")


def test_to_dict_is_json_safe():
    """to_dict survives strict JSON (no NaN or Infinity), infinities become null."""
    X, y = _data(400, 0.0, seed=5)
    doc = forecast(X, y, 0.95).to_dict()
    text = json.dumps(doc, allow_nan=False)
    assert json.loads(text)["labels_needed"] is None
    assert doc["status"] == "unreachable"


def test_deterministic_for_seed():
    """Same inputs and seed give the same forecast."""
    X, y = _data(100, 1.0)
    a, b = forecast(X, y, 0.9, seed=3), forecast(X, y, 0.9, seed=3)
    assert a.to_dict() == b.to_dict()


@pytest.mark.parametrize("target", [0.5, 1.0, 1.2, float("nan")])
def test_bad_target(target):
    """A target outside (0.5, 1) is refused."""
    X, y = _data(50, 1.0)
    with pytest.raises(ValueError, match="target_auc"):
        forecast(X, y, target)


def test_message_is_one_sentence_with_figures():
    """The on-track message gives AUC, interval, labels and the target."""
    X, y = _data(2000, 1.2, seed=7, d=32)
    fc = forecast(X[:200], y[:200], 0.9)
    assert fc.message.startswith(f"AUC {fc.auc:.2f} (")
    assert "at 200 labels" in fc.message
    assert fc.message.count(".") >= 1 and "\n" not in fc.message


@pytest.mark.parametrize(
    "interval, words",
    [
        ((10.0, 90.0), "about 40 more labels (10–90) to reach 0.90."),
        ((12.0, math.inf), "about 40 more labels (at least 12, no upper bound yet) to reach 0.90."),
        ((0.0, math.inf), "about 40 more labels (maybe none, and no upper bound yet) to reach 0.90."),
    ],
)
def test_labels_needed_interval_reads_plainly(interval, words):
    """The labels-needed interval in the message: a range, an open one, one that starts at 0."""
    from types import SimpleNamespace

    from backend.forecast import _message

    curve = SimpleNamespace(auc=0.85, auc_low=0.8, auc_high=0.9)
    message = _message("on_track", curve, 0.95, (0.9, 0.99), 0.9, 40.0, interval, 100, 0.95)
    assert message.endswith(words), message
    unsure = _message("on_track", curve, 0.95, (0.9, 0.99), 0.9, 40.0, interval, 100, 0.6)
    assert unsure.endswith(f"{words[:-1]}, if it is reached: 6 in 10 forecast curves reach it."), unsure


def test_a_target_above_the_predicted_plateau_says_how_many_forecast_curves_reach_it():
    """When the mixture's plateau is below the target but some draws reach it, the message says
    so, with the share of the draws as a count out of ten and the labels they need."""
    from types import SimpleNamespace

    from backend.forecast import _message

    curve = SimpleNamespace(auc=0.85, auc_low=0.8, auc_high=0.9)
    message = _message("on_track", curve, 0.88, (0.84, 0.95), 0.9, 1200.0, (300.0, math.inf), 100, 0.34)
    assert "the target 0.90 is above the predicted plateau but not ruled out" in message, message
    assert message.endswith(
        "3 in 10 forecast curves reach it, those after about 1,200 more labels (at least 300, no upper bound yet)."
    ), message
    rare = _message("on_track", curve, 0.88, (0.84, 0.95), 0.9, 1200.0, (300.0, math.inf), 100, 0.02)
    assert "1 in 10 forecast curves" in rare, rare
    # Reaching draws that need no more labels do not make it "about reached" when the plateau is below.
    soon = _message("on_track", curve, 0.88, (0.84, 0.95), 0.9, 0.0, (0.0, math.inf), 100, 0.4)
    assert "about reached" not in soon and soon.endswith(
        "4 in 10 forecast curves reach it, most of those with the labels so far."
    ), soon


@pytest.mark.parametrize("share, words", [(0.0, "0"), (0.04, "1"), (0.34, "3"), (0.96, "9"), (1.0, "10")])
def test_shares_are_said_out_of_ten(share, words):
    """Only a share strictly between 0 and 1 is kept off 0 and 10."""
    from backend.forecast import _in_ten

    assert _in_ten(share) == words


def test_every_collecting_state_speaks_the_same_sentence():
    """Before the first forecast (the web process) and with too few labels, the sentence is the
    same: "Collecting: N labels so far (P positive); the forecast starts after ..."."""
    import numpy as np

    from backend.forecast import forecast
    from backend.labelstudio.protocol import collecting_message

    rng = np.random.default_rng(0)
    few = forecast(rng.normal(size=(10, 3)), np.tile([0, 1], 5))
    for message in (collecting_message(0, 30), few.message):
        assert message.startswith("Collecting: ") and "labels so far (" in message, message
        assert "; the forecast starts after " in message and message.endswith("."), message
    assert collecting_message(0, 30) == (
        "Collecting: 0 labels so far (0 positive); the forecast starts after 8 more positive and "
        "8 more without positive and 30 more labels in all."
    )


# --- labels that are not a random sample (issue 14) ---------------------------------------------


def _uncertainty_ordered(n_labeled=100, seed=0):
    """Rows of a synthetic project put in uncertainty-sampling order; (labeled, pool)."""
    from backend.simulate import replay_order

    X, y = _data(800, 1.0, seed=seed, d=8, flip=0.08)
    index, _ = replay_order(X, y, "uncertainty", seed=seed, n_steps=n_labeled)
    X, y = X[index], y[index]
    return (X[:n_labeled], y[:n_labeled]), X[n_labeled:]


def test_random_labels_with_a_pool_forecast_as_without():
    """A random sample with its pool is not flagged and gets exactly the forecast without one."""
    X, y = _data(600, 1.0, seed=5, flip=0.08)
    plain = forecast(X[:100], y[:100], 0.9)
    pooled = forecast(X[:100], y[:100], 0.9, pool=X[100:])
    assert not pooled.corrected and pooled.bias is not None and not pooled.bias.detected
    assert pooled.message == plain.message and pooled.auc == plain.auc and pooled.plateau == plain.plateau
    assert "not a random sample" not in pooled.message
    assert pooled.optimistic_fit is None and pooled.predict_interval(600) == plain.predict_interval(600)
    assert pooled.plateau_interval == plain.fit.plateau_interval(pooled.level)


def test_uncertainty_sampled_labels_are_flagged_and_corrected():
    """Labels chosen least-sure-first are flagged in plain words; the corrected current AUC is
    above the raw one (the raw one is measured on the hardest rows) and the raw curve is kept."""
    (X, y), pool = _uncertainty_ordered()
    fc = forecast(X, y, 0.9, pool=pool)
    assert fc.corrected and fc.bias.detected
    assert "not a random sample of this project's images; corrected for it" in fc.message
    assert fc.auc > fc.raw_curve.auc
    doc = fc.to_dict()
    json.dumps(doc)
    assert doc["selection_bias"]["detected"] is True and doc["raw"]["auc"] == pytest.approx(fc.raw_curve.auc)
    assert fc.predict_raw_auc(800) != fc.predict_auc(800)


def _project_auc_of_probes(X, y, pool, y_pool, seed=0, repeats=5):
    """What the current AUC estimates: probes on 80 % of the labels, scored on every other row of
    the project (the rest of the labels and the pool) with the true labels."""
    from backend.metrics import roc_auc
    from backend.probe import fit_probe

    rng = np.random.default_rng(seed)
    aucs = []
    for _ in range(repeats):
        train = rng.random(len(y)) < 0.8
        probe = fit_probe(X[train], y[train])
        s = probe.decision_function(np.vstack([X[~train], pool]))
        w = np.r_[np.full((~train).sum(), len(y) / (~train).sum()), np.ones(len(pool))]
        aucs.append(roc_auc(np.r_[y[~train], y_pool], s, w))
    return float(np.mean(aucs))


@pytest.mark.slow
def test_model_based_correction_removes_the_bias_of_the_current_auc(monkeypatch):
    """Labels chosen least-sure-first, 5 replays, labels flipped at random everywhere (so the
    true link is about logistic): the importance-weighted current AUC is still too low on
    average (by more than 0.04); the model-based one with Platt's map is not (within 0.02); with
    the isotonic map (the default since round 9) it runs higher than with Platt's, and the
    default blend is within 0.02 on average and off by less than the weighted one (mean absolute
    error)."""
    import backend.pool_auc as pool_auc
    from backend.simulate import replay_order

    errors = {"weights": [], "platt": [], "model": [], "blend": []}
    for seed in range(5):
        X, y = _data(800, 1.0, seed=seed, d=8, flip=0.08)
        index, _ = replay_order(X, y, "uncertainty", seed=seed, n_steps=100)
        X, y = X[index], y[index]
        truth = _project_auc_of_probes(X[:100], y[:100], X[100:], y[100:], seed=seed, repeats=20)
        for kind, errs in errors.items():
            with monkeypatch.context() as m:
                if kind == "platt":
                    m.setattr(pool_auc, "ISOTONIC_SHARE", 0.0)
                correction = "model" if kind == "platt" else kind
                fc = forecast(X[:100], y[:100], 0.9, pool=X[100:], correction=correction)
            assert fc.corrected
            errs.append(fc.auc - truth)
    assert np.mean(errors["weights"]) < -0.04, errors
    assert abs(np.mean(errors["platt"])) < 0.02, errors
    assert 0.02 < np.mean(errors["model"]) - np.mean(errors["platt"]) and np.mean(errors["model"]) < 0.1, errors
    assert abs(np.mean(errors["blend"])) < 0.02, errors  # the default: measured +0.004
    assert np.mean(np.abs(errors["blend"])) < np.mean(np.abs(errors["weights"])), errors
    X, y = _data(800, 1.0, seed=0, d=8, flip=0.08)
    index, _ = replay_order(X, y, "uncertainty", seed=0, n_steps=100)
    X, y = X[index], y[index]
    default = forecast(X[:100], y[:100], 0.9, pool=X[100:])
    assert default.auc == forecast(X[:100], y[:100], 0.9, pool=X[100:], correction="blend").auc


def test_an_unknown_correction_is_named():
    """A correction outside CORRECTIONS raises, naming it."""
    X, y = _data(200, 1.0)
    with pytest.raises(ValueError, match="'ipw'"):
        forecast(X, y, 0.9, correction="ipw")


def test_labels_beyond_the_project_are_said():
    """A forecast that needs more labels than the project's images says so; a large project does not."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(60, 16))
    y = (X[:, 0] + rng.normal(scale=0.5, size=60) > 0).astype(int)
    far = forecast(X, y, 0.85, seed=0)
    assert far.status == "on_track" and 100 < far.labels_needed < 10**6
    small = forecast(X, y, 0.85, seed=0, project_size=100)
    assert "than the 100 images LabelCast knows in this project" in small.message
    assert small.to_dict()["project_size"] == 100
    large = forecast(X, y, 0.85, seed=0, project_size=10**7)
    assert "images LabelCast knows" not in large.message


@pytest.mark.parametrize("bad", [-1, True])
def test_a_bad_project_size_is_refused(bad):
    """A negative or boolean project size raises a ValueError naming it."""
    with pytest.raises(ValueError, match="project_size"):
        forecast(np.zeros((40, 4)), np.tile([0, 1], 20), 0.9, project_size=bad)


def test_the_beyond_project_sentence_never_contradicts_itself():
    """1,040 labels needed against 1,000 images is not rounded to "1,000 in all"."""
    from backend.forecast import beyond_project_sentence

    assert "(1,040 in all) than the 1,000 images" in beyond_project_sentence(1039.2, 1000)
    assert "(2,500 in all) than the 1,000 images" in beyond_project_sentence(2480.0, 1000)


def test_no_maybe_none_while_the_current_auc_rules_the_target_out():
    """100 random labels whose current AUC's interval ends below the target (0.835 < 0.9): the
    curve fit's own fewest labels needed is below the labels so far (20), but the forecast's
    interval starts at one more label, and the message does not say "maybe none"."""
    X, y = _data(300, 1.0, seed=0, d=8, flip=0.08)
    fc = forecast(X[:100], y[:100], 0.9, seed=0)
    assert fc.auc_interval[1] < 0.9 and fc.fit.labels_interval(0.9, fc.level)[0] < 100
    assert fc.labels_needed_interval[0] == 101 and fc.labels_remaining_interval[0] == 1
    assert fc.labels_needed_interval[1] == fc.fit.labels_interval(0.9, fc.level)[1]
    assert "maybe none" not in fc.message and "at least 1" in fc.message, fc.message


def test_maybe_none_stays_while_the_current_auc_may_have_reached_the_target():
    """100 random labels whose current AUC's interval reaches the target (0.813-0.933): the curve
    fit's fewest labels needed (11) is kept, and the message may say "maybe none"."""
    X, y = _data(150, 1.5, seed=1, d=8, flip=0.08)
    fc = forecast(X[:100], y[:100], 0.9, seed=1)
    assert fc.auc_interval[0] < 0.9 <= fc.auc_interval[1]
    assert fc.labels_needed_interval == fc.fit.labels_interval(0.9, fc.level)
    assert fc.labels_needed_interval[0] < 100


def test_the_interval_is_raised_only_where_the_point_is_ahead():
    """The floor keeps the interval around its point: to one more label than so far, or to the
    point if that is lower; untouched where the current AUC may have reached the target or the
    point itself is at or below the labels so far (the message then says it in words)."""
    from backend.forecast import _not_reached_yet

    assert _not_reached_yet((20.0, math.inf), 150.0, 100, 0.85, 0.9) == (101.0, math.inf)
    assert _not_reached_yet((20.0, 300.0), 100.5, 100, 0.85, 0.9) == (100.5, 300.0)
    assert _not_reached_yet((120.0, 300.0), 150.0, 100, 0.85, 0.9) == (120.0, 300.0)
    assert _not_reached_yet((20.0, 95.0), 90.0, 100, 0.85, 0.9) == (20.0, 95.0)
    assert _not_reached_yet((20.0, math.inf), 150.0, 100, 0.9, 0.9) == (20.0, math.inf)


def test_the_corrected_message_claims_no_direction():
    """Round 9 dropped "more often too low than too high": with the isotonic calibration the
    benchmark's corrected forecasts were too low in 62 % of tuning and 65 % of held-out cases,
    below the 75 % its rule asked for. The message says the labels were corrected for, and does
    not say which way such forecasts err."""
    (X, y), pool = _uncertainty_ordered()
    fc = forecast(X, y, 0.9, pool=pool)
    assert fc.corrected and fc.status != "target_reached", fc.message
    assert BIAS_SENTENCE in fc.message
    assert "too low" not in fc.message and "too high" not in fc.message


def test_the_upper_ends_reach_the_optimistic_curve_of_least_sure_first_labels(monkeypatch):
    """Labels chosen near the boundary cannot show how the probe does on the images it is sure of,
    so the intervals' upper ends reach the curve that counts it right on all of them: the plateau's,
    the AUC predicted at any size, and the fewest labels needed; without the cautious curve (the
    next test) the lower ends are the fit's."""
    fc = _cautious_forecast(monkeypatch, False)
    opt = fc.optimistic_fit
    assert fc.corrected and opt is not None
    fit_low, fit_high = fc.fit.plateau_interval(fc.level)
    assert opt.plateau > fit_high  # this draw: the fit alone would end below the optimistic plateau
    assert fc.plateau_interval == (fit_low, opt.plateau)
    sizes = [50, 100, 800, 10_000]
    low, high = fc.band(sizes)
    fit_band = fc.fit.interval(sizes, fc.level)
    np.testing.assert_array_equal(low, fit_band[0])
    # up to the labels so far the band is the fit's: the optimistic curve only speaks of more labels
    np.testing.assert_array_equal(high[:2], fit_band[1][:2])
    np.testing.assert_array_equal(high[2:], np.maximum(fit_band[1][2:], opt.predict(sizes[2:])))
    assert high[3] > fit_band[1][3]
    assert fc.predict_interval(800) == (low[2], high[2])
    # the fewest labels needed comes down, but not to the labels so far: their AUC is below 0.9
    assert fc.auc_interval[1] < 0.9
    fit_fewest = fc.fit.labels_interval(0.9, fc.level)[0]
    assert fc.labels_needed_interval[0] == max(101, min(fit_fewest, opt.labels_for(0.9)))
    assert fc.labels_needed_interval[0] >= 101 and fc.labels_remaining_interval[0] >= 1
    assert "maybe none" not in fc.message
    assert fc.message.endswith(f"{BIAS_SENTENCE} {OPTIMISTIC_SENTENCE}")
    doc = fc.to_dict()
    json.dumps(doc)
    assert doc["optimistic_plateau"] == pytest.approx(opt.plateau)


def test_a_target_only_the_optimistic_curve_reaches_is_not_called_out_of_reach():
    """A target above the fit's plateau interval but below the optimistic plateau: the fit alone
    would say "out of reach"; least-sure-first labels cannot show that, so it is not said."""
    (X, y), pool = _uncertainty_ordered(seed=2)
    fc = forecast(X, y, 0.9, pool=pool, seed=2)
    fit_high = fc.fit.plateau_interval(fc.level)[1]
    target = (fit_high + fc.optimistic_fit.plateau) / 2
    assert fit_high < target < 1
    fc = forecast(X, y, target, pool=pool, seed=2)
    assert fc.status == "on_track" and "out of reach" not in fc.message, fc.message
    assert OPTIMISTIC_SENTENCE in fc.message


def _cautious_forecast(monkeypatch, on, target=0.9, seed=2):
    """The forecast of ``_uncertainty_ordered(seed)`` with the cautious lower ends on or off."""
    from backend import forecast as forecast_module

    monkeypatch.setattr(forecast_module, "PESSIMISTIC", on)
    (X, y), pool = _uncertainty_ordered(seed=seed)
    return forecast(X, y, target, pool=pool, seed=seed)


def test_the_lower_ends_reach_the_cautious_curve_when_it_is_on(monkeypatch):
    """With ``PESSIMISTIC`` on, the plateau's lower end, the AUC predicted beyond the labels so
    far and the most labels needed reach the cautious curve (Platt's map of the prequential
    logits); the point forecast, the upper ends and the current AUC stay as they were, and the
    message says why the worst case moved. Off, there is no cautious curve. On is the default."""
    from backend.forecast import PESSIMISTIC, PESSIMISTIC_SENTENCE

    assert PESSIMISTIC is True
    off, on = _cautious_forecast(monkeypatch, False), _cautious_forecast(monkeypatch, True)
    assert off.pessimistic_fit is None and PESSIMISTIC_SENTENCE not in off.message
    cautious = on.pessimistic_fit
    assert on.corrected and cautious is not None
    assert (on.plateau, on.auc, on.auc_interval, on.labels_needed) == (
        off.plateau,
        off.auc,
        off.auc_interval,
        off.labels_needed,
    )
    assert cautious.plateau < off.plateau_interval[0]  # this draw: the cautious plateau is lower
    assert on.plateau_interval == (cautious.plateau, off.plateau_interval[1])
    assert on.labels_needed_interval == (
        off.labels_needed_interval[0],
        max(off.labels_needed_interval[1], cautious.labels_for(0.9)),
    )
    sizes = [50, 100, 800, 10_000]
    (low_on, high_on), (low_off, high_off) = on.band(sizes), off.band(sizes)
    np.testing.assert_array_equal(high_on, high_off)
    np.testing.assert_array_equal(low_on[:2], low_off[:2])  # only more labels are forecast
    np.testing.assert_array_equal(low_on[2:], np.minimum(low_off[2:], cautious.predict(sizes[2:])))
    assert low_on[3] < low_off[3]
    assert on.message.endswith(f"{OPTIMISTIC_SENTENCE} {PESSIMISTIC_SENTENCE}")
    doc = on.to_dict()
    json.dumps(doc)
    assert doc["pessimistic_plateau"] == pytest.approx(cautious.plateau)


class _Fit:
    """A curve fit with a given plateau and labels needed, for the ends' arithmetic."""

    def __init__(self, plateau, needed):
        self.plateau, self._needed = plateau, needed

    def labels_for(self, target):
        return self._needed


def test_the_cautious_ends_only_ever_widen():
    """``_pessimistic_ends`` lowers the plateau's lower end and raises the most labels needed to
    the cautious fit's, to "never" (inf) where it does not reach the target, and says whether
    anything moved; a cautious fit inside the interval changes nothing."""
    from backend.forecast import _pessimistic_ends

    plateau, needed = (0.80, 0.95), (150.0, 400.0)
    assert _pessimistic_ends(_Fit(0.70, 900.0), plateau, needed, 0.9) == ((0.70, 0.95), (150.0, 900.0), True)
    assert _pessimistic_ends(_Fit(0.85, math.inf), plateau, needed, 0.9) == ((0.80, 0.95), (150.0, math.inf), True)
    assert _pessimistic_ends(_Fit(0.85, 300.0), plateau, needed, 0.9) == (plateau, needed, False)
    assert _pessimistic_ends(_Fit(0.70, 300.0), (0.80, 0.95), (150.0, math.inf), 0.9)[1] == (150.0, math.inf)


def test_the_uncorrected_panel_keeps_the_fits_own_band():
    """The plot's left panel (the forecast as the uncorrected curve makes it) has no optimistic
    upper end: that belongs to the corrected forecast."""
    from backend.plotting import _raw_view

    (X, y), pool = _uncertainty_ordered(seed=2)
    fc = forecast(X, y, 0.9, pool=pool, seed=2)
    raw = _raw_view(fc)
    sizes = [50, 800, 10_000]
    assert raw.optimistic_fit is None and raw.pessimistic_fit is None
    for got, want in zip(raw.band(sizes), fc.raw_fit.interval(sizes, fc.level)):
        np.testing.assert_array_equal(got, want)
