"""Campaigns in the orchestrator's state machine (real SQLite store, messages fed as the CLI and
a node send them): plan expansion, outcomes by reason, lost cells after a runtime death and an
orchestrator restart, resume runs only what is not done. End to end: tests/cli/test_campaign.py."""
from __future__ import annotations

from typing import Any

import pytest

from common.wire import envelope
from orchestrator import campaigns, views
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
    """The runtime's running module exits (as the benchmarking runtime reports it); returns its uuid."""
    uuid = h.creates(rt)[-1]
    st = {"reason": "exited", "code": 0, "error": None}
    st.update({k: v for k, v in status_.items() if k in ("reason", "code", "error")})
    extra = {k: v for k, v in status_.items() if k not in ("reason", "code", "error")}
    h.send(f"{R}/proc/control/{rt}", envelope("exited", {"type": "module", "uuid": uuid, "status": st, **extra}))
    return uuid


def test_expand_is_stable_and_interleaved() -> None:
    cells = campaigns.expand(plan())
    assert len(cells) == 8 and sorted(c[0] for c in cells) == list(range(8))
    assert cells == campaigns.expand(plan())  # the seed fixes the order
    assert [c[0] for c in campaigns.expand(plan(order="plan"))] == list(range(8))
    assert [c[0] for c in cells] != list(range(8))
    assert campaigns.module_name("wasm/polybench/2mm.wasm", "wasmtime-j") == "2mm.wasmtime-j"
    with pytest.raises(Exception, match="plan.engines must be a non-empty list"):
        campaigns.expand(plan(engines=[]))


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
