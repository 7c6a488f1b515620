"""Tests of backend.app.report (/report) and the forecast history the store keeps for it."""

from __future__ import annotations

import html.parser

import pytest

from backend.app import EXTENSION
from conftest import ONE_FINDING, annotation_event

CONFIG = ONE_FINDING


def _annotation(pid, task_id, annotation_id, positive):
    return annotation_event(pid, task_id, annotation_id, positive, label_config=CONFIG)


class _Tags(html.parser.HTMLParser):
    """Collects tags and text, to check the page is well formed and what it shows."""

    def __init__(self):
        super().__init__()
        self.tags, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def test_report_shows_forecast_plot_history_and_settings(app, client):
    """After two refits the page has the message, an inline PNG, two history rows, the encoder."""
    # Label Studio (on this machine: its hostname resolves to the caller) connects the project.
    client.post("/setup", json={"project": 7, "schema": CONFIG, "hostname": "http://localhost:8080"})
    jobs = app.extensions[EXTENSION].jobs
    for i in range(20):
        client.post("/webhook", json=_annotation(7, i, 100 + i, i % 2 == 0))
    assert jobs.wait_idle(120)
    for i in range(20, 26):
        client.post("/webhook", json=_annotation(7, i, 100 + i, i % 2 == 0))
    assert jobs.wait_idle(120)

    response = client.get("/report?project=7")
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = _Tags()
    page.feed(response.get_data(as_text=True))
    text = " ".join(page.text)
    forecast = client.get("/forecast?project=7").json
    # no PUBLIC_URL: the path on the backend, no address (a request's Host header is not one)
    assert forecast["message"].endswith(" Details: /report?project=7 on the LabelCast backend.")  # one line
    assert "\n" not in forecast["message"]
    assert forecast["message"] in text.replace("\n", " ") or forecast["message"][:40] in text
    images = [attrs for tag, attrs in page.tags if tag == "img"]
    assert images and images[0]["src"].startswith("data:image/png;base64,iVBOR")
    history = app.extensions[EXTENSION].store.get_history(7)
    assert [h["n_labels"] for h in history][-1] == 26 and len(history) >= 2
    assert "History" in text and forecast["version"] in text
    assert "…/" + app.extensions[EXTENSION].settings.encoder.rstrip("/").rpartition("/")[2] in text


def test_report_escapes_what_it_shows(app, client):
    """A finding name with markup is shown as text, never as HTML."""
    store = app.extensions[EXTENSION].store
    evil = "<script>alert(1)</script>"
    store.put_project(3, {"label_config": CONFIG, "extra_params": {}})
    store.put_result(
        3,
        {"version": "v1", "encoder_spec": evil},
        {
            "version": "v1",
            "n_labels": 2,
            "message": evil,
            "findings": {evil: {"status": "collecting", "message": evil}},
        },
        {},
    )
    body = client.get("/report?project=3").get_data(as_text=True)
    assert "<script>" not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body


@pytest.mark.parametrize(
    "query, status",
    [
        pytest.param("", 400, id="no-project"),
        pytest.param("?project=abc", 400, id="not-a-number"),
        pytest.param("?project=404", 404, id="unknown-project"),
    ],
)
def test_report_errors_are_json(client, query, status):
    """Missing, malformed or unknown projects answer JSON errors like every other route."""
    response = client.get("/report" + query)
    assert response.status_code == status and "message" in response.json


def test_report_before_the_first_forecast(client):
    """A connected project without labels gets a page that says so."""
    client.post("/setup", json={"project": 5, "schema": CONFIG})
    body = client.get("/report?project=5").get_data(as_text=True)
    assert "No forecast yet" in body


@pytest.fixture(
    params=[pytest.param("sqlite", id="sqlite"), pytest.param("redis", id="redis", marks=pytest.mark.redis)]
)
def store(request):
    return request.getfixturevalue(f"{request.param}_store")


def test_store_keeps_a_history_of_forecast_summaries(store):
    """Each put_result appends one summary, oldest first; projects are kept apart."""
    for n in (10, 12, 15):
        store.put_result(
            1,
            {"version": f"v{n}"},
            {
                "version": f"v{n}",
                "n_labels": n,
                "labels_needed": 100 - n,
                "updated_at": float(n),
                "findings": {
                    "Effusion": {
                        "status": "forecast",
                        "auc": 0.7,
                        "labels_remaining": 90 - n,
                        "points": {"sizes": [1, 2]},
                    }
                },
            },
            {},
        )
    store.put_result(2, {"version": "w"}, {"version": "w", "n_labels": 1, "findings": {}}, {})
    history = store.get_history(1)
    assert [h["n_labels"] for h in history] == [10, 12, 15]
    assert history[-1]["findings"]["Effusion"] == {
        "status": "forecast",
        "auc": 0.7,
        "labels_remaining": 75,
        "labels_needed": None,
        "n_positive": None,
        "n_negative": None,
    }
    assert [h["version"] for h in store.get_history(2)] == ["w"] and store.get_history(99) == []


def test_public_url_setting_wins_over_the_url_label_studio_uses(tmp_path, tiny_encoder_spec, sqlite_store):
    """PUBLIC_URL (for browsers) replaces the address Label Studio reached /setup at."""
    from backend.app import create_app
    from backend.jobs import ThreadJobs
    from backend.settings import Settings

    settings = Settings(
        model_dir=tmp_path / "m",
        encoder=tiny_encoder_spec,
        min_labels=10,
        public_url="https://labelcast.hospital.example/",
    )
    assert Settings.from_env({"PUBLIC_URL": "https://x.example/"}).public_url == "https://x.example"
    jobs = ThreadJobs(settings, sqlite_store, isolate=False)
    app = create_app(
        {"TESTING": True, "LABELCAST_SETTINGS": settings, "LABELCAST_STORE": sqlite_store, "LABELCAST_JOBS": jobs}
    )
    client = app.test_client()
    try:
        client.post("/setup", json={"project": 4, "schema": CONFIG})
        for i in range(12):
            client.post("/webhook", json=_annotation(4, i, 200 + i, i % 2 == 0))
        assert jobs.wait_idle(120)
        message = client.get("/forecast?project=4").json["message"]
        assert message.endswith(" Details: https://labelcast.hospital.example/report?project=4")
    finally:
        jobs.close()


def test_report_does_not_show_the_servers_folders(app, client, tiny_encoder_spec):
    """The encoder spec on the page keeps the model's name but not the folder it is in."""
    from backend.app.report import public_spec

    client.post("/setup", json={"project": 9, "schema": CONFIG})
    page = client.get("/report?project=9").get_data(as_text=True)
    assert tiny_encoder_spec.rstrip("/") not in page and "…/clip" in page
    assert public_spec("open_clip:ViT-B-16:/srv/ckpt/b16.pt") == "open_clip:ViT-B-16:…/b16.pt"
    assert public_spec("StanfordAIMI/XrayCLIP__vit-b-16__laion2b-s34b-b88k") == (
        "StanfordAIMI/XrayCLIP__vit-b-16__laion2b-s34b-b88k"
    )


def test_report_shows_raw_and_corrected_curves_side_by_side(app, client):
    """A forecast corrected for labels unlike the pool: the page says so in plain words, gives
    both AUCs, and its plot has two panels (raw left, corrected right)."""
    import struct

    import numpy as np

    from backend.forecast import forecast
    from backend.simulate import replay_order
    from backend.refit import _plot

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 800)
    X = rng.normal(size=(800, 8)) + y[:, None] * (np.arange(8) < 2)
    y = np.where(rng.random(800) < 0.08, 1 - y, y)
    index, _ = replay_order(X, y, "uncertainty", n_steps=100)
    X, y = X[index], y[index]
    fc = forecast(X[:100], y[:100], 0.9, pool=X[100:], positive_name="Effusion")
    assert fc.corrected
    single = forecast(X[:100], y[:100], 0.9, positive_name="Effusion")
    width = lambda png: struct.unpack(">I", png[16:20])[0]  # noqa: E731  (PNG IHDR)
    png = _plot(fc)
    assert width(png) > 1.5 * width(_plot(single))

    store = app.extensions[EXTENSION].store
    store.put_project(4, {"label_config": CONFIG, "extra_params": {"sampling": "uncertainty"}})
    store.put_result(
        4,
        {"version": "v1"},
        {"version": "v1", "n_labels": 100, "message": fc.message, "findings": {"Effusion": fc.to_dict()}},
        {"Effusion": png},
    )
    page = _Tags()
    page.feed(client.get("/report?project=4").get_data(as_text=True))
    text = " ".join(page.text)
    assert "not a random sample of this project's images; corrected for it" in text
    assert "AUC now (as measured on the labels)" in text and "AUC now (corrected)" in text
    assert f"{fc.raw_curve.auc:.3f}" in text and f"{fc.auc:.3f}" in text
    assert "unlike: corrected" in text and "sampling (order of the prediction score)" in text
    assert f"nearer the probe's boundary gives z = {fc.bias.margin_z:.1f}" in text
    assert f"forecast curves that reach the target {100 * fc.reach_share:.0f}%" in text
    assert any(tag == "img" for tag, _ in page.tags)


def test_report_shows_an_error_forecast_and_the_labels_left_out(client, sqlite_store):
    """A forecast with status error: the report shows its sentence, the labels that arrived and
    each labeled task left out with the reason."""
    config = ONE_FINDING
    client.post("/setup", json={"project": 5, "schema": config})
    sentence = "Error: no forecast, 2 labels arrived but none could be used: 2 images refused"
    sqlite_store.put_result(
        5,
        {"version": "v"},
        {
            "status": "error",
            "error": sentence,
            "message": sentence,
            "n_labels": 0,
            "n_labels_recorded": 2,
            "image_errors": {"11": "image not fetched: image host 'h' is not allowed"},
            "n_image_errors": 2,
        },
        {},
    )
    page = client.get("/report?project=5").get_data(as_text=True)
    assert 'class="message error"' in page and sentence in page
    assert "Labeled tasks left out" in page and "image host &#x27;h&#x27; is not allowed" in page
    assert "(the first 1)" in page


def test_metrics_and_report_show_the_embedding_progress(client, sqlite_store):
    """The worker's progress record: per project in /metrics, as a section of /report."""
    config = ONE_FINDING
    client.post("/setup", json={"project": 6, "schema": config})
    progress = {
        "running": True,
        "tasks_total": 10000,
        "tasks_embedded": 3200,
        "job_images": 9000,
        "job_done": 2200,
        "images_per_s": 61.5,
        "errors": {"refused": 3},
        "updated_at": 1.0,
    }
    sqlite_store.put_embedding_progress(6, progress)
    assert client.get("/metrics").json["projects"]["6"]["embedding"] == progress
    page = client.get("/report?project=6").get_data(as_text=True)
    assert "3200 / 10000" in page and "2200 of 9000 images, 61.5 images/s" in page and "3 refused" in page
