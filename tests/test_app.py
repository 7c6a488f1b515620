"""Tests of backend.app: the ML-backend protocol over Flask's test client (embedded mode)."""

import base64
import subprocess
import sys

import pytest

from backend.app import EXTENSION, create_app
from conftest import (
    ONE_FINDING,
    PROJECT_ROOT,
    SEVERAL_FINDINGS,
    IdleTrainer,
    annotation_event,
    data_uri,
    xray_png,
)

CONFIG = ONE_FINDING


def _annotation(pid, task_id, annotation_id, positive, **kwargs):
    return annotation_event(pid, task_id, annotation_id, positive, label_config=CONFIG, **kwargs)


def _tasks(ids):
    return [{"id": t, "data": {"image": data_uri(xray_png(t, t % 2 == 0))}} for t in ids]


def _jobs(app):
    return app.extensions[EXTENSION].jobs


def test_health(client):
    """/ and /health answer UP."""
    for path in ("/", "/health"):
        assert client.get(path).json["status"] == "UP"


def test_every_answer_says_how_long_the_app_took(client):
    """A Server-Timing header (app;dur=milliseconds) on answers and on errors alike."""
    import re

    for response in (client.get("/health"), client.post("/webhook", data="not json"), client.get("/nowhere")):
        match = re.fullmatch(r"app;dur=(\d+\.\d\d)", response.headers.get("Server-Timing", ""))
        assert match and 0 <= float(match.group(1)) < 60_000, response.headers


def test_setup_accepts_the_shipped_config(client):
    """/setup with the one-finding config answers the initial model version."""
    response = client.post(
        "/setup", json={"project": "3.1700000000", "schema": CONFIG, "extra_params": {"target_auc": 0.85}}
    )
    assert response.status_code == 200
    assert response.json["model_version"].startswith("labelcast-") and response.json["model_version"].endswith("-n0")


@pytest.mark.parametrize(
    "body, fragment",
    [
        pytest.param(
            {"project": 1, "schema": '<View><Image name="i" value="$image"/></View>'}, "no <Choices", id="no-choices"
        ),
        pytest.param(
            {"project": 1, "schema": CONFIG, "extra_params": {"target": 1}}, "unknown extra_params", id="bad-extra"
        ),
        pytest.param(
            {"project": 1, "schema": CONFIG, "extra_params": {"target_auc": 2}}, "between 0.5 and 1", id="bad-target"
        ),
        pytest.param({"schema": CONFIG}, "project must be an integer", id="no-project"),
    ],
)
def test_setup_errors_are_json_400(client, body, fragment):
    """A config or parameter LabelCast cannot use gives a 400 whose message says why."""
    response = client.post("/setup", json=body)
    assert response.status_code == 400 and fragment in response.json["message"]


def test_bad_requests_are_json(client):
    """Non-JSON bodies, unknown paths and unknown projects give JSON errors, not tracebacks."""
    assert client.post("/webhook", data="nope").status_code == 400
    assert client.get("/missing").json["error"] == "Not Found"
    response = client.post("/predict", json={"project": 9, "tasks": []})
    assert response.status_code == 404 and "not connected" in response.json["message"]
    response = client.get("/forecast")
    assert response.status_code == 400 and "?project=" in response.json["message"]
    assert "Traceback" not in client.post("/webhook", json={"action": "ANNOTATION_CREATED"}).get_data(as_text=True)


def test_unknown_events_are_acknowledged(client):
    """Events LabelCast does not use are answered 200 and ignored."""
    response = client.post("/webhook", json={"action": "PROJECT_DELETED", "project": {"id": 1}})
    assert response.status_code == 200 and response.json["status"] == "ignored"


def test_predict_before_any_label_carries_only_the_collecting_message(client):
    """Before a probe exists, predictions have the collecting text and number, no choice; the
    score is mixed's random start (the random order, so the first labels are a random sample),
    and none at all under uncertainty sampling."""
    from backend.sampling import task_uniform

    client.post("/setup", json={"project": 5, "schema": CONFIG})
    response = client.post("/predict", json={"project": "5.123", "label_config": CONFIG, "tasks": _tasks([1, 2])})
    assert response.status_code == 200
    results = response.json["results"]
    assert [r["score"] for r in results] == (0.5 + 0.5 * task_uniform(5, [1, 2])).tolist()
    assert [r["type"] for r in results[0]["result"]] == ["textarea", "number"]
    assert results[0]["result"][0]["value"]["text"][0].startswith("Collecting")
    client.post("/setup", json={"project": 5, "schema": CONFIG, "extra_params": {"sampling": "uncertainty"}})
    results = client.post("/predict", json={"project": 5, "label_config": CONFIG, "tasks": _tasks([1, 2])}).json
    assert "score" not in results["results"][0]


def test_labels_train_and_predictions_follow(app, client):
    """Webhook labels are recorded, a refit runs, predictions then carry score and forecast
    (mixed without a random start here: a task not embedded yet has no score to sort by)."""
    client.post("/setup", json={"project": 7, "schema": CONFIG, "extra_params": {"random_start": 0}})
    for i in range(24):
        response = client.post("/webhook", json=_annotation(7, i, 100 + i, i % 2 == 0))
        assert response.status_code == 200 and response.json["status"] == "ok"
    client.post("/webhook", json=_annotation(7, 50, 150, True, cancelled=True))  # a skip
    assert _jobs(app).wait_idle(120)

    forecast = client.get("/forecast?project=7").json
    assert forecast["n_labels"] == 24 and forecast["version"].endswith("-n24")
    png = client.get("/forecast.png?project=7")
    assert png.status_code == 200 and png.data[:4] == b"\x89PNG"

    # Tasks 0-23 have cached embeddings; 60-61 are new and get the forecast part only.
    predictions = client.post("/predict", json={"project": 7, "tasks": _tasks([0, 1, 60, 61])}).json
    assert predictions["model_version"] == forecast["version"]
    first, new = predictions["results"][0], predictions["results"][2]
    assert {r["type"] for r in first["result"]} == {"choices", "textarea"} | (
        {"number"} if forecast["labels_needed"] is not None else set()
    )
    assert 0.5 <= first["score"] <= 1.0
    assert "score" not in new and new["result"][0]["type"] == "textarea"
    assert _jobs(app).wait_idle(60)  # the embed job for tasks 60, 61
    later = client.post("/predict", json={"project": 7, "tasks": _tasks([60])}).json["results"][0]
    assert "score" in later

    metrics = client.get("/metrics").json
    assert metrics["projects"]["7"]["n_labels"] == 24 and metrics["jobs"]["failed"] == 0


def test_default_app_trains_in_a_child_process(service_settings, sqlite_store):
    """create_app's own queue (as `labelcast serve` builds it) trains outside the web process."""
    app = create_app({"LABELCAST_SETTINGS": service_settings, "LABELCAST_STORE": sqlite_store})
    jobs = _jobs(app)
    try:
        assert jobs.isolate
        client = app.test_client()
        assert client.post("/setup", json={"project": 9, "schema": CONFIG}).status_code == 200
        for i in range(3):
            client.post("/webhook", json=_annotation(9, i, 900 + i, i % 2 == 0))
        assert jobs.wait_idle(120)
        assert client.get("/forecast?project=9").json["n_labels"] == 3
        assert jobs.status()["failed"] == 0
    finally:
        jobs.close()


def test_deleting_annotations_refits_without_them(app, client):
    """ANNOTATIONS_DELETED forgets the labels and triggers a refit on the rest."""
    assert client.post("/setup", json={"project": 8, "schema": CONFIG}).status_code == 200
    for i in range(12):
        client.post("/webhook", json=_annotation(8, i, 200 + i, i % 2 == 0))
    assert _jobs(app).wait_idle(120)
    client.post(
        "/webhook",
        json={"action": "ANNOTATIONS_DELETED", "project": {"id": 8}, "annotations": [{"id": 200}, {"id": 201}]},
    )
    assert _jobs(app).wait_idle(120)
    assert client.get("/forecast?project=8").json["n_labels"] == 10


def test_basic_auth(service_settings, sqlite_store):
    """With BASIC_AUTH_* set, every route but the health checks needs the credentials."""
    import dataclasses

    settings = dataclasses.replace(service_settings, basic_auth_user="ls", basic_auth_pass="s3cret")
    app = create_app({"LABELCAST_SETTINGS": settings, "LABELCAST_STORE": sqlite_store})
    client = app.test_client()
    assert client.get("/health").status_code == 200
    denied = client.post("/setup", json={"project": 1, "schema": CONFIG})
    assert denied.status_code == 401 and "basic auth" in denied.json["message"]
    token = base64.b64encode(b"ls:s3cret").decode()
    ok = client.post("/setup", json={"project": 1, "schema": CONFIG}, headers={"Authorization": f"Basic {token}"})
    assert ok.status_code == 200
    _jobs(app).close()


def test_web_process_never_imports_torch(tmp_path):
    """Building the app and serving setup, webhook and predict imports neither torch nor training."""
    code = f"""
import sys
from backend.app import create_app
from backend.settings import Settings
import pathlib
app = create_app({{"LABELCAST_SETTINGS": Settings(model_dir=pathlib.Path({str(tmp_path)!r}))}})
app.extensions["labelcast"].jobs.request_refit = lambda pid, sync=False: True
app.extensions["labelcast"].jobs.request_embed = lambda pid, ids: None
c = app.test_client()
config = open({str(PROJECT_ROOT / "plugin_config" / "one_finding.xml")!r}).read()
assert c.post("/setup", json={{"project": 1, "schema": config}}).status_code == 200
assert c.post("/predict", json={{"project": 1, "tasks": [{{"id": 1, "data": {{"image": "http://x/1.png"}}}}]}}).status_code == 200
assert c.post("/webhook", json={{"action": "START_TRAINING", "project": {{"id": 1}}}}).status_code == 200
bad = [m for m in ("torch", "backend.training", "backend.encoders.encoder", "transformers") if m in sys.modules]
assert not bad, bad
"""
    subprocess.run([sys.executable, "-c", code], check=True, cwd=PROJECT_ROOT)


@pytest.mark.redis
def test_redis_mode_shares_state_between_web_processes(redis_url, service_settings):
    """With REDIS_URL: labels coalesce into one RQ job, a worker runs it, any web app answers."""
    import dataclasses

    from backend.jobs import run_worker
    from backend.store import open_store

    settings = dataclasses.replace(service_settings, redis_url=redis_url)
    web_a = create_app({"LABELCAST_SETTINGS": settings}).test_client()
    web_b = create_app({"LABELCAST_SETTINGS": settings}).test_client()
    web_a.post("/setup", json={"project": 4, "schema": CONFIG})
    for i in range(24):
        (web_a if i % 2 else web_b).post("/webhook", json=_annotation(4, i, 400 + i, i % 2 == 0))
    assert web_b.get("/metrics").json["jobs"]["queued"] == 1  # 24 labels, one refit job

    assert run_worker(settings, open_store(settings), burst=True)
    forecast = web_b.get("/forecast?project=4").json
    assert forecast["n_labels"] == 24
    predictions = web_a.post("/predict", json={"project": 4, "tasks": _tasks([0, 1])}).json
    assert all("score" in r for r in predictions["results"])
    assert predictions["model_version"] == forecast["version"]


def test_commands_refuse_bad_setups(monkeypatch, capsys):
    """`labelcast worker` without REDIS_URL and `serve --workers 2` without it explain why."""
    from backend.cli import main

    monkeypatch.delenv("REDIS_URL", raising=False)
    assert main(["worker", "--burst"]) == 2
    assert main(["serve", "--workers", "2"]) == 2
    err = capsys.readouterr().err
    assert "needs REDIS_URL" in err and "--workers > 1 needs REDIS_URL" in err


def test_tasks_created_embeds_ahead_and_project_updated_rereads_the_config(app, client, sqlite_store):
    """TASKS_CREATED gets new images embedded before anyone labels them; PROJECT_UPDATED
    stores the new labeling config."""
    client.post("/setup", json={"project": 11, "schema": CONFIG})
    assert _jobs(app).wait_idle(60)
    response = client.post("/webhook", json={"action": "TASKS_CREATED", "project": {"id": 11}, "tasks": _tasks([1, 2])})
    assert response.status_code == 200
    assert _jobs(app).wait_idle(60)
    tasks = sqlite_store.get_tasks(11)
    assert set(tasks) == {1, 2} and all(t["sha"] for t in tasks.values())

    several = SEVERAL_FINDINGS
    client.post("/webhook", json={"action": "PROJECT_UPDATED", "project": {"id": 11, "label_config": several}})
    assert sqlite_store.get_project(11)["label_config"] == several
    assert _jobs(app).wait_idle(60)


def test_a_burst_of_webhooks_reads_the_project_once_and_setup_refreshes_it(service_settings, sqlite_store):
    """The web process reuses a project's record for a burst of webhooks; a /setup, or a
    webhook that carries a different labeling config, is taken into account at once."""
    from backend.jobs import ThreadJobs
    from backend.service import Service

    reads = []

    class CountingStore(type(sqlite_store)):
        def get_project(self, project_id):
            reads.append(project_id)
            return super().get_project(project_id)

    store = CountingStore(sqlite_store.path)
    jobs = ThreadJobs(service_settings, store, trainer_factory=IdleTrainer)
    service = Service(service_settings, store, jobs)
    try:
        service.setup({"project": 4, "schema": CONFIG})
        reads.clear()
        for a in range(5):
            service.webhook(_annotation_event(4, a, "Effusion", CONFIG))
        assert reads == [4]
        service.setup({"project": 4, "schema": CONFIG, "extra_params": {"target_auc": 0.8}})
        reads.clear()
        service.webhook(_annotation_event(4, 9, "Effusion", CONFIG))
        assert reads == [4]
        several = SEVERAL_FINDINGS
        answer = service.webhook(_annotation_event(4, 10, "Cardiomegaly", several, choices_name="findings"))
        assert answer["status"] == "ok" and store.get_project(4)["label_config"] == several
        assert store.get_labels(4)[10] == ["Cardiomegaly"]
    finally:
        jobs.close()


def _annotation_event(pid, task_id, choice, config, choices_name="finding"):
    return annotation_event(
        pid,
        task_id,
        1000 + task_id,
        choices=[choice],
        image=f"http://x/{task_id}.png",
        label_config=config,
        choices_name=choices_name,
    )


def test_unlabeled_tasks_are_embedded_and_the_score_follows_sampling(app, client):
    """Tasks created without labels are embedded and reach the refit as the pool; the /predict
    score is the confidence (uncertainty), the task hash (random) or, for mixed (the default),
    the task hash until the project has ``random_start`` labels (its random start, 20 by
    default), then the confidence with audit tasks' scores drawn from the saved quantiles."""
    from backend.sampling import audit_mask, task_uniform

    client.post("/setup", json={"project": 21, "schema": CONFIG})
    client.post("/webhook", json={"action": "TASKS_CREATED", "project": {"id": 21}, "tasks": _tasks(range(100, 140))})
    for i in range(24):
        client.post("/webhook", json=_annotation(21, i, 300 + i, i % 2 == 0))
    assert _jobs(app).wait_idle(120)
    record = client.get("/forecast?project=21").json
    assert record["n_pool"] == 40 and record["sampling"] == "mixed" and record["random_start"] == 20
    quantiles = app.extensions[EXTENSION].store.get_model(21)["score_quantiles"]
    assert len(quantiles) == 101 and 0.5 <= quantiles[0] <= quantiles[-1] <= 1.0

    ids = list(range(100, 140))

    def scores(sampling, **extra):
        params = {"sampling": sampling, **extra}
        client.post("/setup", json={"project": 21, "schema": CONFIG, "extra_params": params})
        results = client.post("/predict", json={"project": 21, "tasks": _tasks(ids)}).json["results"]
        confidence = [next(r["score"] for r in res["result"] if r["type"] == "choices") for res in results]
        return [res["score"] for res in results], confidence

    score, confidence = scores("uncertainty")
    assert score == confidence
    score, confidence = scores("random")
    assert score == task_uniform(21, ids).tolist() and score != confidence
    score, _ = scores("mixed", random_start=30)  # 24 labels: within the random start, the random order in [0.5, 1)
    assert score == (0.5 + 0.5 * task_uniform(21, ids)).tolist()
    score, confidence = scores("mixed", random_start=24)  # the random start is over
    audit = audit_mask(21, ids)
    assert 0 < audit.sum() < len(ids)
    assert all((s != c) == bool(a) for s, c, a in zip(score, confidence, audit))
    assert all(quantiles[0] <= s <= quantiles[-1] for s, a in zip(score, audit) if a)
    # A failed refit (its record says 0 usable labels) does not send the project back to its random start.
    store = app.extensions[EXTENSION].store
    store.put_result(21, store.get_model(21), {**record, "status": "error", "n_labels": 0}, {})
    assert scores("mixed", random_start=24) == (score, confidence)

    bad = client.post("/setup", json={"project": 21, "schema": CONFIG, "extra_params": {"sampling": "sorted"}})
    assert bad.status_code == 400 and "sampling must be one of uncertainty, random, mixed" in bad.json["message"]
    bad = client.post("/setup", json={"project": 21, "schema": CONFIG, "extra_params": {"random_start": -1}})
    assert bad.status_code == 400 and "random_start must be an integer >= 0" in bad.json["message"]


def test_a_large_pool_is_read_as_a_sample(app, client, monkeypatch):
    """Above MAX_POOL unlabeled tasks the refit reads a sample of their embeddings, and the
    forecast still counts every unlabeled task."""
    import backend.training

    monkeypatch.setattr(backend.training, "MAX_POOL", 10)
    client.post("/setup", json={"project": 22, "schema": CONFIG, "extra_params": {"sampling": "random"}})
    client.post("/webhook", json={"action": "TASKS_CREATED", "project": {"id": 22}, "tasks": _tasks(range(100, 130))})
    for i in range(24):
        client.post("/webhook", json=_annotation(22, i, 400 + i, i % 2 == 0))
    assert _jobs(app).wait_idle(120)
    record = client.get("/forecast?project=22").json
    assert record["n_pool"] == 30 and record["sampling"] == "random"
    bias = record["findings"]["Effusion"].get("selection_bias")
    assert bias["n_pool"] == 30 and bias["statistic"] is None  # 10 rows read: below MIN_POOL, not compared


def test_health_is_degraded_with_the_reason_when_a_refit_cannot_run(client, sqlite_store):
    """A project whose forecast has status error makes /health say degraded, naming it and why."""
    sqlite_store.put_project(7, {"label_config": "<View/>"})
    sentence = "Error: no forecast, 40 labels arrived but none could be used: ..."
    sqlite_store.put_result(7, {"version": "v"}, {"status": "error", "error": sentence, "message": sentence}, {})
    answer = client.get("/health")
    assert answer.status_code == 200
    assert answer.json["status"] == "degraded"
    assert answer.json["reason"] == f"project 7: {sentence}"


def test_predict_before_the_first_forecast_counts_the_labels_that_arrived(client, sqlite_store):
    """Labels recorded but no forecast yet: the text says how many arrived, not "0 labels"."""
    config = (PROJECT_ROOT / "plugin_config" / "one_finding.xml").read_text()
    client.post("/setup", json={"project": 3, "schema": config})
    sqlite_store.put_label(3, annotation_id=1, task_id=1, choices=["Effusion"], image="http://x/1.png")
    answer = client.post("/predict", json={"project": 3, "tasks": [{"id": 1, "data": {"image": "http://x/1.png"}}]})
    text = next(r for r in answer.json["results"][0]["result"] if r["type"] == "textarea")["value"]["text"][0]
    assert text.startswith("1 label arrived") and "0 labels so far" not in text
