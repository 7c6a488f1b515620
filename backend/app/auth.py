"""Optional HTTP basic auth on every route except the health checks."""

from __future__ import annotations

import hmac

from flask import Flask, request
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import Unauthorized

OPEN_PATHS = ("/", "/health")


def register(app: Flask, settings) -> None:
    """Require ``BASIC_AUTH_USER``/``BASIC_AUTH_PASS`` when both are set."""
    if not (settings.basic_auth_user and settings.basic_auth_pass):
        return
    user, password = settings.basic_auth_user.encode(), settings.basic_auth_pass.encode()

    @app.before_request
    def _check_basic_auth():
        if request.path in OPEN_PATHS:
            return None
        given = request.authorization
        if (
            given is None
            or given.type != "basic"
            or not hmac.compare_digest((given.username or "").encode(), user)
            or not hmac.compare_digest((given.password or "").encode(), password)
        ):
            raise Unauthorized(
                "this backend needs HTTP basic auth; set the same user and password in Label Studio's model settings",
                www_authenticate=WWWAuthenticate("basic", {"realm": "LabelCast"}),  # browsers ask
            )
        return None
