"""Resource limits of benchmark children: memory, output file size, processes, CPU time.

A run of a benchmark is a child of the worker (harness.py). `ilimit`/`limit` bound its wall time;
these limits bound what it may take meanwhile, so a runaway run (a memory hog, a huge output file,
a fork bomb, a spin) ends as outcome `limit` with the cause named, and the device stays up:

The cause (`RunResult.limit_hit`, the exited message's `limit`) is the name of the setting:

| limit | how | when it is the cause |
|---|---|---|
| `memory_bytes` | RLIMIT_DATA at the limit + 25 % + 64 MiB (private writable memory, on top of what a forked child already has of the worker's; the margin keeps an engine working when the module's memory is at its limit; not RLIMIT_AS: wasmtime and V8 reserve 4-8 GiB of address space per linear memory and would fail at once), and for wasmtime-py runs a store limit on linear memory (reserved PROT_NONE memory made writable later escapes RLIMIT_DATA) | the child reports its memory at the store limit when it trapped; otherwise the run failed with a peak RSS of half the limit or more, or said ENOMEM (`oom` too) |
| `file_bytes` | RLIMIT_FSIZE, SIGXFSZ back to its default in the child (Python ignores it) | the child died of SIGXFSZ |
| `processes` | a pids cgroup per run where the cgroup v1 `pids` controller is writable (exact: the child, or the spawning thread, joins it before the program runs); otherwise RLIMIT_NPROC over the tasks this user already has (not enforced for root) | the cgroup counted a refused fork (`max` event) and the run failed |
| `cpu_seconds` (default `ilimit` + 1 s) | RLIMIT_CPU, soft (SIGXCPU) and hard one second later (SIGKILL) | SIGXCPU, or SIGKILL with the CPU time used |

Forked children set their limits before the engine starts. Spawned programs (posix_spawn has no
rlimit attribute) inherit them: for the microseconds of the spawn the worker's soft limits are the
child's (RunLimits.spawning), then prlimit(2) sets the child's hard limits and CPU time. A prlimit(2)
after the spawn alone leaves the program's first microseconds unlimited (`yes` wrote 3 MB past a
1 MiB limit that way here); an exec through util-linux `prlimit` closes the gap too but costs
~1.3 ms per run here. The pids cgroup has no gap (the spawning thread is in it during the spawn).

Settings: config.json `"runtimes": {"benchmarking": {"child_limits": {"memory_bytes": N,
"file_bytes": N, "processes": N, "cpu_seconds": S}}}`; `null` turns one off. Docs: docs/security.md.
"""
from __future__ import annotations

import contextlib
import math
import os
import resource
import signal
import threading
import time
from dataclasses import dataclass, replace
from typing import Any, Iterator

GiB = 1 << 30
PIDS_V1 = "/sys/fs/cgroup/pids"


def _proc_kb(path: str, key: str) -> int | None:
    """The `key: N kB` line of a /proc file (meminfo, self/status) in bytes; None if absent or unreadable."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _mem_total() -> int:
    total = _proc_kb("/proc/meminfo", "MemTotal:")
    return 8 * GiB if total is None else total


@dataclass(frozen=True)
class ChildLimits:
    """Limits of one benchmark child; None = not limited."""
    memory_bytes: int | None = None
    file_bytes: int | None = None
    processes: int | None = None
    cpu_seconds: float | None = None

    def with_time(self, seconds: float | None) -> "ChildLimits":
        """These limits with CPU time backing a wall-time limit of `seconds` (+1 s) unless set."""
        if self.cpu_seconds is not None or seconds is None:
            return self
        return replace(self, cpu_seconds=float(math.ceil(seconds)) + 1.0)


def defaults() -> ChildLimits:
    """Half the machine's memory (at most 4 GiB), 1 GiB files, 64 processes, CPU time from ilimit."""
    return ChildLimits(memory_bytes=min(4 * GiB, _mem_total() // 2), file_bytes=GiB, processes=64)


KEYS = {"memory_bytes": int, "file_bytes": int, "processes": int, "cpu_seconds": float}


def from_settings(settings: dict[str, Any] | None, where: str = "child_limits") -> ChildLimits:
    """The `child_limits` setting over the defaults; ValueError naming the key when it is wrong."""
    raw = (settings or {}).get("child_limits")
    base = defaults()
    if raw is None:
        return base
    if not isinstance(raw, dict):
        raise ValueError(f"{where} must be an object with {', '.join(KEYS)}, got {raw!r}")
    vals: dict[str, Any] = {}
    for k, v in raw.items():
        if k not in KEYS:
            raise ValueError(f"{where}: unknown key {k!r} (known: {', '.join(KEYS)})")
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0
                              or (KEYS[k] is int and not isinstance(v, int))):
            raise ValueError(f"{where}.{k} must be a positive {'integer' if KEYS[k] is int else 'number'} or null, got {v!r}")
        vals[k] = v
    return replace(base, **vals)


# -- processes: a pids cgroup per run (cgroup v1, where writable) -------------------------------

def _own_cgroup(controller: str) -> str | None:
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                _, ctrls, path = line.rstrip("\n").split(":", 2)
                if controller in ctrls.split(","):
                    return path
    except (OSError, ValueError):
        pass
    return None


_pids_parent: str | None | bool = False  # False: not looked at yet
_seq = 0
_seq_lock = threading.Lock()


def pids_cgroup_parent() -> str | None:
    """The directory under which per-run pids cgroups go, or None when that is not possible here."""
    global _pids_parent
    if _pids_parent is False:
        own = _own_cgroup("pids")
        d = os.path.join(PIDS_V1, (own or "/").lstrip("/")) if own is not None else None
        _pids_parent = d if d and os.access(os.path.join(d, "cgroup.procs"), os.W_OK) and os.access(d, os.W_OK) else None
    return _pids_parent if isinstance(_pids_parent, str) else None


class PidsCgroup:
    """One run's pids cgroup (v1): `pids.max` = the limit; its `max` events say a fork was refused."""

    def __init__(self, parent: str, limit: int) -> None:
        global _seq
        with _seq_lock:
            _seq += 1
            n = _seq
        self.path = os.path.join(parent, f"sl-run-{os.getpid()}-{n}")
        self.home = os.path.join(parent, "tasks")
        os.mkdir(self.path)
        with open(os.path.join(self.path, "pids.max"), "w") as f:
            f.write(str(limit))

    def join(self, tid: int | None = None) -> None:
        """Move a thread (default: the calling process from inside a forked child) into the cgroup."""
        name, who = ("tasks", tid) if tid is not None else ("cgroup.procs", 0)
        with open(os.path.join(self.path, name), "w") as f:
            f.write(str(who))

    def leave(self, tid: int) -> None:
        with open(self.home, "w") as f:
            f.write(str(tid))

    def refused(self) -> int:
        """How many forks the limit refused."""
        try:
            with open(os.path.join(self.path, "pids.events")) as f:
                for line in f:
                    k, _, v = line.partition(" ")
                    if k == "max":
                        return int(v)
        except (OSError, ValueError):
            pass
        return 0

    def close(self) -> None:
        """Remove the cgroup (kills what a fork bomb left behind first)."""
        for _ in range(50):
            try:
                with open(os.path.join(self.path, "cgroup.procs")) as f:
                    left = [int(p) for p in f.read().split()]
            except OSError:
                return
            for p in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p, signal.SIGKILL)
            try:
                os.rmdir(self.path)
                return
            except OSError:
                time.sleep(0.01)


# -- processes without a cgroup: RLIMIT_NPROC counts every task of the user ----------------------

_tasks_cache: tuple[float, int] = (0.0, 0)

# -- what a forked child knows of its own limits ----------------------------------------------------

_child_memory: int | None = None
LIMIT_MARK = b"SL-LIMIT "  # a child's report on the result pipe: b"SL-LIMIT <setting>\n"


def child_memory_limit() -> int | None:
    """In a forked run child: its memory limit (engines that can bound linear memory apply it)."""
    return _child_memory


def report_limit(fd: int, setting: str) -> None:
    """A child says which of its limits stopped it (the parent's `cause` reads it)."""
    try:
        os.write(fd, LIMIT_MARK + setting.encode() + b"\n")
    except OSError:
        pass


def user_tasks() -> int:
    """Tasks (threads) of this real uid now; cached for a few seconds (RLIMIT_NPROC counts them)."""
    global _tasks_cache
    now = time.monotonic()
    if now - _tasks_cache[0] < 5.0:
        return _tasks_cache[1]
    uid, n = os.getuid(), 0
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            if int(fields["Uid"].split()[0]) == uid:
                n += int(fields["Threads"])
        except (OSError, KeyError, ValueError):
            continue
    _tasks_cache = (now, n)
    return n


_spawn_lock = threading.Lock()


def _vm_data() -> int:
    """This process's data size now (VmData of /proc/self/status, what RLIMIT_DATA counts)."""
    return _proc_kb("/proc/self/status", "VmData:") or 0


class RunLimits:
    """The limits of one run as they are applied (harness.run): set up, applied, asked for the cause."""

    def __init__(self, limits: ChildLimits) -> None:
        self.limits = limits
        self.cgroup: PidsCgroup | None = None
        self.nproc: int | None = None
        if limits.processes is not None:
            parent = pids_cgroup_parent()
            if parent is not None:
                try:
                    self.cgroup = PidsCgroup(parent, limits.processes)
                except OSError:
                    self.cgroup = None
            if self.cgroup is None and os.geteuid() != 0:
                self.nproc = user_tasks() + limits.processes

    def _rlimits(self, data_base: int = 0) -> list[tuple[int, tuple[int, int]]]:
        lim = self.limits
        out: list[tuple[int, tuple[int, int]]] = []
        if lim.memory_bytes is not None:
            # a backstop above the store limit of linear memory (which counts once writable): the
            # engine's threads and buffers must still get memory when the module's is at its limit
            data = data_base + lim.memory_bytes + lim.memory_bytes // 4 + (64 << 20)
            out.append((resource.RLIMIT_DATA, (data, data)))
        if lim.file_bytes is not None:
            out.append((resource.RLIMIT_FSIZE, (lim.file_bytes, lim.file_bytes)))
        if lim.cpu_seconds is not None:
            soft = max(1, math.ceil(lim.cpu_seconds))
            out.append((resource.RLIMIT_CPU, (soft, soft + 1)))
        if self.nproc is not None:
            out.append((resource.RLIMIT_NPROC, (self.nproc, self.nproc)))
        return out

    def enter_child(self) -> None:
        """In a forked child, before the engine starts (must not raise for a cgroup that is gone)."""
        global _child_memory
        _child_memory = self.limits.memory_bytes
        if self.cgroup is not None:
            self.cgroup.join()
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
        signal.signal(signal.SIGXCPU, signal.SIG_DFL)
        # a forked child starts with the worker's data (its heap, thread stacks): the limit is on top
        for res, val in self._rlimits(_vm_data()):
            resource.setrlimit(res, val)

    @contextlib.contextmanager
    def spawning(self) -> Iterator[None]:
        """Around posix_spawn: the program must start under its limits, and posix_spawn has no rlimit
        attribute. So, for the few microseconds of the spawn (one spawn at a time), the worker's own
        *soft* RLIMIT_FSIZE / RLIMIT_DATA / RLIMIT_NPROC are the child's (raised back after: soft
        limits can be, hard ones could not), and the spawning thread sits in the run's pids cgroup.
        RLIMIT_CPU is left to after_spawn (the worker's own CPU time may already be past it)."""
        with _spawn_lock:
            saved: list[tuple[int, tuple[int, int]]] = []
            tid = threading.get_native_id()
            try:
                for res, (soft, _hard) in self._rlimits():
                    if res == resource.RLIMIT_CPU or (res == resource.RLIMIT_DATA and _vm_data() * 2 > soft):
                        continue  # the worker itself needs more than the child may have: after_spawn only
                    cur = resource.getrlimit(res)
                    want = soft if cur[1] == resource.RLIM_INFINITY else min(soft, cur[1])
                    resource.setrlimit(res, (want, cur[1]))
                    saved.append((res, cur))
                if self.cgroup is not None:
                    self.cgroup.join(tid)
                yield
            finally:
                for res, cur in saved:
                    resource.setrlimit(res, cur)
                if self.cgroup is not None:
                    self.cgroup.leave(tid)

    def after_spawn(self, pid: int) -> None:
        """The child's hard limits, and its CPU time limit, by prlimit(2) once it runs."""
        for res, val in self._rlimits():
            with contextlib.suppress(ProcessLookupError, OSError):
                resource.prlimit(pid, res, val)

    def cause(self, exit_code: int | None, sig: int | None, utime_s: float, stime_s: float, maxrss_kb: int,
              result: bytes) -> tuple[str | None, bool]:
        """(limit_hit, oom) of a finished run."""
        lim = self.limits
        failed = exit_code != 0 or sig is not None
        for line in result.splitlines():
            if line.startswith(LIMIT_MARK) and failed:
                what = line[len(LIMIT_MARK):].decode("utf-8", "replace").strip()
                return what, what == "memory_bytes"
        if sig == signal.SIGXFSZ:
            return "file_bytes", False
        if lim.cpu_seconds is not None and (sig == signal.SIGXCPU or
                                            (sig == signal.SIGKILL and utime_s + stime_s >= math.ceil(lim.cpu_seconds))):
            return "cpu_seconds", False
        if self.cgroup is not None and self.cgroup.refused() > 0 and failed:
            return "processes", False
        if failed and lim.memory_bytes is not None:
            text = result.decode("utf-8", "replace").lower()
            if maxrss_kb * 1024 >= lim.memory_bytes // 2 or "cannot allocate memory" in text or "memoryerror" in text:
                return "memory_bytes", True
        return None, False

    def close(self) -> None:
        if self.cgroup is not None:
            self.cgroup.close()
            self.cgroup = None
