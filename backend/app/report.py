"""The learning-curve report of a project as one server-rendered HTML page: /report.

Shows why the backend says what it says: the forecast per finding with its learning-curve plot
(inlined PNG), the history of forecasts as labels accumulated, and the encoder and settings
used. No template engine and no build step; every value is escaped.
"""

from __future__ import annotations

import base64
import datetime
import html
from typing import Any

from flask import Blueprint, Response, request

from backend.app.ml import service
from backend.exceptions import ProjectNotFoundError, RequestError
from backend.labelstudio import protocol

blueprint = Blueprint("report", __name__)

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:60em;padding:0 1em;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
.message{background:#f0f6ff;border-left:4px solid #3b7dd8;padding:.6em 1em}
.error{background:#fff0f0;border-left-color:#d83b3b}
.kv td{text-align:left}img{max-width:100%;border:1px solid #ddd}.muted{color:#666;font-size:.9em}
"""


@blueprint.get("/report")
def report():
    project = request.args.get("project")
    if not project:
        raise RequestError("add ?project=<Label Studio project id>")
    pid = protocol.parse_project_id(project)
    page = render_report(service(), pid)
    return Response(page, mimetype="text/html")


def render_report(svc, pid: int) -> str:
    """The report page of project ``pid`` (HTML text)."""
    store = svc.store
    project = store.get_project(pid)
    if project is None:
        raise ProjectNotFoundError(f"project {pid} is not connected to this backend")
    record = store.get_forecast(pid)
    model = store.get_model(pid) or {}
    parts = [f"<h1>LabelCast report: project {_e(pid)}</h1>"]
    if record is None:
        parts.append('<p class="message">No forecast yet: it is made after the first submitted label.</p>')
    else:
        css = "message error" if record.get("status") == "error" else "message"
        parts.append(f'<p class="{css}">{_e(record.get("message"))}</p>')
        parts.append(
            _table(
                [
                    "model version",
                    "labels arrived",
                    "labels used",
                    "more labels needed (slowest finding)",
                    "target AUC",
                    "updated",
                ],
                [
                    [
                        record.get("version"),
                        record.get("n_labels_recorded"),
                        record.get("n_labels"),
                        _num(record.get("labels_needed"), 0),
                        record.get("target_auc"),
                        _time(record.get("updated_at")),
                    ]
                ],
            )
        )
        parts.append(_image_errors_section(record))
        for finding, fc in (record.get("findings") or {}).items():
            parts.append(_finding_section(store, pid, finding, fc))
    parts.append(_embedding_section(store.get_embedding_progress(pid)))
    parts.append(_history_section(store.get_history(pid)))
    parts.append(_settings_section(svc.settings, project, model))
    body = "\n".join(parts)
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>LabelCast report: project {_e(pid)}</title>"
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_STYLE}</style>'
        f"</head><body>\n{body}\n</body></html>"
    )


def _finding_section(store, pid: int, finding: str, fc: dict[str, Any]) -> str:
    rows: list[list[Any]] = [
        ["status", fc.get("status")],
        ["labels (positive / negative)", f"{fc.get('n_labels')} ({fc.get('n_positive')} / {fc.get('n_negative')})"],
        ["AUC now", _num_interval(fc.get("auc"), fc.get("auc_interval"), 3)],
        ["AUC plateau", _num_interval(fc.get("plateau"), fc.get("plateau_interval"), 3)],
        ["labels needed for the target", _num_interval(fc.get("labels_needed"), fc.get("labels_needed_interval"), 0)],
        ["more labels still needed", _num_interval(fc.get("labels_remaining"), fc.get("labels_remaining_interval"), 0)],
        ["forecast curves that reach the target", _share(fc.get("reach_share"))],
        ["method", f"{fc.get('method')} ({_num((fc.get('level') or 0) * 100, 0)}% intervals)"],
    ]
    bias, raw = fc.get("selection_bias"), fc.get("raw")
    if bias:
        rows.append(["labeled vs unlabeled images", _bias_text(bias)])
    if raw:
        rows[2:4] = [
            ["AUC now (corrected)", rows[2][1]],
            ["AUC now (as measured on the labels)", _num_interval(raw.get("auc"), raw.get("auc_interval"), 3)],
            ["AUC plateau (corrected)", rows[3][1]],
            ["AUC plateau (uncorrected)", _num(raw.get("plateau"), 3)],
        ]
    out = [f"<h2>{_e(finding)}</h2>", f"<p>{_e(fc.get('message'))}</p>", _table(["", ""], rows, header=False)]
    png = store.get_plot(pid, finding)
    if raw:
        out.append(
            '<p class="muted">The labels so far are not a random sample of this project\'s '
            "images: left, the learning curve as measured on them; right, corrected towards "
            "all the project's images (the forecast uses the right one).</p>"
        )
    if png:
        data = base64.b64encode(png).decode("ascii")
        out.append(f'<img alt="learning curve of {_e(finding)}" src="data:image/png;base64,{data}">')
    else:
        out.append('<p class="muted">No learning curve yet (too few labels of one class).</p>')
    return "\n".join(out)


def _bias_text(bias: dict[str, Any]) -> str:
    n_pool = bias.get("n_pool") or 0
    if bias.get("source") == "known":
        how = "weighted by the known chance each task had to be chosen (random audit tasks)"
    else:
        how = "weighted by how typical each labeled image is of the unlabeled ones"
    if bias.get("statistic") is None:
        seen = "no unlabeled images embedded yet to compare with"
    else:
        seen = (
            f"a classifier tells them apart with AUC {_num(bias.get('statistic'), 2)} "
            f"(z = {_num(bias.get('z'), 1)}), a test that the labeled ones lie nearer the probe's "
            f"boundary gives z = {_num(bias.get('margin_z'), 1)}, against {n_pool:,} unlabeled images"
        )
    verdict = "unlike: corrected, " + how if bias.get("detected") else "alike: not corrected"
    return f"{verdict}; {seen}"


def _embedding_section(progress: dict[str, Any] | None) -> str:
    if not progress:
        return ""
    errors = ", ".join(f"{count} {kind}" for kind, count in (progress.get("errors") or {}).items()) or "none"
    state = "running" if progress.get("running") else "done"
    rows = [
        ["tasks embedded / total", f"{progress.get('tasks_embedded')} / {progress.get('tasks_total')}"],
        [
            f"latest job ({state})",
            f"{progress.get('job_done')} of {progress.get('job_images')} images, "
            f"{_num(progress.get('images_per_s'), 1)} images/s",
        ],
        ["image errors by reason (latest job)", errors],
        ["updated", _time(progress.get("updated_at"))],
    ]
    return "<h2>Embedding</h2>" + _table(["", ""], rows, header=False)


def _image_errors_section(record: dict[str, Any]) -> str:
    errors = record.get("image_errors") or {}
    if not errors:
        return ""
    rows = [[task, reason] for task, reason in errors.items()]
    shown = f" (the first {len(rows)})" if len(rows) < (record.get("n_image_errors") or 0) else ""
    return (
        f"<h2>Labeled tasks left out</h2><p>{_e(record.get('n_image_errors'))} labeled task(s) whose "
        f"image could not be used{_e(shown)}:</p>" + _table(["task", "reason"], rows)
    )


def _history_section(history: list[dict[str, Any]]) -> str:
    if not history:
        return "<h2>History</h2><p class=muted>No past forecasts recorded.</p>"
    findings: list[str] = []
    for entry in history:
        findings += [f for f in entry.get("findings") or {} if f not in findings]
    head = ["updated", "model version", "labels", "more labels needed"]
    for f in findings:
        head += [f"{f}: AUC", f"{f}: more needed"]
    rows = []
    for entry in reversed(history):  # newest first
        row = [
            _time(entry.get("updated_at")),
            entry.get("version"),
            entry.get("n_labels"),
            _num(entry.get("labels_needed"), 0),
        ]
        for f in findings:
            fc = (entry.get("findings") or {}).get(f) or {}
            row += [
                _num(fc.get("auc"), 3),
                _num(fc.get("labels_remaining"), 0) if fc.get("status") != "collecting" else "collecting",
            ]
        rows.append(row)
    return "<h2>History</h2><p class=muted>One row per refit, newest first.</p>" + _table(head, rows)


def _settings_section(settings, project: dict[str, Any], model: dict[str, Any]) -> str:
    effective = settings.for_project(project.get("extra_params"))
    rows = [
        ["encoder spec", public_spec(model.get("encoder_spec") or settings.encoder)],
        ["encoder id", model.get("encoder") or "(no refit yet)"],
        ["target AUC", effective.target_auc],
        ["minimum labels", effective.min_labels],
        ["positive choice", effective.positive or "first choice in the config"],
        ["sampling (order of the prediction score)", effective.sampling],
        ["project extra_params", project.get("extra_params") or "{}"],
        ["store", "Redis" if settings.redis_url else "SQLite (embedded)"],
        ["last refit", _time(model.get("trained_at"))],
    ]
    return "<h2>Encoder and settings</h2>" + _table(["", ""], rows, header=False)


def public_spec(spec: str) -> str:
    """An encoder spec without the server's folders: each part that is a filesystem path
    (``/models/x``, ``open_clip:ViT-B-16:/ckpt/x.pt``) is shown by its last name only."""
    parts = []
    for part in str(spec).split(":"):
        if part.startswith(("/", "./", "../", "~", "\\")):
            part = "…/" + part.rstrip("/\\").replace("\\", "/").rpartition("/")[2]
        parts.append(part)
    return ":".join(parts)


def _table(head: list[str], rows: list[list[Any]], header: bool = True) -> str:
    out = ["<table>" if header else '<table class="kv">']
    if header:
        out.append("<tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>")
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{_e(v)}</td>" for v in row) + "</tr>")
    out.append("</table>")
    return "".join(out)


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _num(value: Any, digits: int) -> str:
    if value is None:
        return "–"
    try:
        return f"{float(value):,.{digits}f}"
    except (TypeError, ValueError):
        return str(value)


def _share(value: Any) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 1:
        return "–"
    if 0 < value < 0.01:
        return "under 1%"
    if 0.99 < value < 1:
        return "over 99%"
    return f"{100 * float(value):.0f}%"


def _num_interval(value: Any, interval: Any, digits: int) -> str:
    text = _num(value, digits)
    if value is not None and isinstance(interval, (list, tuple)) and len(interval) == 2:
        low, high = (_num(v, digits) if v is not None else "no bound" for v in interval)
        text += f" ({low} to {high})"
    return text


def _time(value: Any) -> str:
    if not value:
        return "–"
    try:
        return datetime.datetime.fromtimestamp(float(value), datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (TypeError, ValueError, OverflowError):
        return str(value)
