"""One module of a WebAssembly runtime, from create message to exited message.

`ModuleHost` owns a module's thread: resolve the file, load it (compile cache), run it on the
engine, restart it after a crash when `args.fault_crash == "restart"` (backoff, retry cap), then
report `exited` (and the `deployed` profile when asked). stdout/stderr go to the module's
`$SL/proc/stdio` channel (fd 255) line by line (stdio.py: the same on every engine; a partial
line waits at most 50 ms), so nothing is lost at exit (the exited message follows them in the
same ring); messages on that channel are the module's stdin.

Engines whose objects are bound to one thread (wasmer) load and start on the runtime's loop
thread instead (`Features.thread_affine`); the wait happens on the engine's own thread.

Python 3.10 compatible (the wasmer runtime runs this under 3.10).
"""
from __future__ import annotations

import logging
import os
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from common.schema import ModuleCreate
from runtimes.base import Runtime
from runtimes.engines import (ERROR, EXITED, INTERRUPTED, LIMIT, TRAP, Engine, EngineError, Limits,
                              RunControl, RunResult, RunSpec, StdinPipe)
from runtimes.engines.bridge import READ, WRITE, NullBridge
from runtimes.wasm.channels import STDIO_FD, ModuleChannels
from runtimes.files import ModuleFileError, ModuleFiles
from runtimes.wasm.stdio import LineBuffer

STDIO_TOPIC = "$SL/proc/stdio"  # -> {realm}/proc/stdio/{module uuid}
DEPLOYED = "deployed"


class BadArgs(ValueError):
    """A create message whose args are wrong; the text names the key."""


@dataclass
class Features:
    """What a runtime offers its modules (the seed's feature matrix, one row)."""
    channels: bool = True
    dirs: bool = True
    stdin: bool = True
    resources: bool = True
    fault_crash: bool = True
    profile: bool = True
    thread_affine: bool = False   # load + start on the loop thread (wasmer)
    max_restarts: int = 5
    restart_backoff: float = 0.5  # seconds, doubled per restart


@dataclass
class ModuleArgs:
    """The parts of a create message a module run needs, validated."""
    file: str
    argv: List[str]
    env: List[str]
    dirs: List[str]
    cpu_period_ns: Optional[int] = None
    cpu_runtime_ns: Optional[int] = None
    fault_crash: str = "ignore"
    profile: bool = False
    extra: Dict[str, Any] = field(default_factory=dict)


def parse_args(create: ModuleCreate, features: Features) -> ModuleArgs:
    """What a module run needs from its create, checked by the schema (common/schema.py) at the
    worker's edge; here only what this runtime offers (`features`) and the file's presence."""
    a = create.margs
    if not create.file:
        raise BadArgs("the create message has no `file` (path of the module on this node)")
    try:
        argv = a.argv_list()
    except ValueError:
        raise BadArgs(f"args.argv must be a list of strings (lists of argv lists are for benchmarking runtimes), got {a.argv!r}"[:300]) from None
    out = ModuleArgs(file=create.file, argv=[os.path.basename(create.file)] + argv, env=list(a.env or ()),
                     dirs=a.dir_list() if features.dirs else [])  # dirs: resolved by the runtime's file policy
    res = a.resources
    if res is not None and features.resources and res.runtime < res.period:
        out.cpu_period_ns, out.cpu_runtime_ns = res.period, res.runtime
    out.fault_crash = a.fault_crash if features.fault_crash else "ignore"
    out.profile = features.profile and f"profile:{DEPLOYED}" in (create.apis or ())
    return out


def deployed_payload(result: RunResult, msgs_in: int, msgs_out: int) -> bytes:
    """docs/protocol.md, "Profiles", `deployed`: [start:u64 us since epoch][wall:u32 us][utime:u32 us]
    [stime:u32 us][maxrss:u32 KiB][ch_in:u32][ch_out:u32], little-endian."""
    def u32(x: float) -> int:
        return max(0, min(int(x), 0xFFFFFFFF))
    return struct.pack("<QIIIIII", int(result.start_time * 1e6), u32(result.wall_s * 1e6),
                       u32(result.utime_s * 1e6), u32(result.stime_s * 1e6), u32(result.maxrss_kb),
                       u32(msgs_in), u32(msgs_out))


class RuntimeOutlet:
    """A module's channel operations as the runtime's IPC helpers (Runtime.open_channel...)."""

    def __init__(self, rt: Runtime, index: int) -> None:
        self.rt = rt
        self.index = index

    def open(self, fd: int, flags: int, topic: str) -> None:
        self.rt.open_channel(self.index, fd, flags, topic, check=True)

    def close(self, fd: int) -> None:
        self.rt.close_channel(self.index, fd)

    def publish(self, fd: int, data: bytes) -> None:
        self.rt.publish(self.index, fd, data)


class ModuleHost:
    """Runs one module to its end and reports it; `stop()` from the loop thread ends it early."""

    def __init__(self, rt: Runtime, index: int, uuid: str, name: str, args: ModuleArgs, engine: Engine,
                 files: ModuleFiles, features: Features, memory_limit: Optional[int],
                 on_gone: Callable[[int, "ModuleHost"], None]) -> None:
        self.rt = rt
        self.index = index
        self.uuid = uuid
        self.name = name
        self.args = args
        self.engine = engine
        self.files = files
        self.features = features
        self.memory_limit = memory_limit
        self.on_gone = on_gone
        self.log = logging.getLogger(f"rt.{rt.config.name}")
        self.stop_reason: Optional[str] = None
        self._stop_event = threading.Event()
        self.control: Optional[RunControl] = None
        self.stdin: Optional[StdinPipe] = None
        self.restarts = 0
        self.bridge: Any = (ModuleChannels(uuid, RuntimeOutlet(rt, index), self._module_log)
                            if features.channels else NullBridge(uuid, self.log))
        self._cpu_mark = (time.monotonic(), 0.0)
        self.cpu_percent = 0.0
        self._lock = threading.Lock()
        self._reported = False
        # stdout one way on every engine (stdio.py); one buffer per stream, so their lines never mix
        self.output = LineBuffer(self._publish_stdout)
        self.errors = LineBuffer(self._publish_stdout)

    # ---------------------------------------------------------------- loop-thread API
    def start(self) -> None:
        self.rt.open_channel(self.index, STDIO_FD, (READ | WRITE) if self.features.stdin else WRITE,
                             STDIO_TOPIC, check=False)
        if self.features.thread_affine:
            self._start_affine()
        else:
            threading.Thread(target=self._main, name=f"sl-mod-{self.index}", daemon=True).start()

    def stop(self, reason: str) -> None:
        with self._lock:
            if self.stop_reason is None:
                self.stop_reason = reason
            control = self.control
        self._stop_event.set()
        if control is not None:
            control.stop(reason)

    def on_message(self, fd: int, payload: bytes) -> None:
        if fd == STDIO_FD:
            stdin = self.stdin
            if stdin is not None:
                stdin.feed(payload)
        elif isinstance(self.bridge, ModuleChannels):
            self.bridge.deliver(fd, payload)

    def child_info(self) -> Dict[str, Any]:
        control = self.control
        now = time.monotonic()
        cpu = control.cpu_seconds() if control is not None else 0.0
        last_t, last_cpu = self._cpu_mark
        if now - last_t >= 0.5:
            self.cpu_percent = max(0.0, 100.0 * (cpu - last_cpu) / (now - last_t)) if cpu >= last_cpu else 0.0
            self._cpu_mark = (now, cpu)
        return {"uuid": self.uuid, "active": True, "cpu_usage_percent": round(self.cpu_percent, 1),
                "mem_usage": control.memory_bytes if control is not None else 0,
                "last_activity": control.last_activity if control is not None else None,
                "restarts": self.restarts}

    # ---------------------------------------------------------------- module thread
    def _module_log(self, level: int, text: str) -> None:
        self.rt.module_log(self.index, level, text)

    def _stdout(self, data: bytes) -> None:
        self.output.write(data)  # (stderr: self.errors)

    def _publish_stdout(self, data: bytes) -> None:
        self.rt.publish(self.index, STDIO_FD, data)

    def _spec(self) -> RunSpec:
        self.stdin = StdinPipe() if self.features.stdin else None
        limits = Limits(memory_bytes=self.memory_limit if self.engine.supports_memory_limit else None,
                        cpu_period_ns=self.args.cpu_period_ns, cpu_runtime_ns=self.args.cpu_runtime_ns)
        return RunSpec(argv=self.args.argv, env=self.args.env, dirs=self.args.dirs, stdout=self._stdout,
                       stderr=self.errors.write, stdin=self.stdin, limits=limits, bridge=self.bridge)

    def _load(self) -> Any:
        path = self.files.resolve(self.args.file)
        return self.engine.load(path)

    def _main(self) -> None:
        try:
            try:
                compiled = self._load()
            except (ModuleFileError, EngineError) as e:
                self._report(RunResult(ERROR, message=str(e)))
                return
            while True:
                with self._lock:
                    if self.stop_reason is not None:
                        result = RunResult(INTERRUPTED)
                        break
                    self.control = RunControl()
                    control = self.control
                result = self.engine.run(compiled, self._spec(), control)
                if not self._should_restart(result):
                    break
                delay = self.features.restart_backoff * (2 ** self.restarts)
                self.restarts += 1
                self._module_log(logging.WARNING, f"crashed ({result.message}); restart {self.restarts}/"
                                                  f"{self.features.max_restarts} in {delay:g} s")
                if self._stop_event.wait(delay):
                    result = RunResult(INTERRUPTED)
                    break
            self._report(result)
        except BaseException as e:  # never leave a slot without an exited message
            self.log.exception("module %s failed in the runtime", self.uuid)
            self._report(RunResult(ERROR, message=f"runtime failure: {type(e).__name__}: {e}"))

    def _should_restart(self, result: RunResult) -> bool:
        return (result.reason == TRAP and self.args.fault_crash == "restart" and self.stop_reason is None
                and self.restarts < self.features.max_restarts)

    def _start_affine(self) -> None:
        try:
            compiled = self._load()
        except (ModuleFileError, EngineError) as e:
            self._report(RunResult(ERROR, message=str(e)))
            return
        run = self.engine.start(compiled, self._spec(), on_exit=self._report, name=f"sl-mod-{self.index}")
        with self._lock:
            self.control = run.control
            reason = self.stop_reason
        if reason is not None:
            run.control.stop(reason)

    def _report(self, result: RunResult) -> None:
        with self._lock:
            if self._reported:
                return
            self._reported = True
        if self.stdin is not None:
            self.stdin.close()
        self.output.flush()  # the last partial lines go before the exited message
        self.errors.flush()
        bridge = self.bridge
        if self.args.profile:
            msgs_in = getattr(bridge, "msgs_in", 0)
            msgs_out = getattr(bridge, "msgs_out", 0)
            try:
                self.rt.send_profile(self.index, DEPLOYED, deployed_payload(result, msgs_in, msgs_out))
            except Exception:
                self.log.exception("cannot send the deployed profile of %s", self.uuid)
        reason, code, error = self.status(result)
        self.on_gone(self.index, self)
        extra: Dict[str, Any] = {}
        if self.restarts:
            extra["restarts"] = self.restarts
        self.rt.send_exited(self.index, reason, code, error, **extra)

    def status(self, result: RunResult) -> "tuple[str, Optional[int], Optional[str]]":
        """(reason, code, error) of the exited status for a run's result."""
        if result.reason == EXITED:
            return "exited", result.code, None
        if result.reason == INTERRUPTED:
            return self.stop_reason or "killed", None, None
        if result.reason == TRAP:
            msg = result.message or "trap"
            if self.restarts:
                msg += f" (gave up after {self.restarts} restarts)"
            return "crashed", None, msg
        if result.reason == LIMIT:
            return "limit", result.code, result.message
        return "error", None, result.message
