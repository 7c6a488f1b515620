"""Label Studio's ML-backend protocol: /health, /, /setup, /predict, /webhook, /metrics."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from backend import __version__
from backend.exceptions import RequestError

blueprint = Blueprint("ml", __name__)


def service():
    """The app's :class:`backend.service.Service`."""
    from backend.app import EXTENSION

    return current_app.extensions[EXTENSION]


def json_body():
    """The request's JSON body; a 400 with a clear message when it is not JSON."""
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # Python's JSON parser recurses once per level
        raise RequestError(f"{request.path}: the JSON body is nested too deeply") from None
    if body is None and request.content_length is None and "chunked" in request.headers.get("Transfer-Encoding", ""):
        # Without a length the WSGI server may hand over no bytes at all; size limits need one.
        raise RequestError(f"{request.path} needs a Content-Length: chunked request bodies are not read")
    if body is None:
        raise RequestError(f"{request.path} expects a JSON body (Content-Type: application/json)")
    return body


@blueprint.get("/")
@blueprint.get("/health")
def health():
    # "degraded" (still 200: Label Studio keeps the backend connected) names the projects whose
    # refit cannot run and why, or says that the store is unreachable.
    from backend.app.errors import _store_unreachable

    try:
        state = service().health()
    except Exception as exc:
        if not _store_unreachable(exc):
            raise
        state = {"status": "degraded", "reason": "the store (Redis) is unreachable; labels cannot be recorded"}
    return jsonify(**state, model_class="LabelCast", version=__version__)


@blueprint.post("/setup")
def setup():
    return jsonify(service().setup(json_body(), caller=request.remote_addr))


@blueprint.post("/predict")
def predict():
    return jsonify(service().predict(json_body()))


@blueprint.post("/webhook")
def webhook():
    return jsonify(service().webhook(json_body()))


@blueprint.get("/metrics")
def metrics():
    return jsonify(service().metrics())
