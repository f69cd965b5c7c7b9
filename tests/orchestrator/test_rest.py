"""Issue #25 (orchestrator/rest.py): the REST server holds (backlog, timeouts, a connection cap that
answers 503) and answers only whom it should (Host header, token beyond loopback, env redacted).
Real sockets and threads; the answers come from a stand-in function (the views are tested elsewhere)."""
from __future__ import annotations

import http.client
import logging
import socket
import threading
import time
from typing import Any, Iterator

import orjson
import pytest

from common.config import Config
from orchestrator.rest import RestServer, host_names, make_handler
from orchestrator.service import Service
from testbed.wait import wait_until

BODY = {"modules": [{"uuid": "u1", "args": {"argv": ["x"], "env": ["API_TOKEN=abc123", "MODE=fast"]}}],
        "one": {"args": {"env": {"DB_PASSWORD": "hunter2"}}}}


def answer(path: str, query: str) -> tuple[int, Any]:
    return 200, BODY


class Server:
    def __init__(self, *, token: str | None = None, cap: int | None = None, timeout: float = 10.0, serve: bool = True) -> None:
        self.srv = RestServer(("127.0.0.1", 0), make_handler(answer, timeout), token=token,
                              hosts=host_names("127.0.0.1", "localhost"), cap=cap)
        self.port = self.srv.server_address[1]
        self.t = threading.Thread(target=self.srv.serve_forever, daemon=True)
        if serve:
            self.t.start()

    def get(self, path: str = "/api/modules/", headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        try:
            c.request("GET", path, headers=headers or {})
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def close(self) -> None:
        if self.t.is_alive():
            self.srv.shutdown()
        self.srv.server_close()


@pytest.fixture
def socks() -> Iterator[list[socket.socket]]:
    out: list[socket.socket] = []
    yield out
    for s in out:
        s.close()


def test_env_values_never_leave() -> None:
    s = Server()
    try:
        code, data = s.get()
        assert code == 200 and b"abc123" not in data and b"hunter2" not in data
        body = orjson.loads(data)
        assert body["modules"][0]["args"]["env"] == ["API_TOKEN=(redacted)", "MODE=(redacted)"]
        assert body["one"]["args"]["env"] == {"DB_PASSWORD": "(redacted)"}
        assert BODY["modules"][0]["args"]["env"][0] == "API_TOKEN=abc123"  # the snapshot is not changed
    finally:
        s.close()


def test_a_foreign_host_header_is_refused() -> None:
    s = Server()
    try:
        assert s.get(headers={"Host": "attacker.example"})[0] == 403
        assert s.get(headers={"Host": f"attacker.example:{s.port}"})[0] == 403
        assert s.get(headers={"Host": f"127.0.0.1:{s.port}"})[0] == 200
        assert s.get(headers={"Host": f"localhost:{s.port}"})[0] == 200
    finally:
        s.close()


def test_a_token_is_required_when_set() -> None:
    s = Server(token="t" * 24)
    try:
        code, data = s.get()
        assert code == 401 and b"Bearer" in data and b"abc" not in data
        assert s.get(headers={"Authorization": "Bearer wrong"})[0] == 401
        assert s.get(headers={"Authorization": "Bearer " + "t" * 24})[0] == 200
        assert s.get("/")[0] == 200  # the dashboard's page holds no data; its reads need the token
    finally:
        s.close()


def test_beyond_loopback_without_a_token_does_not_start(tmp_path: Any) -> None:
    with pytest.raises(ValueError, match="token"):
        Service(Config(), db_path=str(tmp_path / "o.db"), bind="0.0.0.0", http_port=0, ka_interval=1.0)


def test_the_backlog_holds_a_burst(socks: list[socket.socket]) -> None:
    # not serving: every connection waits in the listen backlog (the standard library's 5 dropped SYNs)
    s = Server(serve=False)
    try:
        for _ in range(120):
            c = socket.create_connection(("127.0.0.1", s.port), timeout=5)
            socks.append(c)
        assert len(socks) == 120
    finally:
        s.close()


def test_an_idle_connection_is_closed_after_the_timeout(socks: list[socket.socket]) -> None:
    s = Server(timeout=0.5)
    try:
        c = socket.create_connection(("127.0.0.1", s.port), timeout=30)
        socks.append(c)
        c.sendall(b"GET /api/")  # a request that never ends
        got = c.recv(1000)  # blocks until the server gives up on the request: it closes (or answers 400/408 first)
        assert got == b"" or got.startswith((b"HTTP/1.0 4", b"HTTP/1.1 4")), got
        wait_until(lambda: s.srv.active == 0, 30, "the idle connection closed by the server")
    finally:
        s.close()


def test_the_connection_cap_answers_503_and_logs_once(socks: list[socket.socket], caplog: Any) -> None:
    s = Server(cap=4, timeout=60)
    caplog.set_level(logging.WARNING, logger="orch")
    try:
        for _ in range(4):
            socks.append(socket.create_connection(("127.0.0.1", s.port), timeout=10))
        wait_until(lambda: s.srv.active == 4, 30, "4 idle connections held")
        for _ in range(3):
            code, data = s.get()
            assert code == 503 and b"too many connections" in data
        assert sum("connections open (the cap)" in r.getMessage() for r in caplog.records) == 1
        for c in socks:
            c.close()
        socks.clear()
        wait_until(lambda: s.srv.active == 0, 30, "the idle connections gone")
        t0 = time.monotonic()
        assert s.get()[0] == 200 and time.monotonic() - t0 < 20
        assert s.srv.refused == 3
    finally:
        s.close()


SERVE_AT_64_FDS = """
import resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
from orchestrator.rest import RestServer, host_names, make_handler
srv = RestServer(("127.0.0.1", 0), make_handler(lambda p, q: (200, {"ok": True}), 60.0), token=None,
                 hosts=host_names("127.0.0.1", "localhost"))
print(srv.server_address[1], srv.cap, flush=True)
srv.serve_forever()
"""


def test_idle_sockets_up_to_rlimit_nofile_get_503_not_silence(socks: list[socket.socket]) -> None:
    # issue #25: with ~1,000 idle sockets at RLIMIT_NOFILE 1024 the server went silent, spinning; here 64 fds
    import subprocess
    import sys

    from cli.install import PROJECT
    proc = subprocess.Popen([sys.executable, "-c", SERVE_AT_64_FDS], cwd=PROJECT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port, cap = (int(x) for x in proc.stdout.readline().split())
        assert cap == 16  # a quarter of the descriptors
        for _ in range(80):  # more idle connections than the process has descriptors
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        c.request("GET", "/api/x")
        r = c.getresponse()
        assert r.status == 503 and b"too many connections" in r.read()
        c.close()
        for s in socks:
            s.close()
        socks.clear()

        def served() -> bool:
            c2 = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
            try:
                c2.request("GET", "/api/x")
                return c2.getresponse().status == 200
            finally:
                c2.close()
        wait_until(served, 60, "a request served once the idle connections closed")
    finally:
        proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
