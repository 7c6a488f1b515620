"""Tests of backend.refit: labels and embeddings in, probes, forecast and version out (no I/O)."""

import time

import numpy as np
import pytest

from backend.exceptions import UnusableLabelsError
from backend.labelstudio.config import parse_label_config
from backend.refit import Refit, refit
from conftest import ONE_FINDING

CONFIG = parse_label_config(ONE_FINDING)


def _labels_and_vectors(n, dim=8, seed=0):
    """``n`` labels alternating Effusion / No effusion, with embeddings that separate them."""
    rng = np.random.default_rng(seed)
    labels = {t: ["Effusion" if t % 2 else "No effusion"] for t in range(n)}
    vectors = {t: (rng.normal(size=dim) + (2.0 if t % 2 else -2.0)).astype(np.float32) for t in range(n)}
    return labels, vectors


def _refit(settings, labels, vectors, previous=None, image_errors=None, pool=None):
    return refit(
        7,
        labels,
        vectors,
        CONFIG,
        settings,
        encoder_id="enc-1",
        encoder_spec="tiny",
        dim=8,
        pool=np.zeros((0, 8), np.float32) if pool is None else pool,
        pool_size=0 if pool is None else len(pool),
        n_tasks=len(labels),
        previous=previous,
        image_errors=image_errors or {},
        base_url="http://backend:9090",
        started=time.perf_counter(),
    )


def test_refit_gives_probe_forecast_plot_and_version(service_settings):
    """Twenty-four separable labels: a probe, a forecast past collecting, a PNG and a version
    that names the label count; the message links to the project's report."""
    labels, vectors = _labels_and_vectors(24)
    result = _refit(service_settings, labels, vectors)
    assert isinstance(result, Refit)
    assert set(result.model["probes"]) == {"Effusion"} and result.model["encoder"] == "enc-1"
    assert result.record["version"] == result.model["version"] and result.model["version"].endswith("-n24")
    assert result.record["status"] == "ok" and result.record["n_labels"] == 24
    assert result.record["findings"]["Effusion"]["status"] != "collecting"
    assert result.record["message"].endswith("Details: http://backend:9090/report?project=7")
    assert result.plots["Effusion"][:8] == b"\x89PNG\r\n\x1a\n"


def test_same_labels_keep_the_version_and_changed_ones_bump_the_revision(service_settings):
    """Given the previous model: the same labels keep its version, a relabel at the same count
    gets revision 2."""
    labels, vectors = _labels_and_vectors(12)
    first = _refit(service_settings, labels, vectors)
    assert _refit(service_settings, labels, vectors, previous=first.model).model["version"] == first.model["version"]
    relabeled = {**labels, 0: ["Effusion"]}
    assert _refit(service_settings, relabeled, vectors, previous=first.model).model["version"].endswith("-n12.r2")


def test_labels_without_usable_vectors_are_refused_with_the_image_errors(service_settings):
    """Labels arrived but no image could be used: UnusableLabelsError carries the reasons."""
    labels, _ = _labels_and_vectors(3)
    errors = {0: "image not fetched: refused", 1: "x", 2: "y"}
    with pytest.raises(UnusableLabelsError) as caught:
        _refit(service_settings, labels, {}, image_errors=errors)
    assert caught.value.image_errors == errors


def test_images_left_out_are_listed_and_counted(service_settings):
    """Labels whose image failed are left out of the fit, listed with the reason and named in
    the message."""
    labels, vectors = _labels_and_vectors(14)
    del vectors[13]
    result = _refit(service_settings, labels, vectors, image_errors={13: "image not decoded: not an image"})
    assert result.record["n_labels"] == 13 and result.record["n_labels_recorded"] == 14
    assert result.record["image_errors"] == {"13": "image not decoded: not an image"}
    assert "14 labels arrived; 1 left out" in result.record["message"]


def test_each_forecast_knows_the_projects_task_count(service_settings):
    """The project's task count reaches every finding's forecast (it bounds the labels a
    project can give)."""
    labels, vectors = _labels_and_vectors(24)
    result = _refit(service_settings, labels, vectors)
    assert result.record["findings"]["Effusion"]["project_size"] == 24


def test_refits_in_threads_at_once_give_what_they_give_one_by_one(service_settings):
    """Four refits of different label sets side by side (the embedded worker's lanes) give the
    probes, forecasts and plot PNGs that each gives alone: no shared state between them (the
    plots use no pyplot registry, the one-BLAS-thread blocks take turns)."""
    import threading

    cases = [_labels_and_vectors(24 + 4 * i, seed=i) for i in range(4)]
    alone = [_refit(service_settings, labels, vectors) for labels, vectors in cases]
    together: list = [None] * len(cases)

    def run(i):
        together[i] = _refit(service_settings, *cases[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(cases))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    for one, other in zip(alone, together):
        assert other.model["probes"] == one.model["probes"]
        assert other.record["findings"] == one.record["findings"]
        assert other.plots == one.plots


def test_the_cautious_curve_counts_as_unsteered_only_what_the_sampling_left_unsteered(service_settings):
    """Sixty labels chosen nearest the boundary of 600 images, the rest the pool: the forecast is
    corrected and has a cautious plateau. Its prequential logits cross-fit the labels no label
    steered: none under ``uncertainty`` (the service steers from the first probe on), the random
    start under ``mixed``, all under ``random``; so the three settings give three cautious
    plateaus, while none of them changes the point forecast of ``uncertainty`` and ``random``
    (``mixed`` also weights by its known probabilities)."""
    from backend.settings import ProjectSettings

    rng = np.random.default_rng(3)
    X = rng.normal(size=(600, 8)).astype(np.float32)
    y = rng.random(600) < 1 / (1 + np.exp(-3 * X[:, 0]))
    near = np.argsort(np.abs(X[:, 0]))[:60]
    rest = np.setdiff1d(np.arange(600), near)
    labels = {int(t): ["Effusion" if y[t] else "No effusion"] for t in near}
    vectors = {int(t): X[t] for t in near}
    found = {}
    for sampling in ("uncertainty", "mixed", "random"):
        settings = ProjectSettings(min_labels=10, sampling=sampling, random_start=30)
        record = _refit(settings, labels, vectors, pool=X[rest]).record["findings"]["Effusion"]
        assert record["selection_bias"]["detected"] and record["pessimistic_plateau"] is not None
        found[sampling] = record
    assert len({r["pessimistic_plateau"] for r in found.values()}) == 3
    assert found["uncertainty"]["plateau"] == found["random"]["plateau"]
