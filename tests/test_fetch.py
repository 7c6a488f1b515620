"""Tests of backend.fetch: image URLs from task data fetched without SSRF, against real
loopback HTTP servers (a test resolver maps public-looking names to loopback or to private
addresses, so the address checks run on real connections)."""

import http.server
import socket
import threading
import time

import pytest

from backend.exceptions import ImageFetchError, SettingsError
from backend.fetch import AllowList, FetchRefused, SafeFetcher, decode_data_uri, is_public_address
from backend.labelstudio.client import LabelStudioClient
from conftest import ONE_FINDING, annotation_event

PNG = b"\x89PNG\r\n\x1a\n" + b"x" * 100


class _Handler(http.server.BaseHTTPRequestHandler):
    """Paths: /img, /big, /slow, /loop, /to?u=URL, /auth (echoes Authorization); each also
    under /data/upload (Label Studio's media path)."""

    seen_auth: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        type(self).seen_auth.append(self.headers.get("Authorization"))
        self.path = self.path.removeprefix("/data/upload")
        if self.path == "/img":
            return self._send(200, PNG)
        if self.path == "/big":
            return self._send(200, b"y" * 5000)
        if self.path == "/stream-big":  # no Content-Length: the cap is applied while reading
            self.send_response(200)
            self.end_headers()
            for _ in range(100):
                self.wfile.write(b"z" * 1000)
            return None
        if self.path == "/slow":
            self.send_response(200)
            self.send_header("Content-Length", "10")
            self.end_headers()
            time.sleep(3)
            return None
        if self.path == "/loop":
            return self._redirect("/loop")
        if self.path.startswith(("/to?u=", "/api/tasks/1/presign/?u=")):
            return self._redirect(self.path.partition("?u=")[2])
        if self.path in ("/trickle-body", "/trickle-head"):  # one byte every 0.1 s for 6 s
            head = b"HTTP/1.0 200 OK\r\n\r\n"
            body = head if self.path == "/trickle-head" else b""
            if self.path == "/trickle-body":
                self.wfile.write(head)
            for byte in (body or b"z" * 60)[:60]:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.1)
            self.close_connection = True
            return None
        if self.path == "/login":
            return self._redirect("/user/login/")
        return self._send(404, b"missing")

    def _send(self, code, body):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location):
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # clients hang up on purpose (size cap)
        pass


@pytest.fixture(scope="module")
def server():
    """A threaded HTTP server on 127.0.0.1: ``http://127.0.0.1:<port>``."""
    httpd = _QuietServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}", httpd.server_port
    httpd.shutdown()
    httpd.server_close()


def _resolver(mapping):
    """A getaddrinfo that answers ``mapping[name]`` (an IP string) and resolves the rest normally."""

    def resolve(host, port, family=0, type_=0, *args):
        if host in mapping:
            ip = mapping[host]
            fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
            return [(fam, socket.SOCK_STREAM, 6, "", (ip, port))]
        return socket.getaddrinfo(host, port, family, type_)

    return resolve


# --- allowed ---------------------------------------------------------------------------------


def test_allow_listed_loopback_host_is_fetched(server):
    """127.0.0.1 in the allow-list: the image is downloaded."""
    base, _ = server
    assert SafeFetcher(allowed_hosts="127.0.0.1").get(f"{base}/img") == PNG


def test_public_name_resolving_to_public_address_is_fetched_with_star(server):
    """With ``*``, a host whose address is global is fetched (the test maps a global address
    to... nothing reachable, so we check the address test itself instead)."""
    assert is_public_address(__import__("ipaddress").ip_address("93.184.216.34"))
    assert AllowList.parse("*").admits("images.example.org")


def test_label_studio_host_gets_the_key_and_others_do_not(server):
    """The Authorization header goes to the Label Studio origin only, even across a redirect."""
    base, port = server
    fetcher = SafeFetcher(base, lambda: {"Authorization": "Token secret"}, allowed_hosts="localhost")
    _Handler.seen_auth.clear()
    assert fetcher.get(f"{base}/data/upload/img") == PNG
    assert _Handler.seen_auth == ["Token secret"]
    _Handler.seen_auth.clear()
    # "localhost" is allow-listed but is another origin than Label Studio's 127.0.0.1: no key.
    assert fetcher.get(f"http://localhost:{port}/data/upload/img") == PNG
    assert _Handler.seen_auth == [None]


def test_label_studio_login_redirect_names_the_key(server):
    """Label Studio redirecting to its login page is reported as a key problem, not followed."""
    base, _ = server
    with pytest.raises(ImageFetchError, match="LABEL_STUDIO_API_KEY"):
        SafeFetcher(base).get(f"{base}/data/upload/login")


# --- refused ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, fragment",
    [
        pytest.param("http://169.254.169.254/latest/meta-data/", "not allowed", id="metadata-ip"),
        pytest.param("http://127.0.0.1:1/x.png", "not allowed", id="loopback"),
        pytest.param("http://10.0.0.5/x.png", "not allowed", id="private"),
        pytest.param("http://[::1]/x.png", "not allowed", id="ipv6-loopback"),
        pytest.param("file:///etc/passwd", "scheme 'file'", id="file"),
        pytest.param("gopher://127.0.0.1/x", "scheme 'gopher'", id="gopher"),
        pytest.param("http:///x.png", "no host", id="no-host"),
    ],
)
def test_unlisted_hosts_and_schemes_are_refused(url, fragment):
    """Without an allow-list entry nothing but Label Studio is fetched; other schemes never."""
    with pytest.raises(FetchRefused, match=fragment):
        SafeFetcher("http://labelstudio.example:8080").get(url)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.9",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",
    ],
)
def test_public_wildcard_refuses_names_resolving_to_non_global_addresses(server, address):
    """``*`` admits any name, but a name resolving to a non-global address is refused after DNS."""
    _, port = server
    fetcher = SafeFetcher(allowed_hosts="*", resolver=_resolver({"evil.example": address}))
    with pytest.raises(FetchRefused, match="non-public address"):
        fetcher.get(f"http://evil.example:{port}/img")


def test_dns_check_uses_the_connected_address(server):
    """A name mapped to loopback is refused under ``*``, and fetched when its network is listed:
    the checked address is the one connected to."""
    _, port = server
    resolver = _resolver({"pacs.example": "127.0.0.1"})
    with pytest.raises(FetchRefused):
        SafeFetcher(allowed_hosts="*.example", resolver=resolver).get(f"http://pacs.example:{port}/img")
    fetcher = SafeFetcher(allowed_hosts="*.example,127.0.0.0/8", resolver=resolver)
    assert fetcher.get(f"http://pacs.example:{port}/img") == PNG


def test_redirect_to_metadata_is_refused(server):
    """An allowed host redirecting to 169.254.169.254 or to an unlisted host is refused."""
    base, _ = server
    fetcher = SafeFetcher(allowed_hosts="127.0.0.1")
    with pytest.raises(FetchRefused, match="not allowed"):
        fetcher.get(f"{base}/to?u=http://169.254.169.254/latest/meta-data/")
    with pytest.raises(FetchRefused, match="not allowed"):
        fetcher.get(f"{base}/to?u=http://10.0.0.1/x.png")


def test_presigned_redirect_is_followed_but_address_checked(server):
    """A redirect from Label Studio's presign endpoint is followed without an allow-list entry,
    yet still never to a non-global address."""
    base, port = server
    fetcher = SafeFetcher(base, resolver=_resolver({"bucket.example": "127.0.0.1"}))
    with pytest.raises(FetchRefused, match="non-public"):
        fetcher.get(f"{base}/api/tasks/1/presign/?u=http://bucket.example:{port}/img", presigned=True)


def test_redirect_loop_is_cut(server):
    """A redirect loop stops after the limit with a clear message."""
    base, _ = server
    with pytest.raises(FetchRefused, match="redirects"):
        SafeFetcher(allowed_hosts="127.0.0.1", max_redirects=3).get(f"{base}/loop")


def test_size_cap_with_and_without_content_length(server):
    """Bodies above the cap are refused whether or not the server declares their length."""
    base, _ = server
    fetcher = SafeFetcher(allowed_hosts="127.0.0.1", max_bytes=2048)
    with pytest.raises(ImageFetchError, match="cap"):
        fetcher.get(f"{base}/big")
    with pytest.raises(ImageFetchError, match="cap"):
        fetcher.get(f"{base}/stream-big")


def test_read_timeout(server):
    """A server that stops sending times out after the read timeout, not hanging."""
    base, _ = server
    started = time.monotonic()
    with pytest.raises(ImageFetchError, match="timeout|timed out"):
        SafeFetcher(allowed_hosts="127.0.0.1", read_timeout=0.5).get(f"{base}/slow")
    assert time.monotonic() - started < 2.5


def test_http_errors_name_the_status_without_query(server):
    """A 404 names the status; the URL's query (a signature) is not echoed."""
    base, _ = server
    with pytest.raises(ImageFetchError, match="HTTP 404") as info:
        SafeFetcher(allowed_hosts="127.0.0.1").get(f"{base}/nope?X-Amz-Signature=secret")
    assert "secret" not in str(info.value)


# --- data: URIs and the client -------------------------------------------------------------------


@pytest.mark.parametrize(
    "ref", ["data:image/png;base64,@@@notbase64", "data:image/png;base64,abc", "data:image/png;base64"]
)
def test_bad_data_uris_raise(ref):
    """Bad base64 (or no payload) in a data: URI is an ImageFetchError, not garbage bytes."""
    with pytest.raises(ImageFetchError):
        decode_data_uri(ref, 7)


def test_client_refuses_file_and_private_urls():
    """LabelStudioClient.fetch_image goes through the guard: file:// and 10.x are refused."""
    client = LabelStudioClient(None, None)
    with pytest.raises(ImageFetchError, match="unknown scheme"):
        client.fetch_image("file:///etc/passwd", 1)
    with pytest.raises(FetchRefused):
        client.fetch_image("http://10.0.0.1/x.png", 1)


def test_allow_list_parsing():
    """Entries parse into names, networks and wildcards; nonsense is refused naming the entry."""
    allowed = AllowList.parse(" pacs.example.org, 10.20.0.0/16 ,*.cdn.example, 192.168.1.7")
    assert allowed.trusts("PACS.example.org") and allowed.trusts("10.20.3.4") and allowed.trusts("192.168.1.7")
    assert allowed.admits("a.cdn.example") and not allowed.trusts("a.cdn.example")
    assert not allowed.admits("other.example.org")
    with pytest.raises(SettingsError, match="http://x"):
        AllowList.parse("http://x")


def test_api_key_is_never_logged_nor_in_messages(server):
    """A failing download from Label Studio logs (even at DEBUG) and raises without the API
    key, and the error message leaves out the URL's query (presigned signatures)."""
    import io
    import logging

    base, _ = server
    fetcher = SafeFetcher(base, lambda: {"Authorization": "Token sup3r-s3cret-key"})
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        with pytest.raises(ImageFetchError) as info:
            fetcher.get(f"{base}/data/upload/missing.png?X-Amz-Signature=abc")
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    assert "sup3r-s3cret-key" not in str(info.value) and "X-Amz-Signature" not in str(info.value)
    assert "sup3r-s3cret-key" not in buffer.getvalue()


# --- the Label Studio URL that /setup sends ---------------------------------------------------


def test_setup_hostname_is_trusted_only_from_its_own_address_or_the_allow_list():
    """An unauthenticated /setup's hostname becomes the trusted Label Studio host only when it
    resolves to the caller's address or is allow-listed; the metadata service never."""
    from backend.fetch import setup_hostname_refusal

    resolver = _resolver({"ls.example": "10.0.0.5", "metadata.example": "169.254.169.254"})
    none = AllowList()
    assert setup_hostname_refusal("http://ls.example:8080", "10.0.0.5", none, resolver) is None
    assert setup_hostname_refusal("http://localhost:8080", "127.0.0.1", none) is None
    refusal = setup_hostname_refusal("http://metadata.example", "10.0.0.5", none, resolver)
    assert "169.254.169.254" in refusal and "10.0.0.5" in refusal
    assert setup_hostname_refusal("http://169.254.169.254/latest", "10.0.0.5", none) is not None
    assert setup_hostname_refusal("http://ls.example:8080", None, none, resolver) is not None
    assert setup_hostname_refusal("http://ls.example:8080", "10.9.9.9", AllowList.parse("ls.example"), resolver) is None
    assert "http(s)" in setup_hostname_refusal("file:///etc/passwd", "127.0.0.1", none)
    assert "does not resolve" in setup_hostname_refusal("http://no-such-host.invalid", "127.0.0.1", none)
    assert "invalid host or port" in setup_hostname_refusal("http://ls.example:99999/", "10.0.0.5", none, resolver)

    def two_records(host, port, *args):  # the caller's address and the metadata service
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)) for ip in ("10.0.0.5", "169.254.169.254")]

    assert "169.254.169.254" in setup_hostname_refusal("http://rebind.example", "10.0.0.5", none, two_records)


def test_setup_records_a_hostname_only_when_it_is_trusted(app, service_settings, sqlite_store, caplog):
    """/setup from 10.1.2.3 naming the metadata service as Label Studio: the name is not
    recorded (a warning says why and what to set); from the host it names, or with basic auth
    on, it is."""
    import dataclasses

    from backend.app import EXTENSION, create_app

    config = ONE_FINDING
    client = app.test_client()
    body = {"project": 1, "schema": config, "hostname": "http://169.254.169.254", "access_token": "t"}
    assert client.post("/setup", json=body, environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 200
    assert sqlite_store.get_project(1)["hostname"] is None
    assert "not using the Label Studio URL" in caplog.text and "LABEL_STUDIO_URL" in caplog.text
    body = {**body, "project": 2, "hostname": "http://localhost:8080"}
    assert client.post("/setup", json=body, environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 200
    assert sqlite_store.get_project(2)["hostname"] == "http://localhost:8080"

    settings = dataclasses.replace(service_settings, basic_auth_user="ls", basic_auth_pass="pw")
    authed = create_app(
        {
            "TESTING": True,
            "LABELCAST_SETTINGS": settings,
            "LABELCAST_STORE": sqlite_store,
            "LABELCAST_JOBS": app.extensions[EXTENSION].jobs,
        }
    )
    body = {**body, "project": 3, "hostname": "http://ls.internal:8080"}
    response = authed.test_client().post(
        "/setup", json=body, auth=("ls", "pw"), environ_base={"REMOTE_ADDR": "10.1.2.3"}
    )
    assert response.status_code == 200 and sqlite_store.get_project(3)["hostname"] == "http://ls.internal:8080"


class _LabelStudioStandIn(http.server.BaseHTTPRequestHandler):
    """Answers every path with an empty JSON list and records the Authorization headers."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.seen_auth.append((self.path, self.headers.get("Authorization")))
        body = b"[]"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_PATCH = do_POST = do_GET


@pytest.fixture
def two_label_studios():
    """Two stand-ins: the real Label Studio on 127.0.0.1 and an attacker's on 127.0.0.2."""
    servers = []
    for address in ("127.0.0.1", "127.0.0.2"):
        httpd = _QuietServer((address, 0), _LabelStudioStandIn)
        httpd.daemon_threads = True
        httpd.seen_auth = []
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
    yield servers
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def test_the_token_never_goes_to_a_host_a_later_setup_names(app, sqlite_store, two_label_studios):
    """Label Studio connects project 10 with its token; an attacker at another address sends
    /setup naming its own server and no token, then START_TRAINING: the attacker's server
    never sees the token (the token is recorded with the host it was given for)."""
    from backend.app import EXTENSION

    real, evil = two_label_studios
    real_url, evil_url = (f"http://{h.server_address[0]}:{h.server_address[1]}" for h in (real, evil))
    config = ONE_FINDING
    client = app.test_client()
    jobs = app.extensions[EXTENSION].jobs
    body = {"project": 10, "schema": config, "hostname": real_url, "access_token": "the-real-token"}
    assert client.post("/setup", json=body, environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 200
    assert jobs.wait_idle(60)
    assert ("/api/tasks?project=10&fields=all&page=1&page_size=500", "Token the-real-token") in real.seen_auth

    attack = {"project": 10, "schema": config, "hostname": evil_url}
    assert client.post("/setup", json=attack, environ_base={"REMOTE_ADDR": "127.0.0.2"}).status_code == 200
    webhook = {"action": "START_TRAINING", "project": {"id": 10}}
    assert client.post("/webhook", json=webhook, environ_base={"REMOTE_ADDR": "127.0.0.2"}).status_code == 200
    assert jobs.wait_idle(60)
    assert not any("the-real-token" in (auth or "") for _, auth in evil.seen_auth), evil.seen_auth
    assert sqlite_store.get_project(10)["access_token"] is None

    # Label Studio's own /setup again, same host, without a token: its token is kept.
    again = {"project": 10, "schema": config, "hostname": real_url, "access_token": "the-real-token"}
    client.post("/setup", json=again, environ_base={"REMOTE_ADDR": "127.0.0.1"})
    client.post("/setup", json={**again, "access_token": None}, environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert sqlite_store.get_project(10)["access_token"] == "the-real-token"


def test_report_links_never_come_from_a_request(app, sqlite_store):
    """Label Studio's own /setup (its hostname resolves to the caller), sent with a made-up
    Host header: the forecast message names the report's path on the backend, with no address;
    without PUBLIC_URL no request can set the link annotators follow (issue 13, item 12)."""
    from backend.app import EXTENSION

    client = app.test_client()
    body = {"project": 12, "schema": ONE_FINDING, "hostname": "http://127.0.0.1:8080"}
    answer = client.post(
        "/setup", json=body, environ_base={"REMOTE_ADDR": "127.0.0.1"}, headers={"Host": "evil.example:1337"}
    )
    assert answer.status_code == 200
    for i in range(12):
        event = annotation_event(12, i, 100 + i)
        assert client.post("/webhook", json=event, headers={"Host": "evil.example:1337"}).status_code == 200
    assert app.extensions[EXTENSION].jobs.wait_idle(120)
    message = sqlite_store.get_forecast(12)["message"]
    assert "evil.example" not in message and "http" not in message, message
    assert message.endswith(" Details: /report?project=12 on the LabelCast backend."), message
    assert "backend_url" not in sqlite_store.get_project(12)


def test_an_invalid_port_is_a_clear_fetch_error():
    """An image URL with a port out of range fails as an image error naming the URL, not as an
    unhandled ValueError."""
    with pytest.raises(ImageFetchError, match=r"example\.org:99999"):
        SafeFetcher(allowed_hosts="*").get("http://example.org:99999/x.png")


# --- round 2 (issue 13) ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http://127.0.0.1:8080\\@evil.example:9000/api/tasks", id="backslash-userinfo"),
        pytest.param("http://user:pw@evil.example/x.png", id="userinfo"),
        pytest.param("http://evil.example /x.png", id="space"),
        pytest.param("http://evil.example\t/x.png", id="tab"),
    ],
)
def test_urls_that_parsers_disagree_on_are_refused(url):
    """User info, backslashes and whitespace are refused before any check: urllib.parse and
    urllib3 (which connects) read ``http://a:8080\\@b/`` as two different hosts."""
    from backend.fetch import parse_http_url

    with pytest.raises(FetchRefused, match="user info|backslash"):
        parse_http_url(url)
    with pytest.raises(FetchRefused):
        SafeFetcher(allowed_hosts="*").get(url)


def test_setup_hostname_with_a_parser_differential_is_refused():
    """``http://<internal>\\@<caller>`` looked like the caller's own address to the /setup check
    while requests would connect to the internal host: refused, whatever the caller."""
    from backend.fetch import setup_hostname_refusal

    refusal = setup_hostname_refusal("http://10.0.0.7:8080\\@127.0.0.1:9000", "127.0.0.1", AllowList())
    assert refusal is not None and "backslash" in refusal
    refusal = setup_hostname_refusal("http://x@127.0.0.1:9000", "127.0.0.1", AllowList())
    assert refusal is not None and "user info" in refusal


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http://[::1/x", id="broken-ipv6"),
        pytest.param("http://example.org:99999/x", id="port-out-of-range"),
        pytest.param("http://example.org:abc/x", id="port-not-a-number"),
    ],
)
def test_malformed_urls_are_image_errors_with_label_studio_set(url):
    """A malformed image URL is a FetchRefused (an image error), also when LABEL_STUDIO_URL is
    set (its comparison raised ValueError before)."""
    with pytest.raises(FetchRefused):
        SafeFetcher("http://127.0.0.1:18081", allowed_hosts="*").get(url)


@pytest.mark.parametrize("target", ["http://[::1/x", "http://example.org:99999/x"])
def test_a_redirect_to_a_malformed_url_is_an_image_error(server, target):
    """A redirect to a malformed URL is refused as an image error, not a ValueError."""
    base, _ = server
    with pytest.raises(FetchRefused):
        SafeFetcher("http://127.0.0.1:1", allowed_hosts="127.0.0.1").get(f"{base}/to?u={target}")


def test_star_does_not_trust_other_ports_of_the_label_studio_host(server):
    """With LABEL_STUDIO_URL on one loopback port and ALLOWED_IMAGE_HOSTS=*, another port of
    the same host is a non-public address like any other: refused (only the name was compared)."""
    base, port = server
    fetcher = SafeFetcher(f"http://127.0.0.1:{port + 1}", allowed_hosts="*")
    with pytest.raises(FetchRefused, match="non-public"):
        fetcher.get(f"{base}/img")
    assert SafeFetcher(base, allowed_hosts="*").get(f"{base}/data/upload/img") == PNG


@pytest.mark.parametrize("path", ["/trickle-body", "/trickle-head"])
def test_a_trickling_server_is_cut_off_at_the_deadline(server, path):
    """A server that sends a byte every 0.1 s (never idle for the read timeout) is cut off at
    the total deadline, in the headers as in the body, and no partial body is returned."""
    base, _ = server
    fetcher = SafeFetcher(allowed_hosts="127.0.0.1", read_timeout=5, total_timeout=1.0)
    started = time.monotonic()
    with pytest.raises(ImageFetchError, match="within 1 s"):
        fetcher.get(base + path)
    assert time.monotonic() - started < 2.5


def test_the_deadline_of_a_download_spares_the_next_one(server):
    """After a download that beat its deadline, the pooled connection still works."""
    base, _ = server
    fetcher = SafeFetcher(allowed_hosts="127.0.0.1", total_timeout=0.5)
    for _ in range(3):
        assert fetcher.get(f"{base}/img") == PNG
    time.sleep(0.7)  # past every deadline: no watchdog may shut the pooled connection now
    assert fetcher.get(f"{base}/img") == PNG


@pytest.mark.parametrize(
    "ref",
    [
        "ftp://alice:hunter2@files.example/x.png",
        "s3://AKIA:hunter2@bucket/x.png",
        "https://cdn.example/x.png?token=hunter2",
        "/data/upload/1/x.png?token=hunter2",
        "gopher://u:hunter2@h/x",
    ],
)
def test_credentials_in_references_are_redacted_in_errors(ref):
    """User info and queries never appear in an image error, whatever the scheme."""
    from backend.fetch import redact

    assert "hunter2" not in redact(ref)
    with pytest.raises(ImageFetchError) as info:
        LabelStudioClient(None, None).fetch_image(ref, 1)
    assert "hunter2" not in str(info.value)


def test_only_media_paths_of_label_studio_get_the_key(server):
    """A task reference to Label Studio's API (``/api/users/``, or its full URL) is refused
    instead of being fetched with the API key; media paths get it."""
    base, _ = server
    client = LabelStudioClient(base, None)
    client.auth_headers = lambda: {"Authorization": "Token secret"}
    client.fetcher.auth_headers = client.auth_headers
    _Handler.seen_auth.clear()
    for ref in ("/api/users/", f"{base}/api/users/", "/img"):
        with pytest.raises(ImageFetchError):
            client.fetch_image(ref, 1)
    assert _Handler.seen_auth == []
    assert client.fetch_image("/data/upload/img", 1) == PNG
    assert _Handler.seen_auth == ["Token secret"]
