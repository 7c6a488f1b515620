"""JSON shapes of Label Studio's ML-backend protocol: webhook events in, predictions out.

Pure functions on dicts; no I/O.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from typing import Any

from backend.exceptions import RequestError
from backend.labelstudio.config import BINARY, MULTILABEL, LabelingConfig

ANNOTATION_CREATED = "ANNOTATION_CREATED"
ANNOTATION_UPDATED = "ANNOTATION_UPDATED"
ANNOTATIONS_DELETED = "ANNOTATIONS_DELETED"
START_TRAINING = "START_TRAINING"
TASKS_CREATED = "TASKS_CREATED"
PROJECT_UPDATED = "PROJECT_UPDATED"
HANDLED_ACTIONS = (
    ANNOTATION_CREATED,
    ANNOTATION_UPDATED,
    ANNOTATIONS_DELETED,
    START_TRAINING,
    TASKS_CREATED,
    PROJECT_UPDATED,
)


@dataclasses.dataclass(frozen=True)
class WebhookEvent:
    """One webhook call, reduced to what LabelCast acts on.

    Attributes
    ----------
    action : str
        Label Studio's event name.
    project_id : int or None
        The project the event belongs to.
    label_config : str or None
        The project's labeling config when the payload carries it.
    annotation : dict or None
        ``{"id", "task_id", "result", "was_cancelled"}`` for annotation events.
    task : dict or None
        ``{"id", "data"}`` of the annotated task.
    tasks : list of dict
        ``{"id", "data"}`` of created tasks.
    deleted_annotation_ids : list of int
        Ids from ``ANNOTATIONS_DELETED``.
    """

    action: str
    project_id: int | None = None
    label_config: str | None = None
    annotation: dict[str, Any] | None = None
    task: dict[str, Any] | None = None
    tasks: tuple[dict[str, Any], ...] = ()
    deleted_annotation_ids: tuple[int, ...] = ()


def parse_webhook(payload: Any) -> WebhookEvent:
    """Turn a webhook body into a :class:`WebhookEvent`; raise RequestError when malformed."""
    if not isinstance(payload, Mapping):
        raise RequestError("webhook body must be a JSON object with an 'action' field")
    action = payload.get("action")
    if not isinstance(action, str) or not action:
        raise RequestError("webhook body has no 'action' field")
    project = payload.get("project")
    project_id = _project_id(project)
    label_config = project.get("label_config") if isinstance(project, Mapping) else None

    if action in (ANNOTATION_CREATED, ANNOTATION_UPDATED):
        annotation = payload.get("annotation")
        task = payload.get("task")
        if not isinstance(annotation, Mapping) or not isinstance(task, Mapping):
            raise RequestError(f"{action} webhook needs 'annotation' and 'task' objects")
        task_id = _int(task.get("id"), "task.id")
        if not isinstance(task.get("data") or {}, Mapping):
            raise RequestError(f"task {task_id}: 'data' must be an object, got {type(task.get('data')).__name__}")
        return WebhookEvent(
            action=action,
            project_id=project_id if project_id is not None else _maybe_int(task.get("project")),
            label_config=label_config,
            annotation={
                "id": _int(annotation.get("id"), "annotation.id"),
                "task_id": task_id,
                "result": annotation.get("result") or [],
                "was_cancelled": bool(annotation.get("was_cancelled")),
                "updated_at": _annotation_time(annotation.get("updated_at"), action),
            },
            task={"id": task_id, "data": task.get("data") or {}},
        )
    if action == ANNOTATIONS_DELETED:
        annotations = payload.get("annotations") or []
        if not isinstance(annotations, list):
            raise RequestError("ANNOTATIONS_DELETED webhook needs an 'annotations' list")
        ids = tuple(_int(a.get("id"), "annotations[].id") for a in annotations if isinstance(a, Mapping))
        return WebhookEvent(action, project_id, label_config, deleted_annotation_ids=ids)
    if action == TASKS_CREATED:
        tasks = payload.get("tasks") or []
        if not isinstance(tasks, list):
            raise RequestError("TASKS_CREATED webhook needs a 'tasks' list")
        return WebhookEvent(action, project_id, label_config, tasks=tuple(_task(t) for t in tasks))
    return WebhookEvent(action, project_id, label_config)


MAX_CLOCK_AHEAD_S = 86_400.0
"""How far (seconds) an annotation's ``updated_at`` may lie ahead of this backend's clock. A
version from the future would win over every later one and freeze the label."""

_ISO_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}:?[0-9]{2})?"
)


def parse_time(value: Any) -> float | None:
    """Label Studio's ``"2026-01-01T10:00:00.123456Z"`` as a Unix time; None when absent or unreadable."""
    if not isinstance(value, str) or not _ISO_TIME.fullmatch(value):
        return None
    import datetime

    try:
        moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()


def _annotation_time(value: Any, action: str) -> float:
    """An annotation event's ``updated_at``: required, ISO 8601, and not in the future.

    Label Studio sends it on every annotation event; the store orders versions of an
    annotation by it, so a version without one (or with a made-up one) is refused rather
    than allowed to replace a newer label.
    """
    moment = parse_time(value)
    if moment is None:
        raise RequestError(
            f"{action} webhook: annotation.updated_at must be an ISO 8601 time such as "
            f"'2026-01-01T10:00:00.123456Z', got {str(value)[:50]!r}"
        )
    import time

    if moment > time.time() + MAX_CLOCK_AHEAD_S:
        raise RequestError(
            f"{action} webhook: annotation.updated_at {str(value)[:50]!r} is more than "
            f"{MAX_CLOCK_AHEAD_S / 3600:.0f} h ahead of this backend's clock"
        )
    return moment


def annotation_choices(result: Any, config: LabelingConfig) -> list[str] | None:
    """Values chosen in an annotation's ``result`` for the config's choices tag.

    Returns None when the annotation has no choices result for that tag (nothing to learn).
    """
    if not isinstance(result, list):
        return None
    for region in result:
        if (
            isinstance(region, Mapping)
            and region.get("type") == "choices"
            and region.get("from_name") == config.choices_name
        ):
            chosen = (region.get("value") or {}).get("choices") or []
            return [str(c) for c in chosen]
    return None


def parse_tasks(tasks: Any) -> list[dict[str, Any]]:
    """Validate the ``tasks`` list of a /predict body: each task needs an ``id`` and ``data``."""
    if not isinstance(tasks, list):
        raise RequestError("'tasks' must be a list of task objects")
    return [_task(t) for t in tasks]


def build_prediction(
    config: LabelingConfig,
    model_version: str,
    probabilities: Mapping[str, float] | None,
    message: str | None,
    labels_needed: float | None,
) -> dict[str, Any]:
    """One prediction in Label Studio's shape.

    Parameters
    ----------
    config : LabelingConfig
    model_version : str
        Must equal the ML backend's title so the Data Manager uses the prediction.
    probabilities : mapping of finding to float, or None
        Probe output per finding; None before a probe exists (then no choices result).
    message : str or None
        Forecast sentence for the ``forecast`` TextArea.
    labels_needed : float or None
        Labels still needed for the ``labels_needed`` Number (None or inf: omitted).

    Returns
    -------
    dict with ``model_version``, ``score`` and ``result``.
    """
    result: list[dict[str, Any]] = []
    score = None
    if probabilities:
        chosen, score = _choose(config, probabilities)
        result.append(
            {
                "from_name": config.choices_name,
                "to_name": config.image_name,
                "type": "choices",
                "value": {"choices": chosen},
                "score": score,
            }
        )
    if config.forecast_name and message:
        result.append(
            {
                "from_name": config.forecast_name,
                "to_name": config.image_name,
                "type": "textarea",
                "value": {"text": [message]},
            }
        )
    if config.labels_needed_name and labels_needed is not None and math.isfinite(labels_needed):
        result.append(
            {
                "from_name": config.labels_needed_name,
                "to_name": config.image_name,
                "type": "number",
                "value": {"number": int(math.ceil(labels_needed))},
            }
        )
    prediction: dict[str, Any] = {"model_version": model_version, "result": result}
    if score is not None:
        prediction["score"] = score
    return prediction


def confidence(config: LabelingConfig, probabilities: Mapping[str, float]) -> float:
    """The probe's confidence in its choice for one task (the score under ``sampling=uncertainty``)."""
    return _choose(config, probabilities)[1]


def _choose(config: LabelingConfig, probabilities: Mapping[str, float]) -> tuple[list[str], float]:
    """Chosen values and the confidence in them (low score = uncertain, for uncertainty sampling)."""
    if config.mode == BINARY:
        p = float(probabilities[config.findings[0]])
        if p >= 0.5:
            return [config.findings[0]], p
        negative = config.negative
        assert negative is not None  # a binary config has its other value
        return [negative], 1.0 - p
    if config.mode == MULTILABEL:  # findings without a probe yet are neither chosen nor scored
        chosen = [f for f in config.findings if probabilities.get(f, 0.0) >= 0.5]
        confidence = min(max(p, 1.0 - p) for p in map(float, probabilities.values()))
        return chosen, confidence
    total = sum(float(p) for p in probabilities.values()) or 1.0
    best = max(config.findings, key=lambda f: probabilities[f])
    return [best], float(probabilities[best]) / total


def _task(task: Any) -> dict[str, Any]:
    if not isinstance(task, Mapping) or "id" not in task:
        raise RequestError("each task must be an object with an 'id' and 'data'")
    data = task.get("data")
    if not isinstance(data, Mapping):
        raise RequestError(f"task {task.get('id')!r} has no 'data' object")
    return {"id": _int(task["id"], "task.id"), "data": dict(data)}


def _project_id(project: Any) -> int | None:
    if isinstance(project, Mapping):
        return _maybe_int(project.get("id"))
    return _maybe_int(project)


_MAX_ID = 2**63 - 1  # Label Studio's ids are 64-bit; larger ones cannot be stored
_DIGITS = re.compile(r"[0-9]{1,19}")
_PREDICT_PROJECT = re.compile(r"([0-9]{1,19})\.[0-9]+")  # "<id>.<timestamp>", as /predict sends it


def _maybe_int(value: Any) -> int | None:
    """An id as Label Studio sends it: a JSON integer, or a string of ASCII digits. Floats
    (7.2), "7_0", non-ASCII digits and the like are None: they would be read as another id."""
    if isinstance(value, int) and not isinstance(value, bool):
        result = value
    elif isinstance(value, str) and _DIGITS.fullmatch(value):
        result = int(value)
    else:
        return None
    return result if 0 <= result <= _MAX_ID else None


def _int(value: Any, name: str) -> int:
    result = _maybe_int(value)
    if result is None:
        raise RequestError(f"{name} must be an integer between 0 and 2**63-1, got {str(value)[:50]!r}")
    return result


def parse_project_id(value: Any) -> int:
    """A project id from a request: ``12``, ``"12"``, or ``"12.1654..."`` as /predict sends it."""
    if isinstance(value, str) and (match := _PREDICT_PROJECT.fullmatch(value)):
        value = match.group(1)
    return _int(value, "project")


def encoder_slug(spec: str) -> str:
    """Short, stable name of an encoder spec for model versions.

    ``"StanfordAIMI/XrayCLIP__vit-b-16__laion2b-s34b-b88k"`` gives ``"xrayclip"``;
    ``"xrayclip"`` gives ``"xrayclip"``; ``"/models/tiny-clip"`` gives ``"tiny-clip"``.
    """
    name = re.split(r"[/:]", spec.rstrip("/"))[-1].split("__")[0]
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:32] or "encoder"


def model_version(spec: str, n_labels: int, revision: int = 1) -> str:
    """``labelcast-<encoder>-n<labels>``, with ``.r<k>`` when the same count is refit again."""
    base = f"labelcast-{encoder_slug(spec)}-n{int(n_labels)}"
    return base if revision <= 1 else f"{base}.r{revision}"


def collecting_message(n_labels: int, min_labels: int) -> str:
    """The sentence shown before the first forecast exists (the forecast's own
    :func:`backend.readiness.collecting_message`), for ``n_labels`` labels of unknown classes."""
    from backend.readiness import MIN_CLASS_LABELS
    from backend.readiness import collecting_message as sentence

    return sentence(n_labels, 0, MIN_CLASS_LABELS, MIN_CLASS_LABELS, max(0, min_labels - n_labels))
