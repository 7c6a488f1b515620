"""What the web process does for each ML-backend request, without Flask.

:class:`Service` records labels and enqueues work (``/webhook``), registers projects
(``/setup``) and answers ``/predict`` from the stored probes and forecasts. It never trains and
never imports torch; the Flask routes in :mod:`backend.app` only translate HTTP to these calls.
"""

from __future__ import annotations

import gc
import logging
import sys
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from backend.exceptions import LabelConfigError, ProjectNotFoundError, RequestError
from backend.labelstudio import protocol
from backend.labelstudio.config import BINARY, MULTILABEL, LabelingConfig, parse_label_config
from backend.settings import ProjectSettings, parse_extra_params

log = logging.getLogger(__name__)

PROJECT_CACHE_S = 5.0
"""How long a web process reuses a project's record and parsed labeling config. A /setup in
another web process (Redis mode) reaches this one within that time; recording a label does not
depend on what it may change (extra_params)."""


class Service:
    """The backend's request handlers.

    Parameters
    ----------
    settings : backend.settings.Settings
    store : backend.store.Store
    jobs : backend.jobs.Jobs
    """

    def __init__(self, settings, store, jobs) -> None:
        self.settings = settings
        self.store = store
        self.jobs = jobs
        self.started_at = time.time()
        self._projects: dict[int, tuple[float, dict[str, Any], LabelingConfig]] = {}  # see _config

    def resume_interrupted(self) -> list[int]:
        """Request a refit of every project whose labels changed after its last forecast.

        Called when the app starts: a backend killed before or during a refit (``kill -9``,
        a power cut) runs it again instead of waiting for the next label. Returns the ids.
        """
        stale = []
        try:
            for pid in self.store.project_ids():
                record = self.store.get_forecast(pid)
                n_labels = len(self.store.get_labels(pid))
                if (record is None and n_labels) or (record and record.get("n_labels_recorded") != n_labels):
                    stale.append(pid)
                    self.jobs.request_refit(pid)
        except Exception as exc:  # the store is not reachable yet (Redis starting): start anyway
            log.warning("could not check for interrupted refits: %s", exc)
        if stale:
            log.warning("projects %s have labels newer than their forecast; refitting", stale)
        return stale

    # --- /setup -----------------------------------------------------------------------------
    def setup(self, body: Any, caller: str | None = None) -> dict[str, Any]:
        """Register (or update) a project; a config LabelCast cannot use raises LabelConfigError.

        Nothing in the request (its ``Host`` header included) becomes the report link of the
        forecast messages: that comes from configuration only (``PUBLIC_URL``, see
        :func:`backend.refit.with_report_link`). ``caller`` is the address that called: without ``LABEL_STUDIO_URL`` or basic auth, the
        ``hostname`` in the body is used as Label Studio's address only if it resolves there
        (see :func:`backend.fetch.setup_hostname_refusal`), and ``access_token`` is recorded
        with the hostname it came with: a token never goes to another host than its own.
        """
        body = _object(body, "/setup")
        project_id = protocol.parse_project_id(body.get("project"))
        schema = body.get("schema") or body.get("label_config")
        extra_params = parse_extra_params(body.get("extra_params"))
        settings = self.settings.for_project(extra_params)
        parse_label_config(schema, settings.positive)  # fail now, where Label Studio shows it
        previous = self.store.get_project(project_id) or {}
        hostname, access_token = self._label_studio_of(project_id, body, caller, previous)
        record = {
            **{k: v for k, v in previous.items() if k != "backend_url"},  # older versions kept a link here
            "label_config": schema,
            "extra_params": extra_params,
            "hostname": hostname,
            "access_token": access_token,
            "updated_at": time.time(),
        }
        self.store.put_project(project_id, record)
        self._projects.pop(project_id, None)
        if not previous.get("label_config"):
            # First connection: read the labels made so far (imports with annotations send no
            # annotation webhooks), embed the tasks, and (with basic auth) authorize the webhook.
            self.jobs.request_refit(project_id, sync=True)
        return {"model_version": self.current_version(project_id)}

    def _label_studio_of(
        self, project_id: int, body: Mapping[str, Any], caller: str | None, previous: Mapping[str, Any]
    ) -> tuple[str | None, str | None]:
        """The (hostname, access_token) to record from a /setup.

        With ``LABEL_STUDIO_URL`` the token is for that URL (the hostname is not used).
        Otherwise the two are recorded together, from a /setup whose hostname is trusted; a
        new hostname never inherits the token given for the previous one, and a /setup whose
        hostname is not trusted changes neither.
        """
        token = body.get("access_token") if isinstance(body.get("access_token"), str) else None
        token = token or None
        if self.settings.label_studio_url:
            return None, token or previous.get("access_token")
        hostname = self._trusted_hostname(project_id, body.get("hostname"), caller)
        if hostname is None:
            return previous.get("hostname"), previous.get("access_token")
        if token is None and _same_origin(hostname, previous.get("hostname")):
            token = previous.get("access_token")
        return hostname, token

    def _trusted_hostname(self, project_id: int, hostname: Any, caller: str | None) -> str | None:
        """The Label Studio URL /setup sent, if it may be trusted (else None, with a warning)."""
        if not isinstance(hostname, str) or not hostname:
            return None
        from backend.fetch import AllowList, FetchRefused, parse_http_url, setup_hostname_refusal

        refusal: str | None
        if self.settings.basic_auth_user and self.settings.basic_auth_pass:
            try:  # this /setup passed basic auth; the URL must still mean one host
                parse_http_url(hostname)
                return hostname
            except FetchRefused as exc:
                refusal = str(exc)
        else:
            refusal = setup_hostname_refusal(hostname, caller, AllowList.parse(self.settings.allowed_image_hosts))
        if refusal is None:
            return hostname
        log.warning(
            "project %s: not using the Label Studio URL that /setup sent: %s; set LABEL_STUDIO_URL "
            "(or BASIC_AUTH_USER/PASS, or that host in ALLOWED_IMAGE_HOSTS)",
            project_id,
            refusal,
        )
        return None

    def current_version(self, project_id: int) -> str:
        """The project's latest model version (``...-n0`` before the first refit)."""
        model = self.store.get_model(project_id)
        return model["version"] if model else protocol.model_version(self.settings.encoder, 0)

    def _config(
        self, project_id: int, label_config: str | None = None, strict: bool = True
    ) -> tuple[dict[str, Any], LabelingConfig]:
        """The project's record and parsed config, updating it from ``label_config``.

        Only a project set up with /setup has a config; a request carrying one does not create
        a project. A new ``label_config`` is parsed before it is stored: one LabelCast cannot
        use raises LabelConfigError (``strict``) or is ignored with a warning, and either way
        the last good config stays. Kept for PROJECT_CACHE_S per process (a /setup here
        forgets it at once), so a burst of webhooks does not read and parse the same record
        for each one.
        """
        cached = self._projects.get(project_id)
        if (
            cached is not None
            and time.monotonic() - cached[0] < PROJECT_CACHE_S
            and (not label_config or cached[1].get("label_config") == label_config)
        ):
            return cached[1], cached[2]
        project = self.store.get_project(project_id)
        if project is None or not project.get("label_config"):
            raise ProjectNotFoundError(
                f"project {project_id} is not connected to this backend; add the backend in the "
                f"project's Model settings (that calls /setup)"
            )
        settings = self.settings.for_project(project.get("extra_params"))
        if label_config and project.get("label_config") != label_config:
            try:
                config = parse_label_config(label_config, settings.positive)
            except LabelConfigError as exc:
                if strict:
                    raise
                log.warning(
                    "project %s: kept the last good labeling config; the one sent is not usable: %s", project_id, exc
                )
            else:
                project = {**project, "label_config": label_config, "updated_at": time.time()}
                self.store.put_project(project_id, project)
                self._projects[project_id] = (time.monotonic(), project, config)
                return project, config
        config = parse_label_config(project["label_config"], settings.positive)
        self._projects[project_id] = (time.monotonic(), project, config)
        return project, config

    # --- /webhook ---------------------------------------------------------------------------
    def webhook(self, body: Any) -> dict[str, Any]:
        """Record what an event changes and enqueue work; returns in milliseconds."""
        event = protocol.parse_webhook(body)
        if event.action not in protocol.HANDLED_ACTIONS:
            return {"status": "ignored", "action": event.action}
        if event.project_id is None:
            raise RequestError(f"{event.action} webhook has no project id")
        pid = event.project_id
        # A label is never refused for the config it came with: it is recorded under the last
        # good config. PROJECT_UPDATED exists to change the config: an unusable one is a 400.
        _, config = self._config(pid, event.label_config, strict=event.action == protocol.PROJECT_UPDATED)
        queued = False
        if event.action in (protocol.ANNOTATION_CREATED, protocol.ANNOTATION_UPDATED):
            assert event.annotation is not None  # parse_webhook refuses annotation events without one
            unknown = _unknown_choices(event.annotation, config)
            if unknown:  # learning "not positive" from a value the config lacks would be wrong
                return {"status": "ignored", "action": event.action, "message": unknown}
            queued = self._record_annotation(pid, config, event)
        elif event.action == protocol.ANNOTATIONS_DELETED:
            if self.store.delete_labels(pid, event.deleted_annotation_ids):
                queued = self.jobs.request_refit(pid)
        elif event.action == protocol.TASKS_CREATED:
            images = _task_images(event.tasks, config)
            self.store.put_tasks(pid, images)
            self.jobs.request_embed(pid, images)
        elif event.action == protocol.START_TRAINING:  # re-read everything from Label Studio
            queued = self.jobs.request_refit(pid, sync=True)
        else:  # PROJECT_UPDATED: the config was re-read above
            queued = self.jobs.request_refit(pid)
        return {"status": "ok", "action": event.action, "refit_queued": queued}

    def _record_annotation(self, pid: int, config: LabelingConfig, event: protocol.WebhookEvent) -> bool:
        annotation, task = event.annotation, event.task
        assert annotation is not None and task is not None  # parse_webhook refuses events without them
        choices = None if annotation["was_cancelled"] else protocol.annotation_choices(annotation["result"], config)
        if choices is None:  # a skip, or an annotation without our choices: nothing to learn
            # Recorded as "no label" (not deleted), with its time: an older version of the
            # annotation that arrives late cannot bring its label back. A refit only if there
            # was a label to take away.
            had_label = self.store.has_label(pid, annotation["id"])
            self.store.put_label(pid, annotation["id"], task["id"], None, updated_at=annotation.get("updated_at"))
            return had_label and self.jobs.request_refit(pid)
        image = task["data"].get(config.image_key)
        if not isinstance(image, str) or not image:
            raise RequestError(
                f"task {task['id']} has no image under data.{config.image_key} (the <Image> tag's value)"
            )
        self.store.put_label(
            pid, annotation["id"], task["id"], choices, image=image, updated_at=annotation.get("updated_at")
        )
        return self.jobs.request_refit(pid)

    # --- /predict ---------------------------------------------------------------------------
    def predict(self, body: Any) -> dict[str, Any]:
        """Predictions for the given tasks from the stored probes and forecast; never trains.

        Tasks whose embedding is not cached yet get the forecast part only, and their
        embedding is queued. The ``score`` follows the project's ``sampling`` setting
        (:mod:`backend.sampling`): sorting the Data Manager by it gives that order.
        """
        body = _object(body, "/predict")
        pid = protocol.parse_project_id(body.get("project"))
        tasks = protocol.parse_tasks(body.get("tasks"))
        project, config = self._config(pid, body.get("label_config"))
        model = self.store.get_model(pid)
        record = self.store.get_forecast(pid)
        version = model["version"] if model else protocol.model_version(self.settings.encoder, 0)
        settings = self.settings.for_project(project.get("extra_params"))
        if record:
            message, needed = record.get("message"), record.get("labels_needed")
            n_labels = record.get("n_labels_recorded", record.get("n_labels", 0))  # every stored label, as below
        else:
            message, needed = protocol.collecting_message(0, settings.min_labels), float(settings.min_labels)
            n_labels = arrived = len(self.store.get_labels(pid))
            if arrived:  # labels are in, the first refit is not done: never say "0 labels"
                message = f"{arrived} label{'s' if arrived != 1 else ''} arrived; the first forecast is being computed."

        probabilities = self._probabilities(pid, config, model, tasks)
        results = [
            protocol.build_prediction(config, version, probabilities.get(task["id"]), message, needed) for task in tasks
        ]
        _steer(settings, pid, config, tasks, results, model, n_labels)
        return {"results": results, "model_version": version}

    def _probabilities(
        self, pid: int, config: LabelingConfig, model: dict[str, Any] | None, tasks: list[dict[str, Any]]
    ) -> dict[int, dict[str, float]]:
        images = _task_images(tasks, config, strict=False)
        if not images:
            return {}
        known = self.store.get_tasks(pid, images)
        new = {t: ref for t, ref in images.items() if t not in known or known[t]["image"] != ref}
        if new:
            self.store.put_tasks(pid, new)
        probes = (model or {}).get("probes") or {}
        # Several findings: predict those that have a probe. Otherwise every finding needs one.
        findings = [f for f in config.findings if f in probes]
        complete = len(findings) == len(config.findings)
        if not model or not findings or (config.mode != MULTILABEL and not complete):
            if new:
                self.jobs.request_embed(pid, new)
            return {}
        shas = {t: rec["sha"] for t, rec in known.items() if rec.get("sha") and t not in new}
        vectors = self.store.get_many(model["encoder"], set(shas.values()))
        ready = [t for t, sha in shas.items() if sha in vectors]
        missing = [t for t in images if t not in ready]
        if missing:
            self.jobs.request_embed(pid, missing)
        if not ready:
            return {}
        from backend.probe import LinearProbe

        X = np.stack([vectors[shas[t]] for t in ready])
        out: dict[int, dict[str, float]] = {t: {} for t in ready}
        for finding in findings:
            p = LinearProbe.from_dict(probes[finding]).predict_proba(X)
            for t, value in zip(ready, p):
                out[t][finding] = float(value)
        return out

    # --- /forecast, /metrics ----------------------------------------------------------------
    def forecast(self, project: Any) -> dict[str, Any]:
        """The latest forecast record of a project (404 before the first refit)."""
        pid = protocol.parse_project_id(project)
        record = self.store.get_forecast(pid)
        if record is None:
            if self.store.get_project(pid) is None:
                raise ProjectNotFoundError(f"project {pid} is not connected to this backend")
            raise ProjectNotFoundError(f"project {pid} has no forecast yet: it is made after the first submitted label")
        return {"project": pid, **record}

    def forecast_plot(self, project: Any, finding: str | None = None) -> bytes:
        """The learning-curve PNG of a finding (default: the first)."""
        record = self.forecast(project)
        findings = list(record.get("findings") or {})
        finding = finding or (findings[0] if findings else None)
        if finding not in findings:
            raise RequestError(f"unknown finding {finding!r}; this project has {findings}")
        png = self.store.get_plot(record["project"], finding)
        if png is None:
            raise ProjectNotFoundError(
                f"no learning curve for {finding!r} yet: {record['findings'][finding]['message']}"
            )
        return png

    def health(self) -> dict[str, Any]:
        """``{"status": "UP"}``, or ``"degraded"`` with the reason when a project's last refit
        could not run (its forecast has status ``error``); the backend still answers."""
        errors = {}
        for pid in self.store.project_ids():
            record = self.store.get_forecast(pid) or {}
            if record.get("status") == "error":
                errors[str(pid)] = record.get("error") or record.get("message")
        if not errors:
            return {"status": "UP"}
        reason = "; ".join(f"project {pid}: {sentence}" for pid, sentence in errors.items())
        return {"status": "degraded", "reason": reason[:2000], "projects": errors}

    def metrics(self) -> dict[str, Any]:
        """Queue state and a line per project (JSON)."""
        projects = {}
        for pid in self.store.project_ids():
            record = self.store.get_forecast(pid) or {}
            projects[str(pid)] = {
                "model_version": self.current_version(pid),
                "n_labels": record.get("n_labels", 0),
                "n_labels_recorded": record.get("n_labels_recorded", 0),
                "forecast_status": record.get("status"),
                "error": record.get("error"),
                "n_image_errors": record.get("n_image_errors", 0),
                # tasks embedded / total, images/s and errors by reason of the latest job
                "embedding": self.store.get_embedding_progress(pid),
                "labels_needed": record.get("labels_needed"),
                "status": {f: fc.get("status") for f, fc in (record.get("findings") or {}).items()},
            }
        return {
            "uptime_s": round(time.time() - self.started_at, 1),
            "store": type(self.store).__name__,
            "jobs": self.jobs.status(),
            "projects": projects,
            "python": {  # this web process (labelcast serve tunes them, see backend.commands.serve)
                "gc_frozen_objects": gc.get_freeze_count(),
                "gc_collections": [generation["collections"] for generation in gc.get_stats()],
                "switch_interval_s": sys.getswitchinterval(),
            },
        }


def _steer(
    settings: ProjectSettings, pid: int, config: LabelingConfig, tasks, results, model=None, n_labels: int = 0
) -> None:
    """Replace each prediction's ``score`` by the one of the ``sampling`` order (in place).
    ``model``: the stored model (its score quantiles; whether it has a probe), ``n_labels``: the
    labels the project has stored, for ``mixed``'s random start."""
    from backend.sampling import prediction_scores

    mode = settings.sampling
    if mode == "uncertainty":
        return  # the confidence build_prediction wrote is the score
    ids = [task["id"] for task in tasks]
    confidence = {t: r["score"] for t, r in zip(ids, results) if "score" in r}
    low = 0.5 if config.mode in (BINARY, MULTILABEL) else 1.0 / max(len(config.findings), 1)
    model = model or {}
    scores = prediction_scores(
        mode,
        pid,
        confidence,
        ids,
        low,
        model.get("score_quantiles"),
        n_labels=n_labels,
        random_start=settings.random_start,  # mixed's (random mode ignores it)
        has_probe=bool(model.get("probes")),
    )
    for t, result in zip(ids, results):
        score = scores.get(t)
        if score is not None:
            result["score"] = score
        else:
            result.pop("score", None)


def _same_origin(url: str, other: str | None) -> bool:
    from backend.fetch import FetchRefused, parse_http_url

    try:
        return other is not None and parse_http_url(url).origin == parse_http_url(other).origin
    except FetchRefused:
        return False


def _object(body: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise RequestError(f"{where} expects a JSON object body")
    return body


def _unknown_choices(annotation: Mapping[str, Any], config: LabelingConfig) -> str | None:
    """A message when the annotation chose values that are not in the config, else None."""
    if annotation["was_cancelled"]:
        return None
    chosen = protocol.annotation_choices(annotation["result"], config) or []
    unknown = [c for c in chosen if c not in config.values]
    if not unknown:
        return None
    return (
        f"annotation {annotation['id']} chose {', '.join(map(repr, unknown))}, not a value of the "
        f'<Choices name="{config.choices_name}"> tag ({", ".join(map(repr, config.values))}); not learned from'
    )


def _task_images(tasks, config: LabelingConfig, strict: bool = True) -> dict[int, str]:
    images = {}
    for task in tasks:
        ref = (task.get("data") or {}).get(config.image_key)
        if isinstance(ref, str) and ref:
            images[int(task["id"])] = ref
        elif strict:
            log.info("task %s has no data.%s; skipped", task.get("id"), config.image_key)
    return images
