"""Declared deployments in the state machine (orchestrator/deployments.py) over a real SQLite store:
messages fed as nodes send them, a settable clock (tests/orchestrator/test_deployments.py runs real nodes)."""
from __future__ import annotations

from collections import Counter
from typing import Any

import orjson

from common.wire import envelope
from orchestrator import views
from orchestrator.core import Orchestrator
from tests.orchestrator.test_core import Harness, R


class DHarness(Harness):
    def _make(self) -> Orchestrator:
        return Orchestrator(self.store, lambda t, p: self.out.append((t, orjson.loads(p))), realm=R, ka_interval=1.0,
                            clock=lambda: self.now, wallclock=lambda: self.now)

    def apply(self, *deps: dict[str, Any]) -> None:
        self.send(f"{R}/proc/control", envelope("apply_deployments", {"deployments": list(deps)}))

    def slots(self, name: str) -> dict[int, tuple[str, str]]:
        """slot -> (module uuid, runtime uuid) of the deployment's current modules that are not dead."""
        out = {}
        for s in self.o.deployments.deps[name].slots.values():
            m = self.o.mods.get(s.module) if s.module else None
            if m is not None:
                out[s.index] = (m.uuid, m.parent or "")
        return out

    def tick(self, dt: float = 0.0) -> None:
        self.now += dt
        self.o.tick(self.now)

    def events(self) -> list[str]:
        return [m[1]["data"]["step"] for m in self.take(f"{R}/proc/orchestrator/events")]


def fleet(tmp_path: Any) -> DHarness:
    h = DHarness(str(tmp_path / "o.db"))
    h.manager("m-1", "node1")
    h.manager("m-2", "node2")
    h.runtime("rt-1", "node1", parent="m-1")
    h.runtime("rt-2", "node2", parent="m-2")
    return h


def test_apply_spreads_scales_and_deletes(tmp_path: Any) -> None:
    h = fleet(tmp_path)
    h.apply({"name": "web", "file": "web.wasm", "count": 4, "args": "-p 80", "env": {"K": "secret"}})
    got = h.slots("web")
    assert sorted(got) == [0, 1, 2, 3]
    assert Counter(rt for _, rt in got.values()) == {"rt-1": 2, "rt-2": 2}
    creates = [m[1]["data"] for m in h.take(f"{R}/proc/control/") if m[1]["action"] == "create"]
    assert len(creates) == 4 and {c["name"] for c in creates} == {"web-0", "web-1", "web-2", "web-3"}
    assert creates[0]["args"]["argv"] == ["-p", "80"] and creates[0]["args"]["env"] == ["K=secret"]
    assert h.events().count("started") == 4
    h.apply({"name": "web", "file": "web.wasm", "count": 1, "args": "-p 80", "env": {"K": "secret"}})
    assert sorted(h.slots("web")) == [0]
    deletes = [m for m in h.take(f"{R}/proc/control/") if m[1]["action"] == "delete"]
    assert len(deletes) == 3
    code, body = views.route(h.o, "/api/deployments/web/", "")
    assert code == 200 and body["desired"] == 1 and body["spec"]["env"] == {"K": "(redacted)"}, body  # env values never shown
    h.send(f"{R}/proc/control", envelope("delete_deployment", {"name": "web"}))
    assert "web" not in h.o.deployments.deps
    h.send(f"{R}/proc/control", envelope("delete_deployment", {"name": "web"}))
    assert "no deployment named 'web'" in h.errors()[0]["description"]


def test_restart_with_backoff_and_policies(tmp_path: Any) -> None:
    h = fleet(tmp_path)
    h.apply({"name": "a", "file": "a.wasm", "restart": "always", "backoff": [1, 4]},
            {"name": "f", "file": "f.wasm", "restart": "on-failure"}, {"name": "n", "file": "n.wasm", "restart": "never"})
    mods = {n: h.slots(n)[0] for n in "afn"}
    for n, (u, rt) in mods.items():
        h.send(f"{R}/proc/control/{rt}", envelope("exited", {"uuid": u, "status": {"reason": "exited", "code": 0}}))
    h.tick(0.5)
    assert h.slots("a") == {} and h.slots("f") == {} and h.slots("n") == {}  # backoff: nothing yet
    h.tick(0.6)
    assert list(h.slots("a")) == [0] and h.slots("f") == {} and h.slots("n") == {}  # on-failure: exit 0 is done
    delays = []
    for _ in range(4):  # crashes in a row: 1, 2, 4, 4 s (max)
        u, rt = h.slots("a")[0]
        h.send(f"{R}/proc/control/{rt}", envelope("exited", {"uuid": u, "status": {"reason": "crashed", "code": None}}))
        t0 = h.now
        while not h.slots("a"):
            h.tick(0.25)
        delays.append(h.now - t0)
    assert delays == [2.0, 4.0, 4.0, 4.0], delays  # the first end (exit 0, at once) already counted 1 s
    assert h.o.deployments.deps["a"].slots[0].restarts == 5


def test_dead_runtime_moves_modules_and_back(tmp_path: Any) -> None:
    h = fleet(tmp_path)
    h.apply({"name": "d", "file": "d.wasm", "count": 2, "placement": {"runtimes": ["node1", "node2"]}},
            {"name": "pinned", "file": "p.wasm", "placement": {"runtimes": ["node1"]}})
    assert Counter(rt for _, rt in h.slots("d").values()) == {"rt-1": 1, "rt-2": 1}
    pinned = h.slots("pinned")[0]
    h.send(f"{R}/proc/reg/rt-1", envelope("delete", {"type": "runtime", "uuid": "rt-1", "name": "node1"}))
    h.tick(0.3)
    assert Counter(rt for _, rt in h.slots("d").values()) == {"rt-2": 2}
    assert h.slots("pinned")[0] == pinned and h.o.mods[pinned[0]].status == "K"  # nowhere else to go: waits
    h.take()
    h.runtime("rt-1", "node1", parent="m-1")  # back: the pinned one is resurrected, one of d moves back
    h.tick(0.3)
    h.tick(0.3)
    assert Counter(rt for _, rt in h.slots("d").values()) == {"rt-1": 1, "rt-2": 1}
    assert h.o.mods[pinned[0]].status == "A"
    assert "stopped" in h.events()


def test_survives_restart(tmp_path: Any) -> None:
    h = fleet(tmp_path)
    h.apply({"name": "x", "file": "x.wasm", "count": 3, "backoff": [2, 2]})
    before = h.slots("x")
    u, rt = before[1]
    h.send(f"{R}/proc/control/{rt}", envelope("exited", {"uuid": u, "status": {"reason": "crashed", "code": None}}))
    h.restart()
    assert h.o.deployments.deps["x"].slots[1].next_at == h.now + 2
    assert {i: v for i, v in h.slots("x").items()} == {0: before[0], 2: before[2]}
    h.tick(2.1)
    assert sorted(h.slots("x")) == [0, 1, 2] and h.slots("x")[1] != before[1]


def test_bad_spec_is_refused(tmp_path: Any) -> None:
    h = fleet(tmp_path)
    h.apply({"name": "bad name", "file": "x"})
    h.apply({"name": "ok", "file": "x", "restart": "sometimes"})
    errs = [e["description"] for e in h.errors()]
    assert "name must be" in errs[0] and "restart must be one of" in errs[1]
    assert not h.o.deployments.deps


def test_a_moved_module_goes_home(tmp_path: Any) -> None:
    h = fleet(tmp_path)
    h.manager("m-3", "node3")
    h.runtime("rt-3", "node3", parent="m-3")
    h.apply(*({"name": f"s{i}", "file": "s.wasm"} for i in range(3)))
    homes = {n: h.slots(n)[0][1] for n in ("s0", "s1", "s2")}
    assert sorted(homes.values()) == ["rt-1", "rt-2", "rt-3"]  # spread by load
    victim = homes["s0"]
    name = {"rt-1": "node1", "rt-2": "node2", "rt-3": "node3"}[victim]
    parent = {"rt-1": "m-1", "rt-2": "m-2", "rt-3": "m-3"}[victim]
    h.send(f"{R}/proc/reg/{victim}", envelope("delete", {"type": "runtime", "uuid": victim, "name": name}))
    h.tick(0.3)
    assert h.slots("s0")[0][1] != victim
    h.runtime(victim, name, parent=parent)
    h.tick(0.3)
    assert {n: h.slots(n)[0][1] for n in homes} == homes
    assert h.o.mods.get(h.slots("s0")[0][0]) is not None


def test_placement_by_kind_apis_and_platform(tmp_path: Any) -> None:
    h = DHarness(str(tmp_path / "o.db"))
    h.manager("m-1", "node1")
    h.send(f"{R}/proc/reg/rt-x86", envelope("create", {"type": "runtime", "uuid": "rt-x86", "name": "x86", "parent": "m-1",
                                                       "apis": ["wasm", "channels"], "platform": {"cpu": "x86_64"}}))
    h.send(f"{R}/proc/reg/rt-arm", envelope("create", {"type": "runtime", "uuid": "rt-arm", "name": "arm", "parent": "m-1",
                                                       "apis": ["wasm"], "platform": {"cpu": "aarch64"}}))
    h.send(f"{R}/proc/reg/rt-bench", envelope("create", {"type": "runtime", "uuid": "rt-bench", "name": "bench", "parent": "m-1",
                                                         "apis": ["benchmarking"], "platform": {"cpu": "aarch64"}}))
    h.apply({"name": "arm", "file": "a.wasm", "count": 2, "placement": {"platform": {"cpu": "aarch64"}}},
            {"name": "chan", "file": "c.wasm", "count": 2, "placement": {"apis": ["channels"]}},
            {"name": "bench", "file": "b.wasm", "placement": {"kind": "benchmark"}},
            {"name": "none", "file": "n.wasm", "placement": {"platform": {"cpu": "riscv64"}}})
    assert {rt for _, rt in h.slots("arm").values()} == {"rt-arm"}  # a plain module: never the benchmarking one
    assert {rt for _, rt in h.slots("chan").values()} == {"rt-x86"}
    assert {rt for _, rt in h.slots("bench").values()} == {"rt-bench"}
    assert h.slots("none") == {}
    assert "waiting" in h.events()
