"""One error handler: every error leaves as JSON ``{"error", "message"}``, never a traceback."""

from __future__ import annotations

import logging

from flask import Flask, current_app, jsonify
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from backend.exceptions import LabelCastError, ProjectNotFoundError

log = logging.getLogger(__name__)


def register(app: Flask) -> None:
    """Install the handler on ``app``."""
    app.register_error_handler(Exception, handle)


def handle(exc: Exception):
    """Map an exception to a JSON response with a status code."""
    if isinstance(exc, RequestEntityTooLarge):
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        return jsonify(error=exc.name, message=f"request body above the {limit}-byte limit (MAX_BODY_BYTES)"), 413
    if isinstance(exc, HTTPException):  # its headers too (WWW-Authenticate, Allow), not its HTML type
        headers = [(name, value) for name, value in exc.get_headers() if name.lower() != "content-type"]
        return jsonify(error=exc.name, message=exc.description), exc.code, headers
    if isinstance(exc, ProjectNotFoundError):
        return jsonify(error="Not Found", message=str(exc)), 404
    if isinstance(exc, LabelCastError):
        return jsonify(error="Bad Request", message=str(exc)), 400
    if isinstance(exc, RecursionError):  # only input nested deeper than Python recurses makes one
        return jsonify(error="Bad Request", message="the request's JSON is nested too deeply"), 400
    if isinstance(exc, TimeoutError):  # backend.http_worker: a body that did not arrive in time
        return jsonify(error="Request Timeout", message=str(exc)), 408
    if _store_unreachable(exc):
        log.warning("store unreachable: %s", exc)
        response = jsonify(
            error="Service Unavailable",
            message="the backend's store (Redis) is unreachable; nothing was recorded, send the "
            "request again in a few seconds (Label Studio keeps the annotation either way)",
        )
        return response, 503, {"Retry-After": "2"}
    log.exception("unhandled error")
    return jsonify(error="Internal Server Error", message=f"{type(exc).__name__}: see the backend's log"), 500


def _store_unreachable(exc: Exception) -> bool:
    """Redis down or restarting: a 503 to retry, not a 500 (there is no local buffer)."""
    try:
        from redis.exceptions import BusyLoadingError, ConnectionError, TimeoutError
    except ImportError:  # pragma: no cover - redis is a dependency
        return False
    return isinstance(exc, (ConnectionError, TimeoutError, BusyLoadingError))
