"""The forecast as JSON and as a learning-curve plot: /forecast, /forecast.png."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from backend.app.ml import service
from backend.exceptions import RequestError

blueprint = Blueprint("forecasts", __name__)


def _project_arg():
    project = request.args.get("project")
    if not project:
        raise RequestError("add ?project=<Label Studio project id>")
    return project


@blueprint.get("/forecast")
def forecast():
    return jsonify(service().forecast(_project_arg()))


@blueprint.get("/forecast.png")
def forecast_png():
    png = service().forecast_plot(_project_arg(), request.args.get("finding"))
    return Response(png, mimetype="image/png")
