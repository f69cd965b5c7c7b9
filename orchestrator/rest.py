"""The REST server of the orchestrator (issue #25): it holds under load and answers only whom it should.

- **Backlog** BACKLOG (the standard library's 5 timed out requests under a burst).
- **Timeouts**: a connection that sends no complete request within TIMEOUT seconds is closed
  (an idle or trickling client holds a thread and a descriptor, never the server).
- **Connection cap**: at most `cap` connections at once (default: a quarter of RLIMIT_NOFILE, at most
  MAX_CONNECTIONS); one more is answered `503` at once and closed, logged once per episode. When the
  process is out of descriptors anyway (EMFILE), accept backs off and says so once, instead of
  spinning on a listening socket it cannot accept from.
- **Host header**: a request whose `Host` is not one of this orchestrator's names is refused (403):
  a web page that rebinds its DNS name to this address cannot read the API.
- **Token**: bound beyond loopback, every request but the dashboard's static page needs
  `Authorization: Bearer TOKEN`, the token from `--token-file`; without a token the orchestrator does
  not start there.
- **Secrets**: module `env` values never leave (`KEY=(redacted)`), whatever the endpoint.
"""
from __future__ import annotations

import errno
import hmac
import ipaddress
import logging
import resource
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import urlsplit

import orjson

from orchestrator import dashboard

log = logging.getLogger("orch")

BACKLOG = 128
TIMEOUT = 10.0  # seconds a connection may take to send its request
MAX_CONNECTIONS = 256
REDACTED = "(redacted)"

Answer = Callable[[str, str], "tuple[int, Any]"]


def is_loopback(bind: str) -> bool:
    try:
        return ipaddress.ip_address(bind).is_loopback
    except ValueError:
        return bind == "localhost"


def default_cap() -> int:
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return max(8, min(MAX_CONNECTIONS, (soft if soft != resource.RLIM_INFINITY else 4096) // 4))


def read_token(path: str) -> str:
    """The REST token from its file (first line); ValueError naming the file when it is unusable."""
    try:
        with open(path, encoding="utf-8") as f:
            token = f.readline().strip()
    except OSError as e:
        raise ValueError(f"--token-file {path}: cannot read: {e.strerror}") from None
    if len(token) < 16:
        raise ValueError(f"--token-file {path}: the token must be at least 16 characters (e.g. `openssl rand -hex 24 > {path}`)")
    return token


def redact(body: Any) -> Any:
    """`body` with every module's `args.env` values replaced (KEY=(redacted)); shared parts are copied, not changed."""
    if isinstance(body, list):
        return [redact(x) for x in body]
    if not isinstance(body, dict):
        return body
    out = {k: redact(v) if isinstance(v, (dict, list)) else v for k, v in body.items()}
    env = out.get("env")
    if isinstance(env, list):
        out["env"] = [f"{e.split('=', 1)[0]}={REDACTED}" if isinstance(e, str) else REDACTED for e in env]
    elif isinstance(env, dict):
        out["env"] = {k: REDACTED for k in env}
    return out


def host_names(bind: str, configured: str) -> set[str]:
    """The Host header values (without port) this orchestrator answers to."""
    names = {"localhost", "127.0.0.1", "::1", "[::1]", configured.lower(), socket.gethostname().lower(), socket.getfqdn().lower()}
    if bind not in ("0.0.0.0", "::", ""):
        names.add(bind.lower())
    if bind in ("0.0.0.0", "::"):
        try:
            names.update(str(a[4][0]) for a in socket.getaddrinfo(socket.gethostname(), None))
        except OSError:
            pass
    return names


class RestServer(ThreadingHTTPServer):
    request_queue_size = BACKLOG
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], *, token: str | None,
                 hosts: set[str], cap: int | None = None) -> None:
        self.token = token
        self.hosts = hosts
        self.cap = cap or default_cap()
        self.active = 0
        self.refused = 0  # connections answered 503 at the cap, since the start
        self._count = threading.Lock()
        self._at_cap = False
        self._out_of_fds = False
        self.readers = threading.Semaphore(1)
        super().__init__(address, handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        try:
            got = super().get_request()
        except OSError as e:
            if e.errno in (errno.EMFILE, errno.ENFILE):
                if not self._out_of_fds:
                    self._out_of_fds = True
                    log.error("REST: out of file descriptors (%s); new connections wait (raise LimitNOFILE)", e.strerror)
                time.sleep(0.05)  # the listening socket stays readable: do not spin on it
            raise
        self._out_of_fds = False
        return got

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._count:
            full = self.active >= self.cap
            if not full:
                self.active += 1
                self._at_cap = False
            else:
                self.refused += 1
                first, self._at_cap = not self._at_cap, True
        if full:
            if first:
                log.warning("REST: %d connections open (the cap): answering 503 until some close", self.cap)
            try:
                request.settimeout(1.0)
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
                                b"Retry-After: 1\r\nContent-Length: 45\r\n\r\n{\"error\": \"too many connections, retry later\"}")
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._count:
                self.active -= 1


def make_handler(answer: Answer, timeout: float = TIMEOUT) -> type[BaseHTTPRequestHandler]:
    wait = timeout

    class Handler(BaseHTTPRequestHandler):
        server_version = "silverline-orchestrator"
        timeout = wait  # StreamRequestHandler: the socket's timeout while reading the request

        def _send(self, code: int, data: bytes, ctype: str = "application/json") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def _refusal(self) -> tuple[int, str] | None:
            srv = self.server
            assert isinstance(srv, RestServer)
            host = (self.headers.get("Host") or "").strip().lower()
            if host:
                name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
                if name not in srv.hosts:
                    return 403, f"Host {host!r} is not a name of this orchestrator"
            if srv.token is not None:
                got = self.headers.get("Authorization") or ""
                if not (got.startswith("Bearer ") and hmac.compare_digest(got[7:].strip().encode(), srv.token.encode())):
                    return 401, "this REST API needs 'Authorization: Bearer TOKEN' (the orchestrator's --token-file)"
            return None

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            parts = urlsplit(self.path)
            t0 = time.perf_counter()
            refusal = self._refusal()
            html = dashboard.page(parts.path)  # the fleet dashboard's page (orchestrator/dashboard.py): no data in it
            if html is not None and (refusal is None or refusal[0] == 401):
                self._send(200, html, "text/html; charset=utf-8")
                return
            if refusal is not None:
                self._send(refusal[0], orjson.dumps({"error": refusal[1]}))
                return
            srv = self.server
            assert isinstance(srv, RestServer)
            with srv.readers:  # one answer computed at a time: pollers never take more than one core's share from decisions
                try:
                    code, body = answer(parts.path, parts.query)
                    body = redact(body)
                except Exception as e:  # report, keep serving
                    log.exception("REST %s failed", self.path)
                    code, body = 500, {"error": f"internal error: {type(e).__name__}: {e}"}
                if isinstance(body, bytes):  # /metrics: Prometheus text (orchestrator/metrics.py)
                    data, ctype = body, "text/plain; version=0.0.4; charset=utf-8"
                else:
                    data = orjson.dumps(body, option=orjson.OPT_INDENT_2) if "pretty" in parts.query else orjson.dumps(body)
                    ctype = "application/json"
            self._send(code, data, ctype)
            log.debug("GET %s -> %d (%.1f ms)", self.path, code, (time.perf_counter() - t0) * 1e3)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # requests are logged at DEBUG above, not on stderr

    return Handler
