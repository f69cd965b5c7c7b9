"""Run a real node (`start.py`) as a subprocess for tests and benchmarks.

API:
    node = NodeProcess(broker_port, name="n1", runtimes=["test/echo"], extra_args=[...], env={...})
    node.start(wait=True, timeout=30)   # waits until every runtime's registration is on the broker
                                        # (or `wait_runtimes=N` of them: a runtime that goes FATAL
                                        # before the broker connection is never registered)
    node.manager_uuid                   # parsed from the registrations it saw
    node.runtime_uuids                  # {full runtime name: uuid}
    node.runtime_uuid()                 # the only (or first) runtime's uuid
    node.pid, node.proc                 # the subprocess.Popen
    node.output()                       # everything it logged so far (stderr + stdout)
    node.stop(timeout=15) -> int        # SIGTERM, wait, SIGKILL if needed; returns the exit code
    NodeProcess(..., watch_auth=("user", "pw"))  # credentials for the registration watcher
    node.kill()                         # SIGKILL (last-will tests); reaps
    node.worker_pids() -> list[int]     # pids of its worker processes (children)
    with NodeProcess(...) as node: ...  # start() then stop(), also on failure

    with running_node(broker, probe=None, **kw) as node: ...   # the same as a context manager

Defaults suit tests: `--no-state` unless `state_dir` is given, `--reg-timeout 1` (no orchestrator in
most tests), `--backoff 0.2`, `-v DBG`, realm `realm`. The supervisor is always stopped (SIGTERM then
SIGKILL) when the context exits; its own shutdown unlinks its IPC objects.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Iterator

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
START = os.path.join(ROOT, "start.py")


class NodeProcess:
    def __init__(self, broker_port: int, name: str = "testnode", runtimes: list[str] | None = None, *,
                 realm: str = "realm", extra_args: list[str] | None = None, env: dict[str, str] | None = None,
                 state_dir: str | None = None, reg_timeout: float = 1.0, backoff: float = 0.2,
                 log_level: str = "DBG", python: str | None = None, wait_runtimes: int | None = None,
                 watch_auth: tuple[str, str] | None = None, failover: list[int] | None = None, scheme: str = "") -> None:
        """`failover`: ports of more brokers after `broker_port`, for the node to fail over to (--mqtt A,B,...);
        `scheme` before each (`mqtt311://`: MQTT 3.1.1)."""
        self.port = broker_port
        self.name = name
        self.runtimes = runtimes or ["test/echo"]
        self.wait_runtimes = len(self.runtimes) if wait_runtimes is None else wait_runtimes
        self.watch_auth = watch_auth
        self.realm = realm
        self.args = [python or sys.executable, START, "-n", name, "-r", *self.runtimes,
                     "--mqtt", ",".join(f"{scheme}127.0.0.1:{p}" for p in [broker_port, *(failover or [])]), "--realm", realm, "-v", log_level,
                     "--reg-timeout", str(reg_timeout), "--backoff", str(backoff)]
        self.args += ["--state-dir", state_dir] if state_dir else ["--no-state"]
        self.args += extra_args or []
        self.env = dict(os.environ)
        self.env.pop("NOTIFY_SOCKET", None)
        self.env.update(env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self._out: list[bytes] = []
        self._reader: threading.Thread | None = None
        self.manager_uuid: str | None = None
        self.runtime_uuids: dict[str, str] = {}
        self.registrations: list[dict[str, Any]] = []

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        with self.proc.stdout as out:  # closed at EOF, also when nobody calls stop() (a node that exits by itself)
            for line in iter(out.readline, b""):
                self._out.append(line)

    def output(self) -> str:
        return b"".join(self._out).decode("utf-8", "replace")

    def start(self, wait: bool = True, timeout: float = 30.0) -> "NodeProcess":
        """Start the node; with `wait`, return once every runtime's registration was published."""
        watcher = _RegWatcher(self.port, self.realm, self.watch_auth) if wait else None
        try:
            self.proc = subprocess.Popen(self.args, cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            self._reader = threading.Thread(target=self._read, daemon=True)
            self._reader.start()
            if watcher is not None:
                self._wait_registered(watcher, timeout)
        except BaseException:
            self.stop()
            raise
        finally:
            if watcher is not None:
                watcher.close()
        return self

    def _wait_registered(self, watcher: "_RegWatcher", timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            for msg in watcher.take():
                d = msg.get("data") or {}
                if msg.get("action") != "create" or msg.get("type") == "resp":
                    continue
                if d.get("type") == "manager" and d.get("name") == self.name:
                    self.manager_uuid = d["uuid"]
                    self.registrations.append(msg)
                elif d.get("type") == "runtime" and self.manager_uuid and d.get("parent") == self.manager_uuid:
                    self.runtime_uuids[d["name"]] = d["uuid"]
                    self.registrations.append(msg)
            if self.manager_uuid and len(self.runtime_uuids) >= self.wait_runtimes:
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"node exited with {self.proc.returncode} before registering:\n{self.output()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"node did not register within {timeout}s:\n{self.output()}")
            time.sleep(0.02)

    def runtime_uuid(self, name: str | None = None) -> str:
        if name is None:
            return next(iter(self.runtime_uuids.values()))
        return self.runtime_uuids[name]

    def worker_pids(self) -> list[int]:
        """Children of the supervisor (its workers), from /proc."""
        out: list[int] = []
        try:
            with open(f"/proc/{self.pid}/task/{self.pid}/children") as f:
                out = [int(x) for x in f.read().split()]
        except OSError:
            pass
        return out

    def wait_exit(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit code (None if never started)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self._reader is not None:
            self._reader.join(5)
        if self.proc.stdout is not None and not (self._reader is not None and self._reader.is_alive()):
            self.proc.stdout.close()  # else a ResourceWarning (an error under pytest's "error" filter) at GC
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def __enter__(self) -> "NodeProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _RegWatcher:
    """Collects registration messages on `{realm}/proc/reg/#` while a node starts."""

    def __init__(self, port: int, realm: str, auth: tuple[str, str] | None = None) -> None:
        self._msgs: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        if auth:
            self.client.username_pw_set(*auth)
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(f"{realm}/proc/reg/#", 1)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            self.close()
            raise TimeoutError("could not subscribe to the registration topics")

    def _on_message(self, c: Any, u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            m = orjson.loads(msg.payload)
        except orjson.JSONDecodeError:
            return
        with self._lock:
            self._msgs.append(m)

    def take(self) -> list[dict[str, Any]]:
        with self._lock:
            out, self._msgs = self._msgs, []
        return out

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@contextlib.contextmanager
def running_node(broker: Any, **kw: Any) -> Iterator[NodeProcess]:
    """`with running_node(broker, runtimes=[...]) as node:` - started, registered, always stopped."""
    node = NodeProcess(broker.port, **kw)
    try:
        node.start()
        yield node
    finally:
        node.stop()


def temp_state_dir() -> str:
    return tempfile.mkdtemp(prefix="sl-state-")
