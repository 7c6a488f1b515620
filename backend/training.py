"""The worker's job: embed what is missing, refit the probes, forecast, save, tell Label Studio.

:class:`Trainer` owns the heavy state of one worker (the loaded encoder) and is built once per
worker (thread or ``labelcast worker`` process); the web process never imports this module.
Jobs of different projects may run on one trainer at once (the embedded worker's lanes,
:mod:`backend.jobs`): the encoder, the pipeline and the clients are made once under a lock and
shared; the pipeline runs the encoder one batch at a time.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from backend.exceptions import (
    EncoderLoadError,
    LabelConfigError,
    LabelStudioError,
    ProjectNotFoundError,
    SettingsError,
    UnusableLabelsError,
)
from backend.labelstudio.client import LabelStudioClient
from backend.labelstudio.config import parse_label_config
from backend.labelstudio.protocol import model_version
from backend.publish import SETUP_REPUSH_S, Publisher, Retry
from backend.refit import FORECAST_SEED, IMAGE_ERRORS_SHOWN, error_kind, image_error_summary, with_report_link
from backend.refit import refit as refit_project
from backend.selection_bias import MAX_POOL
from backend.sync import sync_labels

log = logging.getLogger(__name__)

FETCH_BUDGET_S = 120.0
"""Longest one job (a refit, or embedding ahead) spends downloading images, all batches
together (seconds). Images not downloaded by then are image errors of this job and are tried
again by the next one, so a slow or trickling image host holds the worker, and with it other
projects' refits, for at most this long."""

PROGRESS_EVERY_S = 2.0
"""Seconds between two writes of a project's embedding progress (/metrics, /report) while a
job embeds."""

BACKFILL_NOTICE_MIN = 100
"""Images a job must have to embed before Label Studio's backend description says "embedding
X of Y images" (every PROGRESS_PUSH_S; the forecast sentence comes back when the job ends)."""

PROGRESS_PUSH_S = 15.0
"""Seconds between two progress descriptions pushed to Label Studio during a backfill."""

IMAGE_ERRORS_LOGGED = 5
"""Image errors quoted in the one warning a job logs about them (all are counted)."""


class Trainer:
    """Does the work of one worker.

    Parameters
    ----------
    settings : backend.settings.Settings
    store : backend.store.Store
    encoder : backend.encoders.Encoder, optional
        An already loaded encoder; default: load ``settings.encoder`` on first use.
    client_factory : callable, optional
        ``(url, api_key) -> LabelStudioClient``.
    retry : backend.publish.Retry, optional
        When a model version Label Studio missed is pushed again; default ``Retry()``.
    """

    def __init__(
        self,
        settings,
        store,
        encoder=None,
        client_factory: Callable[..., Any] | None = None,
        retry: Retry | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self._encoder = encoder
        self._client_factory = client_factory or LabelStudioClient
        self._clients: dict[tuple[str | None, str | None], Any] = {}
        self.publisher = Publisher(settings, store, self.client, retry)
        self._pipeline = None
        self._lock = threading.RLock()  # makes the encoder, the pipeline and clients once

    @property
    def encoder(self):
        """The encoder, loaded on first use (not at construction), once however many jobs ask."""
        if self._encoder is None:
            with self._lock:
                if self._encoder is None:
                    from backend.encoders import load_encoder

                    started = time.perf_counter()
                    self._encoder = load_encoder(self.settings.encoder, device=self.settings.device)
                    log.info("loaded encoder %s in %.1f s", self._encoder.id, time.perf_counter() - started)
        return self._encoder

    def client(self, project: dict[str, Any]):
        """The Label Studio client for a project: LABEL_STUDIO_URL with LABEL_STUDIO_API_KEY
        (or the token /setup sent), else the URL and token /setup sent. The configured key
        never goes to a URL that came from a request."""
        if self.settings.label_studio_url:
            url = self.settings.label_studio_url
            key = self.settings.label_studio_api_key or project.get("access_token")
        else:
            url, key = project.get("hostname"), project.get("access_token")
        with self._lock:
            if (url, key) not in self._clients:
                self._clients[(url, key)] = self._client_factory(
                    url, key, allowed_hosts=self.settings.allowed_image_hosts
                )
            return self._clients[(url, key)]

    def _project(self, project_id: int) -> dict[str, Any]:
        project = self.store.get_project(project_id)
        if project is None:
            raise ProjectNotFoundError(f"project {project_id} is unknown; connect it in Label Studio first")
        return project

    # --- embedding --------------------------------------------------------------------------
    def embed_tasks(
        self, project_id: int, task_ids: Iterable[int], errors: dict[int, str] | None = None
    ) -> dict[int, np.ndarray]:
        """Embeddings of the given tasks, fetching and embedding only what the cache lacks.

        The images go through :class:`backend.pipeline.Pipeline` (concurrent fetching through
        the project's Label Studio client, decoding on every core, batched encoding); hashes
        and embeddings are stored batch by batch, as they come. Images that cannot be fetched
        (within FETCH_BUDGET_S for the whole call) or decoded are left out, with one warning
        in the log for all of them; ``errors``, when given, receives ``{task_id: reason}``.

        Returns
        -------
        dict of task id to ndarray of shape (dim,)
        """
        project = self._project(project_id)
        tasks = self.store.get_tasks(project_id, list(task_ids))
        encoder_id = self.encoder.id
        known = {t: rec["sha"] for t, rec in tasks.items() if rec.get("sha")}
        cached = self.store.get_many(encoder_id, set(known.values()))
        out = {t: cached[sha] for t, sha in known.items() if sha in cached}
        missing = [t for t in tasks if t not in out]
        failed: dict[int, str] = {}
        if missing:
            started, before = time.perf_counter(), self.pipeline.stats.as_dict()
            client = self.client(project)
            deadline = time.monotonic() + FETCH_BUDGET_S
            progress = _Progress(self, project_id, project, len(missing))

            def fetch(task_id: int, ref: str) -> bytes:
                return client.fetch_image(ref, task_id, deadline=deadline)

            try:
                for results in self.pipeline.run(((t, tasks[t]["image"]) for t in missing), fetch):
                    self.store.set_task_hashes(project_id, {r.key: r.sha for r in results if r.sha})
                    for result in results:
                        if result.vector is not None:
                            out[result.key] = result.vector
                        else:
                            failed[result.key] = result.error
                    progress.update(results)
            finally:
                progress.finish()
            seconds, after = time.perf_counter() - started, self.pipeline.stats.as_dict()
            log.info(
                "project %s: embedded %d images in %.2f s (%.1f images/s; fetch %.2f s, decode %.2f s, "
                "encode %.2f s summed over threads and processes; %d cached, %d errors)",
                project_id,
                len(missing),
                seconds,
                len(missing) / max(seconds, 1e-9),
                *(after[k] - before[k] for k in ("fetch_s", "decode_s", "encode_s", "cached")),
                len(failed),
            )
        if failed:
            quoted = "; ".join(f"task {t}: {reason}" for t, reason in list(failed.items())[:IMAGE_ERRORS_LOGGED])
            log.warning(
                "project %s: %d image(s) left out (/forecast lists them): %s%s",
                project_id,
                len(failed),
                quoted,
                " ..." if len(failed) > IMAGE_ERRORS_LOGGED else "",
            )
        if errors is not None:
            errors.update(failed)
        return out

    @property
    def pipeline(self):
        """The embedding pipeline of this worker's encoder (its decoding processes are kept),
        shared by the jobs running at once."""
        with self._lock:
            if self._pipeline is None or self._pipeline.encoder is not self.encoder:
                from backend.pipeline import Pipeline

                self._pipeline = Pipeline(self.encoder, self.store)
            return self._pipeline

    # --- refit ------------------------------------------------------------------------------
    def sync_labels(self, project_id: int) -> tuple[int, int]:
        """Re-read every task and annotation of a project from Label Studio into the store
        (:func:`backend.sync.sync_labels`). Returns ``(n_tasks, n_labels)``."""
        project = self._project(project_id)
        settings = self.settings.for_project(project.get("extra_params"))
        config = parse_label_config(project["label_config"], settings.positive)
        return sync_labels(self.store, self.client(project), project_id, config)

    def refit(self, project_id: int, sync: bool = False) -> dict[str, Any]:
        """Refit every probe of a project on its current labels and save the new forecast.

        With ``sync``, first re-read tasks and labels from Label Studio (:meth:`sync_labels`)
        and, after the refit, embed every task not embedded yet so /predict can score it.
        Returns the saved forecast record.
        """
        resync = sync  # /setup of a new project, or Start training
        try:
            if sync:
                try:
                    self.sync_labels(project_id)
                except LabelStudioError as exc:
                    log.warning("project %s: not synced from Label Studio: %s", project_id, exc)
                    sync = False
            record = self._refit(project_id)
        except REFIT_ERRORS as exc:  # a refit that cannot run: the project shows why and the fix
            record = self._save_error(project_id, exc)
            sync = False
        if resync:  # Label Studio may still overwrite the message just pushed (publish.SETUP_REPUSH_S)
            self.publisher.push_again_in(project_id, SETUP_REPUSH_S)
        if sync:
            pending = [t for t, rec in self.store.get_tasks(project_id).items() if not rec.get("sha")]
            if pending:
                self.embed_tasks(project_id, pending)
        return record

    def _refit(self, project_id: int) -> dict[str, Any]:
        started = time.perf_counter()
        project = self._project(project_id)
        settings = self.settings.for_project(project.get("extra_params"))
        config = parse_label_config(project["label_config"], settings.positive)
        labels = self.store.get_labels(project_id)
        image_errors: dict[int, str] = {}
        vectors = self.embed_tasks(project_id, labels, image_errors)
        tasks = self.store.get_tasks(project_id)  # after embedding: with the hashes it stored
        _, pool, pool_size = self._pool_embeddings(tasks, labels)
        result = refit_project(
            project_id,
            labels,
            vectors,
            config,
            settings,
            encoder_id=self.encoder.id,
            dim=self.encoder.dim,
            pool=pool,
            pool_size=pool_size,
            n_tasks=len(tasks),
            previous=self.store.get_model(project_id),
            encoder_spec=self.settings.encoder,
            image_errors=image_errors,
            base_url=self.settings.public_url,
            started=started,
        )
        model, record = result.model, result.record
        self.store.put_result(project_id, model, record, result.plots)
        log.info(
            "project %s: %s in %.2f s: %s", project_id, record["version"], record["refit_seconds"], record["message"]
        )
        self.publisher.tell(project_id, project, record["version"], record["message"])
        return record

    def _pool_embeddings(
        self, tasks: dict[int, dict[str, Any]], labeled: Iterable[int]
    ) -> tuple[list[int], np.ndarray, int]:
        """Cached embeddings of the project's tasks (``store.get_tasks``) that have no label.

        Only tasks already embedded count (TASKS_CREATED, /predict and the sync after /setup
        embed them); nothing is fetched here. A project with more than ``MAX_POOL`` of them
        gets a seeded random sample (the forecast looks at no more). Returns
        ``(task ids, X_pool of shape (n_ids, dim), unlabeled embedded tasks in all)``.
        """
        labeled = set(labeled)
        shas = {t: rec["sha"] for t, rec in tasks.items() if rec.get("sha") and t not in labeled}
        ids = sorted(shas)
        if len(ids) > MAX_POOL:
            rng = np.random.default_rng(FORECAST_SEED)
            ids = sorted(rng.choice(ids, MAX_POOL, replace=False).tolist())
        vectors = self.store.get_many(self.encoder.id, {shas[t] for t in ids})
        ids = [t for t in ids if shas[t] in vectors]
        X = np.stack([vectors[shas[t]] for t in ids]) if ids else np.zeros((0, self.encoder.dim), np.float32)
        sampled = len(shas) > MAX_POOL
        return ids, X, (len(shas) if sampled else len(ids))

    def _save_error(self, project_id: int, exc: RefitError) -> dict[str, Any]:
        """Save (and tell Label Studio) a forecast record with status ``error`` and a sentence
        that says what went wrong and how to fix it; the last good model keeps serving /predict."""
        project = self._project(project_id)
        labels = self.store.get_labels(project_id)
        previous = self.store.get_model(project_id)
        model = previous or {
            "version": model_version(self.settings.encoder, 0),
            "revision": 1,
            "encoder": None,
            "encoder_spec": self.settings.encoder,
            "n_labels": 0,
            "probes": {},
            "trained_at": None,
        }
        image_errors = getattr(exc, "image_errors", {})
        sentence = error_sentence(exc, len(labels), self.settings.encoder)
        base_url = self.settings.public_url
        before = self.store.get_forecast(project_id) or {}
        plots = {f: png for f in before.get("findings") or {} if (png := self.store.get_plot(project_id, f))}
        record = {
            "status": "error",
            "error": sentence,
            "version": model["version"],
            "n_labels": 0,
            "n_labels_recorded": len(labels),
            "target_auc": before.get("target_auc"),
            "message": with_report_link(sentence, base_url, project_id),
            "labels_needed": None,
            "findings": before.get("findings") or {},
            "updated_at": time.time(),
            "refit_seconds": None,
            "image_errors": {str(t): r[:300] for t, r in sorted(image_errors.items())[:IMAGE_ERRORS_SHOWN]},
            "n_image_errors": len(image_errors),
        }
        self.store.put_result(project_id, model, record, plots)
        log.error("project %s: refit cannot run: %s", project_id, sentence)
        self.publisher.tell(project_id, project, model["version"], record["message"])
        return record

    # --- publishing (backend.publish) ------------------------------------------------------
    def retry_version_pushes(self) -> None:
        """Tell Label Studio the model versions it missed whose retry time has come (the
        deadlines are kept in the store). The queues start every job with this and also run it
        on a timer (:meth:`next_push_in`), so a version is reported even when no job comes."""
        self.publisher.push_due()

    def next_push_in(self) -> float | None:
        """Seconds until a missed model version is due to be pushed again, None when none is."""
        return self.publisher.next_push_in()


REFIT_ERRORS = (EncoderLoadError, LabelConfigError, SettingsError, UnusableLabelsError)
"""Errors that stop a refit for a reason a person can fix: saved as a forecast with status
``error`` (any other exception is a bug and fails the job)."""

RefitError = EncoderLoadError | LabelConfigError | SettingsError | UnusableLabelsError
"""The type of an exception in REFIT_ERRORS (``except`` takes the tuple, annotations the union)."""


def error_sentence(exc: RefitError, n_labels: int, encoder_spec: str) -> str:
    """The plain sentence, with the fix, shown for a refit that could not run."""
    arrived = f"{n_labels} label{'s' if n_labels != 1 else ''} arrived"
    if isinstance(exc, EncoderLoadError):
        return (
            f"Error: no forecast, the encoder {encoder_spec!r} cannot be loaded: {exc}. {arrived} and "
            f"are kept; fix ENCODER (or put its weights on the worker's machine) and restart the worker."
        )
    if isinstance(exc, (LabelConfigError, SettingsError)):
        return (
            f"Error: no forecast, the project's settings cannot be used: {exc}. {arrived} and are kept; "
            f"fix the labeling config or the model's extra params in Label Studio."
        )
    return f"Error: no forecast, {arrived} but none could be used: {image_error_summary(exc.image_errors)}."


class _Progress:
    """A job's embedding progress: written to the store (``/metrics``, ``/report``) every
    PROGRESS_EVERY_S, and, for a backfill of BACKFILL_NOTICE_MIN images or more, told to Label
    Studio as the backend's description ("embedding 3,200 of 10,000 images") every
    PROGRESS_PUSH_S; the latest forecast sentence is put back when the job ends."""

    def __init__(self, trainer: Trainer, project_id: int, project: dict[str, Any], n_images: int) -> None:
        self.trainer, self.project_id, self.project = trainer, project_id, project
        self.n_images, self.done, self.ok = n_images, 0, 0
        self.errors: dict[str, int] = {}
        self.started = time.monotonic()
        self.written = self.pushed = -math.inf
        self.told = False
        store = trainer.store
        tasks = store.get_tasks(project_id)
        cached = store.cached_shas(trainer.encoder.id, {rec["sha"] for rec in tasks.values() if rec.get("sha")})
        self.tasks_total = len(tasks)
        self.embedded_before = sum(1 for rec in tasks.values() if rec.get("sha") in cached)
        self._write(running=True)

    def update(self, results) -> None:
        self.done += len(results)
        for result in results:
            if result.vector is not None:
                self.ok += 1
            else:
                kind = error_kind(result.error or "")
                self.errors[kind] = self.errors.get(kind, 0) + 1
        now = time.monotonic()
        if now - self.written >= PROGRESS_EVERY_S:
            self._write(running=True)
        if self.n_images >= BACKFILL_NOTICE_MIN and now - self.pushed >= PROGRESS_PUSH_S and self.done < self.n_images:
            self.pushed = now
            self._tell(f"embedding {self.embedded_before + self.ok:,} of {self.tasks_total:,} images")

    def finish(self) -> None:
        self._write(running=False)
        if self.told:  # put the forecast sentence back in place of "embedding X of Y"
            publisher, store = self.trainer.publisher, self.trainer.store
            if store.get_forecast(self.project_id) and store.get_model(self.project_id):
                publisher.push(self.project_id)  # the latest version and its sentence
            else:
                done = f"{self.embedded_before + self.ok:,} of {self.tasks_total:,} images embedded."
                publisher.tell(self.project_id, self.project, self._default_version(), done)

    def _default_version(self) -> str:
        return model_version(self.trainer.settings.encoder, 0)

    def _write(self, running: bool) -> None:
        self.written = time.monotonic()
        seconds = self.written - self.started
        self.trainer.store.put_embedding_progress(
            self.project_id,
            {
                "running": running,
                "tasks_total": self.tasks_total,
                "tasks_embedded": self.embedded_before + self.ok,
                "job_images": self.n_images,
                "job_done": self.done,
                "images_per_s": round(self.done / seconds, 1) if seconds > 0 and self.done else None,
                "errors": dict(self.errors),
                "updated_at": time.time(),
            },
        )

    def _tell(self, status: str) -> None:
        if self.trainer.publisher.show_status(self.project_id, self.project, status, self._default_version()):
            self.told = True
