"""Tests of backend.training: the worker's job on a real tiny encoder and real stores."""

import numpy as np
import pytest

from backend.exceptions import ProjectNotFoundError
from backend.refit import summary_labels_needed
from backend.training import Trainer
from conftest import ONE_FINDING, SEVERAL_FINDINGS, data_uri, label_tasks, xray_png

CONFIG = ONE_FINDING
SEVERAL = SEVERAL_FINDINGS


class RecordingClient:
    """A Label Studio client that serves data: URIs through the real fetch code and records
    versions; ``fail_with`` set: pushing a version raises it. Every instance the trainer builds
    is listed in ``RecordingClient.made`` (reset per test by the ``trainer`` fixture)."""

    made: list = []

    def __init__(self, url, api_key, **_):
        from backend.labelstudio.client import LabelStudioClient

        self.url, self.api_key = url, api_key
        self.real = LabelStudioClient(None, None)
        self.versions = []
        self.fail_with = None
        RecordingClient.made.append(self)

    def fetch_image(self, ref, task_id=None, deadline=None):
        return self.real.fetch_image(ref, task_id, deadline=deadline)

    def set_model_version(self, project_id, version, status=None, backend_url=None, basic_auth=None):
        if self.fail_with is not None:
            raise self.fail_with
        self.versions.append((project_id, version, status))
        return 1


@pytest.fixture
def trainer(service_settings, sqlite_store):
    import dataclasses

    settings = dataclasses.replace(service_settings, label_studio_url="http://ls", label_studio_api_key="k")
    RecordingClient.made = []
    return Trainer(settings, sqlite_store, client_factory=RecordingClient)


def test_a_push_that_fails_with_a_bug_is_raised_and_not_retried(trainer, sqlite_store):
    """A push that fails with a TypeError (a bug, not Label Studio or the store being away) is
    raised to the queue and not retried: no retry loop, no silent retries (issue 12: 5)."""
    sqlite_store.put_project(1, {"label_config": CONFIG})
    label_tasks(sqlite_store, 1, 24)
    trainer.refit(1)
    (client,) = RecordingClient.made  # one Label Studio, one client
    client.fail_with = TypeError("unexpected answer")
    with pytest.raises(TypeError):
        trainer.publisher.push(1)
    assert 1 not in trainer.publisher.pending()


def test_a_push_that_meets_an_unreachable_store_is_retried_later(trainer, sqlite_store, monkeypatch):
    """The store unreachable during a push (here SQLite's OperationalError) is retried
    PUSH_RETRY_S later, never at once."""
    import sqlite3

    from backend import publish

    sqlite_store.put_project(1, {"label_config": CONFIG})
    label_tasks(sqlite_store, 1, 24)
    trainer.refit(1)

    def unreachable(project_id):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(sqlite_store, "get_model", unreachable)
    with pytest.raises(sqlite3.OperationalError):
        trainer.publisher.push(1)
    assert trainer.publisher.pending()[1] > publish.PUSH_RETRY_S - 5


def test_refit_saves_model_forecast_and_tells_label_studio(trainer, sqlite_store):
    """Twenty-four labels: probe, forecast, plot and a new model version pushed to Label Studio."""
    sqlite_store.put_project(1, {"label_config": CONFIG})
    label_tasks(sqlite_store, 1, 24)
    record = trainer.refit(1)
    model = sqlite_store.get_model(1)
    assert model["version"] == record["version"] and model["version"].endswith("-n24")
    assert set(model["probes"]) == {"Effusion"}
    assert record["n_labels"] == 24 and record["findings"]["Effusion"]["status"] != "collecting"
    # the sentence, then where the report is (no PUBLIC_URL here: no address)
    assert record["message"] == record["findings"]["Effusion"]["message"] + (
        " Details: /report?project=1 on the LabelCast backend."
    )
    assert sqlite_store.get_plot(1, "Effusion")[:8] == b"\x89PNG\r\n\x1a\n"
    (client,) = RecordingClient.made
    assert (client.url, client.api_key) == ("http://ls", "k")
    assert client.versions == [(1, model["version"], record["message"])]


def test_refit_embeds_each_image_once(trainer, sqlite_store):
    """A second refit reuses cached embeddings; changed labels at the same count get a new revision."""
    sqlite_store.put_project(1, {"label_config": CONFIG})
    label_tasks(sqlite_store, 1, 12)
    trainer.refit(1)
    calls = []
    real_embed = trainer.encoder.embed
    trainer.encoder.embed = lambda images: calls.append(len(images)) or real_embed(images)
    try:
        second = trainer.refit(1)
    finally:
        trainer.encoder.embed = real_embed
    assert calls == [] and second["version"].endswith("-n12")  # same labels, same version
    sqlite_store.put_label(1, annotation_id=5000, task_id=0, choices=["No effusion"])  # relabel task 0
    assert trainer.refit(1)["version"].endswith("-n12.r2")


def test_few_labels_give_a_collecting_forecast_without_probe(trainer, sqlite_store):
    """Three labels of one class: no probe, a collecting message, a labels-needed count."""
    sqlite_store.put_project(1, {"label_config": CONFIG})
    for i in range(3):
        sqlite_store.put_tasks(1, {i: data_uri(xray_png(i, True))})
        sqlite_store.put_label(1, 10 + i, i, ["Effusion"])
    record = trainer.refit(1)
    assert sqlite_store.get_model(1)["probes"] == {}
    assert record["findings"]["Effusion"]["status"] == "collecting"
    assert record["message"].startswith("Collecting") and record["labels_needed"] >= 7


def test_several_findings_get_one_probe_each(trainer, sqlite_store):
    """A multi-label project fits one probe and one forecast per finding that has both classes."""
    sqlite_store.put_project(2, {"label_config": SEVERAL})
    for i in range(16):
        chosen = [f for f, on in (("Effusion", i % 2 == 0), ("Cardiomegaly", i % 3 == 0)) if on]
        sqlite_store.put_tasks(2, {i: data_uri(xray_png(i, i % 2 == 0))})
        sqlite_store.put_label(2, 100 + i, i, chosen)
    record = trainer.refit(2)
    assert set(sqlite_store.get_model(2)["probes"]) == {"Effusion", "Cardiomegaly"}
    assert set(record["findings"]) == {"Effusion", "Cardiomegaly", "Consolidation", "Pneumothorax"}
    assert "Effusion:" in record["message"] and " | " in record["message"]


def test_broken_images_are_skipped(trainer, sqlite_store):
    """An image that cannot be decoded is left out instead of failing the refit."""
    sqlite_store.put_project(1, {"label_config": CONFIG})
    label_tasks(sqlite_store, 1, 12)
    sqlite_store.put_tasks(1, {99: "data:image/png;base64,bm90IGFuIGltYWdl"})
    sqlite_store.put_label(1, 5000, 99, ["Effusion"])
    assert trainer.refit(1)["n_labels"] == 12


class LabelStudioAtLoopback(RecordingClient):
    """The real client with LABEL_STUDIO_URL on a loopback port nothing listens on, ``*`` allowed."""

    def __init__(self, url, api_key, **_):
        from backend.labelstudio.client import LabelStudioClient

        super().__init__(url, api_key)
        self.real = LabelStudioClient("http://127.0.0.1:1", None, allowed_hosts="*")


@pytest.mark.parametrize("ref", ["http://[::1/x", "http://example.org:99999/x", "http://h:1\\@evil/x"])
def test_a_malformed_reference_is_one_image_error_not_a_failed_refit(service_settings, sqlite_store, ref):
    """A label whose image reference is malformed is listed in image_errors; the refit, and
    every later one, goes on (an uncaught ValueError stopped them all)."""
    import dataclasses

    settings = dataclasses.replace(service_settings, label_studio_url="http://127.0.0.1:1", label_studio_api_key="k")
    trainer = Trainer(settings, sqlite_store, client_factory=LabelStudioAtLoopback)
    sqlite_store.put_project(1, {"label_config": CONFIG})
    label_tasks(sqlite_store, 1, 12)
    sqlite_store.put_tasks(1, {99: ref})
    sqlite_store.put_label(1, 5000, 99, ["Effusion"])
    for _ in range(2):
        record = trainer.refit(1)
        assert record["n_labels"] == 12 and list(record["image_errors"]) == ["99"]


def test_unknown_project(trainer):
    """Refitting a project that was never set up raises ProjectNotFoundError."""
    with pytest.raises(ProjectNotFoundError, match="project 42"):
        trainer.refit(42)


def test_embed_tasks_fills_the_cache(trainer, sqlite_store):
    """embed_tasks records hashes and embeddings of new tasks (TASKS_CREATED path)."""
    sqlite_store.put_project(1, {"label_config": CONFIG})
    sqlite_store.put_tasks(1, {7: data_uri(xray_png(7, True)), 8: data_uri(xray_png(8, False))})
    vectors = trainer.embed_tasks(1, [7, 8])
    assert set(vectors) == {7, 8}
    sha = sqlite_store.get_tasks(1, [7])[7]["sha"]
    np.testing.assert_allclose(sqlite_store.get_many(trainer.encoder.id, [sha])[sha], vectors[7])


def test_summary_labels_needed_is_the_slowest_finding():
    """The number shown is the largest remaining count; unreachable findings blank it, and so do
    findings that fewer than half of their forecast curves bring to the target."""

    class F:
        def __init__(self, status, remaining=None, n=40, reach=None):
            self.status, self.labels_remaining, self.n_labels = status, remaining, n
            self.positives_needed = self.negatives_needed = 0
            self.reach_share = reach

    assert summary_labels_needed({"a": F("on_track", 80.0, reach=0.9), "b": F("target_reached")}, 30) == 80.0
    assert summary_labels_needed({"a": F("on_track", float("inf"))}, 30) is None
    assert summary_labels_needed({"a": F("on_track", 80.0, reach=0.3), "b": F("on_track", 20.0, reach=1.0)}, 30) is None
    assert summary_labels_needed({"a": F("on_track", 80.0, reach=0.5)}, 30) == 80.0
    assert summary_labels_needed({"a": F("collecting", None, 12)}, 30) == 18.0


# --- round 2 (issue 13) ------------------------------------------------------------------------


def test_trickling_images_hold_a_refit_for_the_fetch_budget_only(
    service_settings, sqlite_store, trickling_images, monkeypatch
):
    """Three images from a server that trickles a byte every 0.25 s: the refit gives up on them
    when its download budget is spent (they are fetched side by side, each cut off at the
    deadline) and goes on with the rest; so a refit of another project waits that long at most."""
    import dataclasses
    import time

    from backend import training

    monkeypatch.setattr(training, "FETCH_BUDGET_S", 1.5, raising=False)
    settings = dataclasses.replace(service_settings, allowed_image_hosts=("127.0.0.1",))
    trainer = Trainer(settings, sqlite_store)
    sqlite_store.put_project(1, {"label_config": CONFIG})
    label_tasks(sqlite_store, 1, 12)
    for task in (90, 91, 92):
        sqlite_store.put_tasks(1, {task: f"{trickling_images}/trickle"})
        sqlite_store.put_label(1, 5000 + task, task, ["Effusion"])
    _ = trainer.encoder  # loaded before the clock starts
    started = time.monotonic()
    record = trainer.refit(1)
    assert time.monotonic() - started < 5.0
    assert record["n_labels"] == 12 and sorted(record["image_errors"]) == ["90", "91", "92"]
    assert all("not downloaded within" in reason for reason in record["image_errors"].values())


def test_a_batch_never_holds_more_decoded_pixels_than_the_budget(trainer, sqlite_store, monkeypatch):
    """Eight 120 x 120 images under a 30,000-pixel budget are embedded two at a time, never all
    eight together (eight 7,000 x 7,000 PNGs held 1.8 GB)."""
    from backend.pipeline import Pipeline

    trainer._pipeline = Pipeline(trainer.encoder, sqlite_store, batch_pixels=30_000)
    calls = []
    embed_pixels = trainer.encoder.embed_pixels
    monkeypatch.setattr(
        trainer.encoder, "embed_pixels", lambda pixels: calls.append(len(pixels)) or embed_pixels(pixels)
    )
    sqlite_store.put_project(1, {"label_config": CONFIG})
    sqlite_store.put_tasks(1, {i: data_uri(xray_png(i, i % 2 == 0, size=120)) for i in range(8)})
    vectors = trainer.embed_tasks(1, range(8))
    assert len(vectors) == 8
    assert calls == [2] * 4


def test_many_bad_images_log_one_warning(trainer, sqlite_store, caplog):
    """Forty tasks with broken images log one warning that counts them, not forty lines."""
    import logging

    sqlite_store.put_project(1, {"label_config": CONFIG})
    sqlite_store.put_tasks(
        1, {i: "data:image/png;base64,bm90IGFuIGltYWdl" if i % 2 else f"ftp://u:p@h/{i}" for i in range(40)}
    )
    with caplog.at_level(logging.WARNING, logger="backend.training"):
        trainer.embed_tasks(1, range(40))
    warnings = [r for r in caplog.records if r.name == "backend.training" and r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "40 image(s)" in warnings[0].getMessage()
    assert "u:p@" not in caplog.text


def _label_refused(store, project_id, n, start=0):
    """Labels whose images are on a host that is not in ALLOWED_IMAGE_HOSTS."""
    for i in range(start, start + n):
        store.put_tasks(project_id, {i: f"http://images.example.com/{i}.png"})
        store.put_label(project_id, annotation_id=1000 + i, task_id=i, choices=["Effusion" if i % 2 else "No effusion"])


def test_every_image_refused_gives_an_error_forecast_that_says_why(trainer, sqlite_store):
    """Forty labels whose images are all refused: status error, the count that arrived, the
    reason and the fix, in the record and in what Label Studio is told; never "0 labels"."""
    sqlite_store.put_project(1, {"label_config": CONFIG})
    _label_refused(sqlite_store, 1, 40)
    record = trainer.refit(1)
    assert record["status"] == "error"
    assert sqlite_store.get_forecast(1) == record
    assert "40 labels arrived" in record["message"] and "ALLOWED_IMAGE_HOSTS" in record["message"]
    assert "40 images refused" in record["message"]
    assert "0 labels so far" not in record["message"]
    assert record["n_labels_recorded"] == 40 and record["n_image_errors"] == 40
    client = next(iter(trainer._clients.values()))
    assert client.versions == [(1, record["version"], record["message"])]
    assert record["version"].endswith("-n0")


def test_an_error_keeps_the_last_good_model(trainer, sqlite_store):
    """A refit that cannot run after a good one keeps the probes (predictions go on) and the
    version; the next good refit clears the error."""
    sqlite_store.put_project(1, {"label_config": CONFIG})
    label_tasks(sqlite_store, 1, 24)
    good = trainer.refit(1)
    sqlite_store.put_project(1, {"label_config": "<View><Image name='image' value='$image'/></View>"})
    record = trainer.refit(1)
    assert record["status"] == "error" and "labeling config" in record["message"]
    assert "24 labels arrived" in record["message"]
    assert sqlite_store.get_model(1)["version"] == good["version"]
    assert sqlite_store.get_model(1)["probes"]
    assert sqlite_store.get_plot(1, "Effusion") is not None
    sqlite_store.put_project(1, {"label_config": CONFIG})
    assert trainer.refit(1)["status"] == "ok"


def test_an_encoder_that_cannot_load_gives_an_error_forecast(service_settings, sqlite_store, tmp_path):
    """ENCODER names a folder that does not exist: the forecast says so, with the fix."""
    import dataclasses

    settings = dataclasses.replace(
        service_settings,
        encoder=str(tmp_path / "no-such-encoder"),
        label_studio_url="http://ls",
        label_studio_api_key="k",
    )
    trainer = Trainer(settings, sqlite_store, client_factory=RecordingClient)
    sqlite_store.put_project(1, {"label_config": CONFIG})
    label_tasks(sqlite_store, 1, 12)
    record = trainer.refit(1, sync=False)
    assert record["status"] == "error"
    assert "cannot be loaded" in record["message"] and "fix ENCODER" in record["message"]
    assert "12 labels arrived" in record["message"]


def test_some_images_left_out_are_counted_in_the_message(trainer, sqlite_store):
    """Twenty-four usable labels and three refused: the message says 27 arrived, 3 left out, why."""
    sqlite_store.put_project(1, {"label_config": CONFIG})
    label_tasks(sqlite_store, 1, 24)
    _label_refused(sqlite_store, 1, 3, start=100)
    record = trainer.refit(1)
    assert record["status"] == "ok" and record["n_labels"] == 24
    assert "27 labels arrived; 3 left out: 3 images refused" in record["message"]


def test_an_unexpected_error_is_not_turned_into_a_forecast(trainer, sqlite_store, monkeypatch):
    """A TypeError inside the refit is a bug: it fails the job, no error forecast hides it."""
    sqlite_store.put_project(1, {"label_config": CONFIG})
    label_tasks(sqlite_store, 1, 12)

    def broken(*args, **kwargs):
        raise TypeError("bug")

    monkeypatch.setattr("backend.probe.fit_probe", broken)
    with pytest.raises(TypeError):
        trainer.refit(1)
    assert sqlite_store.get_forecast(1) is None


def test_a_backfill_reports_its_progress_to_the_store_and_label_studio(trainer, sqlite_store, monkeypatch):
    """Embedding 40 new tasks: the store's progress record counts them (tasks embedded / total,
    images/s, errors by reason), Label Studio's description says "embedding 32 of 41 images"
    after the first batch, and the forecast sentence is put back at the end."""
    from backend import training

    monkeypatch.setattr(training, "BACKFILL_NOTICE_MIN", 10)
    monkeypatch.setattr(training, "PROGRESS_PUSH_S", 0.0)
    sqlite_store.put_project(1, {"label_config": CONFIG})
    sqlite_store.put_tasks(1, {i: data_uri(xray_png(i, i % 2 == 0)) for i in range(40)})
    sqlite_store.put_tasks(1, {99: "http://images.example.com/99.png"})
    trainer.embed_tasks(1, range(40))
    progress = sqlite_store.get_embedding_progress(1)
    assert progress["running"] is False
    assert (progress["tasks_embedded"], progress["tasks_total"]) == (40, 41)
    assert progress["job_done"] == progress["job_images"] == 40 and progress["images_per_s"] > 0
    trainer.embed_tasks(1, [99])
    progress = sqlite_store.get_embedding_progress(1)
    assert progress["errors"] == {"refused": 1} and progress["tasks_embedded"] == 40
    client = next(iter(trainer._clients.values()))
    statuses = [status for _, _, status in client.versions]
    assert statuses[0] == "embedding 32 of 41 images"
    assert statuses[-1] == "40 of 41 images embedded."
    assert len(sqlite_store.get_pool_embeddings(1, trainer.encoder.id)) == 40
