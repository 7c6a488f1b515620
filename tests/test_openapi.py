"""The OpenAPI description (GET /openapi.json) checked with schemathesis against the running
app served over real HTTP on loopback: no 5xx, documented status codes, content types and
response shapes, for generated valid and invalid requests (issue 6)."""

import threading

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from backend.app.openapi import document  # noqa: E402
from conftest import ONE_FINDING  # noqa: E402

CONFIG = ONE_FINDING
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def server_url(tmp_path_factory):
    """The app (embedded mode, a trainer that does nothing) served by werkzeug on 127.0.0.1."""
    from werkzeug.serving import make_server

    from backend.app import EXTENSION, create_app
    from backend.jobs import ThreadJobs
    from backend.settings import Settings
    from backend.store import SQLiteStore

    from conftest import IdleTrainer  # the schema check is about HTTP, not training

    folder = tmp_path_factory.mktemp("openapi")
    settings = Settings(model_dir=folder, max_body_bytes=64 * 1024)
    store = SQLiteStore(folder / "store.sqlite3")
    jobs = ThreadJobs(settings, store, trainer_factory=IdleTrainer)
    app = create_app({"LABELCAST_SETTINGS": settings, "LABELCAST_STORE": store, "LABELCAST_JOBS": jobs})
    app.test_client().post("/setup", json={"project": 1, "schema": CONFIG})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    app.extensions[EXTENSION].jobs.close()


def test_served_document_is_the_module_document(server_url):
    """GET /openapi.json serves the description every path of the app is in."""
    import requests

    served = requests.get(f"{server_url}/openapi.json", timeout=10).json()
    assert served == document()
    assert {"/health", "/setup", "/predict", "/webhook", "/metrics", "/forecast"} <= set(served["paths"])


schema = schemathesis.openapi.from_dict(document())
# Valid requests and invalid ones (wrong types, missing fields): both must stay clear of 5xx.
schema.config.generation.update(modes=[schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE])


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_app_conforms_to_its_openapi(case, server_url):
    """Generated requests to every operation: never a 5xx; status, content type and body as documented."""
    response = case.call(base_url=server_url, timeout=10)
    case.validate_response(response, checks=CHECKS)
