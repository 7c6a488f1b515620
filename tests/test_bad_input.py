"""Bad input to every endpoint: each case answers a 4xx JSON with a clear message, or an
ignored event; never a 500, a traceback or a hang (issue 6). Bad images in a refit mark their
task with a reason and do not stop the others."""

import base64
import io

import pytest

from backend.app import EXTENSION, create_app
from conftest import ONE_FINDING, PROJECT_ROOT, annotation_event, data_uri, iso_now, xray_png

CONFIG = ONE_FINDING
PID = 5


def _annotation(task_id, annotation_id, choices=("Effusion",), **kwargs):
    return annotation_event(PID, task_id, annotation_id, True, choices=choices, **kwargs)


@pytest.fixture
def connected(client):
    """The test client with project PID set up on the one-finding config."""
    assert client.post("/setup", json={"project": PID, "schema": CONFIG}).status_code == 200
    return client


def _assert_json_4xx(response, status, fragment):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body is not None and fragment.lower() in body["message"].lower(), body
    assert "Traceback" not in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "path, kwargs, status, fragment",
    [
        pytest.param(
            "/webhook",
            {"data": "{not json", "content_type": "application/json"},
            400,
            "JSON body",
            id="webhook-malformed-json",
        ),
        pytest.param(
            "/predict",
            {"data": "[1, 2", "content_type": "application/json"},
            400,
            "JSON body",
            id="predict-malformed-json",
        ),
        pytest.param(
            "/setup",
            {"data": b"\xff\xfe\x00", "content_type": "application/json"},
            400,
            "JSON body",
            id="setup-binary-garbage",
        ),
        pytest.param("/webhook", {"json": [1, 2, 3]}, 400, "JSON object", id="webhook-array"),
        pytest.param("/webhook", {"json": "ANNOTATION_CREATED"}, 400, "JSON object", id="webhook-string"),
        pytest.param("/webhook", {"json": {}}, 400, "action", id="webhook-no-action"),
        pytest.param("/webhook", {"json": {"action": 7}}, 400, "action", id="webhook-action-not-string"),
        pytest.param(
            "/webhook",
            {"json": {"action": "ANNOTATION_CREATED", "project": {"id": PID}}},
            400,
            "'annotation' and 'task'",
            id="annotation-missing",
        ),
        pytest.param(
            "/webhook",
            {"json": {**_annotation(1, 1), "annotation": {"id": "abc"}}},
            400,
            "annotation.id must be an integer",
            id="annotation-id-not-int",
        ),
        pytest.param(
            "/webhook",
            {"json": {**_annotation(1, 1), "task": {"data": {}}}},
            400,
            "task.id must be an integer",
            id="task-without-id",
        ),
        pytest.param(
            "/webhook",
            {"json": {**_annotation(1, 1), "task": {"id": 1, "data": ["x"]}}},
            400,
            "data",
            id="task-data-not-object",
        ),
        pytest.param(
            "/webhook",
            {"json": {**_annotation(1, 1), "task": {"id": 1, "data": {}}}},
            400,
            "no image",
            id="task-without-image",
        ),
        pytest.param(
            "/webhook",
            {"json": {"action": "ANNOTATIONS_DELETED", "project": {"id": PID}, "annotations": "all"}},
            400,
            "list",
            id="deleted-not-list",
        ),
        pytest.param(
            "/webhook",
            {"json": {"action": "TASKS_CREATED", "project": {"id": PID}, "tasks": "abc"}},
            400,
            "list",
            id="tasks-created-not-list",
        ),
        pytest.param(
            "/webhook",
            {"json": {**_annotation(1, 1), "project": {"id": 999}}},
            404,
            "not connected",
            id="unknown-project",
        ),
        pytest.param("/webhook", {"json": {"action": "START_TRAINING"}}, 400, "project id", id="event-without-project"),
        pytest.param("/predict", {"json": {"project": PID, "tasks": "all"}}, 400, "list", id="predict-tasks-not-list"),
        pytest.param(
            "/predict", {"json": {"project": PID, "tasks": [{"data": {}}]}}, 400, "'id'", id="predict-task-without-id"
        ),
        pytest.param(
            "/predict",
            {"json": {"project": [1], "tasks": []}},
            400,
            "project must be an integer",
            id="predict-project-wrong-type",
        ),
        pytest.param(
            "/predict", {"json": {"project": 404, "tasks": []}}, 404, "not connected", id="predict-unknown-project"
        ),
        pytest.param("/setup", {"json": {"project": PID, "schema": "<View><Image"}}, 400, "", id="setup-invalid-xml"),
        pytest.param(
            "/setup",
            {"json": {"project": PID, "schema": '<View><Image name="i" value="$i"/></View>'}},
            400,
            "choices",
            id="setup-config-without-choices",
        ),
        pytest.param(
            "/setup",
            {
                "json": {
                    "project": PID,
                    "schema": '<View><Choices name="c" toName="i">'
                    '<Choice value="a"/><Choice value="b"/></Choices></View>',
                }
            },
            400,
            "image",
            id="setup-config-without-image",
        ),
        pytest.param("/setup", {"json": {"project": PID, "schema": 42}}, 400, "", id="setup-schema-not-string"),
        pytest.param(
            "/setup",
            {"json": {"project": PID, "schema": CONFIG, "extra_params": "{nope"}},
            400,
            "extra_params",
            id="setup-extra-params-not-json",
        ),
        pytest.param(
            "/forecast?project=abc", {"method": "get"}, 400, "project must be an integer", id="forecast-project-not-int"
        ),
        pytest.param("/forecast?project=77", {"method": "get"}, 404, "not connected", id="forecast-unknown"),
        pytest.param("/forecast.png?project=77", {"method": "get"}, 404, "not connected", id="forecast-png-unknown"),
        pytest.param("/nowhere", {"method": "get"}, 404, "", id="unknown-path"),
        pytest.param("/predict", {"method": "get"}, 405, "", id="wrong-method"),
    ],
)
def test_bad_requests_get_json_4xx(connected, path, kwargs, status, fragment):
    """Each malformed request gets the expected 4xx with a JSON message saying what is wrong."""
    kwargs = dict(kwargs)
    method = kwargs.pop("method", "post")
    response = getattr(connected, method)(path, **kwargs)
    _assert_json_4xx(response, status, fragment)


def test_body_above_the_limit_is_413(service_settings, sqlite_store):
    """A body above MAX_BODY_BYTES is refused with 413 naming the limit, before it is parsed."""
    import dataclasses

    from backend.jobs import ThreadJobs

    settings = dataclasses.replace(service_settings, max_body_bytes=4096)
    jobs = ThreadJobs(settings, sqlite_store)
    app = create_app({"LABELCAST_SETTINGS": settings, "LABELCAST_STORE": sqlite_store, "LABELCAST_JOBS": jobs})
    client = app.test_client()
    response = client.post("/webhook", data=b"{" + b" " * 10_000 + b"}", content_type="application/json")
    _assert_json_4xx(response, 413, "4096")
    assert client.post("/webhook", json={"action": "PING"}).status_code == 200
    jobs.close()


def test_unknown_event_is_ignored(connected):
    """Events LabelCast does not act on are acknowledged as ignored."""
    response = connected.post("/webhook", json={"action": "SOMETHING_NEW", "project": {"id": PID}})
    assert response.status_code == 200 and response.json["status"] == "ignored"


def test_choice_not_in_config_is_ignored_with_a_reason(app, connected, sqlite_store):
    """An annotation whose choice is not a value of the config is not learned from; the answer says why."""
    response = connected.post("/webhook", json=_annotation(1, 11, choices=("Pneumothorax",)))
    assert response.status_code == 200 and response.json["status"] == "ignored"
    assert "Pneumothorax" in response.json["message"]
    assert sqlite_store.get_labels(PID) == {}


def test_delete_of_unknown_annotations_is_harmless(connected):
    """Deleting annotations the backend never saw answers 200 and queues no refit."""
    response = connected.post(
        "/webhook",
        json={"action": "ANNOTATIONS_DELETED", "project": {"id": PID}, "annotations": [{"id": 12345}, {"id": 777}]},
    )
    assert response.status_code == 200 and response.json["refit_queued"] is False


def test_duplicated_webhooks_record_one_label(app, connected, sqlite_store):
    """The same ANNOTATION_CREATED delivered three times is one label."""
    for _ in range(3):
        assert connected.post("/webhook", json=_annotation(1, 21)).status_code == 200
    assert sqlite_store.get_labels(PID) == {1: ["Effusion"]}


def test_out_of_order_webhooks_keep_the_newest(app, connected, sqlite_store):
    """An older update arriving after a newer one does not overwrite it (annotation updated_at)."""
    new = _annotation(
        2, 31, choices=("No effusion",), action="ANNOTATION_UPDATED", updated_at="2026-01-01T10:00:05.000000Z"
    )
    old = _annotation(
        2, 31, choices=("Effusion",), action="ANNOTATION_CREATED", updated_at="2026-01-01T10:00:00.000000Z"
    )
    assert connected.post("/webhook", json=new).status_code == 200
    assert connected.post("/webhook", json=old).status_code == 200
    assert sqlite_store.get_labels(PID) == {2: ["No effusion"]}
    newer = _annotation(2, 31, choices=("Effusion",), action="ANNOTATION_UPDATED", updated_at="2026-01-01T10:00:09Z")
    assert connected.post("/webhook", json=newer).status_code == 200
    assert sqlite_store.get_labels(PID) == {2: ["Effusion"]}


def test_a_late_create_of_a_deleted_annotation_stays_deleted(app, connected, sqlite_store):
    """Webhooks out of order around a delete: ANNOTATIONS_DELETED first, then the create or an
    update of that annotation arriving late: the label does not come back, and a delete that
    comes before the create is remembered too."""
    assert connected.post("/webhook", json=_annotation(4, 41)).status_code == 200
    deleted = connected.post(
        "/webhook",
        json={"action": "ANNOTATIONS_DELETED", "project": {"id": PID}, "annotations": [{"id": 41}, {"id": 42}]},
    )
    assert deleted.status_code == 200 and deleted.json["status"] == "ok"
    for late in (
        _annotation(4, 41),
        _annotation(4, 41, action="ANNOTATION_UPDATED", updated_at=iso_now()),
        _annotation(5, 42),
    ):  # 42: deleted before its create ever arrived
        assert connected.post("/webhook", json=late).status_code == 200
    assert sqlite_store.get_labels(PID) == {}
    assert connected.post("/webhook", json=_annotation(4, 43)).status_code == 200  # a new annotation counts
    assert sqlite_store.get_labels(PID) == {4: ["Effusion"]}


def test_a_late_older_version_does_not_undo_a_skip(app, connected, sqlite_store):
    """An annotation updated to 'skipped' (was_cancelled) counts for nothing; its older version
    with a choice, delivered after the skip, does not bring the label back."""
    skipped = _annotation(6, 61, action="ANNOTATION_UPDATED", updated_at="2026-01-01T10:00:05Z")
    skipped["annotation"]["was_cancelled"] = True
    older = _annotation(6, 61, updated_at="2026-01-01T10:00:00Z")
    assert connected.post("/webhook", json=older).status_code == 200
    assert sqlite_store.get_labels(PID) == {6: ["Effusion"]}
    assert connected.post("/webhook", json=skipped).status_code == 200
    assert connected.post("/webhook", json=older).status_code == 200  # re-delivered late
    assert sqlite_store.get_labels(PID) == {}


def _truncated_png():
    return xray_png(3, True)[:200]


def _bomb_png():
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (12_000, 12_000)).save(buffer, format="PNG")  # 144 Mpx, ~140 kB compressed
    return buffer.getvalue()


def _dicom_without_pixels():
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.PatientName = "No^Pixels"
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def test_bad_images_are_marked_and_the_refit_goes_on(app, connected, sqlite_store):
    """Truncated, non-image, bomb, pixel-less DICOM, bad base64 and file:// images each mark
    their task with a reason in /forecast; the good images are still embedded and fitted."""
    bad = {
        101: data_uri(_truncated_png()),
        102: "data:image/png;base64," + base64.b64encode(b"just some text").decode(),
        103: data_uri(_bomb_png()),
        104: "data:application/dicom;base64," + base64.b64encode(_dicom_without_pixels()).decode(),
        105: "data:image/png;base64,%%%not-base64",
        106: "file:///etc/passwd",
        107: "http://169.254.169.254/latest/meta-data/",
    }
    for i in range(12):
        body = _annotation(
            i, 500 + i, choices=("Effusion" if i % 2 else "No effusion",), image=data_uri(xray_png(i, i % 2 == 1))
        )
        assert connected.post("/webhook", json=body).status_code == 200
    for task_id, ref in bad.items():
        assert connected.post("/webhook", json=_annotation(task_id, 600 + task_id, image=ref)).status_code == 200
    assert app.extensions[EXTENSION].jobs.wait_idle(120)
    record = connected.get(f"/forecast?project={PID}").json
    assert record["n_labels"] == 12 and record["n_labels_recorded"] == 12 + len(bad)
    errors = record["image_errors"]
    assert set(map(int, errors)) == set(bad), errors
    assert "base64" in errors["105"] and "scheme" in errors["106"] and "not allowed" in errors["107"]
    assert all(isinstance(reason, str) and reason for reason in errors.values())
    status = app.extensions[EXTENSION].jobs.status()
    assert status["failed"] == 0, status


@pytest.mark.parametrize("store_name", ["sqlite_store", "redis_store"])
def test_store_keeps_the_newest_annotation_version(request, store_name):
    """Both stores: a duplicate is one label; an older version never overwrites a newer one;
    a write without a time (a sync from Label Studio) always wins."""
    store = request.getfixturevalue(store_name)
    store.put_label(1, 7, 70, ["b"], updated_at=200.0)
    store.put_label(1, 7, 70, ["a"], updated_at=100.0)
    store.put_label(1, 7, 70, ["b"], updated_at=200.0)
    assert store.get_labels(1) == {70: ["b"]}
    store.put_label(1, 7, 70, ["c"], updated_at=300.0)
    assert store.get_labels(1) == {70: ["c"]}
    store.put_label(1, 7, 70, ["d"])
    assert store.get_labels(1) == {70: ["d"]}


@pytest.mark.parametrize("store_name", ["sqlite_store", "redis_store"])
def test_store_never_brings_back_a_deleted_annotation(request, store_name):
    """Both stores: a deleted annotation leaves a tombstone that later writes of it (webhook or
    a sync from Label Studio) respect, also when the delete came first; "no label" records
    (choices None) count for nothing and are not counted as deleted labels."""
    store = request.getfixturevalue(store_name)
    store.put_label(1, 7, 70, ["a"], updated_at=100.0)
    store.put_label(1, 8, 71, None, updated_at=100.0)  # skipped: no label
    store.put_label(1, 9, 72, ["b"], updated_at=100.0)
    store.put_label(1, 12, 75, [], updated_at=100.0)  # a label: none of the findings
    assert store.get_labels(1) == {70: ["a"], 72: ["b"], 75: []}
    assert store.delete_labels(1, [7, 8, 10, 12]) == 2  # 8 had no label, 10 was never seen
    store.put_label(1, 7, 70, ["a"], updated_at=300.0)
    store.put_label(1, 10, 73, ["c"], updated_at=300.0)
    store.put_label(1, 7, 70, ["a"])
    store.replace_labels(1, {7: (70, ["a"]), 9: (72, ["b"]), 11: (74, ["d"])})
    assert store.get_labels(1) == {72: ["b"], 74: ["d"]}
    assert store.delete_labels(2, [9]) == 0  # tombstones are per project
    assert store.get_labels(1) == {72: ["b"], 74: ["d"]}


@pytest.mark.parametrize("store_name", ["sqlite_store", "redis_store"])
def test_store_sync_with_times_keeps_the_newest_version(request, store_name):
    """Both stores: labels re-read from Label Studio carry its update times, so a stale webhook
    after the sync does not replace them, and a sync does not replace a newer webhook's label."""
    import time

    store = request.getfixturevalue(store_name)
    started = time.time()  # the sync starts reading Label Studio
    store.put_label(1, 5, 50, ["new"], updated_at=300.0)  # arrived while the sync was reading
    store.replace_labels(1, {5: (50, ["old"], 200.0), 6: (60, ["b"], 200.0)}, older_than=started)
    store.put_label(1, 6, 60, ["stale"], updated_at=100.0)  # a late, older delivery
    assert store.get_labels(1) == {50: ["new"], 60: ["b"]}


@pytest.mark.parametrize("store_name", ["sqlite_store", "redis_store"])
def test_store_keeps_a_skip_through_a_sync(request, store_name):
    """Both stores: a skip outlives a re-read from Label Studio (which lists no skips), so an
    older, labeled version of the annotation delivered afterwards still does not come back."""
    store = request.getfixturevalue(store_name)
    store.put_label(1, 7, 70, None, updated_at=200.0)
    assert not store.has_label(1, 7)
    store.replace_labels(1, {8: (71, ["a"])})
    store.put_label(1, 7, 70, ["a"], updated_at=100.0)  # the older version, late
    assert store.get_labels(1) == {71: ["a"]} and store.has_label(1, 8)


def test_every_documented_path_but_health_needs_basic_auth(service_settings, sqlite_store):
    """With BASIC_AUTH_USER/PASS set, each path of the OpenAPI document but / and /health
    answers 401 JSON without credentials or with a wrong password."""
    import dataclasses

    from backend.app.openapi import document
    from backend.jobs import ThreadJobs

    settings = dataclasses.replace(service_settings, basic_auth_user="ls", basic_auth_pass="pw")
    jobs = ThreadJobs(settings, sqlite_store)
    app = create_app({"LABELCAST_SETTINGS": settings, "LABELCAST_STORE": sqlite_store, "LABELCAST_JOBS": jobs})
    client = app.test_client()
    wrong = {"Authorization": "Basic " + base64.b64encode(b"ls:nope").decode()}
    for path, operations in document()["paths"].items():
        for method in operations:
            for headers in ({}, wrong):
                response = client.open(path, method=method.upper(), headers=headers, json={})
                if path in ("/", "/health"):
                    assert response.status_code == 200
                else:
                    _assert_json_4xx(response, 401, "basic auth")
    jobs.close()


def test_oversized_and_chunked_bodies_under_gunicorn(tmp_path):
    """`labelcast serve` (gunicorn): a body above MAX_BODY_BYTES is a JSON 413 without being
    read, a chunked body (no Content-Length) a JSON 400 saying so; the server keeps answering."""
    import os
    import subprocess
    import sys

    import requests

    from conftest import free_port, stop_process, wait_http

    port = free_port()
    env = {**os.environ, "MODEL_DIR": str(tmp_path), "LOG_LEVEL": "WARNING", "MAX_BODY_BYTES": "100000"}
    env.pop("REDIS_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "backend.cli", "serve", "--host", "127.0.0.1", "--port", str(port), "--lazy-encoder"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/health", 60, process)
        big = requests.post(
            f"{url}/webhook",
            data=b"{" + b" " * 200_000 + b"}",
            headers={"Content-Type": "application/json"},
            timeout=10,
        )
        assert big.status_code == 413 and "100000" in big.json()["message"]
        chunked = requests.post(
            f"{url}/webhook",
            data=iter([b"{", b" " * 150_000, b"}"]),
            headers={"Content-Type": "application/json"},
            timeout=10,
        )
        assert chunked.status_code in (400, 413) and chunked.json()["message"]
        assert requests.post(f"{url}/webhook", json={"action": "PING"}, timeout=10).json()["status"] == "ignored"
    finally:
        stop_process(process)


# --- round 2 (issue 13) ------------------------------------------------------------------------


def test_a_broken_config_is_not_stored_and_labels_still_count(app, connected, sqlite_store):
    """PROJECT_UPDATED with a broken config answers 400 and keeps the last good config: later
    labels and predictions work; an annotation carrying a broken config is recorded under the
    last good one."""
    broken = "<View><broken"
    response = connected.post(
        "/webhook", json={"action": "PROJECT_UPDATED", "project": {"id": PID, "label_config": broken}}
    )
    _assert_json_4xx(response, 400, "")
    assert sqlite_store.get_project(PID)["label_config"] == CONFIG
    assert connected.post("/webhook", json=_annotation(1, 11)).status_code == 200
    carrying = _annotation(2, 12)
    carrying["project"]["label_config"] = broken
    assert connected.post("/webhook", json=carrying).status_code == 200
    assert sqlite_store.get_labels(PID) == {1: ["Effusion"], 2: ["Effusion"]}
    _assert_json_4xx(connected.post("/predict", json={"project": PID, "tasks": [], "label_config": broken}), 400, "")
    assert connected.post("/predict", json={"project": PID, "tasks": []}).status_code == 200
    assert sqlite_store.get_project(PID)["label_config"] == CONFIG


def test_a_config_in_a_webhook_does_not_create_a_project(connected, sqlite_store):
    """A webhook or /predict carrying a config for a project never set up is a 404 and stores nothing."""
    body = _annotation(1, 11)
    body["project"] = {"id": 77, "label_config": CONFIG}
    _assert_json_4xx(connected.post("/webhook", json=body), 404, "not connected")
    _assert_json_4xx(
        connected.post("/predict", json={"project": 78, "tasks": [], "label_config": CONFIG}), 404, "not connected"
    )
    assert sqlite_store.get_project(77) is None and sqlite_store.get_project(78) is None


@pytest.mark.parametrize("path", ["/setup", "/predict", "/webhook"])
def test_deeply_nested_bodies_are_400(connected, path):
    """A 2 KB body nested ~990 levels deep is a 400, not a 500 (RecursionError)."""
    body = '{"project": 5, "action": "PING", "schema": ' + "[" * 990 + "]" * 990 + "}"
    _assert_json_4xx(connected.post(path, data=body, content_type="application/json"), 400, "nested too deeply")


def test_deleting_260000_annotations_at_once(app, connected, sqlite_store):
    """ANNOTATIONS_DELETED with 260,000 ids (SQLite allows 32,766 bound variables per
    statement) deletes what it names."""
    for task_id in (1, 2):
        assert connected.post("/webhook", json=_annotation(task_id, 100 + task_id)).status_code == 200
    ids = [{"id": i} for i in range(260_000)]
    response = connected.post(
        "/webhook", json={"action": "ANNOTATIONS_DELETED", "project": {"id": PID}, "annotations": ids}
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert sqlite_store.get_labels(PID) == {}


def test_401_asks_the_browser_for_credentials(service_settings, sqlite_store):
    """A 401 carries WWW-Authenticate, so a browser opening /report asks for the password."""
    import dataclasses

    from backend.jobs import ThreadJobs

    settings = dataclasses.replace(service_settings, basic_auth_user="u", basic_auth_pass="p")
    jobs = ThreadJobs(settings, sqlite_store)
    app = create_app({"LABELCAST_SETTINGS": settings, "LABELCAST_STORE": sqlite_store, "LABELCAST_JOBS": jobs})
    try:
        response = app.test_client().get("/report?project=1")
        assert response.status_code == 401 and response.is_json
        assert response.headers["WWW-Authenticate"].replace('"', "") == "Basic realm=LabelCast"
    finally:
        jobs.close()


def _with_annotation(body, **fields):
    body["annotation"].update(fields)
    return body


@pytest.mark.parametrize(
    "body, fragment",
    [
        pytest.param(_with_annotation(_annotation(1, 1), id=7.2), "annotation.id", id="float-annotation-id"),
        pytest.param({**_annotation(1, 1), "task": {"id": 7.8, "data": {"image": "x"}}}, "task.id", id="float-task-id"),
        pytest.param({**_annotation(1, 1), "project": {"id": "5_0"}}, "project id", id="project-7_0"),
        pytest.param({**_annotation(1, 1), "project": {"id": "٥"}}, "project id", id="project-arabic-digits"),
        pytest.param({**_annotation(1, 1), "project": {"id": 5.9}}, "project id", id="project-float"),
        pytest.param({**_annotation(1, 1), "project": {"id": "5.abc"}}, "project id", id="project-5.abc"),
        pytest.param(_with_annotation(_annotation(1, 1), updated_at=None), "updated_at", id="no-updated-at"),
        pytest.param(
            _with_annotation(_annotation(1, 1), updated_at="yesterday"), "updated_at", id="updated-at-yesterday"
        ),
        pytest.param(
            _with_annotation(_annotation(1, 1), updated_at="9999-01-01T00:00:00Z"), "ahead", id="updated-at-year-9999"
        ),
        pytest.param(_with_annotation(_annotation(1, 1), updated_at=1767225600), "updated_at", id="updated-at-number"),
    ],
)
def test_only_what_label_studio_sends_is_accepted(connected, sqlite_store, body, fragment):
    """Integer ids and ISO times only: a float id was truncated (7.2 and 7.8 became 7), "7_0",
    Arabic-Indic digits, 70.9 and "70.abc" all meant project 70, and an annotation without a
    readable time (or from year 9999) replaced, or froze, a newer label. Each is a 400, and
    the label recorded before stays."""
    assert connected.post("/webhook", json=_annotation(1, 1, choices=("No effusion",))).status_code == 200
    _assert_json_4xx(connected.post("/webhook", json=body), 400, fragment)
    assert sqlite_store.get_labels(PID) == {1: ["No effusion"]}


@pytest.mark.parametrize("project", [5.9, "5_0", "٥", "5.abc"])
def test_predict_refuses_project_ids_that_are_not_ids(connected, project):
    """/predict's project is an integer, digits, or "<id>.<timestamp>"; nothing else."""
    _assert_json_4xx(connected.post("/predict", json={"project": project, "tasks": []}), 400, "project must be")
    assert connected.post("/predict", json={"project": f"{PID}.1767225600", "tasks": []}).status_code == 200


def test_credentials_in_image_references_stay_out_of_forecast_and_log(app, connected, caplog):
    """References carrying user info or a token, in any scheme, are listed in /forecast's
    image_errors and the log without them."""
    refs = {
        201: "ftp://alice:hunter2@files.example/x.png",
        202: "http://bob:hunter2@10.0.0.9/x.png",
        203: "https://cdn.example/x.png?token=hunter2",
        204: "s3://AKIA:hunter2@bucket/x.png",
        205: "/data/upload/1/x.png?token=hunter2",
    }
    for i in range(12):
        body = _annotation(
            i, 700 + i, choices=("Effusion" if i % 2 else "No effusion",), image=data_uri(xray_png(i, i % 2 == 1))
        )
        assert connected.post("/webhook", json=body).status_code == 200
    for task_id, ref in refs.items():
        assert connected.post("/webhook", json=_annotation(task_id, 800 + task_id, image=ref)).status_code == 200
    assert app.extensions[EXTENSION].jobs.wait_idle(120)
    response = connected.get(f"/forecast?project={PID}")
    assert set(map(int, response.json["image_errors"])) == set(refs)
    assert "hunter2" not in response.get_data(as_text=True) and "hunter2" not in caplog.text
