"""Calls from the backend to Label Studio: fetch task images, move the project's model version.

Built on ``label-studio-sdk`` (which handles both legacy tokens and personal access tokens);
image bytes are fetched with ``requests`` and the SDK's auth header.
"""

from __future__ import annotations

import base64
import logging
import urllib.parse
from typing import Any

import requests

from backend.exceptions import ImageFetchError, LabelStudioError
from backend.fetch import LABEL_STUDIO_MEDIA_PREFIX, SafeFetcher, decode_data_uri, redact

log = logging.getLogger(__name__)

API_TIMEOUT_S = 10.0
"""Timeout of one Label Studio API call (seconds)."""

_CLOUD_SCHEMES = ("s3", "gs", "azure-blob", "azure-spi", "gcs")


class LabelStudioClient:
    """One Label Studio server, as seen by the worker.

    Parameters
    ----------
    url : str or None
        Label Studio base URL; needed for ``/data/...`` images and for API calls.
    api_key : str or None
        Legacy token or personal access token.
    session : requests.Session, optional
        For Label Studio API calls (tests pass one).
    allowed_hosts : str or tuple of str, optional
        ``ALLOWED_IMAGE_HOSTS``: image hosts besides Label Studio (see :mod:`backend.fetch`).
    """

    def __init__(
        self,
        url: str | None,
        api_key: str | None,
        session: requests.Session | None = None,
        allowed_hosts: str | tuple[str, ...] | None = None,
    ) -> None:
        self.url = url.rstrip("/") if url else None
        self.api_key = api_key
        self.session = session or requests.Session()
        self._sdk = None
        # Image URLs come from task data: fetched only from Label Studio, allow-listed hosts
        # and presigned URLs, never from private addresses (backend.fetch).
        self.fetcher = SafeFetcher(self.url, self.auth_headers, allowed_hosts)

    @property
    def sdk(self):
        """The ``label_studio_sdk.client.LabelStudio`` client, built on first use."""
        if self._sdk is None:
            if not (self.url and self.api_key):
                raise LabelStudioError(
                    "LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY are needed to call Label Studio's API"
                )
            from label_studio_sdk.client import LabelStudio

            self._sdk = LabelStudio(base_url=self.url, api_key=self.api_key, timeout=API_TIMEOUT_S)
        return self._sdk

    def auth_headers(self) -> dict[str, str]:
        """The ``Authorization`` header for Label Studio (refreshing a personal access token)."""
        if not (self.url and self.api_key):
            return {}
        headers = self.sdk._client_wrapper.get_headers()
        return {"Authorization": headers["Authorization"]} if "Authorization" in headers else {}

    # --- images -----------------------------------------------------------------------------
    def fetch_image(self, ref: str, task_id: int | None = None, deadline: float | None = None) -> bytes:
        """The bytes of a task's image reference.

        ``data:`` URIs are decoded here; ``/data/upload/...`` and ``/data/local-files/...`` are
        read from Label Studio with the API key (no other path of Label Studio is fetched);
        cloud URIs (``s3://`` ...) go through Label Studio's presign endpoint; other http(s)
        URLs are downloaded directly. ``deadline``: a ``time.monotonic()`` to give up at (see
        :meth:`backend.fetch.SafeFetcher.get`). A malformed reference is an ImageFetchError
        like any other.

        Raises
        ------
        ImageFetchError
            With the reference and the reason.
        """
        if not isinstance(ref, str) or not ref:
            raise ImageFetchError(f"task {task_id}: image reference is empty")
        if ref.startswith("data:"):
            return decode_data_uri(ref, task_id)
        scheme = ref.partition(":")[0].lower() if "://" in ref else ""
        if scheme in _CLOUD_SCHEMES:
            if task_id is None:
                raise ImageFetchError(f"cloud image {redact(ref)} needs a task id to presign")
            path = f"/api/tasks/{int(task_id)}/presign/?fileuri=" + urllib.parse.quote(
                base64.b64encode(ref.encode()).decode()
            )
            return self.fetcher.get(self._on_label_studio(path, ref), presigned=True, deadline=deadline)
        if scheme in ("http", "https"):
            return self.fetcher.get(ref, deadline=deadline)
        if ref.startswith(LABEL_STUDIO_MEDIA_PREFIX):
            return self.fetcher.get(self._on_label_studio(ref, ref), deadline=deadline)
        raise ImageFetchError(
            f"task {task_id}: cannot fetch image {redact(ref, 200)!r} (unknown scheme or path; expected http(s), a cloud URI, "
            f"a data: URI or one of Label Studio's media paths ({LABEL_STUDIO_MEDIA_PREFIX}...); "
            f"file:// and other schemes are refused)"
        )

    def _on_label_studio(self, path: str, ref: str) -> str:
        if not self.url:
            raise ImageFetchError(
                f"image {redact(ref)} is stored in Label Studio; set LABEL_STUDIO_URL so the backend can fetch it"
            )
        return self.url + path

    # --- tasks ------------------------------------------------------------------------------
    def iter_tasks(self, project_id: int, page_size: int = 500):
        """Every task of a project with its annotations (``GET /api/tasks?fields=all``, paged)."""
        if not (self.url and self.api_key):
            raise LabelStudioError("LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY are needed to read tasks")
        page = 1
        while True:
            params: dict[str, str | int] = {
                "project": int(project_id),
                "fields": "all",
                "page": page,
                "page_size": page_size,
            }
            try:
                response = self.session.get(
                    f"{self.url}/api/tasks",
                    params=params,
                    headers=self.auth_headers(),
                    timeout=API_TIMEOUT_S * 6,
                )
            except requests.RequestException as exc:
                raise LabelStudioError(f"cannot list the tasks of project {project_id}: {exc}") from exc
            if response.status_code == 404 and page > 1:  # past the last page
                return
            if response.status_code != 200:
                raise LabelStudioError(
                    f"listing the tasks of project {project_id} answered HTTP {response.status_code}"
                )
            body = response.json()
            tasks = body.get("tasks", []) if isinstance(body, dict) else body
            yield from tasks
            total = body.get("total") if isinstance(body, dict) else None
            if not tasks or len(tasks) < page_size or (total is not None and page * page_size >= total):
                return
            page += 1

    # --- model version ----------------------------------------------------------------------
    def find_ml_backend(self, project_id: int, backend_url: str | None = None) -> Any | None:
        """The project's ML backend entry: the one at ``backend_url`` if given, else the first."""
        try:
            backends = list(self.sdk.ml.list(project=int(project_id)))
        except Exception as exc:
            raise LabelStudioError(f"cannot list ML backends of project {project_id}: {exc}") from exc
        if backend_url:
            wanted = backend_url.rstrip("/")
            matching = [b for b in backends if (b.url or "").rstrip("/") == wanted]
            backends = matching or backends
        return backends[0] if backends else None

    def set_model_version(
        self,
        project_id: int,
        version: str,
        status: str | None = None,
        backend_url: str | None = None,
        basic_auth: tuple[str, str] | None = None,
    ) -> int | None:
        """Make ``version`` the project's model version: it becomes the ML backend's title.

        Label Studio moves the project's ``model_version`` to the live backend's title, so the
        Data Manager's score column and uncertainty ordering use predictions of that version.
        ``status`` (a sentence) goes into the backend's description. Label Studio re-validates
        the backend (calls /setup) on this update, so a backend behind basic auth passes its
        ``basic_auth`` (user, password) along. Returns the ML backend id, None if the project
        has no ML backend.
        """
        backend = self.find_ml_backend(project_id, backend_url)
        if backend is None:
            return None
        fields: dict[str, Any] = {"project": int(project_id), "url": backend.url, "title": version}
        if status:
            fields["description"] = status[:500]
        if basic_auth:
            fields.update(auth_method="BASIC_AUTH", basic_auth_user=basic_auth[0], basic_auth_pass=basic_auth[1])
        try:
            self.sdk.ml.update(backend.id, **fields)
        except Exception as exc:
            raise LabelStudioError(f"cannot update ML backend {backend.id}: {exc}") from exc
        return backend.id

    def authorize_webhooks(self, project_id: int, user: str, password: str, backend_url: str | None = None) -> int:
        """Add basic-auth credentials to the webhooks Label Studio created for the ML backend.

        Label Studio sends the backend's basic-auth credentials on /predict but not on the
        webhook it creates when the backend is connected; without them every webhook would be
        refused. Returns how many webhooks were updated.
        """
        backend = self.find_ml_backend(project_id, backend_url)
        if backend is None:
            return 0
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        header = f"Basic {token}"
        updated = 0
        try:
            for hook in self.sdk.webhooks.list(project=str(int(project_id))):
                if not (hook.url or "").startswith((backend.url or "").rstrip("/") + "/"):
                    continue
                headers = dict(hook.headers or {})
                if headers.get("Authorization") == header:
                    continue
                headers["Authorization"] = header
                self.sdk.webhooks.update(hook.id, url=hook.url, headers=headers)
                updated += 1
        except Exception as exc:
            raise LabelStudioError(f"cannot update the webhooks of project {project_id}: {exc}") from exc
        return updated
