"""``labelcast connect``: register this backend on a Label Studio project and fix its webhook.

Checks that Label Studio answers with the API key and that the project exists, optionally sets
the project's labeling config (one_finding, several_findings: shipped with LabelCast), adds the backend as the project's ML
backend (or finds the one already there), makes sure the webhook to the backend exists and,
when BASIC_AUTH_USER/BASIC_AUTH_PASS are set, that it carries the basic-auth header (Label
Studio does not add it by itself). Prints what it found and what it fixed.
"""

from __future__ import annotations

import argparse
import importlib.resources
import pathlib

from backend.exceptions import LabelCastError, LabelStudioError

PLUGIN_CONFIGS = ("one_finding", "several_findings")
"""The ready labeling configs that ``--config NAME`` picks from: package data of ``backend``
(``backend/plugin_config/NAME.xml``; the top-level ``plugin_config/`` holds the same files)."""

CHECK_TIMEOUT_S = 10.0
"""Timeout of the reachability checks (seconds)."""

ML_BACKEND_TITLE = "LabelCast"
"""Title of a newly registered ML backend; the backend renames it to its model version."""


class LabelStudioUnreachableError(LabelStudioError):
    """Label Studio does not answer at the given URL."""


class LabelStudioAuthError(LabelStudioError):
    """Label Studio refuses the API key."""


class LabelStudioProjectError(LabelStudioError):
    """The project does not exist (or the key's user cannot see it)."""


class BackendRegistrationError(LabelStudioError):
    """Label Studio refused to add the ML backend (usually: it cannot reach the backend)."""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "connect",
        help="register this backend on a Label Studio project and fix its webhook",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_label_studio_arguments(parser, required=True)
    parser.add_argument(
        "--config",
        help="set the project's labeling config: one_finding, several_findings or an XML file",
    )
    parser.set_defaults(func=run)


def add_label_studio_arguments(parser: argparse.ArgumentParser, required: bool) -> None:
    """--label-studio, --api-key, --project, --backend-url (defaults from the environment)."""
    need = " (required)" if required else ""
    parser.add_argument(
        "--label-studio", metavar="URL", help=f"Label Studio base URL (default: LABEL_STUDIO_URL){need}"
    )
    parser.add_argument("--api-key", metavar="KEY", help=f"Label Studio token (default: LABEL_STUDIO_API_KEY){need}")
    parser.add_argument("--project", metavar="ID", type=int, help=f"Label Studio project id{need}")
    parser.add_argument(
        "--backend-url",
        metavar="URL",
        help="this backend's URL as Label Studio reaches it (default: http://localhost:9090)",
    )


def label_studio_from_args(args, settings, required: bool = True):
    """``(url, api_key)`` from the options or the settings; a CommandError when missing."""
    from backend.exceptions import CommandError

    url = (args.label_studio or settings.label_studio_url or "").rstrip("/") or None
    key = args.api_key or settings.label_studio_api_key
    if required and not (url and key):
        raise CommandError(
            "give --label-studio URL and --api-key KEY (or set LABEL_STUDIO_URL and "
            "LABEL_STUDIO_API_KEY); the key is under Label Studio's Account & Settings"
        )
    return url, key


def run(args) -> int:
    from backend.exceptions import CommandError
    from backend.labelstudio.client import LabelStudioClient
    from backend.settings import DEFAULT_PORT, Settings

    settings = Settings.from_env()
    url, key = label_studio_from_args(args, settings)
    if args.project is None:
        raise CommandError("give --project ID (the number in the project's URL: /projects/ID)")
    backend_url = (args.backend_url or f"http://localhost:{DEFAULT_PORT}").rstrip("/")
    label_config = read_label_config(args.config) if args.config else None
    auth = None
    if settings.basic_auth_user and settings.basic_auth_pass:
        auth = (settings.basic_auth_user, settings.basic_auth_pass)
    client = LabelStudioClient(url, key)
    for line in connect(client, args.project, backend_url, label_config=label_config, basic_auth=auth):
        print(line)
    return 0


def read_label_config(choice: str) -> str:
    """The XML of ``one_finding``, ``several_findings`` or a file path, checked for LabelCast."""
    from backend.exceptions import CommandError
    from backend.labelstudio.config import parse_label_config

    if choice in PLUGIN_CONFIGS:
        xml = shipped_label_config(choice)
    else:
        path = pathlib.Path(choice)
        if not path.is_file():
            raise CommandError(f"--config {choice!r}: not {', '.join(PLUGIN_CONFIGS)} or an existing XML file")
        xml = path.read_text(encoding="utf-8")
    parse_label_config(xml)  # LabelConfigError with what is missing
    return xml


def shipped_label_config(name: str) -> str:
    """The XML of a ready config (one of :data:`PLUGIN_CONFIGS`) from the installed package."""
    resource = importlib.resources.files("backend") / "plugin_config" / f"{name}.xml"
    return resource.read_text(encoding="utf-8")


def connect(
    client,
    project_id: int,
    backend_url: str,
    label_config: str | None = None,
    basic_auth: tuple[str, str] | None = None,
) -> list[str]:
    """Register the backend at ``backend_url`` on the project; returns one line per finding/fix.

    Raises
    ------
    LabelStudioError
        A subclass naming the problem: unreachable, bad key, missing project, backend refused.
    """
    lines: list[str] = []
    project = check_project(client, project_id)
    lines.append(
        f"Label Studio {client.url}: API key accepted; project {project_id} "
        f"{getattr(project, 'title', '') or ''!r} found"
    )
    if label_config is not None:
        if (getattr(project, "label_config", "") or "").strip() == label_config.strip():
            lines.append("labeling config: already the requested one")
        else:
            _call(
                lambda: client.sdk.projects.update(project_id, label_config=label_config),
                f"setting the labeling config of project {project_id}",
            )
            lines.append("labeling config: FIXED, set from plugin_config")

    backend = _find_backend(client, project_id, backend_url)
    if backend is None:
        fields = {"project": int(project_id), "url": backend_url, "title": ML_BACKEND_TITLE, "is_interactive": False}
        if basic_auth:
            fields.update(auth_method="BASIC_AUTH", basic_auth_user=basic_auth[0], basic_auth_pass=basic_auth[1])
        try:
            backend = client.sdk.ml.create(**fields)
        except Exception as exc:
            raise BackendRegistrationError(_registration_hint(exc, backend_url)) from exc
        lines.append(f"ML backend: FIXED, registered {backend_url} (id {backend.id})")
    else:
        lines.append(
            f"ML backend: already registered at {backend.url} (id {backend.id}, model version {backend.title!r})"
        )
        if basic_auth and getattr(backend, "auth_method", None) != "BASIC_AUTH":
            _call(
                lambda: client.sdk.ml.update(
                    backend.id,
                    project=int(project_id),
                    url=backend.url,
                    auth_method="BASIC_AUTH",
                    basic_auth_user=basic_auth[0],
                    basic_auth_pass=basic_auth[1],
                ),
                f"setting basic auth on ML backend {backend.id}",
            )
            lines.append("ML backend: FIXED, basic-auth user and password set")

    hooks = backend_webhooks(client, project_id, backend.url)
    if not hooks:
        _call(
            lambda: client.sdk.webhooks.create(
                url=backend.url.rstrip("/") + "/webhook",
                project=int(project_id),
                send_payload=True,
                send_for_all_actions=True,
                is_active=True,
            ),
            f"creating the webhook of project {project_id}",
        )
        lines.append(f"webhook: FIXED, created {backend.url.rstrip('/')}/webhook")
    else:
        lines.append(f"webhook: present ({hooks[0].url})")
    if basic_auth:
        updated = client.authorize_webhooks(project_id, *basic_auth, backend_url=backend.url)
        lines.append(
            "webhook basic auth: FIXED, Authorization header added"
            if updated
            else "webhook basic auth: header already present"
        )
    lines.append(f"connected: annotations in project {project_id} now reach {backend.url}")
    return lines


def check_project(client, project_id: int):
    """The project from Label Studio, with a clear error for each way this fails."""
    import requests

    try:
        requests.get(f"{client.url}/health", timeout=CHECK_TIMEOUT_S)
    except requests.RequestException as exc:
        raise LabelStudioUnreachableError(
            f"cannot reach Label Studio at {client.url} ({type(exc).__name__}); is it running, "
            f"and is the URL (scheme, host, port) right?"
        ) from exc
    try:
        return client.sdk.projects.get(int(project_id))
    except LabelCastError:
        raise
    except Exception as exc:
        status = getattr(exc, "status_code", None)
        if status in (401, 403):
            raise LabelStudioAuthError(
                f"Label Studio at {client.url} refused the API key (HTTP {status}): copy the token "
                f"from Account & Settings; a legacy token also needs 'legacy tokens' enabled in "
                f"Organization → API Tokens Settings"
            ) from exc
        if status == 404:
            raise LabelStudioProjectError(
                f"project {project_id} does not exist in Label Studio at {client.url} (or this "
                f"key's user cannot see it); the id is the number in the project's URL"
            ) from exc
        raise LabelStudioError(f"reading project {project_id} from {client.url} failed: {_reason(exc)}") from exc


def backend_webhooks(client, project_id: int, backend_url: str) -> list:
    """The project's webhooks that point at the backend."""
    prefix = backend_url.rstrip("/") + "/"
    hooks = _call(
        lambda: list(client.sdk.webhooks.list(project=str(int(project_id)))),
        f"listing the webhooks of project {project_id}",
    )
    return [h for h in hooks if (h.url or "").startswith(prefix)]


def _find_backend(client, project_id: int, backend_url: str):
    backends = _call(
        lambda: list(client.sdk.ml.list(project=int(project_id))), f"listing the ML backends of project {project_id}"
    )
    wanted = backend_url.rstrip("/")
    return next((b for b in backends if (b.url or "").rstrip("/") == wanted), None)


def _call(function, what: str):
    try:
        return function()
    except LabelCastError:
        raise
    except Exception as exc:
        raise LabelStudioError(f"{what} failed: {_reason(exc)}") from exc


SSRF_HINT = (
    "Label Studio's SSRF protection refuses URLs on loopback or private addresses: start Label "
    "Studio with SSRF_PROTECTION_ENABLED=false and ML_BLOCK_LOCAL_IP=false (or give the backend "
    "a public address), then run labelcast connect again"
)
"""What to do when Label Studio answers 'URL resolves to a reserved network address'."""


def _reason(exc: Exception) -> str:
    status = getattr(exc, "status_code", None)
    body = getattr(exc, "body", None)
    if status is not None:
        detail = body.get("detail") if isinstance(body, dict) and body.get("detail") else body
        reason = f"HTTP {status}: {str(detail)[:300]}"
        if "reserved network address" in str(detail):
            reason += f". {SSRF_HINT}"
        return reason
    return f"{type(exc).__name__}: {str(exc)[:300]}"


def _registration_hint(exc: Exception, backend_url: str) -> str:
    if SSRF_HINT in _reason(exc):
        return (
            f"Label Studio refused the ML backend at {backend_url} (it may have registered the "
            f"backend but not its webhook): {_reason(exc)}"
        )
    return (
        f"Label Studio refused to add the ML backend at {backend_url}: {_reason(exc)}. "
        f"Label Studio itself must reach that URL: check the backend runs (labelcast doctor), "
        f"use an address Label Studio can resolve (in Docker: the service name, not localhost), "
        f"and for a backend on a private or loopback address start Label Studio with "
        f"ML_BLOCK_LOCAL_IP=false and SSRF_PROTECTION_ENABLED=false"
    )
