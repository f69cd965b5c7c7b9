"""The adaptive idle strategy (ipc/idle.py): its decisions as pure logic (peers behind the small
`Peers` seam), then real forked processes over real queues and rings: doorbells counted
(no stale ones, one receive per wake-up), and what an idle endpoint costs in CPU."""
from __future__ import annotations

import os
import selectors
import struct
import time

import posix_ipc
import pytest

from ipc import NodeIPC, WorkerEndpoint, names
from ipc.idle import DEFAULT_MAX_SPIN, ELSEWHERE, HERE, NONE, WINDOW, IdleStrategy
from ipc.messages import MGR_STOP, ctrl
from tests.ipc.test_endpoint import fork_child, serve_until_stop, wait_child


class FakePeers:
    def __init__(self, state: int) -> None:
        self.st = state
        self.announced: list[int] = []

    def announce(self, cpu: int) -> None:
        self.announced.append(cpu)

    def state(self, cpu: int) -> int:
        return self.st


def teach(s: IdleStrategy, wait: float) -> None:
    for _ in range(WINDOW):
        s._remember(wait)


def test_a_fresh_or_idle_strategy_does_not_spin() -> None:
    s = IdleStrategy(cpus=2)
    assert s.budget() == 0.0  # starts as "idle"
    teach(s, 1e-3)  # waits longer than the cap: sleeping is as good
    assert s.budget() == 0.0
    assert s.spin(lambda: False, FakePeers(ELSEWHERE)) is False
    assert s.sleeps == 1 and s.misses == 0


def test_short_waits_give_a_budget_capped_at_max_spin() -> None:
    s = IdleStrategy(100e-6, cpus=2)
    teach(s, 10e-6)
    assert 20e-6 <= s.budget() <= 25e-6
    teach(s, 90e-6)
    assert s.budget() == pytest.approx(100e-6)


def test_spin_off_one_cpu_and_fixed() -> None:
    off = IdleStrategy(0)
    teach(off, 1e-6)
    assert off.budget() == 0.0 and not off.enabled
    one = IdleStrategy(cpus=1)
    teach(one, 1e-6)
    assert one.budget() == 0.0  # with one CPU a spin only keeps the peer from running
    fixed = IdleStrategy(50e-6, fixed=True)
    assert fixed.budget() == 50e-6
    with pytest.raises(ValueError, match="spin must be >= 0"):
        IdleStrategy(-1)


def test_spin_depends_on_where_the_peer_is() -> None:
    s = IdleStrategy(cpus=2)
    teach(s, 5e-6)
    # the peer sleeps with nothing to read: nothing can come
    p = FakePeers(NONE)
    assert s.spin(lambda: True, p) is False and s.sleeps == 1 and len(p.announced) == 1
    # the busy peer last idled on our CPU: spinning would keep it from running
    assert s.spin(lambda: True, FakePeers(HERE)) is False and s.same_cpu == 1
    # busy on another CPU: spin and catch the message
    calls = iter([False] * 20 + [True])
    assert s.spin(lambda: next(calls), FakePeers(ELSEWHERE)) is True and s.spins == 1
    # nothing comes within the budget: give up and sleep
    t0 = time.monotonic()
    assert s.spin(lambda: False, FakePeers(ELSEWHERE)) is False and s.misses == 1
    assert time.monotonic() - t0 < 0.05


def test_peer_going_to_sleep_ends_the_spin() -> None:
    s = IdleStrategy(0.5, cpus=2)
    teach(s, 0.2)
    p = FakePeers(ELSEWHERE)
    n = 0

    def ready() -> bool:
        nonlocal n
        n += 1
        if n == 100:
            p.st = NONE
        return False

    t0 = time.monotonic()
    assert s.spin(ready, p) is False
    assert time.monotonic() - t0 < 0.2  # far less than the 0.4 s budget


class CountingQueue:
    """A real queue with its receive() calls counted (the seam is the endpoint's attribute)."""

    def __init__(self, q: object) -> None:
        self.q = q
        self.receives = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.q, name)

    def receive(self, timeout: float | None) -> bytes | None:
        self.receives += 1
        return self.q.receive(timeout)  # type: ignore[attr-defined, no-any-return]


def queue_depth(name: str) -> int:
    q = posix_ipc.MessageQueue(name)
    try:
        return int(q.current_messages)
    finally:
        q.close()


@pytest.mark.parametrize("spin", [0.0, DEFAULT_MAX_SPIN])
def test_ping_pong_leaves_no_stale_doorbells_and_receives_once_per_wake_up(spin: float) -> None:
    rounds = 2000
    with NodeIPC(ring_capacity=1 << 16, spin=spin) as node:
        ep = node.add_worker(0)
        up = CountingQueue(node._up)
        node._up = up  # type: ignore[assignment]

        def child() -> int:
            w = WorkerEndpoint.attach(node.sid, 0, spin=spin)
            node.close()
            down = CountingQueue(w._down)
            w._down = down  # type: ignore[assignment]
            served = serve_until_stop(w, lambda m: w.send(0, 1, m.payload))
            if served is None:
                return 3
            w.send(ctrl(0), 0, struct.pack("=II", served, down.receives))
            return 0

        pid = fork_child(child)
        sel = selectors.DefaultSelector()
        sel.register(node.fileno(), selectors.EVENT_READ)
        wakeups = 0

        def reply() -> bytes:
            nonlocal wakeups
            while True:
                got = ep.drain()
                if got:
                    assert len(got) == 1
                    return got[0].payload
                events = sel.select(0 if node.before_sleep() else 10)
                node.after_wake()
                if events:
                    wakeups += 1
                    node.drain_doorbells()

        for i in range(rounds):
            ep.send(0, 1, struct.pack("=I", i))
            assert reply() == struct.pack("=I", i)
        ep.send(ctrl(0), MGR_STOP)
        served, child_receives = struct.unpack("=II", reply())
        assert wait_child(pid) == 0
        assert served == rounds
        # every doorbell was taken: none left in either queue
        assert queue_depth(names(node.sid)["up"]) == 0
        assert queue_depth(names(node.sid, 0)["down"]) == 0
        # one receive per doorbell, no "receive until EAGAIN": at most one per round trip and
        # side (a few spares for the rare race of ipc/ring.py), and one per supervisor wake-up
        assert child_receives <= rounds + 1 + rounds // 100
        assert up.receives <= wakeups + rounds // 100 + 1
        if spin == 0:
            assert child_receives >= rounds // 2  # it really slept: the counting saw the doorbells
        sel.close()


def test_an_idle_worker_endpoint_costs_no_cpu() -> None:
    with NodeIPC(ring_capacity=1 << 16) as node:
        ep = node.add_worker(0)
        r, w = os.pipe()

        def child() -> int:
            os.close(r)
            we = WorkerEndpoint.attach(node.sid, 0)
            node.close()
            for i in range(40):  # a short busy exchange first: the strategy learns to spin
                we.send(0, 1, b"x")
                assert we.recv(5) is not None
            t0, c0 = time.monotonic(), time.process_time()
            while time.monotonic() - t0 < 1.5:  # then nothing arrives
                we.recv(0.1)
            os.write(w, struct.pack("=d", (time.process_time() - c0) / (time.monotonic() - t0)))
            return 0

        pid = fork_child(child)
        os.close(w)
        for _ in range(40):
            deadline = time.monotonic() + 5
            while not ep.drain():
                assert time.monotonic() < deadline
                node.before_sleep()
                node.after_wake()
            ep.send(0, 1, b"y")
        share = struct.unpack("=d", os.read(r, 8))[0]
        os.close(r)
        assert wait_child(pid) == 0
        assert share < 0.03, f"an idle endpoint used {share:.1%} of a CPU"
