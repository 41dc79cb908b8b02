"""The HTTP server: the standard library's, hardened so no client can slow ohm.

- At most ``max_threads`` requests are served at once; a connection beyond that
  gets ``503`` at once and is closed (no queue of waiting threads).
- A request head must arrive whole within ``head_timeout`` seconds (a reaper
  thread closes slowloris connections) and fit in ``MAX_HEAD`` bytes, its first
  line in ``MAX_LINE``; every read and write times out after ``io_timeout``.
- One request per connection, GET only, no body read.
- Answers come from the publisher's last view (see ``publisher.py``): a request
  never takes the engine's lock.
"""

from __future__ import annotations

import contextlib
import io
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ohm_tui.engine.monitor import OrchestratorHealthMonitor
from ohm_tui.web.access import ListenAddress, authorized, check_access
from ohm_tui.web.api import Api
from ohm_tui.web.publisher import Publisher

log = logging.getLogger(__name__)

MAX_LINE = 8192
MAX_HEAD = 32768
MAX_THREADS = 8
HEAD_TIMEOUT = 5.0
IO_TIMEOUT = 10.0
BUSY = (
    b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
    b"Retry-After: 1\r\nContent-Length: 5\r\nConnection: close\r\n\r\nbusy\n"
)


class HeadTooLarge(Exception):
    """The request line and headers went over ``MAX_HEAD`` bytes."""


class _HeadReader:
    """``rfile`` for the request head: stops reading at ``budget`` bytes."""

    def __init__(self, raw: io.BufferedIOBase, budget: int) -> None:
        self.raw = raw
        self.budget = budget

    def readline(self, limit: int | None = -1) -> bytes:
        if self.budget <= 0:
            raise HeadTooLarge
        n = self.budget if limit is None or limit < 0 else min(limit, self.budget)
        line = self.raw.readline(n)
        self.budget -= len(line)
        if self.budget <= 0 and not line.endswith(b"\n"):
            raise HeadTooLarge
        return line

    def read(self, n: int = -1) -> bytes:  # never used for GET; bounded anyway
        return b""


class OhmHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True

    def __init__(
        self,
        address: ListenAddress,
        api: Api,
        token: str | None,
        *,
        max_threads: int = MAX_THREADS,
        head_timeout: float = HEAD_TIMEOUT,
        io_timeout: float = IO_TIMEOUT,
    ) -> None:
        self.address_family = socket.AF_INET6 if address.ipv6 else socket.AF_INET
        self.api = api
        self.token = token
        self.head_timeout = head_timeout
        self.io_timeout = io_timeout
        self._slots = threading.BoundedSemaphore(max_threads)
        self._deadlines: dict[socket.socket, float] = {}
        self._deadlines_lock = threading.Lock()
        self._closed = threading.Event()
        super().__init__((address.host, address.port), Handler)
        self._reaper = threading.Thread(target=self._reap, name="ohm-http-reaper", daemon=True)
        self._reaper.start()

    # -- bounded threads -------------------------------------------------------
    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.refused += 1
            with contextlib.suppress(OSError):
                request.setblocking(False)
                request.send(BUSY)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    refused = 0  # connections answered "busy" (for tests and the bench)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.unwatch(request)
            self._slots.release()

    # -- slowloris -------------------------------------------------------------
    def watch(self, conn: socket.socket) -> None:
        with self._deadlines_lock:
            self._deadlines[conn] = time.monotonic() + self.head_timeout

    def unwatch(self, conn: socket.socket) -> None:
        with self._deadlines_lock:
            self._deadlines.pop(conn, None)

    def _reap(self) -> None:
        while not self._closed.wait(0.1):
            at = time.monotonic()
            with self._deadlines_lock:
                late = [c for c, d in self._deadlines.items() if d <= at]
                for c in late:
                    del self._deadlines[c]
            for c in late:
                with contextlib.suppress(OSError):
                    c.shutdown(socket.SHUT_RDWR)

    def server_close(self) -> None:
        self._closed.set()
        super().server_close()


class Handler(BaseHTTPRequestHandler):
    server: OhmHTTPServer
    server_version = "ohm"
    sys_version = ""
    protocol_version = "HTTP/1.0"

    def version_string(self) -> str:
        return "ohm"

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.io_timeout)
        self.server.watch(self.connection)

    def handle(self) -> None:
        self.handle_one_request()

    def handle_one_request(self) -> None:
        self.close_connection = True
        raw = self.rfile
        self.rfile = _HeadReader(raw, MAX_HEAD)  # type: ignore[assignment]
        try:
            self.raw_requestline = self.rfile.readline(MAX_LINE + 1)
            if not self.raw_requestline:
                return
            if len(self.raw_requestline) > MAX_LINE:
                self.requestline = self.request_version = self.command = ""
                self.send_error(414)
                return
            if not self.parse_request():
                return
        except HeadTooLarge:
            self.requestline = self.request_version = self.command = ""
            self.send_error(431)
            return
        except OSError:  # the reaper closed a slow client, or it went away
            return
        finally:
            self.server.unwatch(self.connection)
            self.rfile = raw
        if self.command != "GET":
            self.send_error(405, explain="read-only: GET only")
            return
        if not authorized(self.headers.get("Authorization"), self.server.token):
            self._send(401, "application/json", b'{"error": "a bearer token is required"}\n')
            return
        try:
            status, ctype, body = self.server.api.answer(self.path)
        except Exception:
            log.exception("http: answering %s failed", self.path[:200])
            status, ctype, body = 500, "application/json", b'{"error": "internal error"}\n'
        self._send(status, ctype, body)

    def _send(self, status: int, ctype: str, body: bytes) -> None:
        with contextlib.suppress(OSError):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            if status == 401:
                self.send_header("WWW-Authenticate", 'Bearer realm="ohm"')
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http: " + format, *args)


class WebServer:
    """The endpoint of one monitor: publisher + HTTP server, started and stopped together."""

    def __init__(
        self,
        monitor: OrchestratorHealthMonitor,
        address: ListenAddress,
        token: str | None = None,
        **limits: Any,
    ) -> None:
        check_access(address, token)
        self.address = address
        self.publisher = Publisher(monitor)
        self.api = Api(self.publisher)
        self.httpd = OhmHTTPServer(address, self.api, token, **limits)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        return self.address.url(self.port)

    def start(self) -> None:
        self.publisher.start()
        self._thread = threading.Thread(
            target=self.httpd.serve_forever,
            kwargs={"poll_interval": 0.2},
            daemon=True,
            name="ohm-http",
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(5.0)
            self._thread = None
        self.httpd.server_close()
        self.publisher.stop()
