"""The placement index (scheduler.py `Scheduler`) against the one-pass scan it replaces
(`scan_pick`), and the runtime name index (`Orchestrator.resolve_runtime`) against a scan: on random fleets and random histories (registrations, creates without a parent,
exits, deletes, runtime deaths and comebacks) every create is placed on the very runtime the scan
picks. Runs the real state machine over a real SQLite store (the Harness of test_core)."""
from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st

from common.wire import envelope
from orchestrator.model import ALIVE
from orchestrator.scheduler import Scheduler, scan_pick
from tests.orchestrator.test_core import R, Harness

API_SETS = [["wasm", "wasi"], ["wasm", "wasi", "channels", "stdout"], ["wasm", "wasi", "benchmarking"],
            ["wasm", "wasi", "stdio:out", "profile:benchmarking"], ["wasm"], ["wasm", "wasi", "profile:deployed"]]
MODULE_APIS = [[], ["wasi"], ["stdout"], ["stdio:out"], ["channels"], ["benchmarking"], ["profile:deployed"]]

op = st.one_of(
    st.tuples(st.just("reg"), st.integers(0, 5), st.integers(0, len(API_SETS) - 1), st.integers(0, 3)),
    st.tuples(st.just("create"), st.integers(0, len(MODULE_APIS) - 1), st.booleans(), st.integers(1, 4)),
    st.tuples(st.just("exit"), st.integers(0, 10_000)),
    st.tuples(st.just("delete"), st.integers(0, 10_000)),
    st.tuples(st.just("die"), st.integers(0, 5)),
    st.tuples(st.just("drain"), st.integers(0, 5)),
    st.tuples(st.just("unreg"), st.integers(0, 5)),
)


class Checked(Scheduler):
    """The index, checked against the scan at every pick (before the pick stamps its runtime)."""

    def __init__(self, h: Harness) -> None:
        super().__init__()
        self.h = h
        self.picks = 0
        self.wrong: list[str] = []  # (an assertion inside handle() would be caught and reported as an internal error)

    def pick(self, apis: frozenset[str], kind: str | None = None) -> Any:
        want = scan_pick(self.h.o.nodes.values(), apis, kind)
        got = super().pick(apis, kind)
        if got is not want:
            self.wrong.append(f"index picked {got and got.name}, the scan {want and want.name} (apis {sorted(apis)}, {kind})")
        self.picks += 1
        return got


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(op, min_size=5, max_size=80))
def test_the_index_picks_what_the_scan_picks(tmp_path_factory: Any, ops: list[tuple[Any, ...]]) -> None:
    h = Harness(str(tmp_path_factory.mktemp("idx") / "o.db"))
    try:
        h.o.scheduler = Checked(h)
        h.manager()
        n = 0
        for o in ops:
            if o[0] == "reg":
                # names shared by several uuids, and a uuid back under another name after its death
                h.runtime(f"rt-{o[1]}", f"r{(o[1] + o[2]) % 4}", max_n=o[3], apis=API_SETS[o[2]])
            elif o[0] == "create":
                args = {"repeat": 3} if o[2] and not o[1] else {}
                for _ in range(o[3]):
                    n += 1
                    h.create(f"m{n}", apis=MODULE_APIS[o[1]], args=args)
            elif o[0] == "drain":  # every module of one runtime ends: its load drops at once
                for m in [m for m in h.o.mods.values() if m.parent == f"rt-{o[1]}" and m.status == ALIVE]:
                    h.exited(m.parent or "", m.uuid)
            elif o[0] in ("exit", "delete"):
                running = [m for m in h.o.mods.values() if m.status == ALIVE] if o[0] == "exit" else list(h.o.mods.values())
                if running:
                    m = running[o[1] % len(running)]
                    if o[0] == "exit":
                        h.exited(m.parent or "", m.uuid)
                    else:
                        h.send(f"{R}/proc/control", envelope("delete", {"uuid": m.uuid}))
            elif o[0] == "die":
                rt = h.o.nodes.get(f"rt-{o[1]}")
                if rt is not None and rt.alive:
                    h.o._runtime_dead(rt)
            else:
                h.send(f"{R}/proc/reg/rt-{o[1]}", envelope("delete", {"type": "runtime", "uuid": f"rt-{o[1]}"}))
            internal = [m for m in h.errors() if m["description"].startswith("internal error")]
            assert internal == [] and h.o.scheduler.wrong == []
            for i in range(6):  # a parent by name: the name index answers as the scan in registration order
                want = next((n for n in h.o.nodes.values() if n.kind == "runtime" and n.alive and n.name == f"r{i}"), None)
                assert h.o.resolve_runtime(f"r{i}") is want
        # and after a restart (the index is rebuilt from the store)
        h.restart()
        h.o.scheduler = Checked(h)
        h.o._reload()
        for i in range(5):
            h.create(f"after{i}", apis=MODULE_APIS[i % len(MODULE_APIS)])
        assert h.o.scheduler.wrong == []
    finally:
        h.store.close()



def test_a_runtime_whose_modules_ended_since_the_last_pick_is_picked(tmp_path: Any) -> None:
    """The index must hear of a load that dropped between two picks (a stale entry would keep the
    runtime's old, higher load and send the next create elsewhere)."""
    h = Harness(str(tmp_path / "o.db"))
    try:
        h.o.scheduler = Checked(h)
        h.manager()
        for i in range(3):
            h.runtime(f"rt-{i}", f"r{i}")
        for i in range(11):  # 4, 4, 3: rt-0 was re-keyed at the last pick, with its load then
            h.create(f"m{i}")
        for m in [m for m in h.o.mods.values() if m.parent == "rt-0"]:
            h.exited("rt-0", m.uuid)
        h.take()
        h.create("next")
        assert h.creates("rt-0") == ["next"] and h.o.scheduler.wrong == []
    finally:
        h.store.close()
