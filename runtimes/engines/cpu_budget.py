"""CPU budgets of module runs: `args.resources {period, runtime}` (ns), `manage.py run -u/-t`.

A budget is applied to the thread that runs the module, by the best mechanism the machine offers
(the first that works, per run; the runtime's log says which and why the better ones were not used):

1. `cgroup v2 cpu.max`: the thread moves into a threaded child cgroup of the worker's cgroup whose
   `cpu.max` is "runtime period" (runtimes/cgroups.py). Needs a cgroup v2 hierarchy with the `cpu`
   controller that this process may write (a delegated subtree, e.g. systemd `Delegate=yes`), and
   a quota of at least 1 ms (the kernel's minimum). A cap, not a reservation: under load the
   module may get less than asked.
2. `SCHED_DEADLINE`: `sched_setattr(runtime, deadline = period, period)` on the thread; the
   kernel's constant bandwidth server gives it exactly `runtime` per `period`, also under load
   (it runs before every normal task). Needs CAP_SYS_NICE (root) and passes admission control
   only while all deadline threads of the machine stay under 95 % of its CPUs (EBUSY otherwise:
   that run falls back to 3). Hazard: a deadline thread that is throttled while it holds the GIL
   (in a host call: stdout, publish) stalls the worker's other threads until its next period;
   module code runs without the GIL, so this is rare and lasts at most `period - runtime`.
3. `epoch throttle`: the engine's epoch callback (wasmtime) pauses the thread once it has used
   its budget in the current period, measured with the thread's CPU clock. Periods are aligned
   to the start of the run and an overshoot (the callback only runs at epoch ticks) is carried
   as debt into the next periods, so the share holds on average at any period; the engine ticks
   at most every budget/4 (>= 0.5 ms) while a throttled run exists. Without the carry and with a
   fixed 5 ms tick, `-u 0.2` used to give 51 % at a 10 ms period.

`SL_CPU_BUDGET=cgroup|deadline|throttle` in the environment restricts the choice to one mechanism
(and the ones after it), for benchmarks and tests; `auto` (default) tries all in order.
"""
from __future__ import annotations

import ctypes
import errno
import os
import platform
import threading
import time
from typing import List, Optional

CGROUP = "cgroup v2 cpu.max"
DEADLINE = "SCHED_DEADLINE"
THROTTLE = "epoch throttle"
ORDER = [CGROUP, DEADLINE, THROTTLE]
_SETTING = {"auto": CGROUP, "cgroup": CGROUP, "deadline": DEADLINE, "throttle": THROTTLE}

_SCHED_OTHER = 0
_SCHED_DEADLINE = 6
_SCHED_FLAG_RESET_ON_FORK = 0x01
_SYS_SCHED_SETATTR = {"x86_64": 314, "amd64": 314, "aarch64": 274, "arm64": 274, "riscv64": 274,
                      "i386": 351, "i686": 351, "armv7l": 380, "ppc64le": 355, "s390x": 345}


class _SchedAttr(ctypes.Structure):
    _fields_ = [("size", ctypes.c_uint32), ("sched_policy", ctypes.c_uint32),
                ("sched_flags", ctypes.c_uint64), ("sched_nice", ctypes.c_int32),
                ("sched_priority", ctypes.c_uint32), ("sched_runtime", ctypes.c_uint64),
                ("sched_deadline", ctypes.c_uint64), ("sched_period", ctypes.c_uint64)]


_libc: Optional[ctypes.CDLL] = None
_deadline_unusable: Optional[str] = None  # why SCHED_DEADLINE cannot work in this process at all
_lock = threading.Lock()


def _sched_setattr(policy: int, runtime_ns: int = 0, period_ns: int = 0) -> int:
    """sched_setattr(2) on the calling thread; 0 or the errno."""
    global _libc
    nr = _SYS_SCHED_SETATTR.get(platform.machine().lower())
    if nr is None:
        return errno.ENOSYS
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    attr = _SchedAttr(ctypes.sizeof(_SchedAttr), policy,
                      _SCHED_FLAG_RESET_ON_FORK if policy == _SCHED_DEADLINE else 0, 0, 0,
                      runtime_ns, period_ns, period_ns)
    if _libc.syscall(nr, 0, ctypes.byref(attr), 0) == 0:
        return 0
    return ctypes.get_errno() or errno.EINVAL


def _deadline_limits() -> tuple[int, int]:
    """(min, max) period in ns that the kernel accepts for SCHED_DEADLINE."""
    def read(name: str, default: int) -> int:
        try:
            with open(f"/proc/sys/kernel/{name}") as f:
                return int(f.read()) * 1000
        except (OSError, ValueError):
            return default
    return read("sched_deadline_period_min_us", 100_000), read("sched_deadline_period_max_us", 4_000_000_000)


class Reservation:
    """A budget applied to the calling thread; `release()` (same thread) undoes it."""

    def __init__(self, mechanism: str, period_ns: int, runtime_ns: int, why: List[str]) -> None:
        self.mechanism = mechanism
        self.period_ns = period_ns
        self.runtime_ns = runtime_ns
        self.why_not = why  # why the better mechanisms were not used
        self.kernel = mechanism != THROTTLE  # enforced by the kernel: no throttling in the engine
        self._cgroup: object = None
        self._released = False

    def describe(self) -> str:
        text = (f"CPU budget {self.runtime_ns / 1e6:g} ms per {self.period_ns / 1e6:g} ms "
                f"({100.0 * self.runtime_ns / self.period_ns:.1f} %) by {self.mechanism}")
        return text + (f" ({'; '.join(self.why_not)})" if self.why_not else "")

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        if self.mechanism == DEADLINE:
            _sched_setattr(_SCHED_OTHER)
        elif self.mechanism == CGROUP and self._cgroup is not None:
            from runtimes import cgroups
            assert isinstance(self._cgroup, cgroups.ThreadGroup)
            self._cgroup.leave()


def reserve(period_ns: int, runtime_ns: int, setting: Optional[str] = None) -> Reservation:
    """Apply a budget of `runtime_ns` per `period_ns` to the calling thread (see module doc)."""
    global _deadline_unusable
    choice = (setting or os.environ.get("SL_CPU_BUDGET") or "auto").strip().lower()
    if choice not in _SETTING:
        raise ValueError(f"SL_CPU_BUDGET={choice!r}: use one of {', '.join(_SETTING)}")
    first = ORDER.index(_SETTING[choice])
    why: List[str] = []
    if first <= ORDER.index(CGROUP):
        from runtimes import cgroups
        if runtime_ns < cgroups.CPU_MAX_MIN_QUOTA_US * 1000:
            why.append(f"cgroup cpu.max: quota {runtime_ns / 1e6:g} ms is under the kernel's 1 ms minimum")
        else:
            try:
                group = cgroups.ThreadGroup.enter(cpu_max=(runtime_ns // 1000, period_ns // 1000))
                r = Reservation(CGROUP, period_ns, runtime_ns, why)
                r._cgroup = group
                return r
            except cgroups.CgroupUnavailable as e:
                why.append(f"cgroup cpu.max: {e}")
    if first <= ORDER.index(DEADLINE):
        lo, hi = _deadline_limits()
        if _deadline_unusable is not None:
            why.append(f"SCHED_DEADLINE: {_deadline_unusable}")
        elif not lo <= period_ns <= hi:
            why.append(f"SCHED_DEADLINE: period {period_ns / 1e6:g} ms outside the kernel's {lo / 1e6:g}..{hi / 1e6:g} ms")
        elif runtime_ns < 1024:
            why.append("SCHED_DEADLINE: runtime under 1024 ns")
        else:
            err = _sched_setattr(_SCHED_DEADLINE, runtime_ns, period_ns)
            if err == 0:
                return Reservation(DEADLINE, period_ns, runtime_ns, why)
            text = f"{errno.errorcode.get(err, err)} {os.strerror(err)}"
            if err == errno.EBUSY:
                why.append(f"SCHED_DEADLINE: admission refused ({text}: the deadline threads of this machine would pass its limit)")
            else:
                with _lock:
                    _deadline_unusable = (f"not permitted ({text}; needs CAP_SYS_NICE)" if err == errno.EPERM
                                          else f"not available ({text})")
                why.append(f"SCHED_DEADLINE: {_deadline_unusable}")
    return Reservation(THROTTLE, period_ns, runtime_ns, why)


class Throttle:
    """The fallback (mechanism 3), called by the engine's epoch callback on the run's thread.

    Periods start at the run's start; the run may use `runtime` CPU seconds per period. When the
    use of the current period reaches it, `pause_for()` says how long to sleep: until the period
    in which the CPU used so far (overshoot included) is within budget again. Credit left unused
    in one period is not carried (a module that waited does not get a burst later).
    """

    def __init__(self, period_s: float, runtime_s: float, now: Optional[float] = None,
                 cpu: Optional[float] = None) -> None:
        self.period = period_s
        self.budget = runtime_s
        self.start = time.monotonic() if now is None else now
        self.cpu0 = time.thread_time() if cpu is None else cpu  # CPU time at "allowance 0"
        self.tick = max(0.0005, min(0.005, runtime_s / 4))  # the epoch tick this run wants

    def pause_for(self, now: float, cpu: float) -> float:
        """Seconds to pause now (0: go on)."""
        k = int((now - self.start) / self.period)  # index of the current period
        allowed = self.budget * (k + 1)  # CPU allowed by the end of this period
        used = cpu - self.cpu0
        if allowed - used > self.budget:  # unused credit of earlier periods: forfeit it
            self.cpu0 -= allowed - used - self.budget
            return 0.0
        if used < allowed:
            return 0.0
        # the first period in which `used` is within the allowance again
        k_ok = int(used / self.budget)
        return max(0.0, self.start + k_ok * self.period - now)
