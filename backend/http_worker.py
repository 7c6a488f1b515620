"""Gunicorn's threaded worker, reading each request in its event loop before a thread takes it.

gthread hands a connection to a request thread as soon as its first byte arrives, and the
thread then blocks until the whole request head has come: eight clients sending a header byte
every 5 s held all eight threads, and ``/health`` went unanswered until they closed (issue 13).
:class:`RequestReadingWorker` reads a request's head, and its body up to
:data:`PREREAD_BODY_BYTES`, without blocking, in the loop that accepts connections (kept-alive
connections too); a thread gets the connection only once that has arrived. A connection that
has not sent it within :data:`REQUEST_READ_TIMEOUT_S` is closed without a thread ever waiting
on it. What a thread still reads (the rest of a larger body) has :data:`BODY_READ_TIMEOUT_S`
in all.

``labelcast serve`` and the Docker image's web process use it (``worker_class`` in
:mod:`backend.gunicorn_config`). TLS and HTTP/2 connections, which gunicorn must read itself,
are handed over as gthread does.
"""

from __future__ import annotations

import errno
import re
import selectors
import socket
import time
from collections import deque
from functools import partial

from gunicorn.http2 import negotiation
from gunicorn.workers.gthread import TConn, ThreadWorker

REQUEST_READ_TIMEOUT_S = 10.0
"""Seconds a connection has, from its accept (or from the end of its previous request), to
send a request's head and the first PREREAD_BODY_BYTES of its body."""

PREREAD_BODY_BYTES = 1024 * 1024
"""Body bytes read in the event loop before a thread takes the request (a webhook, a /setup
and most /predict bodies are smaller)."""

BODY_READ_TIMEOUT_S = 30.0
"""Seconds a request thread may spend reading the rest of a larger body, in all."""

MAX_HEAD_BYTES = 64 * 1024
"""A request head larger than this is answered 431 and the connection closed."""

_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length[ \t]*:[ \t]*([0-9]{1,12})[ \t]*(?=\r\n|$)", re.IGNORECASE)
_EXPECT_CONTINUE = re.compile(rb"\r\nexpect[ \t]*:[ \t]*100-continue", re.IGNORECASE)
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_HEAD_TOO_LARGE = b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


class RequestReadingWorker(ThreadWorker):
    """gthread, except that request threads never wait for a request to arrive."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.reading_conns: deque[TConn] = deque()  # oldest read deadline first

    def accept(self, listener) -> None:
        try:
            client_sock, client_addr = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = TConn(self.cfg, client_sock, client_addr, listener.getsockname())  # non-blocking
        if self._read_by_gunicorn(conn):
            client_sock.setblocking(True)
            self.enqueue_req(conn)
            return
        self._start_reading(conn)

    def on_client_socket_readable(self, conn, client) -> None:
        """A kept-alive connection sends its next request: read it here too."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        if self._read_by_gunicorn(conn):
            self.enqueue_req(conn)
            return
        self._start_reading(conn)

    def murder_pending(self) -> None:
        super().murder_pending()
        now = time.monotonic()
        while self.reading_conns and self.reading_conns[0].read_deadline <= now:
            self._drop(self.reading_conns.popleft())

    # --- private ----------------------------------------------------------------------------
    def _read_by_gunicorn(self, conn) -> bool:
        return bool(self.cfg.is_ssl or conn.is_http2 or negotiation.prior_knowledge_allowed(self.cfg, conn.client))

    def _start_reading(self, conn) -> None:
        conn.preread = bytearray()
        conn.read_deadline = time.monotonic() + REQUEST_READ_TIMEOUT_S
        self.reading_conns.append(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_request_bytes, conn))

    def _on_request_bytes(self, conn, client) -> None:
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the client went away
            self._stop_reading(conn)
            self._drop(conn)
            return
        conn.preread += data
        state = _request_state(conn.preread)
        if state == "continue":
            try:  # gunicorn sends its own later; a client reads any number of 1xx answers
                conn.sock.send(_CONTINUE)
            except OSError:
                pass
            return
        if state == "partial":
            return
        self._stop_reading(conn)
        if state == "too-large":
            try:
                conn.sock.send(_HEAD_TOO_LARGE)
            except OSError:
                pass
            self._drop(conn)
            return
        self._hand_over(conn)

    def _hand_over(self, conn) -> None:
        """Give the connection, with what was read, to a request thread."""
        buffered, conn.preread = bytes(conn.preread), None
        conn.sock.setblocking(True)
        conn.init()  # the HTTP/1.x parser; no I/O for a plain connection
        conn.parser.unreader.unread(buffered)
        conn.parser.unreader.sock = _DeadlineSocket(conn.sock, time.monotonic() + BODY_READ_TIMEOUT_S)
        conn.data_ready = True
        self.enqueue_req(conn)

    def _stop_reading(self, conn) -> None:
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass
        try:
            self.reading_conns.remove(conn)
        except ValueError:
            pass

    def _drop(self, conn) -> None:
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass
        self.nr_conns -= 1
        conn.close()


def _request_state(buffer: bytearray) -> str:
    """``"partial"``, ``"ready"`` (the head and enough of the body), ``"continue"`` (the head
    of a request that waits for "100 Continue" before its body), or ``"too-large"``."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return "too-large" if len(buffer) > MAX_HEAD_BYTES else "partial"
    match = _CONTENT_LENGTH.search(buffer, 0, end)
    if match is None:  # no body, or a chunked one (which the app refuses unread)
        return "ready"
    wanted = min(int(match.group(1)), PREREAD_BODY_BYTES)
    if len(buffer) >= end + 4 + wanted:
        return "ready"
    if len(buffer) == end + 4 and _EXPECT_CONTINUE.search(buffer, 0, end):
        return "continue"  # the client holds its body back until it hears "100 Continue"
    return "partial"


class _DeadlineSocket:
    """The socket a request thread reads from, with one deadline for all its reads."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline
        self._timeout: float | None = None  # one a caller set (gunicorn's drain of a body)

    def settimeout(self, timeout: float | None) -> None:
        self._timeout = timeout

    def gettimeout(self) -> float | None:
        return self._timeout

    def recv(self, size: int) -> bytes:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"the request body did not arrive within {BODY_READ_TIMEOUT_S:.0f} s")
        self._sock.settimeout(left if self._timeout is None else min(left, self._timeout))
        try:
            return self._sock.recv(size)
        except socket.timeout:
            raise TimeoutError(f"the request body did not arrive within {BODY_READ_TIMEOUT_S:.0f} s") from None
        finally:
            self._sock.settimeout(None)

    def __getattr__(self, name):
        return getattr(self._sock, name)
