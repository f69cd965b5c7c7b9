"""The wasmtime engine (PyPI `wasmtime`): the default engine of every runtime here.

How stop, time limits and CPU budgets work (epoch interruption):
  Every store gets an epoch deadline and a deadline callback (the C API's
  `wasmtime_store_epoch_deadline_callback`, which the Python wrapper does not expose, so we
  call it through `wasmtime._ffi`). Generated code checks the engine's epoch at loop
  back-edges and function entries; when a store's deadline passes, the callback runs *on the
  module's thread* and decides: trap (stop requested, time limit passed), pause (CPU budget of
  this period used up: sleep until the next period), or continue with a new deadline.
  - `RunControl.stop()` bumps the epoch IDLE_DELTA times, so every running store reaches its
    deadline at once; only the stopped one traps, the others re-arm (one callback each). The
    ticker repeats that every tick until the stopped run is gone: a store whose callback was
    running during the bump re-arms relative to the epoch after it and would miss it.
  - A ticker thread bumps the epoch every `tick_s` while some run has a time limit or a CPU
    budget; runs without either re-arm IDLE_DELTA ticks ahead and are rarely called.
  - A blocked host call (receive/poll) is woken through the bridge's cancel(); a blocked stdin
    read through closing the pipe. WASI sleeps (poll_oneoff on a clock) cannot be cut short.
  CPU budgets go to the kernel where it can enforce them on the module's thread (cgroup v2
  cpu.max, SCHED_DEADLINE); otherwise the callback throttles, measured with the thread's own CPU
  clock (time.thread_time), so only this module's work counts (runtimes/engines/cpu_budget.py).

Memory limits are store limits: `memory.grow` beyond the limit returns -1 (malloc returns
NULL). wasmtime's C API tells nobody that a grow was refused, so a run that then traps or exits
non-zero with its memory close to the limit (see `_headroom`) is reported as LIMIT ("memory limit
of N bytes reached (<the trap>)"): that is almost surely why it failed, and the trap is kept.

Wasm runs with the GIL released (ctypes drops it for the call), so many modules run in
parallel threads of one runtime process.
"""
from __future__ import annotations

import ctypes
import logging
import os
import resource
import threading
import time
from importlib import metadata
from typing import Any, Callable, Dict, Optional, Set

import wasmtime
from wasmtime import _ffi as ffi

from common.preopen import preopen_pair
from runtimes.engines import bridge as br
from runtimes.engines import cpu_budget
from runtimes.engines.api import (ERROR, EXITED, INTERRUPTED, LIMIT, TRAP, CompiledModule, Engine,
                                  LoadError, RunControl, RunResult, RunSpec, StdinPipe)
from runtimes.engines.bridge import NullBridge
from runtimes.engines.cache import CompileCache
from runtimes.engines.hostcalls import SIGNATURES, HostCalls

log = logging.getLogger("rt.wasmtime")

IDLE_DELTA = 64          # epoch ticks between checks of a run without time limit / CPU budget
WASM_PAGE = 65536

_CALLBACK_T = ctypes.CFUNCTYPE(ctypes.c_size_t, ctypes.POINTER(ffi.wasmtime_context_t), ctypes.c_void_p,
                               ctypes.POINTER(ctypes.c_uint64),
                               ctypes.POINTER(ffi.wasmtime_update_deadline_kind_t))
_FINALIZER_T = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_UPDATE_CONTINUE = 0

_tls = threading.local()  # .calls: the HostCalls of the run on this thread


def _version() -> str:
    try:
        return metadata.version("wasmtime")
    except metadata.PackageNotFoundError:  # pragma: no cover - vendored copies
        return "unknown"


class _CallerMemory:
    """Bounds-checked reads/writes of the calling instance's exported `memory`."""

    __slots__ = ("_caller", "_mem")

    def __init__(self, caller: wasmtime.Caller) -> None:
        self._caller = caller
        mem = caller.get("memory")
        self._mem = mem if isinstance(mem, wasmtime.Memory) else None

    def _base(self, ptr: int, length: int) -> int:
        if self._mem is None:
            raise IndexError("module exports no memory")
        size = self._mem.data_len(self._caller)
        if ptr < 0 or length < 0 or ptr + length > size:
            raise IndexError("out of bounds")
        return ctypes.addressof(self._mem.data_ptr(self._caller).contents) + ptr

    def read(self, ptr: int, length: int) -> bytes:
        base = self._base(ptr, length)
        return ctypes.string_at(base, length) if length else b""

    def write(self, ptr: int, data: bytes) -> None:
        base = self._base(ptr, len(data))
        if data:
            ctypes.memmove(base, data, len(data))

    def size(self) -> int:
        return self._mem.data_len(self._caller) if self._mem is not None else 0


def _host_function(name: str) -> Callable[..., int]:
    def call(caller: wasmtime.Caller, *args: int) -> int:
        calls: Optional[HostCalls] = getattr(_tls, "calls", None)
        if calls is None:  # instantiated outside Engine.run: no bridge
            return br.EINVAL
        mem = _CallerMemory(caller)
        result = getattr(calls, name)(mem, *args)
        calls.control.memory_bytes = mem.size()
        return int(result)
    call.__name__ = f"silverline_{name}"
    return call


class _RunState:
    """Per-run data the epoch callback needs (looked up by the callback's env key)."""

    def __init__(self, control: RunControl, spec: RunSpec, tick_s: float) -> None:
        self.control = control
        lim = spec.limits
        self.deadline = time.monotonic() + lim.time_s if lim.time_s else None
        self.time_s = lim.time_s
        self.period = (lim.cpu_period_ns or 0) / 1e9
        self.budget = (lim.cpu_runtime_ns or 0) / 1e9
        self.throttled = lim.throttled
        self.periodic = self.throttled or self.deadline is not None
        self.tick_s = tick_s
        self.limit_message: Optional[str] = None
        self.throttle: Optional[cpu_budget.Throttle] = None  # set on the run's thread (fallback)
        self.memory: Any = None  # the instance's exported memory, once instantiated

    def next_delta(self, now: float) -> int:
        if self.throttled:
            return 1
        if self.deadline is not None:
            return max(1, min(IDLE_DELTA, int((self.deadline - now) / self.tick_s)))
        return IDLE_DELTA


class WasmtimeEngine(Engine):
    """Loads modules through a CompileCache and runs each in its own Store."""

    name = "wasmtime"

    def __init__(self, cache_dir: Optional[str] = None, tick_s: float = 0.005,
                 opt_level: str = "speed", max_cache_entries: int = 256) -> None:
        config = wasmtime.Config()
        config.epoch_interruption = True
        config.cranelift_opt_level = opt_level
        self._engine = wasmtime.Engine(config)
        self.tick_s = tick_s
        self.cache = CompileCache(f"wasmtime-{_version()}-epoch-{opt_level}", cache_dir,
                                  max_cache_entries)
        self._linker = wasmtime.Linker(self._engine)
        self._linker.define_wasi()
        i32 = wasmtime.ValType.i32()
        for fname, nparams in SIGNATURES:
            self._linker.define_func(br.HOST_MODULE, fname, wasmtime.FuncType([i32] * nparams, [i32]),
                                     _host_function(fname), access_caller=True)
        self._pres: Dict[str, wasmtime.InstancePre] = {}
        self._pre_lock = threading.Lock()
        self._states: Dict[int, _RunState] = {}
        self._next_key = 1
        self._lock = threading.Lock()
        self._periodic = 0
        self._stopping: Set[int] = set()  # keys of runs asked to stop and not gone yet
        self._ticker_cv = threading.Condition(self._lock)
        self._ticker: Optional[threading.Thread] = None
        self._closed = False
        # ctypes callbacks must stay alive as long as any store may call them
        self._callback = _CALLBACK_T(self._on_deadline)
        self._finalizer = _FINALIZER_T(lambda _env: None)

    # ---------------------------------------------------------------- loading
    def load_bytes(self, data: bytes, source: str = "<bytes>") -> CompiledModule:
        key = self.cache.key(data)
        try:
            if source.endswith(".cwasm") or data[:4] == b"\x7fELF":
                # a precompiled artifact (manage.py aot); wasmtime checks it matches our config
                native = self.cache.get_or_load(key, lambda: wasmtime.Module.deserialize(self._engine, data))
            else:
                native = self.cache.get_or_load(
                    key, lambda: wasmtime.Module(self._engine, data),
                    serialize=lambda m: bytes(m.serialize()),
                    deserialize=lambda p: wasmtime.Module.deserialize_file(self._engine, p))
        except wasmtime.WasmtimeError as e:
            raise LoadError(source, _short(str(e))) from None
        return CompiledModule(self.name, source, key, native)

    def precompile(self, data: bytes) -> bytes:
        """An artifact for `.cwasm` files (manage.py aot), valid for this engine's settings."""
        return bytes(wasmtime.Module(self._engine, data).serialize())

    def _instance_pre(self, module: CompiledModule) -> wasmtime.InstancePre:
        with self._pre_lock:
            pre = self._pres.get(module.key)
            if pre is None:
                pre = self._linker.instantiate_pre(module.native)
                self._pres[module.key] = pre
                if len(self._pres) > 2 * self.cache.max_entries:
                    self._pres.pop(next(iter(self._pres)))
            return pre

    # ---------------------------------------------------------------- epochs
    def _kick(self) -> None:
        """Make every running store reach its deadline now (see module docstring)."""
        for _ in range(IDLE_DELTA):
            self._engine.increment_epoch()

    def _tick_loop(self) -> None:
        while True:
            with self._lock:
                while self._periodic == 0 and not self._stopping and not self._closed:
                    self._ticker_cv.wait()
                if self._closed:
                    return
                stopping = bool(self._stopping)
                # a throttled run needs ticks finer than its budget (cpu_budget.Throttle.tick)
                tick = min([self.tick_s] + [s.throttle.tick for s in self._states.values() if s.throttle is not None])
            time.sleep(tick)
            if stopping:
                self._kick()  # see _stop_waker
            else:
                self._engine.increment_epoch()

    def _stop_waker(self, key: int) -> Callable[[], None]:
        """Kick now, and keep kicking every tick until the run is gone: a store whose deadline
        callback was running during the kick re-arms relative to the epoch *after* it."""
        def wake() -> None:
            with self._lock:
                if key not in self._states:
                    return
                self._stopping.add(key)
                self._ensure_ticker()
                self._ticker_cv.notify()
            self._kick()
        return wake

    def _ensure_ticker(self) -> None:
        if self._ticker is None:
            self._ticker = threading.Thread(target=self._tick_loop, name="sl-epoch", daemon=True)
            self._ticker.start()

    def _register(self, state: _RunState) -> int:
        with self._lock:
            key = self._next_key
            self._next_key += 1
            self._states[key] = state
            if state.periodic:
                self._periodic += 1
                self._ensure_ticker()
                self._ticker_cv.notify()
            return key

    def _unregister(self, key: int) -> None:
        with self._lock:
            state = self._states.pop(key, None)
            self._stopping.discard(key)
            if state is not None and state.periodic:
                self._periodic -= 1

    def _on_deadline(self, ctx: Any, env: Optional[int], delta: Any, kind: Any) -> int:
        """Epoch deadline reached, on the module's thread: trap, pause or continue."""
        try:
            state = self._states.get(env or 0)
            if state is None:
                delta[0] = IDLE_DELTA
                kind[0] = _UPDATE_CONTINUE
                return 0
            control = state.control
            if control.stop_reason is not None:
                return _error(f"interrupted: {control.stop_reason}")
            now = time.monotonic()
            if state.deadline is not None and now >= state.deadline:
                state.limit_message = f"time limit of {state.time_s:g} s reached"
                return _error(state.limit_message)
            if state.memory is not None:
                control.memory_bytes = int(ffi.wasmtime_memory_data_size(
                    ctx, ctypes.byref(state.memory._memory)))
            if state.throttled:
                now = self._throttle(state, now)
                if control.stop_reason is not None:
                    return _error(f"interrupted: {control.stop_reason}")
            delta[0] = state.next_delta(now)
            kind[0] = _UPDATE_CONTINUE
            return 0
        except BaseException as e:  # never let an exception unwind through C
            return _error(f"runtime error in epoch callback: {e}")

    @staticmethod
    def _throttle(state: _RunState, now: float) -> float:
        """Pause once this period's CPU budget is used up (cpu_budget.Throttle says how long)."""
        if state.throttle is None:
            return now
        pause = state.throttle.pause_for(now, time.thread_time())
        if pause > 0:
            state.control.stopped.wait(pause)
            now = time.monotonic()
            state.control.throttled_s += pause
        return now

    # ---------------------------------------------------------------- running
    def run(self, module: CompiledModule, spec: RunSpec,
            control: Optional[RunControl] = None) -> RunResult:
        control = control or RunControl()
        control.native_id = threading.get_native_id()
        start_wall = time.time()
        t0 = time.perf_counter()
        ru0 = resource.getrusage(resource.RUSAGE_THREAD)
        result = self._run(module, spec, control)
        ru1 = resource.getrusage(resource.RUSAGE_THREAD)
        result.start_time = start_wall
        result.wall_s = time.perf_counter() - t0
        result.utime_s = ru1.ru_utime - ru0.ru_utime
        result.stime_s = ru1.ru_stime - ru0.ru_stime
        result.memory_bytes = control.memory_bytes
        result.maxrss_kb = control.memory_bytes // 1024
        return result

    def _run(self, module: CompiledModule, spec: RunSpec, control: RunControl) -> RunResult:
        bridge = spec.bridge or NullBridge()
        stdin = spec.stdin
        if isinstance(stdin, StdinPipe):
            control.add_waker(stdin.close)
        control.add_waker(bridge.cancel)
        try:
            store = wasmtime.Store(self._engine)
            store.set_wasi(self._wasi_config(spec))
        except (ValueError, wasmtime.WasmtimeError) as e:
            return RunResult(ERROR, message=str(e))
        finally:
            if isinstance(stdin, StdinPipe):
                stdin.release_read_end()
        limit = spec.limits.memory_bytes
        if limit is not None:
            store.set_limits(memory_size=limit)
        state = _RunState(control, spec, self.tick_s)
        reservation: Optional[cpu_budget.Reservation] = None
        if state.throttled:
            lim = spec.limits
            assert lim.cpu_period_ns is not None and lim.cpu_runtime_ns is not None
            reservation = cpu_budget.reserve(lim.cpu_period_ns, lim.cpu_runtime_ns)
            log.info("%s: %s", module.source, reservation.describe())
            control.budget_mechanism = reservation.mechanism
            if reservation.kernel:  # the kernel enforces it: no pauses in the callback
                state.throttled = False
                state.periodic = state.deadline is not None
            else:
                state.throttle = cpu_budget.Throttle(state.period, state.budget)
        key = self._register(state)
        ffi.wasmtime_store_epoch_deadline_callback(store.ptr(), self._callback, key, self._finalizer)
        store.set_epoch_deadline(state.next_delta(time.monotonic()))
        control.add_waker(self._stop_waker(key))
        _tls.calls = HostCalls(bridge, control)
        memory: Optional[wasmtime.Memory] = None
        try:
            try:
                instance = self._instance_pre(module).instantiate(store)
            except wasmtime.WasmtimeError as e:
                text = _short(str(e))
                if limit is not None and "memory" in text and ("limit" in text or "minimum" in text):
                    return RunResult(LIMIT, message=f"memory limit of {limit} bytes: {text}", detail=str(e))
                return RunResult(ERROR, message=f"cannot instantiate {module.source}: {text}", detail=str(e))
            exports = instance.exports(store)
            mem = exports.get("memory")
            if isinstance(mem, wasmtime.Memory):
                memory = mem
                state.memory = mem
                control.memory_bytes = mem.data_len(store)
            entry = exports.get(spec.entry)
            if not isinstance(entry, wasmtime.Func):
                return RunResult(ERROR, message=f"{module.source} exports no function {spec.entry!r}")
            if control.stop_reason is not None:
                return RunResult(INTERRUPTED, message=f"stopped: {control.stop_reason}")
            try:
                entry(store)
                outcome = RunResult(EXITED, code=0)
            except wasmtime.ExitTrap as e:
                outcome = RunResult(EXITED, code=e.code)
            except (wasmtime.WasmtimeError, wasmtime.Trap) as e:
                outcome = RunResult(TRAP, message=_short(str(e)), detail=str(e))
            if memory is not None:
                control.memory_bytes = memory.data_len(store)
            return self._classify(outcome, state, limit, control)
        finally:
            _tls.calls = None
            self._unregister(key)
            if reservation is not None:
                reservation.release()
            if isinstance(stdin, StdinPipe):
                stdin.close()

    @staticmethod
    def _classify(outcome: RunResult, state: _RunState, limit: Optional[int],
                  control: RunControl) -> RunResult:
        if control.stop_reason is not None:
            return RunResult(INTERRUPTED, message=f"stopped: {control.stop_reason}", detail=outcome.detail)
        if state.limit_message is not None:
            return RunResult(LIMIT, message=state.limit_message, detail=outcome.detail)
        failed = outcome.reason == TRAP or (outcome.reason == EXITED and outcome.code != 0)
        if failed and limit is not None and control.memory_bytes + _headroom(limit) > limit:
            why = outcome.message if outcome.reason == TRAP else f"exit code {outcome.code}"
            return RunResult(LIMIT, code=outcome.code,
                             message=f"memory limit of {limit} bytes reached ({why})", detail=outcome.detail)
        return outcome

    @staticmethod
    def _wasi_config(spec: RunSpec) -> wasmtime.WasiConfig:
        wasi = wasmtime.WasiConfig()
        wasi.argv = list(spec.argv) or ["module"]
        pairs = []
        for item in spec.env:
            name, sep, value = item.partition("=")
            if not sep or not name:
                raise ValueError(f"bad env entry {item!r}: expected NAME=VALUE")
            pairs.append((name, value))
        wasi.env = pairs
        for d in spec.dirs:
            host, guest = preopen_pair(d)
            if not os.path.isdir(host):
                raise ValueError(f"dir {host!r} does not exist or is not a directory")
            wasi.preopen_dir(host, guest)
        sink_out, sink_err = spec.stdout, spec.stderr
        wasi.stdout_custom = sink_out if sink_out is not None else _discard
        wasi.stderr_custom = sink_err if sink_err is not None else _discard
        if isinstance(spec.stdin, StdinPipe):
            wasi.stdin_file = spec.stdin.read_path
        elif isinstance(spec.stdin, str):
            wasi.stdin_file = spec.stdin
        return wasi

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._ticker_cv.notify_all()
        if self._ticker is not None:
            self._ticker.join(timeout=1.0)


def _headroom(limit: int) -> int:
    """How close to the limit a failed run's memory must be to blame the limit: an allocator
    asks for more than one page at a time (malloc of 1 MiB grows by 1 MiB+), so one page is
    too strict; an eighth of the limit, capped at 16 MiB, catches real hogs."""
    return max(WASM_PAGE, min(limit // 8, 16 << 20))


def _discard(_data: bytes) -> None:
    return None


def _error(message: str) -> int:
    err = ffi.wasmtime_error_new(message.encode("utf-8", "replace"))
    return ctypes.cast(err, ctypes.c_void_p).value or 0


def _short(text: str) -> str:
    """The cause of a wasmtime error without the backtrace: 'wasm trap: ...'."""
    if "Caused by:" in text:
        tail = text.rsplit("Caused by:", 1)[1]
        lines = [ln.strip() for ln in tail.strip().splitlines() if ln.strip()]
        cause = " ".join(ln for ln in lines if not ln[:1].isdigit()) or tail.strip()
        return cause[:500]
    first = text.strip().splitlines()[0] if text.strip() else text
    return first[:500]
