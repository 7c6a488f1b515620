"""End to end against a real Label Studio 1.23: connect, annotate, retrain, retrieve predictions.

Needs ``LABEL_STUDIO_BIN`` (set by ``.ci/run``) and runs ``labelcast serve`` as a subprocess on
the embedded defaults with the tiny test encoder. About two minutes, most of it Label Studio's
first start.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

import pytest
import requests

from conftest import (
    ONE_FINDING,
    PROJECT_ROOT,
    SEVERAL_FINDINGS,
    free_port,
    serve_folder,
    stop_process,
    wait_http,
    wait_until,
    xray_png,
)

pytestmark = [pytest.mark.labelstudio, pytest.mark.slow]

N_HTTP_TASKS = 36
N_UPLOADED = 4
MIN_LABELS = 10


@pytest.fixture(scope="module")
def image_server(tmp_path_factory):
    """A local HTTP server of synthetic X-ray PNGs: ``(base_url, {name: positive})``."""
    folder = tmp_path_factory.mktemp("images")
    truth = {}
    for i in range(N_HTTP_TASKS + N_UPLOADED):
        positive = i % 2 == 0
        (folder / f"cxr{i:03d}.png").write_bytes(xray_png(1000 + i, positive))
        truth[f"cxr{i:03d}.png"] = positive

    base, server = serve_folder(folder)
    yield base, folder, truth
    server.shutdown()


@pytest.fixture(scope="module")
def backend_server(label_studio, tmp_path_factory, tiny_encoder_spec):
    """``labelcast serve`` on a free loopback port, talking to the test Label Studio."""
    port = free_port()
    folder = tmp_path_factory.mktemp("backend")
    env = {
        **os.environ,
        "LABEL_STUDIO_URL": label_studio["url"],
        "LABEL_STUDIO_API_KEY": label_studio["token"],
        "MODEL_DIR": str(folder / "model"),
        "ENCODER": tiny_encoder_spec,
        "MIN_LABELS": str(MIN_LABELS),
        "TARGET_AUC": "0.9",
        "DEVICE": "cpu",
        "LOG_LEVEL": "INFO",
        "ALLOWED_IMAGE_HOSTS": "127.0.0.1",  # the test's image server is on loopback
    }
    env.pop("REDIS_URL", None)
    log = open(folder / "backend.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "backend.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/health", timeout=60, process=process)
        yield {"url": url, "log": folder / "backend.log"}
    finally:
        stop_process(process)
        log.close()


def _api(label_studio):
    session = requests.Session()
    session.headers["Authorization"] = f"Token {label_studio['token']}"
    base = label_studio["url"]

    def call(method, path, **kwargs):
        response = session.request(method, base + path, timeout=60, **kwargs)
        assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.text[:500]}"
        return response.json() if response.content else None

    return call


def _choice(positive: bool):
    return [
        {
            "from_name": "finding",
            "to_name": "image",
            "type": "choices",
            "value": {"choices": ["Effusion" if positive else "No effusion"]},
        }
    ]


def test_label_studio_retrains_and_shows_forecasts(label_studio, backend_server, image_server):
    """Annotations in Label Studio retrain the backend, move the model version, fill predictions."""
    api = _api(label_studio)
    base_url, folder, truth = image_server
    config = ONE_FINDING
    project = api("POST", "/api/projects", json={"title": "LabelCast e2e", "label_config": config})
    pid = project["id"]

    # Tasks: most served over http, a few uploaded into Label Studio (/data/upload/...).
    names = sorted(truth)
    api(
        "POST",
        f"/api/projects/{pid}/import",
        json=[{"image": f"{base_url}/{name}", "name": name} for name in names[:N_HTTP_TASKS]],
    )
    for name in names[N_HTTP_TASKS:]:
        with open(folder / name, "rb") as handle:
            api("POST", f"/api/projects/{pid}/import", files={name: (name, handle, "image/png")})
    tasks = api("GET", f"/api/tasks?project={pid}&page_size=1000&fields=all")["tasks"]
    assert len(tasks) == N_HTTP_TASKS + N_UPLOADED
    uploaded = [t for t in tasks if t["data"]["image"].startswith("/data/upload/")]
    assert len(uploaded) == N_UPLOADED

    def positive(task):
        image = task["data"]["image"]
        return next(truth[n] for n in names if image.endswith(n))

    # Connect the backend: Label Studio calls /setup and creates the webhook.
    ml = api("POST", "/api/ml", json={"project": pid, "url": backend_server["url"], "title": "LabelCast"})
    hooks = api("GET", f"/api/webhooks?project={pid}")
    assert any(h["url"].startswith(backend_server["url"]) for h in hooks), hooks

    # Annotate through Label Studio's API; every save fires the webhook synchronously.
    ordered = uploaded + [t for t in tasks if t not in uploaded]
    n_labels = 24
    save_seconds = []
    for task in ordered[:n_labels]:
        started = time.perf_counter()
        api("POST", f"/api/tasks/{task['id']}/annotations", json={"result": _choice(positive(task))})
        save_seconds.append(time.perf_counter() - started)

    forecast = wait_until(
        lambda: (
            (r := requests.get(f"{backend_server['url']}/forecast", params={"project": pid}, timeout=10)).ok
            and r.json()["n_labels"] == n_labels
            and r.json()
        ),
        timeout=120,
        what=f"a forecast on {n_labels} labels",
    )
    assert forecast["version"].startswith("labelcast-") and forecast["version"].endswith(f"-n{n_labels}")
    version = forecast["version"]
    assert forecast["message"]
    wait_until(
        lambda: api("GET", f"/api/projects/{pid}")["model_version"] == version,
        30,
        f"the project's model_version to become {version}",
    )
    assert api("GET", f"/api/ml/{ml['id']}")["title"] == version

    # Data Manager → Retrieve predictions, then read them back.
    api(
        "POST",
        f"/api/dm/actions?id=retrieve_tasks_predictions&project={pid}",
        json={"project": str(pid), "selectedItems": {"all": True, "excluded": []}},
    )
    predictions = wait_until(
        lambda: [p for p in api("GET", f"/api/predictions?project={pid}") if p["model_version"] == version],
        60,
        "predictions of the new model version",
    )
    assert len(predictions) >= len(tasks) - N_UPLOADED  # every http task at least
    by_type = {r["type"]: r for r in predictions[0]["result"]}
    assert set(by_type) == {"choices", "textarea", "number"}, predictions[0]
    assert 0.5 <= predictions[0]["score"] <= 1.0
    assert by_type["textarea"]["value"]["text"][0] == forecast["message"]
    assert by_type["number"]["value"]["number"] >= 0

    # Saves stay fast while the backend trains: Label Studio waits for the webhook each time.
    api("POST", f"/api/ml/{ml['id']}/train", json={})
    busy_saves = []
    for task in ordered[n_labels : n_labels + 6]:
        started = time.perf_counter()
        api("POST", f"/api/tasks/{task['id']}/annotations", json={"result": _choice(positive(task))})
        busy_saves.append(time.perf_counter() - started)
    print(
        f"annotation save: median {statistics.median(save_seconds) * 1000:.0f} ms, "
        f"max {max(save_seconds) * 1000:.0f} ms; while training: max {max(busy_saves) * 1000:.0f} ms"
    )
    assert max(busy_saves) < 1.0, busy_saves
    wait_until(
        lambda: (
            requests.get(f"{backend_server['url']}/forecast", params={"project": pid}, timeout=10).json()["n_labels"]
            == n_labels + 6
        ),
        120,
        "the refit with the labels saved during training",
    )


def test_several_findings_project(label_studio, backend_server, image_server):
    """A multi-label project gets one forecast per finding in the text and a choices prediction."""
    api = _api(label_studio)
    base_url, folder, truth = image_server
    config = SEVERAL_FINDINGS
    pid = api("POST", "/api/projects", json={"title": "LabelCast several", "label_config": config})["id"]
    names = sorted(truth)[:N_HTTP_TASKS]
    api("POST", f"/api/projects/{pid}/import", json=[{"image": f"{base_url}/{name}"} for name in names])
    tasks = api("GET", f"/api/tasks?project={pid}&page_size=1000&fields=all")["tasks"]
    api("POST", "/api/ml", json={"project": pid, "url": backend_server["url"], "title": "LabelCast"})
    for i, task in enumerate(tasks[:24]):
        chosen = [f for f, on in (("Effusion", i % 2 == 0), ("Cardiomegaly", i % 3 == 0)) if on]
        api(
            "POST",
            f"/api/tasks/{task['id']}/annotations",
            json={
                "result": [
                    {"from_name": "findings", "to_name": "image", "type": "choices", "value": {"choices": chosen}}
                ]
            },
        )
    forecast = wait_until(
        lambda: (
            (r := requests.get(f"{backend_server['url']}/forecast", params={"project": pid}, timeout=10)).ok
            and r.json()["n_labels"] == 24
            and r.json()
        ),
        timeout=120,
        what="the multi-finding forecast",
    )
    assert set(forecast["findings"]) == {"Effusion", "Cardiomegaly", "Consolidation", "Pneumothorax"}
    wait_until(lambda: api("GET", f"/api/projects/{pid}")["model_version"] == forecast["version"], 30, "model version")
    # Task 0 is labeled, so its embedding is cached and the probes can score it.
    api(
        "POST",
        f"/api/dm/actions?id=retrieve_tasks_predictions&project={pid}",
        json={"project": str(pid), "selectedItems": {"all": False, "included": [tasks[0]["id"]]}},
    )
    prediction = wait_until(
        lambda: [
            p
            for p in api("GET", f"/api/predictions?task={tasks[0]['id']}")
            if p["model_version"] == forecast["version"]
        ],
        60,
        "a prediction",
    )[0]
    text = next(r for r in prediction["result"] if r["type"] == "textarea")["value"]["text"][0]
    assert "Effusion:" in text and "Pneumothorax:" in text
    # Consolidation and Pneumothorax were never chosen: no probe, so only the other two are scored.
    choices = next(r for r in prediction["result"] if r["type"] == "choices")
    assert set(choices["value"]["choices"]) <= {"Effusion", "Cardiomegaly"}
    assert 0.5 <= prediction["score"] <= 1.0


def test_labels_imported_with_the_tasks_are_read_on_connect(label_studio, backend_server, image_server):
    """Tasks imported with annotations send no annotation webhooks; connecting reads them."""
    api = _api(label_studio)
    base_url, folder, truth = image_server
    config = ONE_FINDING
    pid = api("POST", "/api/projects", json={"title": "LabelCast imported", "label_config": config})["id"]
    names = sorted(truth)[:N_HTTP_TASKS]
    api(
        "POST",
        f"/api/projects/{pid}/import",
        json=[
            {
                "data": {"image": f"{base_url}/{name}"},
                **({"annotations": [{"result": _choice(truth[name])}]} if i < 24 else {}),
            }
            for i, name in enumerate(names)
        ],
    )
    api("POST", "/api/ml", json={"project": pid, "url": backend_server["url"], "title": "LabelCast"})
    forecast = wait_until(
        lambda: (
            (r := requests.get(f"{backend_server['url']}/forecast", params={"project": pid}, timeout=10)).ok
            and r.json()["n_labels"] == 24
            and r.json()
        ),
        timeout=120,
        what="a forecast on the 24 imported labels",
    )
    wait_until(lambda: api("GET", f"/api/projects/{pid}")["model_version"] == forecast["version"], 30, "model version")


def test_a_refit_that_cannot_run_says_why_in_label_studio(label_studio, backend_server, image_server):
    """Labels whose images are all refused (their host is not in ALLOWED_IMAGE_HOSTS): the
    forecast has status error, and the sentence (how many labels arrived, why none could be
    used, the fix) is in /forecast, the backend's description in Label Studio, the predictions'
    text, /report and /health."""
    import html

    api = _api(label_studio)
    base_url, folder, truth = image_server
    refused = base_url.replace("127.0.0.1", "127.0.0.2")  # loopback too, but not allowed
    config = (PROJECT_ROOT / "plugin_config" / "one_finding.xml").read_text()
    pid = api("POST", "/api/projects", json={"title": "LabelCast refused", "label_config": config})["id"]
    names = sorted(truth)[:12]
    api(
        "POST",
        f"/api/projects/{pid}/import",
        json=[
            {"data": {"image": f"{refused}/{name}"}, "annotations": [{"result": _choice(truth[name])}]}
            for name in names
        ],
    )
    ml = api("POST", "/api/ml", json={"project": pid, "url": backend_server["url"], "title": "LabelCast"})
    forecast = wait_until(
        lambda: (
            (r := requests.get(f"{backend_server['url']}/forecast", params={"project": pid}, timeout=10)).ok
            and r.json().get("status") == "error"
            and r.json()
        ),
        timeout=120,
        what="the error forecast",
    )
    sentence = forecast["message"]
    assert "12 labels arrived but none could be used" in sentence, sentence
    assert "12 images refused" in sentence and "ALLOWED_IMAGE_HOSTS" in sentence
    assert "0 labels so far" not in sentence
    wait_until(
        lambda: sentence[:200] in (api("GET", f"/api/ml/{ml['id']}").get("description") or ""),
        30,
        "the error sentence in the backend's description",
    )

    task = api("GET", f"/api/tasks?project={pid}&page_size=1")["tasks"][0]
    api(
        "POST",
        f"/api/dm/actions?id=retrieve_tasks_predictions&project={pid}",
        json={"project": str(pid), "selectedItems": {"all": False, "included": [task["id"]]}},
    )
    prediction = wait_until(lambda: api("GET", f"/api/predictions?task={task['id']}"), 60, "a prediction")[0]
    text = next(r for r in prediction["result"] if r["type"] == "textarea")["value"]["text"][0]
    assert text == sentence

    page = html.unescape(requests.get(f"{backend_server['url']}/report", params={"project": pid}, timeout=10).text)
    assert "12 labels arrived but none could be used" in page and "Labeled tasks left out" in page
    health = requests.get(f"{backend_server['url']}/health", timeout=10).json()
    assert health["status"] == "degraded" and f"project {pid}: " in health["reason"]
