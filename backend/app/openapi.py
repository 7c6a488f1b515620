"""The OpenAPI 3 description of the backend's endpoints, served at GET /openapi.json.

Kept as code (not a data file) so it ships in every install; tests/test_openapi.py checks the
running app against it with schemathesis.
"""

from __future__ import annotations

import functools
from typing import Any

from flask import Blueprint, jsonify

blueprint = Blueprint("openapi", __name__)


@blueprint.get("/openapi.json")
def openapi_json():
    return jsonify(document())


@functools.cache
def document() -> dict[str, Any]:
    """The OpenAPI document (a JSON-safe dict)."""

    def errors(*codes):
        return {str(c): {"$ref": f"#/components/responses/E{c}"} for c in codes}

    common = (400, 401, 413, 503)
    doc: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {
            "title": "LabelCast ML backend",
            "version": "1",
            "description": "Label Studio's ML-backend protocol (/health, /setup, /predict, /webhook, /metrics) plus LabelCast's forecast endpoints. Every error is JSON {error, message}. With BASIC_AUTH_USER/BASIC_AUTH_PASS set, every path but / and /health needs HTTP basic auth.",
        },
        "components": {
            "securitySchemes": {"basic": {"type": "http", "scheme": "basic"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "message"],
                    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
                },
                "ProjectId": {
                    "description": 'Label Studio project id: an integer or its digits; /predict sends "<id>.<timestamp>"',
                    "oneOf": [{"type": "integer"}, {"type": "string"}],
                },
                "Task": {
                    "type": "object",
                    "required": ["id", "data"],
                    "properties": {"id": {"type": "integer"}, "data": {"type": "object"}},
                },
                "Prediction": {
                    "type": "object",
                    "required": ["model_version", "result"],
                    "properties": {
                        "model_version": {"type": "string"},
                        "score": {"type": "number"},
                        "result": {"type": "array", "items": {"type": "object"}},
                    },
                },
            },
            "responses": {},
        },
        "security": [{"basic": []}, {}],
        "paths": {},
    }
    reasons = {
        400: "Malformed request: the message says what is wrong",
        401: "Basic auth required",
        404: "Unknown project (not connected, or no forecast yet)",
        413: "Body above MAX_BODY_BYTES",
        503: "The store (Redis) is unreachable: retry",
    }
    for code, text in reasons.items():
        doc["components"]["responses"][f"E{code}"] = {
            "description": text,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }

    def json_resp(schema, desc="OK"):
        return {"description": desc, "content": {"application/json": {"schema": schema}}}

    health = {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {"type": "string", "enum": ["UP", "degraded"]},
            "reason": {"type": "string"},
            "projects": {"type": "object", "additionalProperties": {"type": "string"}},
            "model_class": {"type": "string"},
            "version": {"type": "string"},
        },
    }
    for path in ("/", "/health"):
        doc["paths"][path] = {
            "get": {"summary": "Health check (no auth)", "security": [], "responses": {"200": json_resp(health)}}
        }
    doc["paths"]["/setup"] = {
        "post": {
            "summary": "Connect or update a project (Label Studio calls it when the backend is added)",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["project", "schema"],
                            "properties": {
                                "project": {"$ref": "#/components/schemas/ProjectId"},
                                "schema": {"type": "string", "description": "The labeling config XML"},
                                "hostname": {"type": "string"},
                                "access_token": {"type": "string"},
                                "extra_params": {
                                    "description": "JSON object (or its text) with target_auc, positive, min_labels, sampling (uncertainty|random|mixed), random_start",
                                    "oneOf": [{"type": "object"}, {"type": "string"}],
                                    "nullable": True,
                                },
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": json_resp(
                    {
                        "type": "object",
                        "required": ["model_version"],
                        "properties": {"model_version": {"type": "string"}},
                    }
                ),
                **errors(*common),
            },
        }
    }
    doc["paths"]["/predict"] = {
        "post": {
            "summary": "Predictions for tasks from the stored probes and forecast (never trains)",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["project", "tasks"],
                            "properties": {
                                "project": {"$ref": "#/components/schemas/ProjectId"},
                                "tasks": {"type": "array", "items": {"$ref": "#/components/schemas/Task"}},
                                "label_config": {"type": "string"},
                                "params": {"type": "object"},
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": json_resp(
                    {
                        "type": "object",
                        "required": ["results"],
                        "properties": {
                            "results": {"type": "array", "items": {"$ref": "#/components/schemas/Prediction"}},
                            "model_version": {"type": "string"},
                        },
                    }
                ),
                **errors(*common, 404),
            },
        }
    }
    doc["paths"]["/webhook"] = {
        "post": {
            "summary": "Label Studio webhook: records labels and enqueues work; answers in milliseconds",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["action"],
                            "properties": {
                                "action": {
                                    "type": "string",
                                    "description": "ANNOTATION_CREATED, ANNOTATION_UPDATED, ANNOTATIONS_DELETED, START_TRAINING, TASKS_CREATED, PROJECT_UPDATED; others are ignored",
                                },
                                "project": {
                                    "description": "{id, label_config} or an id",
                                    "oneOf": [{"type": "object"}, {"type": "integer"}],
                                },
                                "annotation": {
                                    "type": "object",
                                    "description": "id (integer), updated_at (ISO 8601, required on "
                                    "annotation events, at most a day ahead), result, was_cancelled",
                                },
                                "task": {"type": "object"},
                                "annotations": {"type": "array", "items": {"type": "object"}},
                                "tasks": {"type": "array", "items": {"type": "object"}},
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": json_resp(
                    {
                        "type": "object",
                        "required": ["status", "action"],
                        "properties": {
                            "status": {"type": "string", "enum": ["ok", "ignored"]},
                            "action": {"type": "string"},
                            "refit_queued": {"type": "boolean"},
                            "message": {"type": "string"},
                        },
                    }
                ),
                **errors(*common, 404),
            },
        }
    }
    doc["paths"]["/metrics"] = {
        "get": {
            "summary": "Queue state and one line per project",
            "responses": {
                "200": json_resp(
                    {
                        "type": "object",
                        "required": ["jobs", "projects"],
                        "properties": {
                            "uptime_s": {"type": "number"},
                            "store": {"type": "string"},
                            "jobs": {"type": "object"},
                            "projects": {"type": "object"},
                            "python": {
                                "type": "object",
                                "description": "this web process: gc_frozen_objects (loaded at "
                                "start, never walked by the garbage collector), gc_collections (per generation), "
                                "switch_interval_s (the GIL's)",
                            },
                        },
                    }
                ),
                **errors(401, 503),
            },
        }
    }
    project_q = [
        {
            "name": "project",
            "in": "query",
            "required": True,
            "schema": {"type": "string"},
            "description": "Label Studio project id",
        }
    ]
    doc["paths"]["/forecast"] = {
        "get": {
            "summary": "The latest forecast record of a project",
            "parameters": project_q,
            "responses": {
                "200": json_resp(
                    {
                        "type": "object",
                        "required": ["project"],
                        "properties": {
                            "project": {"type": "integer"},
                            "version": {"type": "string"},
                            "n_labels": {"type": "integer"},
                            "message": {"type": "string"},
                            "findings": {"type": "object"},
                            "image_errors": {
                                "type": "object",
                                "additionalProperties": {"type": "string"},
                                "description": "task id -> why its image was left out of the refit",
                            },
                        },
                    }
                ),
                **errors(400, 401, 404, 503),
            },
        }
    }
    doc["paths"]["/forecast.png"] = {
        "get": {
            "summary": "The learning-curve plot of a finding",
            "parameters": project_q
            + [{"name": "finding", "in": "query", "required": False, "schema": {"type": "string"}}],
            "responses": {
                "200": {
                    "description": "PNG",
                    "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
                },
                **errors(400, 401, 404, 503),
            },
        }
    }
    doc["paths"]["/report"] = {
        "get": {
            "summary": "Human-readable report page of a project",
            "parameters": project_q,
            "responses": {
                "200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}},
                **errors(400, 401, 404, 503),
            },
        }
    }
    doc["paths"]["/openapi.json"] = {
        "get": {"summary": "This description", "responses": {"200": json_resp({"type": "object"}), **errors(401)}}
    }
    return doc
