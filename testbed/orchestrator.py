"""A real `python -m orchestrator` subprocess against the test broker, for tests and benches.

`OrchestratorProc(broker_port, tmpdir)`: free REST port, its own SQLite file, short
keepalive interval; `start()` waits until it is subscribed; `restart()` keeps the store.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

from testbed.broker import free_port
from testbed.procs import stop_process

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class OrchestratorProc:
    """One orchestrator process; `url` is its REST base, `db` its store."""

    def __init__(self, broker_port: int, tmpdir: str, *, ka_interval: float = 0.5, realm: str = "realm",
                 extra_args: list[str] | None = None, mqtt: str = "127.0.0.1") -> None:
        """`mqtt`: its --mqtt (a list `HOST:PORT,...` to fail over between)."""
        self.broker_port = broker_port
        self.mqtt = mqtt
        self.http_port = free_port()
        self.db = os.path.join(tmpdir, "orchestrator.db")
        self.logpath = os.path.join(tmpdir, "orchestrator.log")
        self.config = os.path.join(tmpdir, "orchestrator-config.json")
        with open(self.config, "w") as f:
            json.dump({"mqtt": "127.0.0.1", "mqtt_port": broker_port, "realm": realm, "http": "127.0.0.1",
                       "http_port": self.http_port}, f)
        self.ka_interval = ka_interval
        self.realm = realm
        self.extra_args = list(extra_args or [])
        self.token: str | None = None  # the REST token (--token-file), sent by get() and get_status()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, timeout: float = 30.0) -> "OrchestratorProc":
        cmd = [sys.executable, "-m", "orchestrator", "--db", self.db, "--http-port", str(self.http_port),
               "--mqtt", self.mqtt, "--mqtt-port", str(self.broker_port), "--realm", self.realm,
               "--ka-interval", str(self.ka_interval), "-v", "DBG", "-c", self.config, *self.extra_args]
        with open(self.logpath, "ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"orchestrator exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if self.get("/api/status/").get("subscribed"):
                    return self
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"orchestrator not subscribed after {timeout}s:\n{self.log()}")
            time.sleep(0.05)

    def _req(self, path: str) -> urllib.request.Request:
        """GET `path`, with the REST token when the orchestrator runs with `--token-file` (`self.token`)."""
        return urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {self.token}"} if self.token else {})

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self._req(path), timeout=10) as r:
            return json.loads(r.read())

    def get_status(self, path: str) -> tuple[int, Any]:
        """(HTTP status, JSON body), also for 4xx answers."""
        try:
            with urllib.request.urlopen(self._req(path), timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            with e:
                return e.code, json.loads(e.read())

    def log(self) -> str:
        try:
            with open(self.logpath, errors="replace") as f:
                return f.read()[-6000:]
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGTERM) -> None:
        stop_process(self.proc, sig, 10.0)
        self.proc = None

    def restart(self) -> "OrchestratorProc":
        self.stop()
        return self.start()

    def __enter__(self) -> "OrchestratorProc":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

