"""The worker side of a runtime: `Runtime`, the base class every runtime subclasses.

A worker process runs exactly one `Runtime`. `run()` attaches nothing itself: `runtimes.worker_main`
attaches the `ipc.WorkerEndpoint` and hands it over. The main loop (one thread) receives the
supervisor's messages and calls the hooks (`on_create`, `on_delete`, `on_channel_message`, `on_stop`,
`on_tick`); every `send_*`/`publish`/`log` helper is thread safe (one lock serialises the single
producer side of the ring), so modules running in threads may publish directly.

Must import under Python 3.10 and must not import an engine at module level: the supervisor imports
runtime classes (for their class attributes) and never loads an engine (tests/supervisor/
test_no_engines.py); import engines in `setup()`, report what they found in `registration_report()`.
Docs: docs/runtimes.md.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import orjson

from common import schema
from common.exit_status import exit_status
from common.profile import encode_profile
from common.topics import ChannelError, Grant, resolve
from common.wire import ProtocolError
from ipc import messages
from ipc.messages import Message

__all__ = [
    "Runtime",
    "WorkerConfig",
    "Module",
    "ChannelError",
]


class RuntimeEndpoint(Protocol):
    """What a runtime uses of its IPC endpoint (`ipc.WorkerEndpoint`)."""

    def send(self, h1: int, h2: int, payload: bytes = b"", timeout: float = 5.0) -> None: ...

    def recv(self, timeout: float | None = None) -> Message | None: ...

    def drain(self) -> list[Message]: ...


@dataclass
class WorkerConfig:
    """What a worker knows about itself; passed through fork or as JSON to an exec'd worker."""

    sid: str
    slot: int
    backend: str
    runtime: str  # registry name, e.g. "test/echo"
    name: str  # full runtime name, e.g. "node1.echo"
    uuid: str  # runtime uuid
    realm: str = "realm"
    log_level: int = logging.INFO
    keepalive_interval: float = 2.0  # seconds between keepalive reports to the supervisor
    cpus: list[int] | None = None
    settings: dict[str, Any] = field(default_factory=dict)  # runtime-specific (config.json "runtimes")
    spin: float = 200e-6  # IPC idle strategy: the adaptive spin's cap (ipc/idle.py); 0 = always sleep

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "WorkerConfig":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


@dataclass
class Module:
    """A module slot of this runtime, as created by the supervisor."""

    index: int
    uuid: str
    name: str
    create: schema.ModuleCreate  # the create message `data`, checked (file, args, margs, channels, ...)
    grants: list[Grant]
    created: float = field(default_factory=time.monotonic)


class TreeCpu:
    """CPU % of this process and its descendants between two calls of `percent()` (Linux /proc)."""

    TICK = os.sysconf("SC_CLK_TCK")

    def __init__(self) -> None:
        self._last: tuple[float, float] | None = None

    @classmethod
    def _descendants(cls, pid: int) -> float:
        """CPU seconds of the live descendants of `pid`."""
        kids: list[int] = []
        try:
            for t in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{t}/children") as f:
                    kids += [int(k) for k in f.read().split()]
        except (OSError, ValueError):
            return 0.0
        total = 0.0
        for k in kids:
            try:
                with open(f"/proc/{k}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / cls.TICK + cls._descendants(k)
            except (OSError, ValueError, IndexError):
                continue
        return total

    def cpu_seconds(self) -> float:
        """This process, its waited-for children and its live descendants."""
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system + self._descendants(os.getpid())

    def percent(self) -> float:
        now, cpu = time.monotonic(), self.cpu_seconds()
        last, self._last = self._last, (now, cpu)
        if last is None or now <= last[0]:
            return 0.0
        return max(0.0, 100.0 * (cpu - last[1]) / (now - last[0]))


tree_cpu = TreeCpu()  # one per worker process (a worker runs one runtime)


class Runtime:
    """Base class of every runtime (worker side). Subclass, set the class attributes, override hooks.

    Class attributes go into the runtime's registration (docs/protocol.md, "Registration").
    """

    # What the original SilverLine registers for the same runtime (docs/compatibility.md, "The original runtimes"):
    # its `runtime_type`, its API names (`stdio:out`, `profile:benchmarking`, ...; ours may stand
    # beside them, common/apis.py), and `page_size` where it means something (a wasm page).
    RUNTIME_TYPE: ClassVar[str] = "linux"
    MAX_NMODULES: ClassVar[int] = 1  # at most 128 (7-bit module index)
    APIS: ClassVar[list[str]] = []
    DESCRIPTION: ClassVar[str] = ""
    PAGE_SIZE: ClassVar[int | None] = None  # registered as `page_size` when set

    # ------------------------------------------------------------------ class-level (supervisor side)

    @classmethod
    def exec_command(cls, settings: dict[str, Any]) -> list[str] | None:
        """argv prefix to exec after the fork instead of running in the forked interpreter.

        None (default): the forked child runs the runtime directly. Otherwise the child execs
        `argv + ["-m", "runtimes.worker_main", CONFIG_JSON]`-style: return e.g.
        `["/usr/bin/python3.10", "-m", "runtimes.worker_main"]`; the supervisor appends the JSON
        config and sets PYTHONPATH to the project root.
        """
        return None

    @classmethod
    def unavailable(cls, settings: dict[str, Any]) -> str | None:
        """Why this runtime cannot start on this machine (e.g. 'install python3.10'), or None."""
        return None

    # True: the supervisor registers this runtime only once its worker has reported
    # `registration_report()` (or after --reg-timeout without it: docs/supervisor.md, "Registration")
    REPORTS_REGISTRATION: ClassVar[bool] = False

    @classmethod
    def registration(cls, settings: dict[str, Any]) -> dict[str, Any]:
        """Extra registration fields known without a worker: `platform` and `metadata`, merged by the
        supervisor. Runs in the supervisor: no engine import, no probe (that is registration_report)."""
        return {}

    @classmethod
    def aot_target(cls, settings: dict[str, Any]) -> dict[str, Any] | None:
        """What precompiled (AOT) code this runtime loads, registered as `aot_target` (the original's
        field); None: the runtime loads none, the field is left out."""
        return None

    @classmethod
    def registration_fields(cls, settings: dict[str, Any]) -> dict[str, Any]:
        """The original's extra top-level runtime fields (`page_size`, `aot_target`) where they mean
        something here; the supervisor adds them to the registration data."""
        out: dict[str, Any] = {}
        if cls.PAGE_SIZE is not None:
            out["page_size"] = cls.PAGE_SIZE
        target = cls.aot_target(settings)
        if target is not None:
            out["aot_target"] = target
        return out

    # ------------------------------------------------------------------ lifecycle

    def __init__(self, endpoint: RuntimeEndpoint, config: WorkerConfig) -> None:
        self.ep = endpoint
        self.config = config
        self.modules: dict[int, Module] = {}
        self.log_rt = logging.getLogger(f"rt.{config.name}")
        self._send_lock = threading.Lock()
        self._stopping = False
        self._last_keepalive = 0.0

    def setup(self) -> None:
        """Called once in the worker before the loop (import and create engines here). Raising
        makes the worker exit with EXIT_BOOT_ERROR."""

    def registration_report(self) -> dict[str, Any]:
        """Registration extras only the worker knows, after setup() (e.g. the engines that run here):
        `{"platform": {...}, "metadata": {...}}`, merged over the class's `registration(settings)`.
        Sent once (RT_REGISTER) before the first keepalive; a different report from a restarted
        worker makes the node register the runtime again."""
        return {}

    def on_create(self, index: int, module: Module) -> None:
        """A module was created in slot `index`. Default: nothing runs (like `test/reg`)."""

    def on_delete(self, index: int) -> None:
        """Delete of module `index`. Default: report it exited with reason `deleted`.

        Override to stop the module, then call `send_exited(index, "deleted")` when it is gone."""
        self.send_exited(index, "deleted")

    def on_channel_message(self, index: int, fd: int, payload: bytes) -> None:
        """A message for channel `fd` of module `index` (from MQTT or loopback)."""

    def on_stop(self) -> None:
        """The supervisor asks the runtime to stop: stop modules quickly; the loop ends after this."""

    def on_tick(self) -> None:
        """Called at least every `tick_interval` seconds from the loop thread."""

    def children(self) -> list[dict[str, Any]]:
        """Keepalive `children`: one entry per module. Override for per-module figures; this one gives
        each module an equal share of the CPU the worker and its child processes used since the last
        call (the benchmarking runtimes run a module's runs in forked children: issue #27, the
        dashboard showed 0 % while benchmark cells ran)."""
        # list(): module threads may call send_exited (which pops) while the loop thread is here
        mods = list(self.modules.values())
        share = round(tree_cpu.percent() / len(mods), 1) if mods else 0.0
        return [{"uuid": m.uuid, "active": True, "cpu_usage_percent": share, "mem_usage": 0} for m in mods]

    tick_interval: float = 1.0

    # ------------------------------------------------------------------ helpers (thread safe)

    def _send(self, h1: int, h2: int, payload: bytes = b"") -> None:
        with self._send_lock:
            self.ep.send(h1, h2, payload)

    def send_exited(self, index: int, reason: str = "exited", code: int | None = None, error: str | None = None, **extra: Any) -> None:
        """Module `index` is gone: report it (status object: docs/protocol.md, "Delete and exited") and free the slot here."""
        body: dict[str, Any] = {"status": exit_status(reason, code, error)}
        body.update(extra)
        self.modules.pop(index, None)
        self._send(messages.ctrl(index), messages.RT_EXITED, orjson.dumps(body))

    def resolve_topic(self, index: int, topic: str, flags: int) -> str:
        """The MQTT topic a channel of module `index` would use, or ChannelError (not granted,
        wildcard on a writable channel, ...). The supervisor applies the same check."""
        m = self.modules.get(index)
        if m is None:
            raise ChannelError(f"no module in slot {index}")
        return resolve(topic, flags, realm=self.config.realm, module_uuid=m.uuid, grants=m.grants)

    def open_channel(self, index: int, fd: int, flags: int, topic: str, *, check: bool = True) -> None:
        """Open channel `fd` (0-255) of module `index` on `topic` (module-side name: `$SL/...` or a
        granted path) with FLAG_* bits. With `check`, refused channels raise ChannelError here."""
        if check:
            self.resolve_topic(index, topic, flags)
        self._send(messages.ctrl(index), messages.RT_OPEN, messages.encode_open(fd, flags, topic))

    def close_channel(self, index: int, fd: int) -> None:
        self._send(messages.ctrl(index), messages.RT_CLOSE, messages.encode_close(fd))

    def publish(self, index: int, fd: int, payload: bytes) -> None:
        """Publish on channel `fd` of module `index` (to MQTT and loopback); never waits on the network."""
        self._send(messages.data(index), fd, payload)

    def log(self, level: int, text: str) -> None:
        """A runtime log line, printed by the supervisor under logger `rt.NAME`."""
        self._send(messages.ctrl(0), messages.RT_LOG, messages.encode_log(level, text))

    def module_log(self, index: int, level: int, text: str) -> None:
        """A log line of module `index` (the supervisor prefixes the module's name)."""
        self._send(messages.ctrl(index), messages.RT_MODLOG, messages.encode_log(level, text))

    def send_profile(self, index: int, ptype: str, data: bytes) -> None:
        """Profiling data of module `index` -> `{realm}/proc/profile/{ptype}/{runtime_uuid}/{module_uuid}`."""
        self._send(messages.ctrl(index), messages.RT_PROFILE, encode_profile(ptype, data))

    def send_keepalive(self, **fields: Any) -> None:
        """Report keepalive fields now (merged into the next keepalive the supervisor publishes)."""
        body: dict[str, Any] = {"children": self.children()}
        body.update(fields)
        self._send(messages.ctrl(0), messages.RT_KEEPALIVE, orjson.dumps(body))
        self._last_keepalive = time.monotonic()

    def stop(self) -> None:
        """End the loop after the current message (callable from any thread)."""
        self._stopping = True

    # ------------------------------------------------------------------ the loop

    def run(self) -> None:
        """Receive and dispatch until stopped; keepalive and ticks between messages. The first two
        messages: the registration report, then the first keepalive (the worker runs)."""
        try:
            report = self.registration_report()
        except Exception:  # the runtime registers without its extras rather than not at all
            self.log_rt.exception("registration_report failed; the runtime registers without it")
            report = {}
        self._send(messages.ctrl(0), messages.RT_REGISTER, orjson.dumps(report))
        self.send_keepalive()
        next_tick = time.monotonic() + self.tick_interval
        while not self._stopping:
            now = time.monotonic()
            if now >= next_tick:
                next_tick = now + self.tick_interval
                try:
                    self.on_tick()
                except Exception:  # a runtime bug in a periodic hook must not end the worker
                    self.log_rt.exception("on_tick failed")
            if now - self._last_keepalive >= self.config.keepalive_interval:
                try:
                    self.send_keepalive()
                except Exception:
                    self._last_keepalive = now
                    self.log_rt.exception("keepalive failed")
            wait = max(0.0, min(next_tick, self._last_keepalive + self.config.keepalive_interval) - time.monotonic())
            msg = self.ep.recv(wait)
            if msg is None:
                continue
            self.dispatch(msg)
            for more in self.ep.drain():
                self.dispatch(more)
                if self._stopping:
                    break

    def dispatch(self, msg: Message) -> None:
        """Call the hook for one message from the supervisor; a hook's exception is logged, not fatal."""
        h1, h2, payload = msg.h1, msg.h2, msg.payload
        index = messages.index_of(h1)
        try:
            if not messages.is_control(h1):
                if index in self.modules:
                    self.on_channel_message(index, h2, payload)
            elif h2 == messages.MGR_CREATE:
                self._create(index, payload)
            elif h2 == messages.MGR_DELETE:
                if index in self.modules:
                    self.on_delete(index)
                else:
                    self.log(logging.WARNING, f"delete of empty module slot {index}")
            elif h2 == messages.MGR_STOP:
                self._stopping = True
                self.on_stop()
            else:
                self.log(logging.ERROR, f"unknown control message type {h2} for slot {index}")
        except Exception as e:  # a runtime bug must not take the worker down with it
            self.log_rt.exception("error handling message %02x.%02x", h1, h2)
            if messages.is_control(h1) and h2 == messages.MGR_CREATE and index in self.modules:
                self.send_exited(index, "error", None, f"{type(e).__name__}: {e}")

    def _create(self, index: int, payload: bytes) -> None:
        try:  # the supervisor checked it (common/schema.py); this is the worker's edge: decoded once, typed
            create = schema.decode_ipc_create(payload, where=f"create of slot {index}")
        except ProtocolError as e:
            self.modules[index] = Module(index, "", "", schema.ModuleCreate(), [])
            self.send_exited(index, "error", None, str(e))
            return
        uuid = create.uuid or ""
        m = Module(index, uuid, create.name or uuid, create, create.grants)
        self.modules[index] = m
        self.on_create(index, m)


class WorkerLogHandler(logging.Handler):
    """Sends a worker's Python log records to the supervisor as runtime log messages."""

    def __init__(self, runtime: Runtime) -> None:
        super().__init__()
        self.runtime = runtime

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
            self.runtime.log(record.levelno, text)
        except Exception:
            try:
                os.write(2, f"[rt.{self.runtime.config.name}] {record.getMessage()}\n".encode())
            except OSError:
                pass
