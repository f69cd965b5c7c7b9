"""cgroup v2 for workers and module threads: cpusets for `start.py -g`, cpu.max for CPU budgets.

Everything the node makes lives below the cgroup the worker process was started in (its
"base"), as *threaded* children, because a thread-granular controller is what a worker needs:
modules are threads of one worker process. Making a threaded child turns the base into a
threaded domain (cgroup-v2.rst, "Threads"), which may keep its processes, so nothing has to move
the supervisor first. Only the threaded controllers are used (`cpu`, `cpuset`).

- `pin_process(cpus)`: the whole worker process moves into `BASE/sl-cpus-PID` with
  `cpuset.cpus` = cpus; sched_setaffinity where that is not possible (no cgroup v2, no cpuset
  controller in the base, no write access). Returns a line saying which, for the log.
- `ThreadGroup.enter(cpu_max=(quota_us, period_us))`: the calling thread moves into
  `THREAD_CGROUP/sl-budget-TID` with that `cpu.max`; `leave()` moves it back and removes the group.

A machine shows cgroup v2 with these controllers only when the v1 hierarchies do not hold them
(and a unit with `Delegate=yes` makes the node's subtree writable). The paths are found from
/proc/self/mountinfo and /proc/thread-self/cgroup; `configure(root=...)` points the module at
another tree (tests use a directory of plain files shaped like cgroupfs).
"""
from __future__ import annotations

import os
import threading
from typing import List, Optional

CPU_MAX_MIN_QUOTA_US = 1000  # the kernel refuses a cpu.max quota under 1 ms

_root: Optional[str] = None     # cgroup2 mount point (None: find it)
_cg_file = "/proc/thread-self/cgroup"
_lock = threading.Lock()


class CgroupUnavailable(Exception):
    """This mechanism cannot be used here; the text says why (it goes into the log)."""


def configure(root: Optional[str] = None, cgroup_file: Optional[str] = None) -> None:
    """Use another cgroup2 root and /proc/.../cgroup file (tests); None restores the defaults."""
    global _root, _cg_file
    _root = root
    _cg_file = cgroup_file or "/proc/thread-self/cgroup"


def mount_point() -> Optional[str]:
    """Where cgroup2 is mounted, or None."""
    if _root is not None:
        return _root
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                if right.split(" ", 1)[0] == "cgroup2":
                    return left.split()[4]
    except OSError:
        pass
    return None


def current_dir() -> str:
    """The cgroup2 directory of the calling thread; CgroupUnavailable when there is none."""
    root = mount_point()
    if root is None:
        raise CgroupUnavailable("no cgroup v2 hierarchy is mounted")
    try:
        with open(_cg_file) as f:
            for line in f:
                if line.startswith("0::"):
                    rel = line[3:].strip().split(" ")[0]  # "/a/b" (a trailing " (deleted)" dropped)
                    return os.path.join(root, rel.lstrip("/"))
    except OSError as e:
        raise CgroupUnavailable(f"cannot read {_cg_file}: {e.strerror}") from None
    raise CgroupUnavailable(f"this process is in no cgroup v2 group ({_cg_file} has no 0:: line)")


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError as e:
        raise CgroupUnavailable(f"cannot read {path}: {e.strerror}") from None


def _write(path: str, value: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError as e:
        raise CgroupUnavailable(f"cannot write {value!r} to {path}: {e.strerror}") from None


def _threaded_child(base: str, name: str, controller: str, also: tuple[str, ...] = ()) -> str:
    """BASE/name as a threaded cgroup with `controller` enabled for it (and those of `also` that
    the base has); its path."""
    have = _read(os.path.join(base, "cgroup.controllers")).split()
    if controller not in have:
        raise CgroupUnavailable(f"no {controller} controller in {base} (controllers: {' '.join(have) or 'none'}; "
                                "on a cgroup v1 or hybrid machine the v1 hierarchy holds it)")
    if not os.access(base, os.W_OK):
        raise CgroupUnavailable(f"{base} is not writable by this process (delegate it, e.g. systemd Delegate=yes)")
    child = os.path.join(base, name)
    with _lock:
        try:
            os.makedirs(child, exist_ok=True)
        except OSError as e:
            raise CgroupUnavailable(f"cannot create {child}: {e.strerror}") from None
        type_file = os.path.join(child, "cgroup.type")
        if not os.path.exists(type_file) or _read(type_file) != "threaded":
            _write(type_file, "threaded")
        sub = os.path.join(base, "cgroup.subtree_control")
        enabled = _read(sub).split() if os.path.exists(sub) else []
        for c in (controller,) + tuple(x for x in also if x in have):
            if c not in enabled:
                _write(sub, f"+{c}")
    return child


def _remove_empty(path: str) -> None:
    try:
        os.rmdir(path)
    except OSError:
        pass  # still populated or already gone; an empty group costs nothing


def _sweep(base: str, prefix: str) -> None:
    """Remove groups this node left behind for processes/threads that are gone."""
    try:
        names = os.listdir(base)
    except OSError:
        return
    for n in names:
        if n.startswith(prefix):
            ident = n[len(prefix):]
            if ident.isdigit() and not os.path.exists(f"/proc/{ident}"):
                _remove_empty(os.path.join(base, n))


def pin_process(cpus: List[int]) -> str:
    """Restrict this whole process to `cpus`; the line for the log says by which mechanism."""
    text = ",".join(str(c) for c in sorted(cpus))
    try:
        base = current_dir()
        _sweep(base, "sl-cpus-")
        # cpu too where the base has it: CPU budgets of module threads nest below this group
        child = _threaded_child(base, f"sl-cpus-{os.getpid()}", "cpuset", also=("cpu",))
        _write(os.path.join(child, "cpuset.cpus"), text)
        _write(os.path.join(child, "cgroup.procs"), str(os.getpid()))
        return f"pinned to CPUs {text} by cgroup v2 cpuset ({child})"
    except CgroupUnavailable as e:
        os.sched_setaffinity(0, cpus)
        return f"pinned to CPUs {text} by sched_setaffinity (cgroup v2 cpuset: {e})"


class ThreadGroup:
    """The calling thread inside its own threaded cgroup (for cpu.max)."""

    def __init__(self, base: str, path: str, tid: int) -> None:
        self.base, self.path, self.tid = base, path, tid

    @classmethod
    def enter(cls, cpu_max: tuple[int, int]) -> "ThreadGroup":
        quota, period = cpu_max
        if quota < CPU_MAX_MIN_QUOTA_US:
            raise CgroupUnavailable(f"quota {quota} us is under the kernel's minimum of {CPU_MAX_MIN_QUOTA_US} us")
        tid = threading.get_native_id()
        base = current_dir()
        _sweep(base, "sl-budget-")
        child = _threaded_child(base, f"sl-budget-{tid}", "cpu")
        try:
            _write(os.path.join(child, "cpu.max"), f"{quota} {period}")
            _write(os.path.join(child, "cgroup.threads"), str(tid))
        except CgroupUnavailable:
            _remove_empty(child)
            raise
        return cls(base, child, tid)

    def leave(self) -> None:
        """Back into the base group (call on the same thread); the group is removed."""
        try:
            _write(os.path.join(self.base, "cgroup.threads"), str(self.tid))
        except CgroupUnavailable:
            pass
        _remove_empty(self.path)
