"""Fetching image bytes from URLs found in task data, which users control (no SSRF).

A task's image URL may point anywhere: the cloud metadata service (169.254.169.254), a database
on the hospital network, the backend itself. :class:`SafeFetcher` downloads only from

- the Label Studio host, its scheme, host and port (the only host that gets the API key, and
  only for its media paths ``/data/...`` and the presign call),
- hosts in the ``ALLOWED_IMAGE_HOSTS`` allow-list, and
- presigned cloud URLs that Label Studio's presign endpoint redirects to,

and refuses loopback, link-local, private and other non-global addresses unless allow-listed.
The address check runs on the resolved address of every connection (after DNS, so a public
name that resolves to 10.0.0.1 is refused, and the checked address is the one connected to),
and every redirect hop is checked again. Every URL is parsed by :func:`parse_http_url`, with
the parser that connects. Downloads have a size cap, connect and read timeouts, an overall
deadline (kept by a watchdog that shuts the socket down) and a redirect limit. Proxies from the environment are not used: a proxy
would connect on the backend's behalf, past the address check.

Allow-list entries (comma separated): a host name (``pacs.example.org``), an IP address or a
network (``10.20.0.0/16``) — trusted at any address; ``*.example.org`` — any sub-domain, at
global addresses only; ``*`` — any host at a global address.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import io
import ipaddress
import logging
import re
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from backend.exceptions import ImageFetchError, SettingsError

log = logging.getLogger(__name__)

MAX_IMAGE_BYTES = 128 * 1024 * 1024
"""Largest image download (bytes); a 4,300 × 3,500 16-bit uncompressed DICOM is ~30 MB."""

CONNECT_TIMEOUT_S = 5.0
"""Seconds to wait for a TCP (and TLS) connection to an image host."""

READ_TIMEOUT_S = 30.0
"""Seconds to wait for the next bytes of an image download."""

TOTAL_TIMEOUT_S = 120.0
"""Longest one image download may take in all, from the first connection to the last byte,
redirects included (seconds): a watchdog shuts the connection down when it passes, so a server
that trickles its headers or body a byte at a time is cut off on time."""

MAX_REDIRECTS = 5
"""Redirects followed per image; a longer chain (or a loop) is refused."""

_CHUNK = 64 * 1024
_REDIRECT_CODES = (301, 302, 303, 307, 308)


LABEL_STUDIO_MEDIA_PREFIX = "/data/"
"""Paths of Label Studio (below its base URL) that are fetched with its API key: uploads
(``/data/upload/...``) and local files (``/data/local-files/?d=...``). Its API is not an image
source; only the presign endpoint, which the backend builds itself, is called besides."""

_PRESIGN_PATH = re.compile(r"/api/tasks/[0-9]+/presign/?")
_UNSAFE_CHARACTERS = re.compile(r"[\\\x00-\x20\x7f]")


class FetchRefused(ImageFetchError):
    """An image URL points to a scheme, host or address the backend must not fetch from."""


@dataclasses.dataclass(frozen=True)
class HttpUrl:
    """An http(s) URL as the connection sees it (see :func:`parse_http_url`).

    Attributes
    ----------
    scheme : str
        ``"http"`` or ``"https"``.
    host : str
        Lower case, without the brackets of an IPv6 address.
    port : int
        The port written, or the scheme's default.
    path : str
        The path (``""`` when none).
    """

    scheme: str
    host: str
    port: int
    path: str

    @property
    def origin(self) -> tuple[str, str, int]:
        """``(scheme, host, port)``: what must match for two URLs to be the same server."""
        return self.scheme, self.host, self.port


def parse_http_url(url: str) -> HttpUrl:
    """Parse an http(s) URL with the parser that the request is made with (urllib3's).

    Checking a URL with one parser and connecting with another lets a URL mean two hosts
    (``http://inside:8080\\@outside/``: urllib.parse sees ``outside``, urllib3 connects to
    ``inside``). So the checks use urllib3's own parse, and what parsers disagree on is refused
    outright: user info (``user:password@``), backslashes, whitespace and control characters.

    Raises
    ------
    FetchRefused
        Naming the URL (redacted) and what is wrong with it.
    """
    if not isinstance(url, str) or not url:
        raise FetchRefused(f"image reference {str(url)[:50]!r} is not a URL")
    if _UNSAFE_CHARACTERS.search(url):
        raise FetchRefused(f"URL {redact(url)} contains a backslash, whitespace or a control character; refused")
    try:
        parts = parse_url(url)
    except (LocationParseError, ValueError):
        raise FetchRefused(f"URL {redact(url)} is not a valid URL (invalid host or port)") from None
    scheme = (parts.scheme or "").lower()
    if scheme not in ("http", "https"):
        raise FetchRefused(f"URL {redact(url)}: scheme {scheme or '(none)'!r} is not fetched")
    if not parts.host:
        raise FetchRefused(f"URL {redact(url)} has no host")
    if parts.auth is not None or "@" in re.split(r"[/?#]", url.partition("://")[2], maxsplit=1)[0]:
        raise FetchRefused(f"URL {redact(url)} carries user info (user:password@); refused")
    port = parts.port or (443 if scheme == "https" else 80)
    return HttpUrl(scheme, parts.host.lower().strip("[]").rstrip("."), int(port), parts.path or "")


@dataclasses.dataclass(frozen=True)
class AllowList:
    """Parsed ``ALLOWED_IMAGE_HOSTS``.

    Attributes
    ----------
    names : frozenset of str
        Exact host names (lower case), trusted at any address.
    networks : tuple of ip_network
        Addresses and networks, trusted.
    suffixes : tuple of str
        ``.example.org`` for each ``*.example.org``: hosts allowed at global addresses.
    any_public : bool
        ``*``: every host allowed at global addresses.
    """

    names: frozenset[str] = frozenset()
    networks: tuple = ()
    suffixes: tuple[str, ...] = ()
    any_public: bool = False

    @classmethod
    def parse(cls, entries: str | Iterable[str] | None) -> AllowList:
        """From a comma-separated string or a list; a bad entry raises SettingsError naming it."""
        if entries is None:
            return cls()
        if isinstance(entries, str):
            entries = entries.split(",")
        names, networks, suffixes, any_public = set(), [], [], False
        for raw in entries:
            entry = raw.strip().lower()
            if not entry:
                continue
            if entry == "*":
                any_public = True
            elif entry.startswith("*."):
                suffixes.append(entry[1:])
            elif "*" in entry or "/" in entry and not _is_network(entry) or "://" in entry:
                raise SettingsError(
                    f"ALLOWED_IMAGE_HOSTS entry {raw.strip()!r} is not a host name, an IP address, "
                    f"a network (10.0.0.0/8), '*.domain' or '*'"
                )
            elif _is_network(entry):
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            else:
                names.add(entry.rstrip("."))
        return cls(frozenset(names), tuple(networks), tuple(suffixes), any_public)

    def trusts(self, host: str) -> bool:
        """The host is named or its literal address is listed: fetched at any address."""
        host = host.lower().rstrip(".")
        if host in self.names:
            return True
        address = _literal_ip(host)
        return address is not None and self.trusts_address(address)

    def trusts_address(self, address) -> bool:
        """A resolved address lies in a listed network."""
        return any(address.version == net.version and address in net for net in self.networks)

    def admits(self, host: str) -> bool:
        """The host may be fetched from at all (trusted, or at global addresses)."""
        host = host.lower().rstrip(".")
        return self.trusts(host) or self.any_public or any(host.endswith(suffix) for suffix in self.suffixes)


def is_public_address(address) -> bool:
    """True for a global unicast address; False for loopback, private, link-local, ..."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not (address.is_multicast or address.is_reserved)


def setup_hostname_refusal(
    url: str,
    caller: str | None,
    allowed: AllowList,
    resolver: Callable[..., list] | None = None,
) -> str | None:
    """Why the Label Studio URL that an unauthenticated ``/setup`` sent is not trusted, or None.

    Without ``LABEL_STUDIO_URL`` the backend takes Label Studio's address from ``/setup``
    (``hostname``), and that host is trusted at any address and sent the API key. Anyone who
    can reach ``/setup`` could name the metadata service or a host on the internal network, so
    the URL is trusted only when its host is in ``ALLOWED_IMAGE_HOSTS`` or resolves to the
    address that called ``/setup`` (Label Studio's own server calls it) and to no other. The
    caller checks basic auth first: an authenticated ``/setup`` is trusted as it is. (A name
    whose DNS answer changes after this check is not caught here; the configured
    ``LABEL_STUDIO_API_KEY`` is never sent to a ``/setup`` hostname, only to LABEL_STUDIO_URL.)
    """
    try:
        parts = parse_http_url(url)
    except FetchRefused as exc:
        return f"{exc} (expected an http(s) URL with a host)"
    host, port = parts.host, parts.port
    if allowed.trusts(host):
        return None
    try:
        infos = (resolver or socket.getaddrinfo)(host, port, 0, socket.SOCK_STREAM)
    except OSError as exc:
        return f"{host!r} does not resolve ({exc})"
    # typeshed also allows an (int, bytes) AF_INET6 sockaddr (CPython without IPv6); hosts come as str
    addresses = {ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos}  # type: ignore[union-attr]
    try:
        caller_address = ipaddress.ip_address(caller) if caller else None
    except ValueError:
        caller_address = None
    # Every address must be the caller's (a second A record could be anything), or loopback
    # when the caller is (``localhost`` is 127.0.0.1 and ::1).
    if (
        caller_address is not None
        and addresses
        and all(
            address == caller_address or (address.is_loopback and caller_address.is_loopback) for address in addresses
        )
    ):
        return None
    return (
        f"{host!r} resolves to {', '.join(sorted(map(str, addresses)))}, not to the address that "
        f"called /setup ({caller or 'unknown'})"
    )


class SafeFetcher:
    """Downloads image URLs under the rules of the module docstring.

    Parameters
    ----------
    label_studio_url : str or None
        Base URL of Label Studio; its media paths (:data:`LABEL_STUDIO_MEDIA_PREFIX`) are
        fetched with ``auth_headers()``.
    auth_headers : callable, optional
        ``() -> {"Authorization": ...}`` for Label Studio, called only for that host.
    allowed_hosts : str, iterable of str or AllowList, optional
        The allow-list (see the module docstring).
    max_bytes, connect_timeout, read_timeout, total_timeout, max_redirects
        Limits (defaults: the module constants).
    resolver : callable, optional
        ``socket.getaddrinfo``-compatible (tests substitute one to map names to addresses).
    """

    def __init__(
        self,
        label_studio_url: str | None = None,
        auth_headers: Callable[[], Mapping[str, str]] | None = None,
        allowed_hosts: str | Iterable[str] | AllowList | None = None,
        *,
        max_bytes: int = MAX_IMAGE_BYTES,
        connect_timeout: float = CONNECT_TIMEOUT_S,
        read_timeout: float = READ_TIMEOUT_S,
        total_timeout: float = TOTAL_TIMEOUT_S,
        max_redirects: int = MAX_REDIRECTS,
        resolver: Callable[..., list] | None = None,
    ) -> None:
        try:  # a bad URL (a project record from before) fails its downloads, not the worker
            self.label_studio = parse_http_url(label_studio_url) if label_studio_url else None
        except FetchRefused:
            self.label_studio = None
        self.auth_headers = auth_headers or dict
        self.allowed = allowed_hosts if isinstance(allowed_hosts, AllowList) else AllowList.parse(allowed_hosts)
        self.max_bytes = int(max_bytes)
        self.timeout = (float(connect_timeout), float(read_timeout))
        self.total_timeout = float(total_timeout)
        self.max_redirects = int(max_redirects)
        self.resolver = resolver or socket.getaddrinfo
        self._local = threading.local()  # .watchdog: the deadline of this thread's download
        self.session = requests.Session()
        self.session.trust_env = False  # no proxies from the environment: they skip the address check
        adapter = _GuardedAdapter(self._connect_address, self._watch)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def is_label_studio(self, url: str) -> bool:
        """The URL is on the Label Studio host (scheme, host and port equal)."""
        try:
            return self.label_studio is not None and parse_http_url(url).origin == self.label_studio.origin
        except FetchRefused:
            return False

    def get(self, url: str, *, presigned: bool = False, deadline: float | None = None) -> bytes:
        """The body of ``url``, following allowed redirects.

        ``presigned``: the URL is Label Studio's presign endpoint, whose redirect target (a
        presigned cloud URL) is admitted at global addresses without being allow-listed.
        ``deadline``: a ``time.monotonic()`` after which to give up, when sooner than
        ``total_timeout`` from now.

        Raises
        ------
        FetchRefused
            Scheme, host, address or Label Studio path not allowed, a malformed URL, or too
            many redirects.
        ImageFetchError
            HTTP error, timeout, connection failure, body above the size cap.
        """
        ends = time.monotonic() + self.total_timeout
        if deadline is not None:
            ends = min(ends, deadline)
            if ends <= time.monotonic():
                raise self._too_slow(url)
        watchdog = _Watchdog(ends - time.monotonic())
        self._local.watchdog = watchdog
        try:
            data = self._get(url, presigned, ends)
        except (ImageFetchError, requests.RequestException) as exc:
            if watchdog.expired:
                raise self._too_slow(url) from None
            if isinstance(exc, ImageFetchError):
                raise
            raise ImageFetchError(f"cannot download image {redact(url)}: {_reason(exc)}") from None
        finally:
            watchdog.stop()
            self._local.watchdog = None
        if watchdog.expired:  # a body without a length ends at the shutdown: it is cut short
            raise self._too_slow(url)
        return data

    # --- private ----------------------------------------------------------------------------
    def _get(self, url: str, presigned: bool, deadline: float) -> bytes:
        trusted_redirect = False
        for hop in range(self.max_redirects + 1):
            on_label_studio = self._check_url(url, trusted_redirect, presigned and hop == 0)
            headers = dict(self.auth_headers()) if on_label_studio else {}
            try:
                response = self.session.get(
                    url, headers=headers, timeout=self.timeout, allow_redirects=False, stream=True
                )
            except FetchRefused:
                raise
            except requests.RequestException as exc:
                refused = _refusal_in(exc)
                if refused is not None:
                    raise refused from None
                raise
            with response:
                if response.status_code in _REDIRECT_CODES and "location" in response.headers:
                    if on_label_studio and not presigned:
                        # Label Studio sends requests without a valid key to its login page.
                        raise ImageFetchError(
                            f"downloading image {redact(url)} answered HTTP {response.status_code} "
                            f"(a redirect to the login page: check LABEL_STUDIO_API_KEY)"
                        )
                    trusted_redirect = presigned and on_label_studio
                    try:
                        url = urllib.parse.urljoin(url, response.headers["location"])
                    except ValueError:
                        raise FetchRefused(f"image {redact(url)} redirects to a malformed URL") from None
                    continue
                if response.status_code != 200:
                    hint = (
                        " (check LABEL_STUDIO_API_KEY)"
                        if on_label_studio and response.status_code in (401, 403)
                        else ""
                    )
                    raise ImageFetchError(f"downloading image {redact(url)} answered HTTP {response.status_code}{hint}")
                return self._read(response, url, deadline)
        raise FetchRefused(f"image {redact(url)}: more than {self.max_redirects} redirects (a redirect loop?)")

    def _too_slow(self, url: str) -> ImageFetchError:
        return ImageFetchError(
            f"image {redact(url)} was not downloaded within {self.total_timeout:.0f} s (or before the "
            f"job's time for downloads ran out)"
        )

    def _check_url(self, url: str, trusted_redirect: bool, presign_call: bool = False) -> bool:
        """Refuse URLs, schemes and hosts that are not allowed; True when the URL is one of
        Label Studio's media paths (or the presign call), which get the API key."""
        parts = parse_http_url(url)
        if self.label_studio is not None and parts.origin == self.label_studio.origin:
            path = parts.path
            base = self.label_studio.path.rstrip("/")
            if path.startswith(base + LABEL_STUDIO_MEDIA_PREFIX) or (
                presign_call and _PRESIGN_PATH.fullmatch(path[len(base) :]) and path.startswith(base)
            ):
                return True
            raise FetchRefused(
                f"image {redact(url)} is on Label Studio but not one of its media paths "
                f"({base}{LABEL_STUDIO_MEDIA_PREFIX}...); its API is not fetched"
            )
        if trusted_redirect or self.allowed.admits(parts.host):
            return False
        raise FetchRefused(
            f"image host {parts.host!r} is not allowed: images are fetched from Label Studio, "
            f"presigned cloud URLs and hosts in ALLOWED_IMAGE_HOSTS"
        )

    def _connect_address(self, scheme: str, host: str, port: int) -> str:
        """The address to connect to for ``host``: resolved once, checked, then used."""
        host = host.strip("[]")
        trusted = self.allowed.trusts(host) or (
            # Label Studio is trusted at its own scheme, host and port, not at every port of it.
            self.label_studio is not None and (scheme, host.lower(), int(port)) == self.label_studio.origin
        )
        try:
            infos = self.resolver(host, port, 0, socket.SOCK_STREAM)
        except OSError as exc:
            raise FetchRefused(f"image host {host!r} does not resolve: {exc}") from None
        # typeshed also allows an (int, bytes) AF_INET6 sockaddr (CPython without IPv6); hosts come as str
        addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]  # type: ignore[union-attr]
        if not addresses:
            raise FetchRefused(f"image host {host!r} has no address")
        if not trusted:
            for address in addresses:
                if not (is_public_address(address) or self.allowed.trusts_address(address)):
                    raise FetchRefused(
                        f"image host {host!r} resolves to {address}, a non-public address "
                        f"(loopback, private, link-local, ...); add it to ALLOWED_IMAGE_HOSTS "
                        f"if the backend should fetch from it"
                    )
        return str(addresses[0])

    def _watch(self, sock) -> None:
        """Put a connection's socket under this thread's download deadline."""
        watchdog = getattr(self._local, "watchdog", None)
        if watchdog is not None and sock is not None:
            watchdog.watch(sock)

    def _read(self, response: requests.Response, url: str, deadline: float) -> bytes:
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_bytes:
            raise ImageFetchError(
                f"image {redact(url)} is {int(declared):,} bytes, above the {self.max_bytes:,}-byte cap"
            )
        body, size = io.BytesIO(), 0  # getvalue() hands over its buffer: one copy of the image, not two
        for chunk in response.iter_content(_CHUNK):
            size += len(chunk)
            if size > self.max_bytes:
                raise ImageFetchError(f"image {redact(url)} is above the {self.max_bytes:,}-byte cap")
            if time.monotonic() > deadline:
                raise self._too_slow(url)
            body.write(chunk)
        return body.getvalue()


def decode_data_uri(ref: str, task_id: int | None = None) -> bytes:
    """The bytes of a ``data:`` URI; bad base64 raises ImageFetchError."""
    header, comma, payload = ref.partition(",")
    if not comma:
        raise ImageFetchError(f"task {task_id}: data: URI has no ',' before its payload")
    if ";base64" not in header:
        return urllib.parse.unquote_to_bytes(payload)
    try:
        return base64.b64decode("".join(urllib.parse.unquote(payload).split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImageFetchError(f"task {task_id}: data: URI is not valid base64 ({exc})") from None


def redact(ref: Any, limit: int = 300) -> str:
    """An image reference fit for messages and logs: without user info (``user:pass@``) and
    query (tokens, presigned signatures), whatever the scheme; never raises.

    ``data:`` URIs keep only their media type.
    """
    text = str(ref)
    if text.startswith("data:"):
        return text.partition(",")[0][:60] + ",..."
    text = text.split("#", 1)[0].split("?", 1)[0]
    scheme, sep, rest = text.partition("://")
    if sep and "@" in rest:  # a password may hold '/' or ':': hide everything up to the last '@'
        rest = "***@" + rest.rpartition("@")[2]
    return (scheme + sep + rest if sep else text)[:limit]


# --- connection-level address check ------------------------------------------------------------


class _GuardedAdapter(HTTPAdapter):
    """A requests adapter whose connections connect only to checked addresses, and whose
    sockets are put under the download's deadline."""

    def __init__(self, connect_address: Callable[[str, str, int], str], watch: Callable[[Any], None]) -> None:
        self._connect_address = connect_address
        self._watch = watch
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        check, watch = self._connect_address, self._watch

        class Http(_GuardedMixin, HTTPConnection):
            scheme = "http"
            connect_address = staticmethod(check)
            watch_socket = staticmethod(watch)

        class Https(_GuardedMixin, HTTPSConnection):
            scheme = "https"
            connect_address = staticmethod(check)
            watch_socket = staticmethod(watch)

        class HttpPool(HTTPConnectionPool):
            ConnectionCls = Http

        class HttpsPool(HTTPSConnectionPool):
            ConnectionCls = Https

        self.poolmanager.pool_classes_by_scheme = {"http": HttpPool, "https": HttpsPool}


class _GuardedMixin:
    """Resolve and check the host, then connect to that very address (no DNS rebinding);
    TLS still verifies the certificate against the host name. Each response is read under
    the download's watchdog (a pooled connection too)."""

    scheme: str
    connect_address: Callable[[str, str, int], str]
    watch_socket: Callable[[Any], None]

    def _new_conn(self):
        name = self._dns_host
        self._dns_host = self.connect_address(self.scheme, name, self.port)
        try:
            return super()._new_conn()
        finally:
            self._dns_host = name

    def getresponse(self, *args, **kwargs):
        self.watch_socket(self.sock)
        return super().getresponse(*args, **kwargs)


class _Watchdog:
    """Shuts down the sockets of one download when its deadline passes.

    A read timeout bounds each wait for bytes, not the download: a server that sends one byte
    every few seconds never trips it. Shutting the socket down from this timer's thread ends
    the blocked read at once, wherever it is (status line, headers or body).
    """

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self._sockets: list = []
        self._lock = threading.Lock()
        self._done = False
        self._timer = threading.Timer(max(seconds, 0.0), self._expire)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, sock) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _shutdown(sock)

    def stop(self) -> None:
        """The download is over: never touch its sockets again (they may go back to the pool)."""
        with self._lock:
            self._done = True
        self._timer.cancel()

    def _expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.expired = True
            for sock in self._sockets:
                _shutdown(sock)


def _shutdown(sock) -> None:
    try:  # the TCP socket itself, under TLS too: the reader sees the end of the stream
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


# --- helpers -------------------------------------------------------------------------------------


def _is_network(entry: str) -> bool:
    try:
        ipaddress.ip_network(entry.strip("[]"), strict=False)
        return True
    except ValueError:
        return False


def _literal_ip(host: str):
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _refusal_in(exc: BaseException) -> FetchRefused | None:
    """The FetchRefused that urllib3/requests wrapped, if any."""
    seen = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, FetchRefused):
            return current
        stack += [
            current.__cause__,
            current.__context__,
            *[a for a in getattr(current, "args", ()) if isinstance(a, BaseException)],
        ]
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            stack.append(reason)
    return None


def _reason(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.ConnectTimeout):
        return "connection timed out"
    if isinstance(exc, (requests.ReadTimeout, requests.Timeout)):
        return "no data within the read timeout"
    if isinstance(exc, requests.ConnectionError):
        return "no data within the read timeout" if "timed out" in str(exc) else "connection failed"
    return type(exc).__name__
