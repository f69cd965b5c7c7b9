"""Campaigns in the orchestrator's state machine (real SQLite store, messages fed as the CLI and
a node send them): plan expansion, outcomes by reason, lost cells after a runtime death and an
orchestrator restart, resume runs only what is not done. End to end: tests/cli/test_campaign.py."""
from __future__ import annotations

from typing import Any

import orjson

import pytest

from common.results import encode_ack
from common.wire import envelope
from benchmarking import plan as campaign_plan
from orchestrator import views
from tests.orchestrator.test_core import R, Harness


def plan(**kw: Any) -> dict[str, Any]:
    spec = {"runtimes": ["node1.bench"], "files": ["wasm/a.wasm", "wasm/b.wasm"], "engines": ["wasmtime", "wasmer"],
            "argsets": [["1"], ["2"]], "seed": 7, "args": {"repeat": 3}}
    spec.update(kw)
    return spec


def status(h: Harness, cid: str) -> dict[str, Any]:
    code, body = views.route(h.o, f"/api/campaigns/{cid}/", "")
    assert code == 200, body
    return body


def exit_running(h: Harness, rt: str, **status_: Any) -> str:
    """The runtime's running module sends its profile and exits (as the benchmarking runtime
    reports it), and a collector acknowledges the profile; returns its uuid."""
    uuid = h.creates(rt)[-1]
    st = {"reason": "exited", "code": 0, "error": None}
    st.update({k: v for k, v in status_.items() if k in ("reason", "code", "error")})
    extra = {k: v for k, v in status_.items() if k not in ("reason", "code", "error")}
    if not status_:  # a run that went well: its profile, acknowledged by a collector
        h.send(f"{R}/proc/profile/benchmarking-v3/{rt}/{uuid}", v3(["ok"], rid=f"r-{uuid}"))
    h.send(f"{R}/proc/control/{rt}", envelope("exited", {"type": "module", "uuid": uuid, "status": st, **extra}))
    if not status_:
        stored(h, rt, f"r-{uuid}")
    return uuid


def stored(h: Harness, rt: str, *ids: str) -> None:
    """A collector's ack: it has stored these results of runtime `rt`."""
    h.send(f"{R}/proc/stored/{rt}", encode_ack("collector", list(ids)))


def test_expand_is_stable_and_interleaved() -> None:
    cells = campaign_plan.expand(plan())
    assert len(cells) == 8 and sorted(c[0] for c in cells) == list(range(8))
    assert cells == campaign_plan.expand(plan())  # the seed fixes the order
    assert [c[0] for c in campaign_plan.expand(plan(order="plan"))] == list(range(8))
    assert [c[0] for c in cells] != list(range(8))
    assert campaign_plan.module_name("wasm/polybench/2mm.wasm", "wasmtime-j") == "2mm.wasmtime-j"
    assert {c[3] for c in cells} == {"wasmtime-j", "wasmer-j-cl"}  # aliases become the catalog's names
    assert len(campaign_plan.expand(plan(engines=["wasmtime", "wasmtime-j"]))) == 4  # one engine, not two
    with pytest.raises(campaign_plan.PlanError, match="plan.engines must be a non-empty list"):
        campaign_plan.expand(plan(engines=[]))


def test_campaign_outcomes_lost_cells_and_resume(tmp_path) -> None:  # type: ignore[no-untyped-def]
    h = Harness(str(tmp_path / "o.db"))
    h.manager()
    h.runtime("rt-1", "node1.bench", max_n=1)
    h.send(f"{R}/proc/control", envelope("create_campaign", {"campaign": "c1", "plan": plan()}))
    s = status(h, "c1")
    assert s["cells"] == 8 and s["running"] == 1 and s["queued"] == 7 and not s["finished"]
    first = h.out[-1][1]["data"]
    assert first["args"]["campaign"] == "c1" and first["args"]["repeat"] == 3 and "cell" in first["args"]
    # the same id again is refused on proc/log, nothing changes
    h.send(f"{R}/proc/control", envelope("create_campaign", {"campaign": "c1", "plan": plan()}))
    assert "exists already" in h.take(f"{R}/proc/log")[-1][1]["data"]["description"]
    exit_running(h, "rt-1")                                           # done
    exit_running(h, "rt-1", code=125, error="run 1 failed: wasm trap: unreachable", failure="trap")
    exit_running(h, "rt-1", reason="limit", code=None, error="killed after its time limit", failure="limit")
    exit_running(h, "rt-1", reason="error", code=None, error="engine 'wasmer' is not available")
    s = status(h, "c1")
    assert s["done"] == 1 and s["failed"] == {"error": 1, "trap": 1, "limit": 1, "killed": 0, "lost": 0}
    # the node dies: its running module is killed, the queued ones die: all lost
    h.send(f"{R}/proc/reg/rt-1", envelope("delete", {"type": "runtime", "uuid": "rt-1"}))
    s = status(h, "c1")
    assert s["failed"]["lost"] == 4 and s["finished"]
    # a restarted orchestrator knows the campaign
    h.restart()
    assert status(h, "c1")["failed"]["lost"] == 4
    code, cells = views.route(h.o, "/api/campaigns/c1/cells/", "state=done")
    assert code == 200 and cells["count"] == 1 and cells["results"][0]["record"]["status"]["code"] == 0
    # resume needs the runtime alive; then it runs the 7 cells that are not done, never the done one
    h.send(f"{R}/proc/control", envelope("resume_campaign", {"campaign": "c1"}))
    assert "is not alive" in h.take(f"{R}/proc/log")[-1][1]["data"]["description"]
    h.runtime("rt-2", "node1.bench", max_n=1)
    h.take()
    h.send(f"{R}/proc/control", envelope("resume_campaign", {"campaign": "c1"}))
    s = status(h, "c1")
    assert s["done"] == 1 and s["running"] == 1 and s["queued"] == 6 and s["resumes"] == 1
    for _ in range(7):
        exit_running(h, "rt-2")
    s = status(h, "c1")
    assert s["done"] == 8 and s["finished"] and sum(s["failed"].values()) == 0
    code, cells = views.route(h.o, "/api/campaigns/c1/cells/", "")
    assert sorted(c["cell"] for c in cells["results"]) == list(range(8))
    assert max(c["attempts"] for c in cells["results"]) == 2 and min(c["attempts"] for c in cells["results"]) == 1
    # a second resume has nothing to do
    h.send(f"{R}/proc/control", envelope("resume_campaign", {"campaign": "c1"}))
    assert h.creates("rt-2") == []
    assert views.route(h.o, "/api/campaigns/nope/", "")[0] == 404
    assert views.route(h.o, "/api/campaigns/c1/cells/", "state=bogus")[0] == 400


def test_resume_retires_killed_modules_so_they_are_not_resurrected(tmp_path) -> None:  # type: ignore[no-untyped-def]
    h = Harness(str(tmp_path / "o.db"))
    h.manager()
    h.runtime("rt-1", "node1.bench", max_n=1)
    h.runtime("rt-9", "node9.bench", max_n=1)
    h.send(f"{R}/proc/control", envelope("create_campaign", {"campaign": "c2", "plan": plan(runtimes=["node1.bench"], argsets=[[]])}))
    h.send(f"{R}/proc/reg/rt-1", envelope("delete", {"type": "runtime", "uuid": "rt-1"}))  # 1 killed, 3 dead
    h.runtime("rt-3", "node1.bench", max_n=1)  # the node came back with new uuids
    h.send(f"{R}/proc/control", envelope("resume_campaign", {"campaign": "c2"}))
    assert status(h, "c2")["running"] == 1 and status(h, "c2")["queued"] == 3
    h.take()
    h.runtime("rt-1", "node1.bench", max_n=1)  # the old uuid re-registers: nothing of c2 comes back
    assert h.creates("rt-1") == []


def bench_runtime(h: Harness, uuid: str, name: str, queue_ahead: int | None) -> None:
    """A runtime registered as the benchmarking runtimes register: max_nmodules 1 and queue_ahead."""
    md: dict[str, Any] = {} if queue_ahead is None else {"queue_ahead": queue_ahead}
    h.send(f"{R}/proc/reg/{uuid}", envelope("create", {
        "type": "runtime", "uuid": uuid, "name": name, "runtime_type": "benchmarking", "max_nmodules": 1,
        "apis": ["wasm", "wasi", "benchmarking"], "platform": {}, "metadata": md, "parent": "m-0001"}))
    h.take(f"{R}/proc/reg/{uuid}")


@pytest.mark.parametrize("window,queue_ahead,in_flight", [(3, 3, 3), (1, 3, 1), (8, 3, 4), (3, None, 1)])
def test_window_sends_cells_ahead_within_the_runtimes_queue_ahead(tmp_path, window, queue_ahead, in_flight) -> None:  # type: ignore[no-untyped-def]
    h = Harness(str(tmp_path / "o.db"))
    h.manager()
    bench_runtime(h, "rt-1", "node1.bench", queue_ahead)
    h.send(f"{R}/proc/control", envelope("create_campaign", {"campaign": "cw", "plan": plan(window=window)}))
    sent = h.creates("rt-1")
    assert len(sent) == in_flight
    s = status(h, "cw")
    assert s["running"] == in_flight and s["queued"] == 8 - in_flight and s["plan"]["window"] == window
    # each exit lets exactly one more go, oldest first, until the queue is empty
    order = list(sent)
    while order:
        h.exited("rt-1", order.pop(0))
        more = h.creates("rt-1")
        assert len(more) <= 1
        order += more
        assert len(h.o.nodes["rt-1"].children) <= in_flight
    assert status(h, "cw")["done"] + status(h, "cw")["data_pending"] == 8  # no collector here
    # a module that is no campaign's cell waits for max_nmodules (1), also behind a campaign's window
    h.send(f"{R}/proc/control", envelope("create_campaign", {"campaign": "cw2", "plan": plan(window=window)}))
    first = h.creates("rt-1")
    h.create("plain", parent="node1.bench")
    assert "plain" not in h.creates("rt-1") and h.status("plain") == "Q"
    h.restart()  # the window is the plan's: a restarted orchestrator keeps it
    for u in first:
        h.exited("rt-1", u)
    assert len(h.creates("rt-1")) == in_flight


def test_window_must_be_a_small_positive_integer() -> None:
    for bad in (0, 65, "3", True):
        with pytest.raises(campaign_plan.PlanError, match="plan.window must be an integer"):
            campaign_plan.expand(plan(window=bad))


def v3(outcomes: list[str], part: tuple[int, int] = (0, 1), rid: str | None = None) -> bytes:
    n = len(outcomes)
    return orjson.dumps({"v": 3, "runs": {"wall_ns": [1000] * n, "outcome": outcomes}, "errors": {}, "env": {},
                         "warmup": 0, "part": list(part), "first_run": 0, **({"id": rid} if rid else {})})


def test_node_dying_between_profile_and_exited_does_not_run_the_cell_again(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Regression (the known window of #14): the profile was forwarded, the node died before the
    module's exited: the cell was killed, resurrected and run a second time (two profiles)."""
    h = Harness(str(tmp_path / "o.db"))
    h.manager()
    bench_runtime(h, "rt-1", "node1.bench", 3)
    h.send(f"{R}/proc/control", envelope("create_campaign", {"campaign": "cp", "plan": plan(window=3)}))
    a, b, c = h.creates("rt-1")
    prof = f"{R}/proc/profile/benchmarking-v3/rt-1"
    h.send(f"{prof}/{a}", v3(["ok", "ok", "ok"], rid="ra"))            # a: complete, then the node dies
    h.send(f"{prof}/{b}", v3(["ok", "ok"], part=(0, 2)))                # b: half of its profile only
    h.o.handle(f"{R}/proc/profile/benchmarking/rt-1/{c}", b"\0" * 12)   # c: the seed's layout says nothing
    h.send(f"{prof}/{a}", v3(["ok", "ok", "ok"]))                      # a QoS 1 duplicate changes nothing
    h.send(f"{R}/proc/reg/rt-1", envelope("delete", {"type": "runtime", "uuid": "rt-1"}))
    assert h.errors() == []
    assert status(h, "cp")["data_pending"] == 1
    stored(h, "rt-1", "ra")
    s = status(h, "cp")
    assert s["done"] == 1 and s["failed"]["killed"] == 0 and s["failed"]["lost"] == 7
    code, cells = views.route(h.o, "/api/campaigns/cp/cells/", "state=done")
    rec = cells["results"][0]["record"]
    assert cells["results"][0]["module"] == a and rec["from_profile"] and rec["outcomes"] == {"ok": 3}
    assert h.status(a) == "D" and h.status(b) == "K" and h.status(c) == "K"
    bench_runtime(h, "rt-1", "node1.bench", 3)                          # back: b and c again, never a
    assert h.creates("rt-1") == [b, c]
    h.restart()
    h.send(f"{R}/proc/control", envelope("resume_campaign", {"campaign": "cp"}))
    again = [m[1]["data"]["args"]["cell"] for m in h.take(f"{R}/proc/control/rt-1") if m[1]["action"] == "create"]
    assert cells["results"][0]["cell"] not in again


def test_failed_runs_in_a_complete_profile_give_the_cells_failure(tmp_path) -> None:  # type: ignore[no-untyped-def]
    h = Harness(str(tmp_path / "o.db"))
    h.manager()
    bench_runtime(h, "rt-1", "node1.bench", 3)
    h.send(f"{R}/proc/control", envelope("create_campaign", {"campaign": "cf", "plan": plan(window=2)}))
    a, b = h.creates("rt-1")
    h.send(f"{R}/proc/profile/benchmarking-v3/rt-1/{a}", v3(["ok", "trap"]))
    h.send(f"{R}/proc/profile/benchmarking-v3/rt-1/{b}", v3(["ok"], rid="rb"))
    stored(h, "rt-1", "rb")  # before the cell has an outcome: it counts once it has
    # the worker died (the supervisor reports it: no samples counted): b's complete profile stands
    h.send(f"{R}/proc/control/rt-1", envelope("exited", {"type": "module", "uuid": b,
                                                          "status": {"reason": "error", "code": None, "error": "worker died"}}))
    h.send(f"{R}/proc/reg/rt-1", envelope("delete", {"type": "runtime", "uuid": "rt-1"}))
    s = status(h, "cf")
    assert s["done"] == 1 and s["failed"]["trap"] == 1


def keepalive(h: Harness, rt: str, children: list[str]) -> None:
    h.send(f"{R}/proc/keepalive/{rt}", envelope("update", {"type": "runtime", "uuid": rt, "name": "node1.bench",
                                                          "children": [{"uuid": u} for u in children]}))


def test_create_lost_by_an_orchestrator_that_died_before_publishing_it_is_sent_again(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Regression (the known window of #14): the orchestrator committed a dequeue (module running
    in its store) and died before publishing the create: the cell stalled forever."""
    from orchestrator.core import RECONCILE_AFTER

    h = Harness(str(tmp_path / "o.db"))
    h.manager()
    bench_runtime(h, "rt-1", "node1.bench", 3)
    h.send(f"{R}/proc/control", envelope("create_campaign", {"campaign": "cr", "plan": plan(window=3)}))
    a, b, c = h.creates("rt-1")
    keepalive(h, "rt-1", [a, b, c])
    h.exited("rt-1", a)
    h.out.clear()  # the dequeue of the next cell committed, its create never published: the process died
    h.restart()
    d = [u for u in h.o.nodes["rt-1"].children if u not in (b, c)]
    assert len(d) == 1
    keepalive(h, "rt-1", [b])             # too early to trust a missing entry (c and d may be on their way)
    assert h.creates("rt-1") == []
    h.now += RECONCILE_AFTER
    keepalive(h, "rt-1", [b])             # c and d missing from a fresh keepalive: sent again, oldest first
    assert h.creates("rt-1") == [c, d[0]]
    keepalive(h, "rt-1", [b])             # once
    assert h.creates("rt-1") == []
    for u in (b, c, d[0]):
        h.exited("rt-1", u)
    assert status(h, "cr")["data_pending"] == 4 and status(h, "cr")["running"] == 3  # no collector here


def test_a_cell_is_done_only_once_a_collector_stored_its_data(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Issue #24: an exited cell whose results no collector acknowledged is `data_pending` (neither
    done nor failed, never run again by a resume); the ack may come before or after the exited; every
    part must be stored; a profile on another runtime's topic settles nothing."""
    h = Harness(str(tmp_path / "o.db"))
    h.manager()
    bench_runtime(h, "rt-1", "node1.bench", 3)
    bench_runtime(h, "rt-9", "node9.bench", 3)
    h.send(f"{R}/proc/control", envelope("create_campaign", {"campaign": "cd", "plan": plan(window=3, argsets=[[]])}))
    a, b, c = h.creates("rt-1")
    prof = f"{R}/proc/profile/benchmarking-v3"
    # a: profile, exited, no ack yet -> data pending; the ack -> done
    h.send(f"{prof}/rt-1/{a}", v3(["ok"], rid="ra"))
    h.exited("rt-1", a)
    s = status(h, "cd")
    assert s["done"] == 0 and s["data_pending"] == 1 and s["finished"] is False
    code, cells = views.route(h.o, "/api/campaigns/cd/cells/", "state=data_pending")
    assert code == 200 and [x["module"] for x in cells["results"]] == [a]
    stored(h, "rt-9", "ra")  # the ack on another runtime's topic is not this result's
    assert status(h, "cd")["data_pending"] == 1
    stored(h, "rt-1", "ra")
    assert status(h, "cd")["done"] == 1 and status(h, "cd")["data_pending"] == 0
    # b: two parts; the ack of the first comes before the exited, the second's after
    h.send(f"{prof}/rt-1/{b}", v3(["ok"], part=(0, 2), rid="rb0"))
    stored(h, "rt-1", "rb0", "sha256:ignored")
    h.send(f"{prof}/rt-1/{b}", v3(["ok"], part=(1, 2), rid="rb1"))
    h.exited("rt-1", b)
    assert status(h, "cd")["data_pending"] == 1
    stored(h, "rt-1", "rb1")
    assert status(h, "cd")["done"] == 2
    # c: another node's profile naming c, on that node's own topic, settles nothing (cross-node)
    h.send(f"{prof}/rt-9/{c}", v3(["ok"], rid="rc-forged"))
    stored(h, "rt-9", "rc-forged")
    h.send(f"{R}/proc/reg/rt-1", envelope("delete", {"type": "runtime", "uuid": "rt-1"}))  # c dies unsettled
    s = status(h, "cd")
    assert s["done"] == 2 and s["failed"]["killed"] + s["failed"]["lost"] == 2


def test_a_data_pending_cell_is_not_run_again_by_a_resume(tmp_path) -> None:  # type: ignore[no-untyped-def]
    h = Harness(str(tmp_path / "o.db"))
    h.manager()
    bench_runtime(h, "rt-1", "node1.bench", None)
    h.send(f"{R}/proc/control", envelope("create_campaign", {"campaign": "ce", "plan": plan(argsets=[[]])}))
    (a,) = h.creates("rt-1")
    h.send(f"{R}/proc/profile/benchmarking-v3/rt-1/{a}", v3(["ok"], rid="ra"))
    h.exited("rt-1", a)
    h.creates("rt-1")
    h.send(f"{R}/proc/reg/rt-1", envelope("delete", {"type": "runtime", "uuid": "rt-1"}))
    bench_runtime(h, "rt-2", "node1.bench", None)
    h.send(f"{R}/proc/control", envelope("resume_campaign", {"campaign": "ce"}))
    s = status(h, "ce")
    assert s["data_pending"] == 1 and s["running"] + s["queued"] == 3
    code, cells = views.route(h.o, "/api/campaigns/ce/cells/", "state=data_pending")
    assert [x["module"] for x in cells["results"]] == [a]
    for u in [m[1]["data"]["uuid"] for m in h.take(f"{R}/proc/control/rt-2") if m[1]["action"] == "create"]:
        assert u != a
    stored(h, "rt-1", "ra")  # the collector caught up (the old runtime's topic: where the result came from)
    assert status(h, "ce")["done"] == 1
