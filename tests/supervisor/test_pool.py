"""The workers as a group (supervisor/pool.py): one SIGCHLD may stand for several deaths, a death
closes the worker's IPC and channels and decides its modules, FATAL deletes the runtime at the
orchestrator. Real rings (tests/supervisor/fakes.py), fake process syscalls."""
from __future__ import annotations

import signal

from common.schema import ModuleCreate
from common.topics import parse_grants
from ipc import messages
from supervisor.slots import ModuleRecord
from supervisor.pool import WorkerPool
from supervisor.registration import NodeRegistration
from supervisor.settings import RuntimeChoice, Settings
from supervisor.states import WorkerState
from tests.supervisor.fakes import REALM, Rig


class Reaper:
    """FakeOps.wait_any with deaths queued by the test."""

    def __init__(self) -> None:
        self.ended: list[tuple[int, int]] = []

    def __call__(self, block: bool) -> tuple[int, int] | None:
        return self.ended.pop(0) if self.ended else None


def make_pool(rig: Rig) -> tuple[WorkerPool, Reaper]:
    reaper = Reaper()
    rig.ops.wait_any = reaper  # type: ignore[method-assign]
    reg = NodeRegistration(rig.outbox, rig.workers, rig.ops, platform_extra={}, timeout=1.0, on_registered=lambda: None)
    settings = Settings(name="n", runtimes=[RuntimeChoice("test/echo", w.name) for w in rig.workers])
    pool = WorkerPool(settings, rig.workers, rig.ops, rig.outbox, rig.router, rig.modules, reg, lambda: [], lambda: None,
                      rig.node_ipc)
    return pool, reaper


def test_one_sigchld_reaps_every_dead_worker(rig: Rig) -> None:
    pool, reaper = make_pool(rig)
    a, b = rig.workers
    a.modules.add(ModuleRecord(0, "m-a", "mod-a", ModuleCreate(), parse_grants([{"path": "t", "mode": "r", "topic": "t/a"}])))
    rig.from_worker(0, messages.ctrl(0), messages.RT_OPEN, messages.encode_open(1, messages.FLAG_READ, "t"))
    assert rig.link.subscriptions == {"t/a": 0}
    assert a.pid is not None and b.pid is not None
    reaper.ended = [(a.pid, -9), (b.pid, 1), (99999, 0)]  # the last: not one of ours
    assert pool.reap() is True
    assert a.state is WorkerState.BACKOFF and b.state is WorkerState.BACKOFF
    assert a.ep is None and b.ep is None and pool.all_stopped
    assert rig.link.subscriptions == {}  # the dead worker's channels are closed
    exits = [m["data"] for m in rig.link.on(f"{REALM}/proc/control/rt-0")]
    assert exits[0]["uuid"] == "m-a" and exits[0]["status"]["reason"] == "crashed"
    assert pool.reap() is False


def test_fatal_deletes_the_runtime_at_the_orchestrator(rig: Rig) -> None:
    pool, reaper = make_pool(rig)
    w = rig.workers[0]
    w.policy = type(w.policy)(start_retries=1)
    assert w.pid is not None
    reaper.ended = [(w.pid, -9)]
    pool.reap()
    assert w.state is WorkerState.BACKOFF
    pool.start(w)  # new rings, a new (fake) process: STARTING
    assert w.state is WorkerState.STARTING and w.ep is not None and w.pid is not None
    reaper.ended = [(w.pid, 3)]  # a boot error before it was up: the one failed start allowed
    pool.reap()
    assert w.state is WorkerState.FATAL
    deletes = rig.link.on(f"{REALM}/proc/reg/rt-0")
    assert deletes and deletes[-1]["action"] == "delete" and deletes[-1]["data"]["type"] == "runtime"
    assert any("is FATAL; deleted at the orchestrator" in e for e in rig.errors())


def test_no_deadline_left_in_the_past_for_a_runtime_that_sends_no_keepalive(rig: Rig) -> None:
    """The loop sleeps until the earliest deadline: a keepalive due for a runtime that is down (BACKOFF,
    FATAL: tick() sends it none) would be a deadline in the past for as long as it is down."""
    pool, reaper = make_pool(rig)
    w = rig.workers[0]
    for x in rig.workers:
        x.next_keepalive = 5.0  # due long ago (monotonic seconds)
    reg = pool.registration
    assert reg.next_deadline() == 5.0
    assert w.pid is not None
    reaper.ended = [(w.pid, -9)]
    pool.reap()
    assert w.state is WorkerState.BACKOFF
    reg.tick(10.0)
    assert rig.workers[1].next_keepalive > 10.0  # the live one was sent and moved on
    assert w.next_keepalive == 5.0 and (reg.next_deadline() or 0.0) > 10.0


def test_stop_sends_mgr_stop_then_kill_all_sigkills_the_rest(rig: Rig) -> None:
    pool, reaper = make_pool(rig)
    pool.request_stop("SIGTERM")
    assert [(h1, h2) for h1, h2, _ in rig.to_worker(0)] == [(messages.ctrl(0), messages.MGR_STOP)]
    assert all(w.state is WorkerState.STOPPING for w in rig.workers)
    pids = [w.pid for w in rig.workers]
    reaper.ended = [(p, -9) for p in pids if p is not None]
    pool.kill_all()
    assert rig.ops.kills == [(p, signal.SIGKILL) for p in pids]
    assert all(w.state is WorkerState.STOPPED for w in rig.workers)
