"""The wasmer engine (PyPI `wasmer` + `wasmer_compiler_cranelift` 1.1.0), the seed's engine.

wasmer's Python builds stop at CPython 3.10, so this module runs only under such an interpreter
(the `linux/min/wasmer` worker is exec'd under one: see `common/python310.py`).

wasmer 1.1 can neither interrupt running code nor redirect WASI stdio, so every run happens in
a child forked for it: the child points fds 0/1/2 at pipes, instantiates and runs the module,
and reports its result (and `sl_log` lines) as JSON lines on a result pipe; the parent forwards
output to the RunSpec sinks, and stops a run (delete, time limit) with SIGKILL. The parent only
compiles and never runs WebAssembly itself, which keeps forked children safe (a process that ran
a WASI program cannot run WASI in children it forks afterwards). Memory limits are not
supported (wasmer 1.1's Python API has no tunables); `supports_memory_limit` says so.

Quirks handled here: `proc_exit(n)` raises RuntimeError("WASI exited with code: n"), even for 0.
"""
from __future__ import annotations

import json
import logging
import os
import re
import signal
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Union

from common.preopen import preopen_pair
from runtimes.engines import bridge as br
from runtimes.engines.api import (ERROR, EXITED, INTERRUPTED, LIMIT, TRAP, CompiledModule, Engine,
                                  EngineUnavailable, LoadError, Run, RunControl, RunResult, RunSpec,
                                  StdinPipe)
from runtimes.engines.bridge import NullBridge
from runtimes.engines.cache import CompileCache

try:
    import wasmer  # type: ignore[import-not-found,unused-ignore]
    import wasmer_compiler_cranelift  # type: ignore[import-not-found,unused-ignore]
except ImportError as _e:  # pragma: no cover - depends on the interpreter
    wasmer = None
    _IMPORT_ERROR = str(_e)
else:
    _IMPORT_ERROR = ""

log = logging.getLogger("rt.wasmer")

_EXIT_RE = re.compile(r"WASI exited with code: (-?\d+)")
_I32 = None  # wasmer.Type.I32, set on first use


def _short(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else text
    return first.replace("RuntimeError: ", "", 1)[:500]


class WasmerEngine(Engine):
    """Compile in this process, run each module in a forked child."""

    name = "wasmer"
    supports_memory_limit = False

    def __init__(self, cache_dir: Optional[str] = None, max_cache_entries: int = 64) -> None:
        if wasmer is None:
            raise EngineUnavailable(
                f"engine wasmer needs PyPI wasmer==1.1.0 and wasmer_compiler_cranelift==1.1.0, which exist "
                f"only for CPython <= 3.10 (this is {sys.version.split()[0]}: {_IMPORT_ERROR}); "
                f"install python3.10 and run `make env` to create .venv310")
        self._store = wasmer.Store(wasmer.engine.Universal(wasmer_compiler_cranelift.Compiler))
        version = getattr(wasmer, "__version__", "1.x")
        self.cache = CompileCache(f"wasmer-{version}-cranelift-universal", cache_dir, max_cache_entries,
                                  ext="wasmer")

    def load_bytes(self, data: bytes, source: str = "<bytes>") -> CompiledModule:
        key = self.cache.key(data)
        store = self._store
        try:
            native = self.cache.get_or_load(
                key, lambda: wasmer.Module(store, data),
                serialize=lambda m: bytes(m.serialize()),
                deserialize=lambda p: wasmer.Module.deserialize(store, open(p, "rb").read()))
        except Exception as e:  # wasmer raises plain RuntimeError/TypeError for bad modules
            raise LoadError(source, _short(str(e))) from None
        return CompiledModule(self.name, source, key, native)

    # ------------------------------------------------------------------ parent side
    def run(self, module: CompiledModule, spec: RunSpec,
            control: Optional[RunControl] = None) -> RunResult:
        started = self._spawn(module, spec, control or RunControl())
        return started if isinstance(started, RunResult) else started()

    def start(self, module: CompiledModule, spec: RunSpec,
              on_exit: Optional[Callable[[RunResult], None]] = None,
              name: str = "sl-module") -> Run:
        """Fork on the calling thread (wasmer objects refuse to be used from another thread,
        also in a child forked from that thread), then wait for the child on a new thread."""
        control = RunControl()
        started = self._spawn(module, spec, control)
        work = started if callable(started) else (lambda: started)
        return self._on_thread(control, name, work, on_exit, runs_here=False)

    def _spawn(self, module: CompiledModule, spec: RunSpec,
               control: RunControl) -> Union[RunResult, Callable[[], RunResult]]:
        """Fork the child that runs `module`; the returned callable waits for its result."""
        bridge = spec.bridge or NullBridge()
        for d in spec.dirs:
            if not os.path.isdir(preopen_pair(d)[0]):
                return RunResult(ERROR, message=f"dir {preopen_pair(d)[0]!r} does not exist or is not a directory")
        for item in spec.env:
            if "=" not in item or item.startswith("="):
                return RunResult(ERROR, message=f"bad env entry {item!r}: expected NAME=VALUE")
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        res_r, res_w = os.pipe()
        stdin_fd = self._stdin_fd(spec)
        start_wall = time.time()
        t0 = time.perf_counter()
        pid = os.fork()
        if pid == 0:  # child: never returns
            self._child(module, spec, bridge.uuid, stdin_fd, out_w, err_w, res_w, (out_r, err_r, res_r))
        os.close(out_w)
        os.close(err_w)
        os.close(res_w)
        if stdin_fd is not None and not isinstance(spec.stdin, StdinPipe):
            os.close(stdin_fd)
        if isinstance(spec.stdin, StdinPipe):
            spec.stdin.release_read_end()
            control.add_waker(spec.stdin.close)
        readers = [self._pump(out_r, spec.stdout, control), self._pump(err_r, spec.stderr, control)]
        records: List[Dict[str, Any]] = []
        results = threading.Thread(target=self._read_results, args=(res_r, records, bridge, control),
                                   name="sl-wasmer-res", daemon=True)
        results.start()
        return lambda: self._finish(pid, spec, control, start_wall, t0, readers + [results], records)

    def _finish(self, pid: int, spec: RunSpec, control: RunControl, start_wall: float, t0: float,
                threads: List[threading.Thread], records: List[Dict[str, Any]]) -> RunResult:
        waited: List[Any] = []
        exited = threading.Event()

        def reap() -> None:
            waited.append(os.wait4(pid, 0))
            exited.set()
        threading.Thread(target=reap, name="sl-wasmer-wait", daemon=True).start()
        control.add_waker(lambda: None if exited.is_set() else _kill(pid))
        time_s = spec.limits.time_s
        timed_out = False
        if time_s and not exited.wait(time_s) and control.stop_reason is None:
            timed_out = True
            _kill(pid)
        exited.wait()
        _, status, usage = waited[0]
        for t in threads:
            t.join()
        if isinstance(spec.stdin, StdinPipe):
            spec.stdin.close()
        result = self._outcome(records, status, control, timed_out, time_s)
        result.start_time = start_wall
        result.wall_s = time.perf_counter() - t0
        result.utime_s = usage.ru_utime
        result.stime_s = usage.ru_stime
        result.maxrss_kb = usage.ru_maxrss
        return result

    @staticmethod
    def _stdin_fd(spec: RunSpec) -> Optional[int]:
        if isinstance(spec.stdin, StdinPipe):
            return spec.stdin.read_fd()
        if isinstance(spec.stdin, str):
            return os.open(spec.stdin, os.O_RDONLY)
        return None

    @staticmethod
    def _pump(fd: int, sink: Optional[Callable[[bytes], None]], control: RunControl) -> threading.Thread:
        def loop() -> None:
            with os.fdopen(fd, "rb", buffering=0) as f:
                while True:
                    chunk = f.read(65536)
                    if not chunk:
                        return
                    control.touch()
                    if sink is not None:
                        try:
                            sink(chunk)
                        except Exception:
                            log.exception("output sink failed")
        t = threading.Thread(target=loop, name="sl-wasmer-out", daemon=True)
        t.start()
        return t

    @staticmethod
    def _read_results(fd: int, records: List[Dict[str, Any]], bridge: Any, control: RunControl) -> None:
        with os.fdopen(fd, "rb") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if "log" in rec:
                    level, text = rec["log"]
                    bridge.log(int(level), str(text))
                    control.touch()
                else:
                    records.append(rec)

    @staticmethod
    def _outcome(records: List[Dict[str, Any]], status: int, control: RunControl,
                 timed_out: bool, time_s: Optional[float]) -> RunResult:
        if control.stop_reason is not None:
            return RunResult(INTERRUPTED, message=f"stopped: {control.stop_reason}")
        if timed_out:
            return RunResult(LIMIT, message=f"time limit of {time_s:g} s reached")
        if records:
            return RunResult.from_dict(records[-1])
        if os.WIFSIGNALED(status):
            return RunResult(TRAP, message=f"the engine process died of signal {os.WTERMSIG(status)}")
        return RunResult(ERROR, message=f"the engine process exited ({os.waitstatus_to_exitcode(status)}) "
                                        f"without a result")

    # ------------------------------------------------------------------ child side
    def _child(self, module: CompiledModule, spec: RunSpec, uuid: str, stdin_fd: Optional[int],
               out_w: int, err_w: int, res_w: int, parent_ends: Any) -> None:
        try:
            for fd in parent_ends:
                os.close(fd)
            _die_with_parent()
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(stdin_fd if stdin_fd is not None else null, 0)
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            # drop every other inherited fd: a write end of some stdin pipe kept open here would
            # keep this module's stdin from ever reaching end-of-file
            os.closerange(3, res_w)
            os.closerange(res_w + 1, max(res_w + 2, os.sysconf("SC_OPEN_MAX")))
            res = os.fdopen(res_w, "w", buffering=1)
            result = _run_in_child(self._store, module.native, spec, uuid, res)
            res.write(json.dumps(result.to_dict()) + "\n")
            res.flush()
        except BaseException as e:  # report anything, then leave without running parent code
            try:
                os.write(res_w, (json.dumps(RunResult(ERROR, message=f"wasmer child: {e}").to_dict())
                                 + "\n").encode())
            except OSError:
                pass
        finally:
            os._exit(0)


def _run_in_child(store: Any, native: Any, spec: RunSpec, uuid: str, res: Any) -> RunResult:
    """Instantiate and run; stdio is already on fds 0/1/2 of this (child) process."""
    try:
        version = wasmer.wasi.get_version(native, strict=False)
        if version is None:  # a module without WASI imports still gets an (unused) WASI env
            version = wasmer.wasi.Version.SNAPSHOT1
        builder = wasmer.wasi.StateBuilder(spec.argv[0] if spec.argv else "module")
        builder.arguments(list(spec.argv[1:]))
        for item in spec.env:
            name, _, value = item.partition("=")
            builder.environment(name, value)
        for d in spec.dirs:
            host, guest = preopen_pair(d)
            builder.map_directory(guest, host)
        imports = builder.finalize().generate_import_object(store, version)
        memory: Dict[str, Any] = {}
        imports.register(br.HOST_MODULE, _host_functions(store, memory, uuid, res))
        instance = wasmer.Instance(native, imports)
    except Exception as e:
        return RunResult(ERROR, message=f"cannot instantiate: {_short(str(e))}")
    exports = instance.exports
    try:
        memory["mem"] = exports.memory
    except (AttributeError, LookupError):
        pass
    try:
        entry = getattr(exports, spec.entry)
    except (AttributeError, LookupError):
        return RunResult(ERROR, message=f"module exports no function {spec.entry!r}")
    try:
        entry()
        outcome = RunResult(EXITED, code=0)
    except RuntimeError as e:
        m = _EXIT_RE.search(str(e))
        outcome = (RunResult(EXITED, code=int(m.group(1))) if m
                   else RunResult(TRAP, message=_short(str(e)), detail=str(e)))
    sys.stdout.flush()
    if "mem" in memory:
        outcome.memory_bytes = memory["mem"].data_size
    return outcome


def _host_functions(store: Any, memory: Dict[str, Any], uuid: str, res: Any) -> Dict[str, Any]:
    """The `silverline` imports in a wasmer child: get_uuid and log work, channels are refused
    (no runtime built on wasmer offers them)."""
    def view() -> memoryview:
        return memoryview(memory["mem"].buffer)

    def sl_open(ptr: int, n: int, flags: int) -> int:
        return br.EACCES

    def sl_close(fd: int) -> int:
        return br.EBADF

    def sl_publish(fd: int, ptr: int, n: int) -> int:
        return br.EBADF

    def sl_receive(fd: int, ptr: int, cap: int, timeout_ms: int) -> int:
        return br.EBADF

    def sl_poll(ptr: int, n: int, timeout_ms: int) -> int:
        return br.EBADF

    def sl_get_uuid(ptr: int, cap: int) -> int:
        raw = uuid.encode()
        if cap < len(raw) or ptr < 0 or ptr + cap > len(view()):
            return br.EINVAL
        data = raw + b"\0" if cap > len(raw) else raw
        view()[ptr:ptr + len(data)] = data
        return len(raw)

    def sl_log(level: int, ptr: int, n: int) -> int:
        if n < 0 or ptr < 0 or ptr + n > len(view()):
            return br.EINVAL
        text = bytes(view()[ptr:ptr + min(n, 4096)]).decode("utf-8", "replace")
        res.write(json.dumps({"log": [level, text]}) + "\n")
        return 0

    t = wasmer.Type.I32
    fns: Dict[str, Any] = {}
    for name, fn, nparams in [("open", sl_open, 3), ("close", sl_close, 1), ("publish", sl_publish, 3),
                              ("receive", sl_receive, 4), ("poll", sl_poll, 3),
                              ("get_uuid", sl_get_uuid, 2), ("log", sl_log, 3)]:
        fns[name] = wasmer.Function(store, fn, wasmer.FunctionType([t] * nparams, [t]))
    return fns


def _die_with_parent() -> None:
    """SIGKILL this run's child when the process that forked it dies (a killed worker must not
    leave a module spinning); no-op where prctl does not exist."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass

