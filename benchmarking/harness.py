"""One benchmark run: fork (embedded engines) or spawn (command-line engines), wait, measure.

Why a fork per run: a process that has run a WASI program cannot fork a child whose WASI I/O
works (docs/design.md, "Runtimes and engines"), and a run must not disturb the next one (JIT caches, heap growth). So the
benchmarking worker never runs wasm itself: every run is a child that inherits the worker's CPU
affinity, runs one module and exits. Command-line engines are started with posix_spawn (glibc:
vfork + exec), which costs a fraction of a fork of the Python worker. The parent measures wall time on the monotonic clock
(fork to reap, microseconds) and gets user/system time and peak RSS from `wait4`. A run that
passes its limit is killed (SIGKILL) and reported failed. The child's stdout/stderr go to
/dev/null unless an output file is given. A child can send result bytes back over a pipe
(opcode counts); the parent drains the pipe while it waits, so a large result cannot block.
"""
from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Callable

from benchmarking.limits import ChildLimits, RunLimits

# exit code of a child whose target raised (the traceback is the result text)
EXIT_CHILD_ERROR = 125
# exit status of a run whose module trapped: the wasmtime CLI's (abort: 128 + SIGABRT); every
# benchmark engine reports a trap with it (benchmarking/engines/invocation.py)
EXIT_TRAP = 134


@dataclass
class RunResult:
    wall_us: int
    utime_us: int
    stime_us: int
    maxrss_kb: int
    exit_code: int | None  # None when killed by a signal
    signal: int | None
    killed: bool  # past its limit
    result: bytes  # what the child sent on its result pipe
    start_ns: int = 0  # monotonic clock at the fork/spawn
    # compile/instantiate/execute times when the engine reports them (set by runtimes/engines)
    phases: dict[str, int] | None = None
    oom: bool = False  # out of memory, when the resource limits (limits.py) can tell
    limit_hit: str | None = None  # which resource limit ended the run (limits.py): memory_bytes, file_bytes, processes, cpu_seconds

    @property
    def failed(self) -> bool:
        return self.killed or self.exit_code != 0

    @property
    def wall_ns(self) -> int:
        return self.wall_us * 1000 if self._wall_ns is None else self._wall_ns

    _wall_ns: int | None = None

    @property
    def outcome(self) -> str:
        """One word (layouts.OUTCOMES): ok, exit (code != 0), trap, signal, limit, oom, error."""
        if self.killed or (self.limit_hit and not self.oom):
            return "limit"
        if self.oom:
            return "oom"
        if self.signal is not None:
            return "signal"
        if self.exit_code == 0:
            return "ok"
        if self.exit_code == EXIT_TRAP:
            return "trap"
        if self.exit_code == EXIT_CHILD_ERROR and self.result:
            text = self.result.decode("utf-8", "replace").lower()
            return "trap" if "trap" in text or "unreachable" in text else "error"
        return "exit"

    def describe(self) -> str:
        """Why the run failed, in words."""
        if self.limit_hit:
            return f"stopped by the resource limit {self.limit_hit}" + (" (out of memory)" if self.oom else "")
        if self.killed:
            return "killed after its time limit"
        if self.signal is not None:
            return f"killed by signal {signal.Signals(self.signal).name}"
        if self.exit_code == EXIT_CHILD_ERROR and self.result:
            return self.result.decode("utf-8", "replace").strip().splitlines()[-1]
        if self.exit_code == EXIT_TRAP:
            return f"wasm trap (exit code {EXIT_TRAP})"
        return f"exit code {self.exit_code}"


ChildTarget = Callable[[int], int]  # gets the result-pipe fd, returns the exit code


def _redirect(stdout: str | None, stdin: str | None) -> None:
    null = os.open(os.devnull, os.O_RDWR)
    out = os.open(stdout, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644) if stdout else null
    inp = os.open(stdin, os.O_RDONLY) if stdin else null
    os.dup2(inp, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    # the parent's sys.std* may be replaced (pytest capture); engines in Python look at them
    sys.stdin = open(0, "r", closefd=False)
    sys.stdout = open(1, "w", closefd=False)
    sys.stderr = open(2, "w", closefd=False)


def _spawn(exec_argv: list[str], stdout: str | None, stdin: str | None, env: dict[str, str] | None,
           cpus: list[int] | None, result: tuple[int, int] | None = None) -> int:
    """posix_spawn (vfork + exec in glibc): a fraction of the cost of forking a Python process.
    Pinning: affinity is per thread and inherited, so the calling thread is pinned around the
    spawn and restored (the child never runs on another CPU). Signals the worker ignores go back
    to their defaults in the child."""
    out = (os.POSIX_SPAWN_OPEN, 1, stdout, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644) if stdout \
        else (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)
    actions = [(os.POSIX_SPAWN_OPEN, 0, stdin or os.devnull, os.O_RDONLY, 0), out, (os.POSIX_SPAWN_DUP2, 1, 2)]
    if result is not None:  # (result pipe's write end, the fd number the program writes its report to)
        actions.append((os.POSIX_SPAWN_DUP2, result[0], result[1]))
    saved = os.sched_getaffinity(0) if cpus else None
    try:
        if cpus:
            os.sched_setaffinity(0, cpus)
        return os.posix_spawnp(exec_argv[0], exec_argv, os.environ if env is None else env, file_actions=actions,
                               setsigdef=(signal.SIGINT, signal.SIGTERM, signal.SIGPIPE, signal.SIGXFSZ, signal.SIGXCPU))
    finally:
        if saved is not None:
            os.sched_setaffinity(0, saved)


def run(target: ChildTarget | None = None, *, exec_argv: list[str] | None = None, limit: float | None = None,
        stdout: str | None = None, stdin: str | None = None, env: dict[str, str] | None = None,
        cpus: list[int] | None = None, on_start: Callable[[int], None] | None = None,
        result_fd: int | None = None, limits: ChildLimits | None = None) -> RunResult:
    """Run `target(result_fd)` in a forked child, or spawn `exec_argv`; measure and reap.

    `limit` (seconds, None = none) kills the child with SIGKILL when it is still running then.
    `cpus` pins the child to those CPUs (default: it inherits the caller's affinity).
    `on_start(pid)` is called right after the fork (e.g. so a delete can kill the child).
    `result_fd`: an exec'd program gets the result pipe as this fd (engines' phase reports).
    `limits`: memory, file size, processes, CPU time of the child (limits.py); the one that ended
    the run is `RunResult.limit_hit`.
    """
    if (target is None) == (exec_argv is None):
        raise ValueError("give exactly one of target and exec_argv")
    rl = RunLimits(limits) if limits is not None else None
    try:
        r = _run(target, exec_argv, limit, stdout, stdin, env, cpus, on_start, result_fd, rl)
    finally:
        if rl is not None:
            rl.close()
    return r


def _run(target: ChildTarget | None, exec_argv: list[str] | None, limit: float | None, stdout: str | None,
         stdin: str | None, env: dict[str, str] | None, cpus: list[int] | None,
         on_start: Callable[[int], None] | None, result_fd: int | None, rl: RunLimits | None) -> RunResult:
    rfd, wfd = os.pipe()
    t0 = time.monotonic_ns()
    if exec_argv is not None:
        try:
            with rl.spawning() if rl is not None else contextlib.nullcontext():
                pid = _spawn(exec_argv, stdout, stdin, env, cpus, None if result_fd is None else (wfd, result_fd))
            if rl is not None:
                rl.after_spawn(pid)
        except OSError as e:  # no such program, not executable, bad output path
            os.close(rfd)
            os.close(wfd)
            return RunResult(0, 0, 0, 0, EXIT_CHILD_ERROR, None, False, f"cannot start {exec_argv[0]}: {e}".encode(), start_ns=t0)
    else:
        pid = os.fork()
    if pid == 0:  # forked child: never returns
        code = EXIT_CHILD_ERROR
        try:
            os.close(rfd)
            _redirect(stdout, stdin)
            if cpus:
                os.sched_setaffinity(0, cpus)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            if rl is not None:
                rl.enter_child()
            assert target is not None
            code = int(target(wfd))
        except BaseException:
            try:
                os.write(wfd, traceback.format_exc().encode())
            except OSError:
                pass
        finally:
            os._exit(code)
    os.close(wfd)
    chunks: list[bytes] = []
    killed = False
    try:
        if on_start is not None:
            on_start(pid)
        killed = _wait_exit(pid, rfd, chunks, limit, t0)
        _, status, ru = os.wait4(pid, 0)
        t1 = time.monotonic_ns()
        while True:  # the rest of the result (the child has exited; EOF comes)
            b = os.read(rfd, 65536)
            if not b:
                break
            chunks.append(b)
    except BaseException:
        _kill_reap(pid)
        raise
    finally:
        os.close(rfd)
    code = os.waitstatus_to_exitcode(status)
    out = b"".join(chunks)
    limit_hit, oom = rl.cause(code if code >= 0 else None, -code if code < 0 else None, ru.ru_utime, ru.ru_stime,
                              int(ru.ru_maxrss), out) if rl is not None and not killed else (None, False)
    return RunResult(
        start_ns=t0,
        _wall_ns=t1 - t0,
        wall_us=(t1 - t0) // 1000,
        utime_us=int(ru.ru_utime * 1e6),
        stime_us=int(ru.ru_stime * 1e6),
        maxrss_kb=int(ru.ru_maxrss),
        exit_code=code if code >= 0 else None,
        signal=-code if code < 0 else None,
        killed=killed,
        result=out,
        limit_hit=limit_hit,
        oom=oom,
    )


def _kill_reap(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def _wait_exit(pid: int, rfd: int, chunks: list[bytes], limit: float | None, t0: int) -> bool:
    """Wait until the child exits (reading its result pipe meanwhile); kill it at the limit.
    Returns True when it was killed. The child stays unreaped (wait4 collects rusage)."""
    deadline = None if limit is None else t0 + int(limit * 1e9)
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = -1
    try:
        poller = select.poll()
        if pidfd >= 0:
            poller.register(pidfd, select.POLLIN)
        poller.register(rfd, select.POLLIN)
        pipe_open = True
        while True:
            if deadline is None:
                timeout = None if pidfd >= 0 else 5
            else:
                left_ms = (deadline - time.monotonic_ns()) / 1e6
                if left_ms <= 0:
                    os.kill(pid, signal.SIGKILL)
                    return True
                timeout = int(left_ms) + 1
                if pidfd < 0:
                    timeout = min(timeout, 5)
            events = poller.poll(timeout)
            for fd, _ev in events:
                if fd == rfd and pipe_open:
                    b = os.read(rfd, 65536)
                    if b:
                        chunks.append(b)
                    else:
                        poller.unregister(rfd)
                        pipe_open = False
                elif fd == pidfd:
                    return False
            if pidfd < 0 and _exited_nowait(pid):
                return False
    finally:
        if pidfd >= 0:
            os.close(pidfd)


def _exited_nowait(pid: int) -> bool:
    """Without pidfd (old kernels): has the child exited? (waitid with WNOWAIT keeps it unreaped)"""
    r = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    return r is not None
