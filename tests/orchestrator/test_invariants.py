"""Random sequences of protocol messages keep the orchestrator's invariants, and the state it
reloads from SQLite after a restart is the state it had in memory."""
from __future__ import annotations

import shutil
import tempfile
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.wire import envelope
from orchestrator.model import ALIVE, EXITING, KILLED, NOT_DEAD, QUEUED, RUNTIME
from tests.orchestrator.test_core import R, Harness

RTS = ["rt-a", "rt-b", "rt-c"]
CAPACITY = {"rt-a": 1, "rt-b": 2, "rt-c": 0}  # fixed per runtime: a re-registration may not shrink it under running modules
MODS = [f"mod-{i}" for i in range(12)]

ops = st.one_of(
    st.tuples(st.just("register"), st.sampled_from(RTS), st.sampled_from([100, 200])),
    st.tuples(st.just("create"), st.sampled_from(MODS), st.sampled_from([None, *RTS])),
    st.tuples(st.just("batch"), st.lists(st.sampled_from(MODS), min_size=1, max_size=5)),
    st.tuples(st.just("exited"), st.sampled_from(RTS), st.sampled_from(MODS)),
    st.tuples(st.just("delete"), st.sampled_from(MODS)),
    st.tuples(st.just("rt_delete"), st.sampled_from(RTS)),
    st.tuples(st.just("mgr_delete")),
    st.tuples(st.just("keepalive"), st.sampled_from(RTS)),
    st.tuples(st.just("time"), st.floats(0.0, 4.0)),
    st.tuples(st.just("restart")),
)


def apply(h: Harness, op: tuple[Any, ...]) -> None:
    kind = op[0]
    if kind == "register":
        h.manager()
        h.runtime(op[1], op[1], max_n=CAPACITY[op[1]], pid=op[2])
    elif kind == "create":
        h.create(op[1], parent=op[2])
    elif kind == "batch":
        h.send(f"{R}/proc/control", envelope("create_batch", {"modules": [{"uuid": u, "file": "f"} for u in op[1]]}))
    elif kind == "exited":
        h.exited(op[1], op[2])
    elif kind == "delete":
        h.send(f"{R}/proc/control", envelope("delete", {"type": "module", "uuid": op[1]}))
    elif kind == "rt_delete":
        h.send(f"{R}/proc/reg/{op[1]}", envelope("delete", {"type": "runtime", "uuid": op[1]}))
    elif kind == "mgr_delete":
        h.send(f"{R}/proc/reg/m-0001", envelope("delete", {"type": "manager", "uuid": "m-0001"}))
    elif kind == "keepalive":
        h.send(f"{R}/proc/keepalive/{op[1]}", envelope("update", {"type": "runtime", "uuid": op[1]}))
    elif kind == "time":
        h.now += op[1]
        h.o.tick()
    elif kind == "restart":
        h.restart()


def snapshot(h: Harness) -> dict[str, Any]:
    return {
        "nodes": {u: (n.status, sorted(n.children), list(n.queue), sorted(n.killed)) for u, n in h.o.nodes.items()},
        "mods": {u: (m.status, m.parent, m.seq) for u, m in h.o.mods.items()},
    }


def check(h: Harness) -> None:
    o = h.o
    placed: dict[str, str] = {}
    for rt in o.nodes.values():
        if rt.kind != RUNTIME:
            continue
        if rt.max_nmodules > 0:
            assert len(rt.children) <= rt.max_nmodules, rt
        if rt.alive and rt.queue:
            assert not rt.has_room(), f"{rt.uuid} has room while modules wait"
        if not rt.alive:
            assert not rt.children and not rt.queue
        for group, states in ((rt.children, (ALIVE, EXITING)), (rt.queue, (QUEUED,)), (rt.killed, (KILLED,))):
            for u in group:
                assert u not in placed, f"{u} in two places"
                placed[u] = rt.uuid
                assert o.mods[u].status in states and o.mods[u].parent == rt.uuid
    assert set(placed) == set(o.mods), "every module not dead is in exactly one runtime set"
    db = {row[1]: row[4] for row in h.store.load_live_modules()}
    assert db == {u: m.status for u, m in o.mods.items()}, "store and memory agree"
    assert all(m.status in NOT_DEAD for m in o.mods.values())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ops, min_size=1, max_size=40))
def test_invariants_hold_and_restart_reloads_the_same_state(seq: list[tuple[Any, ...]]) -> None:
    d = tempfile.mkdtemp(prefix="sl-orch-inv-")
    h = Harness(f"{d}/o.db")
    try:
        for op in seq:
            apply(h, op)
            h.out.clear()
            check(h)
        before = snapshot(h)
        h.restart()
        assert snapshot(h) == before
        assert [m for m in h.out if m[0] not in (f"{R}/proc/log", f"{R}/proc/log/orchestrator")] == []
    finally:
        h.store.close()
        shutil.rmtree(d, ignore_errors=True)
