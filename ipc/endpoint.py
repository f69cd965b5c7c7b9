"""Endpoints: the supervisor's `NodeIPC` (+ one `SupervisorEndpoint` per worker) and the
worker's `WorkerEndpoint`. See docs/ipc.md for the contract.

Every message travels in a ring (so control and data keep their order); queues carry only
doorbells. One shared up-queue serves all workers (POSIX queues are multi-producer safe),
plus one small down-queue per worker: with 10 x 16-byte queues a node of 64 runtimes uses
a few tens of KiB of the 819,200-byte per-user RLIMIT_MSGQUEUE.
"""
from __future__ import annotations

import itertools
import os
import struct
import threading
import time
from collections import deque
from typing import Any, Callable

from .backends import Backend, Queue, SharedBlock, get_backend
from .errors import ClosedError, IPCError
from .idle import DEFAULT_MAX_SPIN, ELSEWHERE, HERE, NONE, IdleStrategy
from .messages import Message
from .ring import DEFAULT_CAPACITY, STRONG_ORDER, Ring, ring_size

QUEUE_MESSAGES = 10  # the Linux default msg_max: the most a non-root user may ask for
QUEUE_MSGSIZE = 16
_BELL = struct.Struct("=H")  # doorbell payload: the worker slot

_live_sids: set[str] = set()  # sids owned by NodeIPC objects of this process
_sid_counter = itertools.count()


def names(sid: str, slot: int | None = None) -> dict[str, str]:
    """Object names of a node (slot None) or of one worker slot."""
    if slot is None:
        return {"node": f"/sl.{sid}.node", "up": f"/sl.{sid}.up"}
    return {"down": f"/sl.{sid}.{slot}.down", "tx": f"/sl.{sid}.{slot}.tx", "rx": f"/sl.{sid}.{slot}.rx"}


def _nothing() -> bool:
    return False


def _no_messages() -> list[Message]:
    return []


def _new_sid() -> str:
    n = next(_sid_counter)
    pid = os.getpid()
    return str(pid) if n == 0 else f"{pid}-{n}"


class SupervisorEndpoint:
    """The supervisor's end of one worker: writes its tx ring, reads its rx ring."""

    def __init__(self, node: "NodeIPC", slot: int, down: Queue, tx: SharedBlock, rx: SharedBlock, capacity: int) -> None:
        self.slot = slot
        self._node = node
        self._down = down
        self._tx_block, self._rx_block = tx, rx
        self.tx = Ring(tx.buf, f"ring {tx.name}", init=True, capacity=capacity)
        self.rx = Ring(rx.buf, f"ring {rx.name}", init=True, capacity=capacity, raw=rx.raw)
        self.credits = 0  # doorbell mode only: records announced but not read yet
        self.closed = False
        # has_input(): is there something to drain
        self.has_input: Callable[[], bool] = self._has_credits
        if STRONG_ORDER:  # the ring's own calls (one C call each with its C core, no Python frame):
            # send() is Ring.sender, has_input() the ring's pending(), drain() its read()
            self.send = self.tx.sender(self._down.send, b"\x01", f"endpoint of worker {slot} is closed")  # type: ignore[method-assign]
            self.has_input = self.rx.pending
            self.drain = self.rx.read  # type: ignore[method-assign]

    def _has_credits(self) -> bool:
        return self.credits > 0

    def send(self, h1: int, h2: int, payload: bytes = b"", timeout: float = 5.0) -> None:
        if self.closed:
            raise ClosedError(f"endpoint of worker {self.slot} is closed")
        wake = self.tx.write(h1, h2, payload, timeout)
        if not STRONG_ORDER:
            if not self._down.send(b"\x01", timeout):
                raise IPCError(f"worker {self.slot}: doorbell queue full for {timeout}s")
        elif wake and self._down.send(b"\x01"):  # full queue = doorbells already pending: fine
            self.tx.rung()

    def drain(self) -> list[Message]:
        if self.closed:
            return []
        if STRONG_ORDER:
            return self.rx.read()
        if not self.credits:
            return []
        msgs = self.rx.read(self.credits)
        self.credits -= len(msgs)
        return msgs

    def _close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.has_input = _nothing
        self.drain = _no_messages  # type: ignore[method-assign]
        self.tx.close()
        self.rx.close()
        self._down.close()
        self._tx_block.close()
        self._rx_block.close()


class NodeIPC:
    """The supervisor's IPC: the shared up-queue and, per worker slot, a queue and two rings."""

    def __init__(self, sid: str | None = None, backend: str = "posix", ring_capacity: int = DEFAULT_CAPACITY,
                 spin: float = DEFAULT_MAX_SPIN, idle: IdleStrategy | None = None) -> None:
        """`spin`: the idle strategy's spin cap in seconds (0: always sleep; workers get the same);
        `idle`: a strategy object instead (benchmarks)."""
        self.sid = sid or _new_sid()
        self.backend_name = backend
        self.backend: Backend = get_backend(backend)
        self.ring_capacity = ring_capacity
        self.spin = spin
        self.idle = idle if idle is not None else IdleStrategy(spin)
        self._rx_rings: tuple[Ring, ...] = ()
        self._tx_rings: tuple[Ring, ...] = ()
        self._bells_due = 0  # doorbells counted by after_wake(), not received yet
        self._owner = os.getpid()
        self.workers: dict[int, SupervisorEndpoint] = {}
        # The marker block is made first and unlinked last: /dev/mqueue is not always
        # mounted, so cleanup_stale() finds a node's queues by way of its /dev/shm names.
        self._marker = self.backend.create_shm(names(self.sid)["node"], 64)
        try:
            self._up = self.backend.create_queue(names(self.sid)["up"], QUEUE_MESSAGES, QUEUE_MSGSIZE)
        except BaseException:
            self._marker.close()
            self.backend.unlink_shm(names(self.sid)["node"])
            raise
        _live_sids.add(self.sid)
        self.closed = False

    # ---------------------------------------------------------- workers

    def add_worker(self, slot: int) -> SupervisorEndpoint:
        if self.closed:
            raise ClosedError("NodeIPC is closed")
        if slot in self.workers:
            raise IPCError(f"worker slot {slot} already has IPC objects; remove_worker() first")
        if not 0 <= slot <= 0xFFFF:
            raise ValueError(f"worker slot {slot} out of range")
        n = names(self.sid, slot)
        made: list[tuple[str, str]] = []
        try:
            # rings before the queue: a queue always has a /dev/shm name beside it (cleanup)
            tx = self.backend.create_shm(n["tx"], ring_size(self.ring_capacity))
            made.append(("s", n["tx"]))
            rx = self.backend.create_shm(n["rx"], ring_size(self.ring_capacity))
            made.append(("s", n["rx"]))
            down = self.backend.create_queue(n["down"], QUEUE_MESSAGES, QUEUE_MSGSIZE)
            made.append(("q", n["down"]))
            ep = SupervisorEndpoint(self, slot, down, tx, rx, self.ring_capacity)
        except BaseException:
            for kind, name in made:
                (self.backend.unlink_queue if kind == "q" else self.backend.unlink_shm)(name)
            raise
        self.workers[slot] = ep
        self._rings_changed()
        return ep

    def _rings_changed(self) -> None:
        self._rx_rings = tuple(ep.rx for ep in self.workers.values())
        self._tx_rings = tuple(ep.tx for ep in self.workers.values())

    def remove_worker(self, slot: int) -> None:
        ep = self.workers.pop(slot, None)
        if ep is not None:
            ep._close()
            self._rings_changed()
        if os.getpid() == self._owner:
            n = names(self.sid, slot)
            self.backend.unlink_queue(n["down"])
            self.backend.unlink_shm(n["rx"])
            self.backend.unlink_shm(n["tx"])

    def attach_args(self, slot: int) -> dict[str, Any]:
        """What a worker process (forked or exec'd) needs to attach to its slot."""
        return {"sid": self.sid, "slot": slot, "backend": self.backend_name, "spin": self.spin}

    # ---------------------------------------------------------- the loop

    def fileno(self) -> int:
        return self._up.fileno()

    @property
    def bells_due(self) -> int:
        """Doorbells of the last sleep episode still in the queue (`after_wake()` counted them)."""
        return self._bells_due

    def drain_doorbells(self) -> int:
        """Call after draining the rings, when the queue was readable or `bells_due`: consume its
        doorbells without blocking; returns how many. On x86-64 these are exactly the doorbells
        `after_wake()` counted (one receive each, none that finds the queue empty); with none
        counted, a readable queue holds one left over (a stale one) and one receive takes it.
        Taking them here rather than in `after_wake()` keeps that syscall off the message's path."""
        if STRONG_ORDER:
            due = self._bells_due
            if due:
                self._bells_due = 0
                got = 0
                while got < due and self._up.receive(0) is not None:
                    got += 1
                return got
            return 1 if self._up.receive(0) is not None else 0
        n = 0
        while True:
            bell = self._up.receive(0)
            if bell is None:
                return n
            n += 1
            if not STRONG_ORDER and len(bell) == _BELL.size:
                ep = self.workers.get(_BELL.unpack(bell)[0])
                if ep is not None:
                    ep.credits += 1

    def _rx_pending(self) -> bool:
        for r in self._rx_rings:
            if r.pending():
                return True
        return False

    # the idle strategy's view of the workers (ipc.idle.Peers)
    def announce(self, cpu: int) -> None:
        for r in self._rx_rings:
            r.set_cpu(cpu)

    def state(self, cpu: int) -> int:
        st = NONE
        for r in self._tx_rings:
            if r.consumer_busy():
                if r.consumer_cpu() != cpu:  # unknown (-1): it never idled, so it is busy somewhere
                    return ELSEWHERE
                st = HERE
        return st

    def before_sleep(self) -> bool:
        """Nothing left to do: spin if the idle strategy says so (ipc/idle.py), else mark every
        rx ring's consumer asleep. True when something is pending (then do not block). Always
        call after_wake() after it, also when it returned True."""
        if self.idle.max_spin > 0 and self.idle.spin(self._rx_pending, self):
            return True
        pending = False
        for r in self._rx_rings:
            if r.mark_sleeping():
                pending = True
        return pending

    def after_wake(self) -> None:
        """Mark every rx ring awake and count the doorbells that were rung meanwhile (no syscall:
        `drain_doorbells()` takes exactly those after the rings are drained)."""
        n = 0
        for r in self._rx_rings:
            if r.mark_awake():
                n += 1
        self.idle.woke()
        if n and STRONG_ORDER:
            self._bells_due += n

    # ---------------------------------------------------------- lifetime

    def close(self) -> None:
        """Unlink every object of this node (in the owning process; elsewhere only let go)."""
        if self.closed:
            return
        self.closed = True
        owner = os.getpid() == self._owner
        for slot in list(self.workers):
            if owner:
                self.remove_worker(slot)
            else:
                self.workers.pop(slot)._close()
        self._up.close()
        self._marker.close()
        self.idle.close()
        if owner:
            self.backend.unlink_queue(names(self.sid)["up"])
            self.backend.unlink_shm(names(self.sid)["node"])
            _live_sids.discard(self.sid)

    def __enter__(self) -> "NodeIPC":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # last resort; explicit close() is the rule
        try:
            if not self.closed and os.getpid() == self._owner:
                self.close()
        except Exception:
            pass


class WorkerEndpoint:
    """A worker's end: reads its tx ring (sleeping on its down-queue), writes its rx ring."""

    def __init__(self, sid: str, slot: int, backend: str = "posix", spin: float = DEFAULT_MAX_SPIN,
                 idle: IdleStrategy | None = None) -> None:
        self.sid, self.slot, self.spin = sid, slot, spin
        self.idle = idle if idle is not None else IdleStrategy(spin)
        be = get_backend(backend)
        n = names(sid, slot)
        self._down = be.open_queue(n["down"])
        self._up = be.open_queue(names(sid)["up"])
        self._in_block = be.open_shm(n["tx"])
        self._out_block = be.open_shm(n["rx"])
        self.inbox = Ring(self._in_block.buf, f"ring {n['tx']}", raw=self._in_block.raw)
        self.outbox = Ring(self._out_block.buf, f"ring {n['rx']}")
        self._bell = _BELL.pack(slot)
        self._credits = 0
        self._pending: deque[Message] = deque()
        self.closed = False
        if STRONG_ORDER:  # send() as one C call when the ring has its C core (ipc/ring.py Ring.sender)
            self.send = self.outbox.sender(self._up.send, self._bell, f"worker endpoint {sid}.{slot} is closed")  # type: ignore[method-assign]

    @classmethod
    def attach(cls, sid: str, slot: int, backend: str = "posix", spin: float = DEFAULT_MAX_SPIN,
               idle: IdleStrategy | None = None) -> "WorkerEndpoint":
        return cls(sid, slot, backend, spin, idle)

    def send(self, h1: int, h2: int, payload: bytes = b"", timeout: float = 5.0) -> None:
        if self.closed:
            raise ClosedError(f"worker endpoint {self.sid}.{self.slot} is closed")
        wake = self.outbox.write(h1, h2, payload, timeout)
        if not STRONG_ORDER:
            if not self._up.send(self._bell, timeout):
                raise IPCError(f"supervisor doorbell queue full for {timeout}s")
        elif wake and self._up.send(self._bell):
            self.outbox.rung()

    def _read(self) -> list[Message]:
        if STRONG_ORDER:
            return self.inbox.read()
        while True:  # doorbell mode: one record per doorbell
            bell = self._down.receive(0)
            if bell is None:
                break
            self._credits += 1
        if not self._credits:
            return []
        msgs = self.inbox.read(self._credits)
        self._credits -= len(msgs)
        return msgs

    def drain(self) -> list[Message]:
        """Everything that is there now; never blocks."""
        if self.closed:
            raise ClosedError(f"worker endpoint {self.sid}.{self.slot} is closed")
        out = list(self._pending)
        self._pending.clear()
        out.extend(self._read())
        return out

    def recv(self, timeout: float | None = None) -> Message | None:
        """The next message, or None after `timeout` seconds (None: wait forever)."""
        if self.closed:
            raise ClosedError(f"worker endpoint {self.sid}.{self.slot} is closed")
        if self._pending:
            return self._pending.popleft()
        deadline = None if timeout is None else time.monotonic() + timeout
        inbox, down, idle = self.inbox, self._down, self.idle
        spun = False
        while True:
            self._pending.extend(self._read())
            if self._pending:
                return self._pending.popleft()
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            if STRONG_ORDER:
                if not spun and idle.max_spin > 0 and threading.active_count() == 1:
                    spun = True  # one spin per recv(): after it, sleep
                    if idle.spin(inbox.pending, self):
                        continue
                if inbox.mark_sleeping():  # a record came meanwhile: do not block
                    if inbox.mark_awake():
                        down.receive(0)  # the producer rang for it: take that doorbell now
                    idle.woke()
                    continue
                bell = down.receive(left)
                if inbox.mark_awake() and bell is None:
                    down.receive(0)  # rung just as the wait timed out
                # Exactly this episode's doorbell was taken (one producer, one doorbell per
                # episode, see ipc/ring.py): no receive until EAGAIN on the way out. What woke
                # us is returned at once (the loop's first steps again, minus their frames).
                msgs = inbox.read()
                idle.woke()
                if msgs:
                    if len(msgs) > 1:
                        self._pending.extend(msgs[1:])
                    return msgs[0]
            else:
                bell = self._down.receive(left)
                if bell is not None:
                    self._credits += 1

    def fileno(self) -> int:
        return self._down.fileno()

    # the idle strategy's view of the supervisor (ipc.idle.Peers)
    def announce(self, cpu: int) -> None:
        self.inbox.set_cpu(cpu)

    def state(self, cpu: int) -> int:
        out = self.outbox
        if not out.consumer_busy():
            return NONE
        c = out.consumer_cpu()
        return ELSEWHERE if c != cpu else HERE  # unknown (-1): it never idled: busy somewhere

    def before_sleep(self) -> bool:
        """For a worker with its own selector: spin or mark asleep; True = do not block.
        Always call after_wake() after it."""
        if self._pending:
            return True
        if not STRONG_ORDER:
            return self._credits > 0
        if self.idle.max_spin > 0 and threading.active_count() == 1 and self.idle.spin(self.inbox.pending, self):
            return True
        return self.inbox.mark_sleeping()

    def after_wake(self, readable: bool = True) -> None:
        """Mark awake; take this episode's doorbell, or one stale one when the queue was
        `readable` (as the selector said) without a doorbell of this episode."""
        rung = self.inbox.mark_awake()
        self.idle.woke()
        if STRONG_ORDER and (rung or readable):
            self._down.receive(0)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.inbox.close()
        self.outbox.close()
        self.idle.close()
        for obj in (self._in_block, self._out_block, self._down, self._up):
            obj.close()

    def __enter__(self) -> "WorkerEndpoint":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
