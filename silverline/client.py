"""`Client`: run modules on a SilverLine cluster and follow them, from a script or `manage.py`.

Reads go to the orchestrator's REST API, writes to its MQTT control topic (as the original's
libsilverline does). What the client learns from MQTT while it is connected, it learns as it
happens: refusals (`proc/log`), exits (`exited` on `proc/control/+`) and, when asked for, the
module's stdout (`proc/stdio/{uuid}`); the REST API fills in what happened while it was not.
"""
from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

import orjson

from common.config import Config, ConfigError, load_config
from common.wire import Topics, envelope, new_uuid
from silverline.errors import ClientError, RefusedError
from silverline.mqtt import Connection, Handler
from silverline.rest import Record, Rest

RESEND_AFTER = 3.0  # seconds (a third of the timeout at most) before a create not taken is sent once more
PROBE_ALL = 20  # up to this many modules are looked up one by one; a bigger batch by its last module
STDOUT_GRACE = 0.3  # s: stdout may still arrive this long after the exit (another topic)


@dataclass(frozen=True)
class ExitStatus:
    """How a module ended (docs/protocol.md, "Delete and exited"): reason exited|deleted|crashed|killed|limit|error."""

    reason: str
    code: int | None = None
    error: str | None = None

    @classmethod
    def from_wire(cls, status: Any) -> "ExitStatus":
        if isinstance(status, dict):
            code = status.get("code")
            err = status.get("error")
            return cls(str(status.get("reason") or "exited"), code if isinstance(code, int) else None,
                       err if isinstance(err, str) and err else None)
        return cls(str(status or "exited"))  # the original runtimes send the string "exited"

    @property
    def ok(self) -> bool:
        return self.reason == "exited" and self.code in (0, None) and self.error is None

    @property
    def exit_code(self) -> int:
        """For a shell: the module's own code when it exited, 1 for any other end."""
        if self.reason == "exited" and self.error is None:
            return self.code or 0
        return self.code if self.code else 1

    def __str__(self) -> str:
        text = self.reason if self.code is None else f"{self.reason} {self.code}"
        return f"{text}: {self.error}" if self.error else text


class Module:
    """One module the client started. `state` is what the client last learned (`sent`, `refused`,
    or the orchestrator's A/Q/E/K/D); `status` asks the orchestrator now."""

    def __init__(self, client: "Client", data: dict[str, Any], capture: bool) -> None:
        self.client = client
        self.uuid: str = data["uuid"]
        self.name: str = data.get("name", "module")
        self.file: str = data.get("file", "")
        self.runtime: str | None = data.get("parent")  # uuid once the orchestrator placed it
        self.runtime_name: str | None = None
        self.state = "sent"
        self.refused: str | None = None
        self.exit: ExitStatus | None = None
        self._exit_at = 0.0
        self._capture = capture
        self._resent = False  # its create was sent again (Client._resend)
        self._chunks: "queue.Queue[bytes]" = queue.Queue()

    def __repr__(self) -> str:
        return f"Module({self.name!r}, {self.uuid}, state={self.state!r})"

    # -- fed by the client ----------------------------------------------------------------
    def _taken(self, row: Record) -> None:
        self.state = str(row.get("status", "A"))
        self.runtime = row.get("parent") or self.runtime
        if self.state == "D" and self.exit is None:
            self._exited(ExitStatus.from_wire(row.get("exit")))

    def _exited(self, status: ExitStatus) -> None:
        self.exit, self.state, self._exit_at = status, "D", time.monotonic()

    # -- public ---------------------------------------------------------------------------
    @property
    def status(self) -> str:
        """The orchestrator's state now: A alive, Q queued, E exiting, K killed, D dead."""
        row = self.record()
        if row is not None:
            self._taken(row)
        return self.state

    def record(self) -> Record | None:
        """The orchestrator's record of this module (with `exit` once dead)."""
        return self.client.rest.module(self.uuid)

    def wait(self, timeout: float | None = None) -> ExitStatus:
        """Block until the module ended; its ExitStatus. TimeoutError after `timeout` seconds;
        RefusedError when the orchestrator refused it."""
        deadline = None if timeout is None else time.monotonic() + timeout
        next_poll = time.monotonic() + 1.0
        with self.client._cond:
            while True:
                if self.refused is not None:
                    raise RefusedError(self.refused)
                if self.exit is not None:
                    return self.exit
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    raise TimeoutError(f"module {self.name} ({self.uuid}) still {self.state} after {timeout:g} s")
                if now >= next_poll:  # an exit the client did not hear (not connected then): ask the orchestrator
                    self.client._cond.release()
                    try:
                        row = self.record()
                    finally:
                        self.client._cond.acquire()
                    if row is not None:
                        self._taken(row)
                    next_poll = time.monotonic() + 1.0
                    continue
                self.client._cond.wait(min(0.5, next_poll - now, (deadline - now) if deadline is not None else 0.5))

    @property
    def stdout(self) -> Iterator[str]:
        """The module's stdout, line by line as it arrives, until it ended (run with `stdout=True`)."""
        if not self._capture:
            raise ClientError(f"stdout of {self.name} ({self.uuid}) was not captured: pass stdout=True to run()")
        return self._lines()

    def _lines(self) -> Iterator[str]:
        buf = b""
        next_poll = time.monotonic() + 1.0
        while True:
            try:
                chunk = self._chunks.get(timeout=0.1)
            except queue.Empty:
                if self.refused is not None:
                    break
                if self.exit is not None and time.monotonic() - self._exit_at > STDOUT_GRACE:
                    break
                if self.exit is None and time.monotonic() >= next_poll:  # an exit not heard: ask
                    next_poll = time.monotonic() + 1.0
                    row = self.record()
                    if row is not None and row.get("status") == "D":
                        with self.client._cond:
                            self._taken(row)
                continue
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                yield line.decode("utf-8", "replace")
        if buf:
            yield buf.decode("utf-8", "replace")

    def stop(self) -> None:
        """Ask the orchestrator to delete this module (it exits with reason `deleted`)."""
        self.client._send([envelope("delete", {"type": "module", "uuid": self.uuid})])


class Client:
    """A connection to a SilverLine cluster: its orchestrator (REST) and broker (MQTT).

    `Client()` reads `$SL_CONFIG` or `config.json` (or built-in defaults); `Client("other.json")`,
    `Client(cfg)` or keyword overrides (`url=`, `mqtt="host:port"`, `realm=`) choose another.
    Use it as a context manager, or call `close()`."""

    def __init__(self, config: Config | str | None = None, *, url: str | None = None, mqtt: str | None = None,
                 realm: str | None = None, timeout: float = 10.0) -> None:
        if isinstance(config, Config):
            cfg = config
        else:
            try:
                cfg = load_config(config or os.environ.get("SL_CONFIG") or None)
            except ConfigError as e:
                raise ClientError(f"bad config: {e}") from None
        if mqtt:
            host, _, port = mqtt.rpartition(":")
            if not host or not port.isdigit():
                raise ClientError(f"mqtt must be HOST:PORT, got {mqtt!r}")
            cfg.mqtt, cfg.mqtt_port = host, int(port)
        if realm:
            cfg.realm = realm
        self.config = cfg
        self.topics = Topics(cfg.realm)
        self.timeout = timeout
        self.rest = Rest(url or cfg.orchestrator_url)
        self._conn: Connection | None = None
        self._watching = False
        self._cond = threading.Condition()
        self._mods: dict[str, Module] = {}

    # -- connection -----------------------------------------------------------------------
    def connection(self) -> Connection:
        """The MQTT connection (opened on first use)."""
        if self._conn is None:
            self._conn = Connection(self.config, self.timeout).open()
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
            self._watching = False

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _watch(self) -> Connection:
        """Subscribe once to refusals and exits (before anything is sent that they could be about)."""
        conn = self.connection()
        if not self._watching:
            conn.subscribe([self.topics.log, self.topics.orchestrator_log], self._on_log)
            conn.subscribe([self.topics.control("+")], self._on_control)
            self._watching = True
        return conn

    def _send(self, messages: list[dict[str, Any]]) -> None:
        self.connection().publish([(self.topics.control(), m) for m in messages])

    # -- MQTT handlers (paho's thread) ----------------------------------------------------
    def _on_log(self, topic: str, payload: bytes) -> None:
        try:
            msg = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        err = msg.get("data") if isinstance(msg, dict) else None
        if not isinstance(err, dict):
            return
        with self._cond:
            for uuid in _uuids_in(err):
                m = self._mods.get(uuid)
                if m is not None and m._resent and "already exists" in str(err.get("description")):
                    continue  # the first copy of a create sent again did arrive: REST shows the module
                if m is not None and m.state == "sent":  # (ours reports on both log topics: the first one counts)
                    # ours says `description`, the original orchestrator `desc`
                    m.refused, m.state = str(err.get("description") or err.get("desc") or "refused"), "refused"
            self._cond.notify_all()

    def _on_control(self, topic: str, payload: bytes) -> None:
        if b'"exited"' not in payload:
            return  # creates and deletes to runtimes: not ours to read
        try:
            msg = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        data = msg.get("data") if isinstance(msg, dict) else None
        if not isinstance(data, dict) or msg.get("action") != "exited":
            return
        with self._cond:
            m = self._mods.get(str(data.get("uuid")))
            if m is not None and m.exit is None:
                m.runtime = m.runtime or topic.rsplit("/", 1)[-1]
                m._exited(ExitStatus.from_wire(data.get("status")))
                self._cond.notify_all()

    def _stdio_handler(self, m: Module) -> Handler:
        def on_stdio(topic: str, payload: bytes) -> None:
            m._chunks.put(payload)
        return on_stdio

    # -- reads ------------------------------------------------------------------------------
    def runtimes(self, *, dead: bool = False) -> list[Record]:
        """Alive runtimes (with `dead`: all), each with its `children` and `queued` modules."""
        return self.rest.runtimes(dead=dead)

    def runtime(self, q: str) -> Record | None:
        return self.rest.runtime(q)

    def modules(self, status: str | None = None, *, runtime: str | None = None, name: str | None = None) -> list[Record]:
        """Modules running or exiting (`status="all"`, `"Q,K"`, ... for others)."""
        return self.rest.modules(status, runtime, name)

    def module(self, q: str, *, dead: bool = True) -> Record | None:
        """A module by uuid, name or uuid suffix; by default a dead one is found by name too."""
        return self.rest.module(q, dead=dead)

    def queued(self) -> list[Record]:
        return self.rest.queued()

    # -- writes -----------------------------------------------------------------------------
    def run(self, files: str | Sequence[str], runtime: str | Sequence[str] | None = None, *, name: str = "module",
            argv: Sequence[str] = (), env: Sequence[str] = (), dirs: Sequence[str] = (), copies: int = 1,
            apis: Sequence[str] = (), channels: Sequence[dict[str, str]] = (), args: dict[str, Any] | None = None,
            wait: bool = True, timeout: float = 10.0, settle: float = 1.0, stdout: bool = False) -> list[Module]:
        """Start `copies` modules of each file on each runtime (name, uuid or suffix; None: the
        orchestrator picks one that can run it). See `create` for `wait`, `settle` and `stdout`."""
        file_list = [files] if isinstance(files, str) else list(files)
        targets: list[str | None] = [runtime] if isinstance(runtime, str) else list(runtime or []) or [None]
        body = {"argv": list(argv), "env": list(env), "dirs": list(dirs), **(args or {})}
        datas: list[dict[str, Any]] = []
        for rt in targets:
            parent = self._alive_runtime(rt)["uuid"] if rt else None
            for f in file_list:
                for _ in range(copies):
                    d: dict[str, Any] = {"type": "module", "uuid": new_uuid(), "name": name, "file": f,
                                         "apis": list(apis), "args": dict(body), "channels": list(channels)}
                    if parent:
                        d["parent"] = parent
                    datas.append(d)
        return self.create(datas, wait=wait, timeout=timeout, settle=settle, stdout=stdout)

    def benchmark(self, files: str | Sequence[str], runtime: str | Sequence[str], *, engine: str | Sequence[str] = "wasmtime",
                  repeat: int = 10, limit: float | None = None, argv: Sequence[str] = (), name: str | None = None,
                  wait: bool = True, timeout: float = 10.0) -> list[Module]:
        """One benchmark module per (runtime, file, engine) on benchmarking runtimes; the samples go
        to the profile collector (`make profile`). Name: the file's stem and the engine, as the seed's."""
        file_list = [files] if isinstance(files, str) else list(files)
        engines = [engine] if isinstance(engine, str) else list(engine)
        targets = [runtime] if isinstance(runtime, str) else list(runtime)
        datas: list[dict[str, Any]] = []
        for rt in targets:
            parent = self._alive_runtime(rt)["uuid"]
            for f in file_list:
                for e in engines:
                    a: dict[str, Any] = {"engine": e, "repeat": repeat, "argv": list(argv)}
                    if limit is not None:
                        a["limit"] = limit
                    stem = f.rsplit("/", 1)[-1].split(".", 1)[0]
                    datas.append({"type": "module", "uuid": new_uuid(), "name": name or f"{stem}.{e}", "file": f,
                                  "apis": [], "args": a, "channels": [], "parent": parent})
        return self.create(datas, wait=wait, timeout=timeout, settle=0.0)

    def _alive_runtime(self, q: str) -> Record:
        rt = self.rest.runtime(q)
        if rt is None:
            raise ClientError(f"unknown runtime {q!r}: no runtime has that name, uuid or uuid suffix at {self.rest.url}")
        # the original orchestrator's records have no `type` (docs/compatibility.md, "Seen beside the original tools")
        if rt.get("type", "runtime") != "runtime" or rt.get("status") != "A":
            raise ClientError(f"runtime {q!r} ({rt['uuid']}) is not an alive runtime (state {rt.get('status')})")
        return rt

    def create(self, datas: list[dict[str, Any]], *, wait: bool = True, timeout: float = 10.0, settle: float = 1.0,
               stdout: bool = False, listen: float = 0.0) -> list[Module]:
        """Send module create messages (docs/protocol.md, "Creating modules"; one `create`, or a `create_batch`).

        `wait`: return once the orchestrator took or refused each module (`Module.refused`), and
        then up to `settle` seconds more for a started module to fail at once (`Module.exit`: a
        missing file, not WebAssembly, ...). ClientError when the orchestrator does not answer
        within `timeout`. `stdout`: capture each module's stdout for `Module.stdout`. `listen`
        (without `wait`, for a broker-only setup that needs no REST): hear refusals and exits for
        that many seconds after sending."""
        mods = [Module(self, d, stdout) for d in datas]
        with self._cond:
            self._mods.update((m.uuid, m) for m in mods)
        conn = self._watch() if wait or stdout or listen else self.connection()
        for m in mods if stdout else []:
            conn.subscribe([self.topics.stdio(m.uuid), self.topics.stdio(m.uuid, "+")], self._stdio_handler(m))
        msgs = create_messages(datas)
        conn.publish([(self.topics.control(), m) for m in msgs])
        if not wait and listen:
            self._settle(mods, listen, until=lambda m: m.refused is not None or m.exit is not None)
        if wait:
            lasts = {(m["data"]["modules"] if m["action"] == "create_batch" else [m["data"]])[-1]["uuid"] for m in msgs}
            self._await_taken(mods, timeout, [m for m in mods if m.uuid in lasts], lambda: self._resend(conn, msgs))
            self._settle([m for m in mods if m.state == "A"], settle)
        return mods

    def _resend(self, conn: Connection, msgs: list[dict[str, Any]]) -> None:
        """Send again the create messages none of whose modules the orchestrator took or refused
        (issue #26: a broker drops what overflows a client's queue). A message is one transaction
        at the orchestrator, so a module of it seen means all were; a copy that does arrive twice
        is refused as `already exists` and that refusal is not the module's (`_on_log`)."""
        again = []
        with self._cond:
            for msg in msgs:
                batch = [self._mods[d["uuid"]] for d in (msg["data"]["modules"] if msg["action"] == "create_batch" else [msg["data"]])]
                if all(m.state == "sent" for m in batch):
                    again.append(msg)
                    for m in batch:
                        m._resent = True
        if again:
            conn.publish([(self.topics.control(), m) for m in again])

    def _await_taken(self, mods: list[Module], timeout: float, last_of_each: list[Module],
                     resend: Callable[[], None] = lambda: None) -> None:
        # a batch is one transaction: once its last module is visible, every refusal was published
        probes = list(mods) if len(mods) <= PROBE_ALL else list(last_of_each)
        deadline = time.monotonic() + timeout
        resend_at = time.monotonic() + min(RESEND_AFTER, timeout / 3)  # once: an unanswered create is sent again
        while True:
            still = []
            for m in probes:
                if m.refused is None and m.exit is None:
                    row = self.rest.module(m.uuid)
                    if row is None:
                        still.append(m)
                    else:
                        with self._cond:
                            m._taken(row)
            probes = still
            if not probes:
                break
            if time.monotonic() > resend_at:
                resend_at = float("inf")
                resend()
            if time.monotonic() > deadline:
                raise ClientError(f"the orchestrator at {self.rest.url} did not take module {probes[0].uuid} within "
                                  f"{timeout:g} s, its create sent twice (is it connected to the broker at {self.config.mqtt}:"
                                  f"{self.config.mqtt_port}, realm {self.config.realm!r}?)")
            time.sleep(0.05)
        if len(mods) > PROBE_ALL:
            time.sleep(0.2)  # refusals are published right after the commit that made the others visible
            rows = {r["uuid"]: r for n in {m.name for m in mods} for r in self.rest.modules("all", name=n)}
            with self._cond:
                for m in mods:
                    if m.refused is None and m.uuid in rows:
                        m._taken(rows[m.uuid])
        else:
            time.sleep(0.05)
        with self._cond:
            for m in mods:
                if m.state == "sent":
                    m.refused, m.state = "refused (no record on the orchestrator)", "refused"

    def _settle(self, started: list[Module], settle: float,
                until: Callable[[Module], bool] = lambda m: m.exit is not None) -> None:
        deadline = time.monotonic() + settle
        with self._cond:
            while not all(until(m) for m in started):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)

    def stop(self, q: str, *, every: bool = False) -> list[Record]:
        """Delete the module(s) `q` names (uuid, name or uuid suffix); returns their records.
        Several alive modules of that name: all of them with `every`, else ClientError with the count."""
        found = self.find(q, every=every)
        self.delete(found)
        return found

    def delete(self, records: Iterable[Record]) -> None:
        """Send a delete for each module record (as `stop`, without the lookup)."""
        self._send([envelope("delete", {"type": "module", "uuid": r["uuid"]}) for r in records])

    def find(self, q: str, *, every: bool = False) -> list[Record]:
        """The modules that are not dead that `stop(q, every=every)` would delete; ClientError if none."""
        row = self.rest.module(q)  # uuid (dead ones too), then name, then uuid suffix
        if row is None:
            row = self.rest.module(q, dead=True)  # the newest of that name that ended (kept for a while)
        if row is None:
            raise ClientError(f"unknown module {q!r}: no module has that name, uuid or uuid suffix at {self.rest.url}")
        if row.get("status") == "D":
            e = row.get("exit") or {}
            raise ClientError(f"module {q!r} ({row['uuid']}) has already ended ({e.get('reason')}, code {e.get('code')})")
        if row.get("name") != q or row.get("uuid") == q:
            return [row]  # found by uuid or suffix: that one
        same = self._named(q) or [row]
        if len(same) > 1 and not every:
            raise ClientError(f"{len(same)} modules are named {q!r}; pass --all to stop every one "
                              f"(or name one by uuid: {', '.join(r['uuid'][-8:] for r in same[:5])}"
                              f"{', ...' if len(same) > 5 else ''})")
        return same

    def _named(self, name: str) -> list[Record]:
        """Every module named `name` that is not dead; [] where the orchestrator cannot list them
        (the original's has no `?name=` filter: the list is filtered here too)."""
        page = self.rest.get("/api/modules/", {"name": name, "status": "A,E,Q,K", "count": 100000})
        if not isinstance(page, dict) or not isinstance(page.get("results"), list):
            return []
        return [r for r in page["results"] if isinstance(r, dict) and r.get("name") == name and r.get("status") != "D"]

    # -- channels ---------------------------------------------------------------------------
    def publish(self, topic: str, payload: bytes | str, qos: int = 1) -> None:
        """Publish on a channel topic (a module reading it receives `payload`)."""
        self.connection().publish([(topic, payload.encode() if isinstance(payload, str) else payload)], qos)

    def subscribe(self, topics: str | Iterable[str], qos: int = 1) -> "Subscription":
        """Messages on `topics` (MQTT filters) from now on: iterate `(topic, payload)` pairs."""
        sub = Subscription()
        self.connection().subscribe([topics] if isinstance(topics, str) else list(topics), sub._put, qos)
        return sub


class Subscription:
    """Messages of `Client.subscribe`, in arrival order; `get(timeout)` or iterate."""

    def __init__(self) -> None:
        self._q: "queue.Queue[tuple[str, bytes]]" = queue.Queue()

    def _put(self, topic: str, payload: bytes) -> None:
        self._q.put((topic, payload))

    def get(self, timeout: float | None = None) -> tuple[str, bytes]:
        """The next message; TimeoutError when none came within `timeout`."""
        try:
            return self._q.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no message within {timeout:g} s") from None

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        while True:
            yield self._q.get()


def create_messages(datas: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One `create`, or one `create_batch` per runtime naming it once as `data.parent` (as the
    original's run sends it: the original orchestrator reads only that), plus one batch without
    parent for the modules the orchestrator places."""
    if len(datas) == 1:
        return [envelope("create", datas[0])]
    groups: dict[str | None, list[dict[str, Any]]] = {}
    for d in datas:
        groups.setdefault(d.get("parent"), []).append({k: v for k, v in d.items() if k != "parent"})
    out = []
    for parent, group in groups.items():
        if len(group) == 1:  # one module for that runtime: a plain create
            out.append(envelope("create", {**group[0], **({"parent": parent} if parent is not None else {})}))
            continue
        data: dict[str, Any] = {"type": "module", "modules": group}
        if parent is not None:
            data["parent"] = parent
        out.append(envelope("create_batch", data))
    return out


def _uuids_in(err: dict[str, Any]) -> list[str]:
    """The module uuids a proc/log error is about: a create envelope, one module of a batch, or
    every module of a batch refused as a whole."""
    d = err.get("data")
    if isinstance(d, dict) and isinstance(d.get("data"), dict):
        d = d["data"]
    if not isinstance(d, dict):
        return []
    if isinstance(d.get("modules"), list):
        return [m["uuid"] for m in d["modules"] if isinstance(m, dict) and isinstance(m.get("uuid"), str)]
    u = d.get("uuid")
    return [u] if isinstance(u, str) else []


__all__ = ["Client", "ExitStatus", "Module", "Subscription"]
