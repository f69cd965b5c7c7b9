"""The idle strategy of an IPC consumer: spin while the next message is close, else sleep.

A consumer that sleeps on its doorbell queue costs, per sleep episode, one `mq_timedsend` for
its producer and one wake-up for itself (a cross-CPU wake-up and a schedule: 20-40 us on the
2-vCPU VMs this runs on, most of an IPC round trip). A consumer that polls its ring while the
next message is about to arrive pays neither. But a spin is only worth it when:

1. messages have been arriving close together: the spin budget is taken from the recent waits
   (time from "nothing to do" to "something arrived"): `SPIN_FACTOR` x their 75th percentile,
   capped at `max_spin`, and 0 when that percentile is above the cap. An idle node therefore
   never spins (its waits are seconds long) and costs nothing;
2. a peer can produce: it has unread input or is awake (not asleep on its own doorbell). A
   peer asleep with nothing to read sends nothing; spinning for it is waste;
3. that peer runs on *another* CPU. Each consumer publishes the CPU it idles on in the ring it
   reads (`Ring.set_cpu`, `sched_getcpu()` through the vDSO, ~0.2 us); a spinner whose peer
   last ran on its own CPU would only keep the peer from running (on a loaded 2-vCPU machine
   the scheduler often packs both ends of an exchange on one CPU: a fixed 200 us spin then
   made the ping-pong p50 425 us instead of 13 us), so it sleeps at once: a same-CPU
   doorbell wake-up is cheap (~6 us). On a machine with one CPU it never spins.
   We do not spin with `sched_yield()` for a same-CPU peer: a yield can hand the CPU to an
   unrelated task for its whole slice (milliseconds), while a sleeper on a doorbell is woken
   (and preempts) within microseconds.
4. (worker side) no other Python thread runs in the process: a spinning loop thread holds the
   GIL, and module threads need it for every host call (publish, stdout); `WorkerEndpoint` asks
   `threading.active_count()` before each spin. The supervisor is single-threaded.

`IdleStrategy(max_spin=0)` turns spinning off (always sleep: start.py `--spin 0`);
`fixed=True` spins the whole `max_spin` every time without any of the checks (benchmarks only).
"""
from __future__ import annotations

import ctypes
import os
import time
from typing import Callable, Protocol

DEFAULT_MAX_SPIN = 200e-6  # seconds: the most one idle episode spins (start.py --spin)
SPIN_FACTOR = 2.0          # spin up to this many times the typical recent wait
WINDOW = 16                # recent waits remembered
PEER_CHECK_EVERY = 8       # polls between two peer checks during a spin

# peer states (Peers.state)
NONE, ELSEWHERE, HERE = 0, 1, 2

_monotonic = time.monotonic


def _cpu_getter() -> Callable[[], int]:
    try:
        f = ctypes.CDLL(None, use_errno=True).sched_getcpu
        f.restype = ctypes.c_int
        f.argtypes = []
        if f() >= 0:
            return f
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        pass
    return lambda: -1


current_cpu = _cpu_getter()


def online_cpus() -> int:
    """CPUs of the machine (not this process's affinity: a peer pinned elsewhere counts)."""
    return os.cpu_count() or 1


class Peers(Protocol):
    """The processes that write to a consumer, as its idle strategy sees them."""

    def announce(self, cpu: int) -> None:
        """Publish the CPU this consumer idles on."""

    def state(self, cpu: int) -> int:
        """NONE: no peer can send now; ELSEWHERE: one is busy on another CPU than `cpu`;
        HERE: busy ones last idled on `cpu`. A peer that never idled counts as ELSEWHERE."""


class IdleStrategy:
    """Decides, each time a consumer runs out of messages, whether and how long to spin.

    Use: `if strategy.spin(ready, peers): continue` (something arrived), else mark the ring
    asleep and block; after any wake-up call `woke()` so the wait is remembered.
    """

    def __init__(self, max_spin: float = DEFAULT_MAX_SPIN, *, fixed: bool = False, cpus: int | None = None) -> None:
        if not max_spin >= 0:
            raise ValueError(f"spin must be >= 0 seconds, got {max_spin}")
        self.max_spin = max_spin
        self.fixed = fixed
        self.cpus = cpus if cpus is not None else online_cpus()
        self._waits: list[float] = [1.0] * WINDOW  # start as "idle": no spinning until waits are short
        self._i = 0
        self._idle_since = 0.0
        # counters (bench/ipc.py and docs/performance.md read them)
        self.spins = 0       # episodes that spun and caught a message
        self.misses = 0      # episodes that spun and then slept anyway
        self.sleeps = 0      # episodes that slept without spinning
        self.same_cpu = 0    # of those, because the busy peer shares our CPU

    @property
    def enabled(self) -> bool:
        return self.max_spin > 0

    def budget(self) -> float:
        """Seconds worth spinning now from the recent waits (0: sleep at once)."""
        if self.max_spin <= 0:
            return 0.0
        if self.fixed:
            return self.max_spin
        if self.cpus < 2:
            return 0.0
        w = sorted(self._waits)[(WINDOW * 3) // 4]
        if w > self.max_spin:
            return 0.0
        return min(self.max_spin, SPIN_FACTOR * w + 2e-6)

    def spin(self, ready: Callable[[], bool], peers: Peers | None = None) -> bool:
        """Poll `ready()` while it is worth it; True when it turned true (do not sleep)."""
        now = _monotonic()
        self._idle_since = now
        cpu = current_cpu()
        if peers is not None:
            peers.announce(cpu)
        b = self.budget()
        if b <= 0:
            self.sleeps += 1
            return False
        fixed = self.fixed
        if not fixed and peers is not None:
            st = peers.state(cpu)
            if st != ELSEWHERE:
                self.sleeps += 1
                self.same_cpu += st == HERE
                return False
        end = now + b
        n = 0
        while True:
            if ready():
                self._remember(_monotonic() - now)
                self.spins += 1
                return True
            n += 1
            if n % PEER_CHECK_EVERY == 0:
                if _monotonic() >= end:
                    break
                if not fixed and peers is not None and peers.state(cpu) != ELSEWHERE:
                    break
        self.misses += 1
        return False

    def woke(self) -> None:
        """After a sleep (or a zero-timeout poll) ended: remember how long this wait was."""
        if self._idle_since:
            self._remember(_monotonic() - self._idle_since)
            self._idle_since = 0.0

    def _remember(self, wait: float) -> None:
        self._idle_since = 0.0
        self._waits[self._i] = wait
        self._i = (self._i + 1) % WINDOW

    def stats(self) -> dict[str, int]:
        return {"spins": self.spins, "misses": self.misses, "sleeps": self.sleeps, "same_cpu": self.same_cpu}

    def close(self) -> None:
        """Nothing to release (kept so that owners can close what they hold uniformly)."""
