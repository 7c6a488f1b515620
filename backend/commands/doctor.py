"""``labelcast doctor``: check a running setup and say in plain words what is wrong.

Checks, in order: the backend answers /health; the encoder resolves offline, as `labelcast
serve` checks it (weights on this machine, headers readable; no model is loaded); Label Studio answers with the API key; the project exists, has this backend
as its ML backend, and has a webhook to it (with the basic-auth header when BASIC_AUTH_USER /
BASIC_AUTH_PASS are set). Checks that lack their inputs are skipped. Exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import dataclasses

from backend.exceptions import LabelCastError


@dataclasses.dataclass(frozen=True)
class Check:
    """One check's outcome: ``ok`` True, False, or None (skipped); ``detail`` says why/how to fix."""

    name: str
    ok: bool | None
    detail: str


def register(subparsers) -> None:
    from backend.commands.connect import add_label_studio_arguments

    parser = subparsers.add_parser(
        "doctor",
        help="check a running setup (backend, encoder, Label Studio, webhook) and say what is wrong",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_label_studio_arguments(parser, required=False)
    parser.set_defaults(func=run)


def run(args) -> int:
    from backend.commands.connect import label_studio_from_args
    from backend.settings import DEFAULT_PORT, Settings

    settings = Settings.from_env()
    url, key = label_studio_from_args(args, settings, required=False)
    backend_url = (args.backend_url or f"http://localhost:{DEFAULT_PORT}").rstrip("/")
    checks = diagnose(settings, backend_url, url, key, args.project)
    marks = {True: "ok  ", False: "FAIL", None: "skip"}
    for check in checks:
        print(f"[{marks[check.ok]}] {check.name}: {check.detail}")
    failed = [c for c in checks if c.ok is False]
    print(f"\n{len(failed)} problem(s) found." if failed else "\nEverything checked is fine.")
    return 1 if failed else 0


def diagnose(
    settings, backend_url: str, label_studio_url: str | None, api_key: str | None, project_id: int | None
) -> list[Check]:
    """Every check, in order; later Label Studio checks are skipped when an earlier one fails."""
    checks = [check_backend(backend_url, settings)]
    if checks[0].ok:
        checks.append(check_backend_state(backend_url, settings, project_id))
    checks.append(check_encoder(settings.encoder))
    if not (label_studio_url and api_key):
        checks.append(
            Check(
                "Label Studio",
                None,
                "not checked: give --label-studio and --api-key (or LABEL_STUDIO_URL / LABEL_STUDIO_API_KEY)",
            )
        )
        return checks
    checks.extend(check_label_studio(settings, backend_url, label_studio_url, api_key, project_id))
    return checks


def check_backend(backend_url: str, settings) -> Check:
    """The backend's /health answers UP (and, with basic auth, the credentials are accepted)."""
    import requests

    try:
        response = requests.get(f"{backend_url}/health", timeout=10)
    except requests.RequestException as exc:
        return Check(
            "backend",
            False,
            f"nothing answers at {backend_url} ({type(exc).__name__}); start it with "
            f"`labelcast serve` (or `make run`), or pass --backend-url",
        )
    if response.status_code != 200 or not _is_labelcast(response):
        return Check(
            "backend",
            False,
            f"{backend_url}/health answered HTTP {response.status_code}, not LabelCast; "
            f"is another service on that port?",
        )
    version = response.json().get("version", "?")
    return Check("backend", True, f"LabelCast {version} is up at {backend_url}")


def check_backend_state(backend_url: str, settings, project_id: int | None) -> Check:
    """Basic auth accepted, background jobs, and (with a project) what the backend knows of it."""
    import requests

    auth = None
    if settings.basic_auth_user and settings.basic_auth_pass:
        auth = (settings.basic_auth_user, settings.basic_auth_pass)
    try:
        response = requests.get(f"{backend_url}/metrics", auth=auth, timeout=10)
    except requests.RequestException as exc:
        return Check("backend state", False, f"{backend_url}/metrics failed: {type(exc).__name__}")
    if response.status_code == 401:
        hint = (
            "set BASIC_AUTH_USER and BASIC_AUTH_PASS here to the backend's values"
            if auth is None
            else "BASIC_AUTH_USER/BASIC_AUTH_PASS here differ from the backend's"
        )
        return Check("backend state", False, f"the backend wants HTTP basic auth: {hint}")
    if response.status_code != 200:
        return Check("backend state", False, f"{backend_url}/metrics answered HTTP {response.status_code}")
    metrics = response.json()
    jobs = metrics.get("jobs") or {}
    detail = f"{metrics.get('store')}, jobs: {jobs_summary(jobs)}"
    if jobs.get("failed"):
        detail += " (see the backend's or worker's log for why)"
    if project_id is None:
        return Check("backend state", True, detail)
    project = (metrics.get("projects") or {}).get(str(project_id))
    if project is None:
        return Check(
            "backend state",
            False,
            f"{detail}; the backend has never been set up for project {project_id}: "
            f"Label Studio calls /setup when the ML backend is added (labelcast connect)",
        )
    return Check(
        "backend state",
        True,
        f"{detail}; project {project_id}: {project.get('n_labels', 0)} labels, "
        f"model version {project.get('model_version')}",
    )


def jobs_summary(jobs: dict) -> str:
    """``/metrics``' jobs in words, for either queue: the RQ queue counts jobs (``queued``,
    ``running``); the thread queue names the job it runs (or None) and counts refits and embeds."""
    queued = jobs.get("queued", jobs.get("refits_queued", 0) + jobs.get("embeds_queued", 0))
    running = jobs.get("running")
    if isinstance(running, str) and running:
        now = f"running {running}"
    elif isinstance(running, int) and running:
        now = f"{running} running"
    else:
        now = "nothing running"
    return f"{queued or 0} queued, {now}, {jobs.get('failed') or 0} failed"


def _is_labelcast(response) -> bool:
    try:
        return response.json().get("model_class") == "LabelCast"
    except ValueError:
        return False


def check_encoder(spec: str) -> Check:
    """The encoder resolves offline: weights on disk, config and weight headers readable
    (:func:`backend.encoders.check_encoder`, what `labelcast serve` checks; nothing is loaded
    or downloaded)."""
    try:
        from backend.encoders import check_encoder as resolve
    except ImportError as exc:
        return Check("encoder", False, f"cannot import the encoder code: {exc}")
    name = f"ENCODER={spec}"
    try:
        found = resolve(spec, offline=True)
    except LabelCastError as exc:
        return Check("encoder", False, f"{name}: {exc} (`labelcast encoders` lists the presets)")
    return Check("encoder", True, f"{name}: {found}")


def check_label_studio(settings, backend_url: str, url: str, key: str, project_id: int | None) -> list[Check]:
    """Label Studio reachable with the key; the project's ML backend and webhook."""
    from backend.commands.connect import _find_backend, backend_webhooks, check_project
    from backend.labelstudio.client import LabelStudioClient

    client = LabelStudioClient(url, key)
    fix = (
        f"run `labelcast connect --label-studio {url} --api-key ... --project {project_id} --backend-url {backend_url}`"
    )
    if project_id is None:
        try:
            client.sdk.projects.list(page_size=1)
        except Exception as exc:
            return [_label_studio_failure(client, exc)]
        return [
            Check("Label Studio", True, f"{url} accepts the API key"),
            Check("project", None, "not checked: give --project ID"),
        ]
    try:
        project = check_project(client, project_id)
    except LabelCastError as exc:
        return [Check("Label Studio", False, str(exc))]
    checks = [
        Check(
            "Label Studio",
            True,
            f"{url} accepts the API key; project {project_id} {getattr(project, 'title', '')!r} exists",
        )
    ]
    try:
        backend = _find_backend(client, project_id, backend_url)
    except LabelCastError as exc:
        return checks + [Check("ML backend", False, str(exc))]
    if backend is None:
        return checks + [Check("ML backend", False, f"project {project_id} has no ML backend at {backend_url}; {fix}")]
    checks.append(Check("ML backend", True, f"registered (id {backend.id}, model version {backend.title!r})"))
    try:
        hooks = backend_webhooks(client, project_id, backend.url)
    except LabelCastError as exc:
        return checks + [Check("webhook", False, str(exc))]
    if not hooks:
        return checks + [
            Check("webhook", False, f"no webhook to {backend.url}: labels will not reach the backend; {fix}")
        ]
    if settings.basic_auth_user and settings.basic_auth_pass:
        import base64

        token = base64.b64encode(f"{settings.basic_auth_user}:{settings.basic_auth_pass}".encode()).decode()
        if not all((h.headers or {}).get("Authorization") == f"Basic {token}" for h in hooks):
            return checks + [
                Check(
                    "webhook",
                    False,
                    f"the webhook to {backend.url} lacks the basic-auth header, so the "
                    f"backend refuses every label (HTTP 401); {fix}",
                )
            ]
    checks.append(Check("webhook", True, f"{hooks[0].url}"))
    return checks


def _label_studio_failure(client, exc: Exception) -> Check:
    import requests

    status = getattr(exc, "status_code", None)
    if status in (401, 403):
        return Check(
            "Label Studio",
            False,
            f"{client.url} refused the API key (HTTP {status}); copy the token from Account & Settings",
        )
    try:
        requests.get(f"{client.url}/health", timeout=10)
    except requests.RequestException:
        return Check("Label Studio", False, f"nothing answers at {client.url}; is Label Studio running?")
    return Check("Label Studio", False, f"{client.url}: {type(exc).__name__}: {str(exc)[:200]}")
