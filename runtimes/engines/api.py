"""The common engine interface: what a runtime asks of an engine and what it gets back.

An engine loads WebAssembly (`.wasm`, `.wat` or a precompiled artifact, through a compile
cache), and runs one module instance with WASI (argv, env, preopened dirs, stdin, stdout,
stderr) under limits (memory, wall time, CPU budget). A run happens on a thread of its own
(`Engine.start`) or on the calling thread (`Engine.run`), and can be stopped from any other
thread (`RunControl.stop`). The result says how the run ended: exit code, trap and why,
interruption, limit, or a load error.

Python 3.10 compatible: the wasmer engine imports this module under a 3.10 interpreter.
"""
from __future__ import annotations

import os
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Dict, List, Optional, Union

from runtimes.engines.bridge import Bridge

# How a run ended (RunResult.reason).
EXITED = "exited"            # the program returned or called proc_exit: `code` is set
TRAP = "trap"                # a WebAssembly trap or a host error: `message` says which
INTERRUPTED = "interrupted"  # RunControl.stop() (deleted by the runtime)
LIMIT = "limit"              # a limit stopped it: memory, wall time
ERROR = "error"              # it could not start: missing/invalid file, bad settings

DEFAULT_MEMORY_LIMIT = 256 << 20  # bytes of linear memory per module unless the runtime says otherwise

OutputSink = Callable[[bytes], None]


class EngineError(Exception):
    """Base of the errors an engine raises (all carry a message that names what failed)."""


class EngineUnavailable(EngineError):
    """The engine cannot be used in this interpreter (e.g. wasmer outside Python <= 3.10)."""


def not_webassembly(data: bytes) -> Optional[str]:
    """Why `data` is no module an engine can load (None if it may be one): binary modules start
    with `\\0asm`, precompiled artifacts are ELF, text modules (WAT) start with `(` or a comment.
    Without this, a text file named .wasm fails deep in the WAT parser ("expected `(`")."""
    if data[:4] in (b"\0asm", b"\x7fELF"):
        return None
    head = data.lstrip()[:2]
    if head[:1] == b"(" or head == b";;":
        return None
    return "not a WebAssembly module (no \\0asm header)"


class LoadError(EngineError):
    """A module could not be loaded: missing file, invalid WebAssembly, incompatible artifact."""

    def __init__(self, source: str, why: str) -> None:
        super().__init__(f"cannot load module {source}: {why}")
        self.source = source
        self.why = why


@dataclass
class Limits:
    """Per-run limits; None means no limit of that kind."""
    memory_bytes: Optional[int] = DEFAULT_MEMORY_LIMIT
    time_s: Optional[float] = None
    cpu_period_ns: Optional[int] = None   # with cpu_runtime_ns: at most `runtime` CPU per `period`
    cpu_runtime_ns: Optional[int] = None

    @property
    def throttled(self) -> bool:
        return bool(self.cpu_period_ns and self.cpu_runtime_ns
                    and self.cpu_runtime_ns < self.cpu_period_ns)


class StdinPipe:
    """A module's stdin fed by the runtime (e.g. from `proc/stdio` messages).

    The engine gets the read end as a path (`/dev/fd/N`); `feed()` never blocks the caller:
    a writer thread, started on first use, moves queued bytes into the pipe. `close()` ends
    the input (the module reads end-of-file), which also unblocks a module waiting on stdin.
    """

    def __init__(self) -> None:
        self._r, self._w = os.pipe()
        self._lock = threading.Condition()
        self._queue: List[bytes] = []
        self._closing = False
        self._writer: Optional[threading.Thread] = None

    @property
    def read_path(self) -> str:
        return f"/dev/fd/{self._r}"

    def read_fd(self) -> int:
        return self._r

    def release_read_end(self) -> None:
        """Close our copy of the read end once the engine has opened its own."""
        if self._r >= 0:
            os.close(self._r)
            self._r = -1

    def feed(self, data: bytes) -> None:
        with self._lock:
            if self._closing:
                return
            self._queue.append(data)
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_loop, name="sl-stdin", daemon=True)
                self._writer.start()
            self._lock.notify()

    def close(self) -> None:
        with self._lock:
            if self._closing:
                return
            self._closing = True
            writer = self._writer
            self._lock.notify()
        if writer is None:
            self._close_write_end()

    def _close_write_end(self) -> None:
        if self._w >= 0:
            os.close(self._w)
            self._w = -1

    def _write_loop(self) -> None:
        try:
            while True:
                with self._lock:
                    while not self._queue and not self._closing:
                        self._lock.wait()
                    if not self._queue:
                        return
                    chunk = b"".join(self._queue)
                    self._queue.clear()
                view = memoryview(chunk)
                while view:
                    view = view[os.write(self._w, view):]
        except OSError:
            pass  # the module closed its stdin or is gone: drop the rest
        finally:
            self._close_write_end()


@dataclass
class RunSpec:
    """Everything one run of a module needs besides the module itself."""
    argv: List[str] = field(default_factory=list)      # argv[0] included
    env: List[str] = field(default_factory=list)       # "K=V"
    dirs: List[str] = field(default_factory=list)      # preopens: HOST (at the same path) or HOST::GUEST (runtimes.files.preopen_pair)
    stdout: Optional[OutputSink] = None                # None: discarded
    stderr: Optional[OutputSink] = None                # None: discarded
    stdin: Union[None, str, StdinPipe] = None          # None: empty; str: a file path
    limits: Limits = field(default_factory=Limits)
    bridge: Optional[Bridge] = None                    # the `silverline` host API backend
    entry: str = "_start"


@dataclass
class RunResult:
    """How a run ended, plus its resource usage (for exited messages and profiling)."""
    reason: str                      # EXITED | TRAP | INTERRUPTED | LIMIT | ERROR
    code: Optional[int] = None       # exit code when reason == EXITED
    message: Optional[str] = None    # trap / limit / error text, short
    detail: Optional[str] = None     # full engine text (backtrace) when there is one
    start_time: float = 0.0          # wall clock (time.time()) at start
    wall_s: float = 0.0
    utime_s: float = 0.0
    stime_s: float = 0.0
    maxrss_kb: int = 0
    memory_bytes: int = 0            # linear memory size at the end

    def to_dict(self) -> Dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "RunResult":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


class RunControl:
    """Shared between a run's thread and the rest of the runtime: stop requests and live stats.

    `stop()` is safe from any thread and returns at once; the engine turns it into a trap at
    the module's next loop back-edge or function entry (wasmtime epochs), or wakes a blocked
    host call, or kills the run's process (wasmer).
    """

    def __init__(self) -> None:
        self.stop_reason: Optional[str] = None
        self.stopped = threading.Event()
        self.native_id: Optional[int] = None     # OS thread id of the run (for CPU stats)
        self.memory_bytes = 0                    # linear memory size, updated by the run
        self.last_activity = time.time()         # last host call / output / input
        self.throttled_s = 0.0                   # time spent paused by the CPU budget
        self.budget_mechanism: Optional[str] = None  # how the CPU budget was applied (cpu_budget.py)
        self._wakers: List[Callable[[], None]] = []
        self._lock = threading.Lock()

    def add_waker(self, waker: Callable[[], None]) -> None:
        """Register a callable that stop() runs to interrupt the run (engine-specific)."""
        with self._lock:
            self._wakers.append(waker)
            stopped = self.stop_reason is not None
        if stopped:
            waker()

    def stop(self, reason: str = "deleted") -> None:
        with self._lock:
            if self.stop_reason is None:
                self.stop_reason = reason
            wakers = list(self._wakers)
        self.stopped.set()
        for waker in wakers:
            waker()

    def touch(self) -> None:
        self.last_activity = time.time()

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the run's thread used so far; 0.0 when unknown."""
        tid = self.native_id
        if tid is None:
            return 0.0
        try:
            with open(f"/proc/self/task/{tid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return 0.0


class CompiledModule:
    """A loaded module: the engine's native object plus where it came from."""

    def __init__(self, engine_name: str, source: str, key: str, native: Any) -> None:
        self.engine_name = engine_name
        self.source = source
        self.key = key
        self.native = native

    def __repr__(self) -> str:
        return f"<CompiledModule {self.source} on {self.engine_name} key={self.key[:12]}>"


class Run:
    """A run on its own thread: `control` to stop it, `wait()` for its RunResult."""

    def __init__(self, control: RunControl, name: str) -> None:
        self.control = control
        self.name = name
        self.result: Optional[RunResult] = None
        self.done = threading.Event()
        self.thread: Optional[threading.Thread] = None

    def stop(self, reason: str = "deleted") -> None:
        self.control.stop(reason)

    def wait(self, timeout: Optional[float] = None) -> Optional[RunResult]:
        self.done.wait(timeout)
        return self.result


class Engine(ABC):
    """One engine (wasmtime, wasmer): loads modules through a cache and runs them."""

    name: ClassVar[str] = "?"
    supports_interrupt: ClassVar[bool] = True
    supports_memory_limit: ClassVar[bool] = True

    def load(self, path: str) -> CompiledModule:
        """Load `.wasm`, `.wat` or a precompiled artifact from a file (cached); LoadError if not."""
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise LoadError(path, e.strerror or str(e)) from None
        artifact = path.endswith(".cwasm") or data[:4] == b"\x7fELF"  # the engine's own precompiled form
        why = None if artifact else not_webassembly(data)
        if why:
            raise LoadError(path, why)
        try:
            return self.load_bytes(data, path)
        except LoadError as e:
            if artifact or data[:4] == b"\0asm" or e.why.startswith("not a WebAssembly module"):
                raise
            # text that is no WAT either (README.md, a script): say so, with the parser's first complaint
            raise LoadError(path, f"not a WebAssembly module (no \\0asm header, and not valid WAT: {e.why})") from None

    @abstractmethod
    def load_bytes(self, data: bytes, source: str = "<bytes>") -> CompiledModule:
        """Load a module from bytes (binary or text); LoadError if invalid."""

    @abstractmethod
    def run(self, module: CompiledModule, spec: RunSpec,
            control: Optional[RunControl] = None) -> RunResult:
        """Run `module` on the calling thread until it ends; never raises for module faults."""

    def start(self, module: CompiledModule, spec: RunSpec,
              on_exit: Optional[Callable[[RunResult], None]] = None,
              name: str = "sl-module") -> Run:
        """Run `module` on a new thread; `on_exit(result)` is called from that thread."""
        control = RunControl()
        return self._on_thread(control, name, lambda: self.run(module, spec, control), on_exit)

    @staticmethod
    def _on_thread(control: RunControl, name: str, work: Callable[[], RunResult],
                   on_exit: Optional[Callable[[RunResult], None]], runs_here: bool = True) -> Run:
        """Call `work` on a new thread and publish its result in the returned Run.

        `runs_here`: the module runs on that thread (its CPU time is the module's); False when
        the thread only waits for a child process."""
        run = Run(control, name)

        def body() -> None:
            if runs_here:
                control.native_id = threading.get_native_id()
            try:
                result = work()
            except BaseException as e:  # the engine promised not to raise; never lose a result
                result = RunResult(ERROR, message=f"engine failure: {type(e).__name__}: {e}")
            run.result = result
            run.done.set()
            if on_exit is not None:
                on_exit(result)

        run.thread = threading.Thread(target=body, name=name, daemon=True)
        run.thread.start()
        return run

    def close(self) -> None:
        """Release engine-wide resources (threads, caches). Idempotent."""

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
