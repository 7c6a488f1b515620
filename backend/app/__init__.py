"""The Flask application: wiring only (routes translate HTTP to :class:`backend.service.Service`).

Serve it with ``labelcast serve`` or ``gunicorn 'backend.app:create_app()'``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

EXTENSION = "labelcast"
"""Key of the :class:`backend.service.Service` in ``app.extensions``."""


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app.

    Parameters
    ----------
    config : mapping, optional
        Flask config overrides. LabelCast reads ``LABELCAST_SETTINGS`` (a
        :class:`backend.settings.Settings`; default: from the environment), and tests may pass
        ``LABELCAST_STORE`` and ``LABELCAST_JOBS`` to use their own store and queue.
    """
    from backend.app import auth, errors, forecasts, ml, openapi, report, timing
    from backend.jobs import open_jobs
    from backend.service import Service
    from backend.settings import Settings, configure_logging
    from backend.store import open_store

    app = Flask(__name__)
    app.config.update(config or {})
    settings = app.config.get("LABELCAST_SETTINGS") or Settings.from_env()
    # Bodies above MAX_BODY_BYTES get a 413 before they are read (errors.handle names the limit).
    if app.config.get("MAX_CONTENT_LENGTH") is None:  # Flask's default is None (no limit)
        app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    configure_logging(settings.log_level)
    store = app.config.get("LABELCAST_STORE") or open_store(settings)
    jobs = app.config.get("LABELCAST_JOBS") or open_jobs(settings, store)
    app.extensions[EXTENSION] = Service(settings, store, jobs)
    if not app.config.get("TESTING"):
        app.extensions[EXTENSION].resume_interrupted()  # a refit cut short by a crash runs again

    timing.register(app)
    errors.register(app)
    auth.register(app, settings)
    app.register_blueprint(ml.blueprint)
    app.register_blueprint(forecasts.blueprint)
    app.register_blueprint(report.blueprint)
    app.register_blueprint(openapi.blueprint)
    return app
