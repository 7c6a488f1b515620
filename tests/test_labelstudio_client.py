"""Tests of backend.labelstudio.client: image fetching, and the API calls against a real Label Studio."""

import base64
import dataclasses
import threading
import time

import pytest
import requests

from backend.exceptions import ImageFetchError
from backend.labelstudio.client import LabelStudioClient
from conftest import ONE_FINDING, free_port, serve_folder, xray_png

CONFIG = ONE_FINDING


@pytest.fixture(scope="module")
def file_server(tmp_path_factory):
    """A loopback HTTP server of one PNG (``/a.png``); other paths answer 404."""
    folder = tmp_path_factory.mktemp("served")
    (folder / "a.png").write_bytes(xray_png(1, True))

    base, server = serve_folder(folder)
    yield base, folder
    server.shutdown()


def test_data_uris_are_decoded_locally():
    """base64 and percent-encoded data: URIs decode without any network."""
    png = xray_png(2, False)
    client = LabelStudioClient(None, None)
    assert client.fetch_image("data:image/png;base64," + base64.b64encode(png).decode()) == png
    assert client.fetch_image("data:text/plain,a%20b") == b"a b"


def test_http_images_are_downloaded(file_server):
    """A plain http URL is downloaded; a 404 names the status and the URL."""
    base, folder = file_server
    client = LabelStudioClient(None, None, allowed_hosts="127.0.0.1")
    assert client.fetch_image(f"{base}/a.png") == (folder / "a.png").read_bytes()
    with pytest.raises(ImageFetchError, match="HTTP 404"):
        client.fetch_image(f"{base}/missing.png")


@pytest.mark.parametrize(
    "ref, fragment",
    [
        pytest.param("/data/upload/1/x.png", "set LABEL_STUDIO_URL", id="upload-without-url"),
        pytest.param("ftp://host/x.png", "unknown scheme", id="ftp"),
        pytest.param("", "empty", id="empty"),
        pytest.param("s3://bucket/x.png", "needs a task id", id="s3-without-task"),
    ],
)
def test_unfetchable_references(ref, fragment):
    """References the client cannot fetch raise ImageFetchError saying why."""
    with pytest.raises(ImageFetchError, match=fragment):
        LabelStudioClient(None, None).fetch_image(ref)


def test_unreachable_server():
    """A refused connection becomes an ImageFetchError, not a requests exception."""
    with pytest.raises(ImageFetchError, match="cannot download"):
        LabelStudioClient(None, None, allowed_hosts="127.0.0.1").fetch_image(f"http://127.0.0.1:{free_port()}/x.png")


@pytest.fixture
def backend_in_thread(service_settings, tmp_path):
    """The real app (embedded mode, basic auth on) served by werkzeug on a loopback port."""
    from werkzeug.serving import make_server

    from backend.app import EXTENSION, create_app

    def start(settings):
        app = create_app({"LABELCAST_SETTINGS": settings})
        server = make_server("127.0.0.1", free_port(), app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append((server, app))
        return f"http://127.0.0.1:{server.server_port}", app

    started = []
    yield start
    for server, app in started:
        server.shutdown()
        app.extensions[EXTENSION].jobs.close()


@pytest.mark.labelstudio
def test_model_version_and_webhook_auth_against_label_studio(label_studio, backend_in_thread, service_settings):
    """Against a real Label Studio: uploads are fetched with the key, the title moves the
    project's model version, and a basic-auth backend gets its credentials onto the webhook."""
    settings = dataclasses.replace(
        service_settings,
        label_studio_url=label_studio["url"],
        label_studio_api_key=label_studio["token"],
        basic_auth_user="labelstudio",
        basic_auth_pass="s3cret",
    )
    backend_url, app = backend_in_thread(settings)
    session = requests.Session()
    session.headers["Authorization"] = f"Token {label_studio['token']}"
    api = label_studio["url"]
    pid = session.post(f"{api}/api/projects", json={"title": "client test", "label_config": CONFIG}).json()["id"]
    png = xray_png(3, True)
    session.post(f"{api}/api/projects/{pid}/import", files={"x.png": ("x.png", png, "image/png")}).raise_for_status()
    task = session.get(f"{api}/api/tasks?project={pid}&fields=all").json()["tasks"][0]

    client = LabelStudioClient(label_studio["url"], label_studio["token"])
    assert client.fetch_image(task["data"]["image"], task["id"]) == png
    with pytest.raises(ImageFetchError, match="LABEL_STUDIO_API_KEY"):
        LabelStudioClient(label_studio["url"], "wrong-token").fetch_image(task["data"]["image"])

    ml = session.post(
        f"{api}/api/ml",
        json={
            "project": pid,
            "url": backend_url,
            "title": "LabelCast",
            "auth_method": "BASIC_AUTH",
            "basic_auth_user": "labelstudio",
            "basic_auth_pass": "s3cret",
        },
    )
    assert ml.status_code == 201, ml.text

    # /setup (with credentials) queued a first refit, which pushed n0 and authorized the webhook.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        hooks = session.get(f"{api}/api/webhooks?project={pid}").json()
        if hooks and all("Authorization" in (h.get("headers") or {}) for h in hooks):
            break
        time.sleep(0.5)
    assert hooks and hooks[0]["headers"]["Authorization"].startswith("Basic ")
    assert session.get(f"{api}/api/projects/{pid}").json()["model_version"].endswith("-n0")

    # A label saved in Label Studio now reaches the backend through the authorized webhook.
    session.post(
        f"{api}/api/tasks/{task['id']}/annotations",
        json={
            "result": [
                {"from_name": "finding", "to_name": "image", "type": "choices", "value": {"choices": ["Effusion"]}}
            ]
        },
    )
    deadline = time.monotonic() + 60
    token = base64.b64encode(b"labelstudio:s3cret").decode()
    while time.monotonic() < deadline:
        r = requests.get(
            f"{backend_url}/forecast", params={"project": pid}, headers={"Authorization": f"Basic {token}"}
        )
        if r.ok and r.json()["n_labels"] == 1:
            break
        time.sleep(0.5)
    assert r.json()["n_labels"] == 1
    version = r.json()["version"]
    deadline = time.monotonic() + 30  # the refit stores the forecast, then tells Label Studio
    while session.get(f"{api}/api/projects/{pid}").json()["model_version"] != version:
        assert time.monotonic() < deadline, "the refit's model version never reached Label Studio"
        time.sleep(0.2)

    assert (
        client.set_model_version(
            pid, "labelcast-manual-n7", status="a status line", basic_auth=("labelstudio", "s3cret")
        )
        == ml.json()["id"]
    )
    assert session.get(f"{api}/api/projects/{pid}").json()["model_version"] == "labelcast-manual-n7"
    assert session.get(f"{api}/api/ml/{ml.json()['id']}").json()["description"] == "a status line"
