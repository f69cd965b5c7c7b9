"""A module uuid names one module for good (issue #24): a create that reuses the uuid of a module
that ended is refused on proc/log, and the module's history (and its campaign cell) stays as it was.
End to end with a real orchestrator process and node; the campaign case over the state machine."""
from __future__ import annotations

from typing import Any

from common.wire import envelope
from testbed.mqtt import MqttProbe
from testbed.orchestrator import OrchestratorProc
from testbed.wait import wait_until
from tests.orchestrator.test_campaigns import exit_running, plan, status
from tests.orchestrator.test_core import Harness
from tests.orchestrator.test_e2e import R, WAIT, created_uuids, echo_works, manage, module_status, node, wait_runtime


def test_a_create_reusing_a_dead_modules_uuid_is_refused(broker: Any, probe: MqttProbe, orch: OrchestratorProc,
                                                        tmp_path: Any) -> None:
    probe.subscribe(f"{R}/proc/log")
    with node(broker, tmp_path, "reuse"):
        wait_runtime(orch, "reuse")
        (uuid,) = created_uuids(manage(orch, "run", "-r", "reuse", "-n", "first", "-f", "hello.wasm",
                                       "-C", "e2e/reuse:rw").stdout)
        wait_until(lambda: module_status(orch, uuid) == "A", WAIT, "module alive")
        echo_works(probe, "e2e/reuse", b"ping")  # its channel is open: the exit request reaches it
        probe.publish("e2e/reuse", b"!exit 0")
        wait_until(lambda: module_status(orch, uuid) == "D", WAIT, "module dead after exiting")
        before = orch.get(f"/api/modules/{uuid}/")
        assert before["exit"]["reason"] == "exited" and before["name"] == "first"
        probe.publish(f"{R}/proc/control", envelope("create", {"type": "module", "uuid": uuid, "name": "second",
                                                               "file": "hello.wasm", "parent": "reuse"}))
        msg = probe.wait_for(f"{R}/proc/log", lambda m: "was used before" in m.json()["data"]["description"], timeout=WAIT)[-1]
        report = msg.json()["data"]
        assert f"module uuid {uuid} was used before, by module 'first'" in report["description"]
        assert "without 'uuid'" in report["description"] and report["data"]["data"]["uuid"] == uuid
        # the refusal is decided and published after its transaction: the store is as before
        assert orch.get(f"/api/modules/{uuid}/") == before
        assert "second" not in manage(orch, "list").stdout


def test_a_done_cell_stays_done_when_its_modules_uuid_is_sent_again(tmp_path: Any) -> None:
    h = Harness(str(tmp_path / "o.db"))
    h.manager()
    h.runtime("rt-1", "node1.bench", max_n=1)
    h.send(f"{R}/proc/control", envelope("create_campaign", {"campaign": "c1", "plan": plan(engines=["wasmtime"])}))
    done = exit_running(h, "rt-1", samples=3)
    assert status(h, "c1")["done"] == 1
    h.errors()
    h.send(f"{R}/proc/control", envelope("create", {"type": "module", "uuid": done, "file": "x.wasm", "parent": "rt-1"}))
    errs = h.errors()
    assert len(errs) == 1 and f"module uuid {done} was used before" in errs[0]["description"]
    assert done not in h.creates("rt-1")
    # a late exited for it (e.g. the reused module's, had it been placed) changes nothing either
    h.send(f"{R}/proc/control/rt-1", envelope("exited", {"type": "module", "uuid": done,
                                                          "status": {"reason": "exited", "code": 1, "error": "boom"}}))
    s = status(h, "c1")
    assert s["done"] == 1 and sum(s["failed"].values()) == 0
    # in a batch, the reuse is refused alone and the others go in
    h.errors()
    h.send(f"{R}/proc/control", envelope("create_batch", {"parent": "rt-1", "modules": [
        {"type": "module", "uuid": done, "file": "x.wasm"}, {"type": "module", "uuid": "fresh-1", "file": "x.wasm"}]}))
    assert [e["description"] for e in h.errors() if "was used before" in e["description"]]
    assert "fresh-1" in h.o.mods


def test_a_done_cells_uuid_stays_refused_after_its_module_row_is_pruned(tmp_path: Any) -> None:
    h = Harness(str(tmp_path / "o.db"))
    h.manager()
    h.runtime("rt-1", "node1.bench", max_n=1)
    h.send(f"{R}/proc/control", envelope("create_campaign", {"campaign": "c2", "plan": plan(engines=["wasmtime"])}))
    done = exit_running(h, "rt-1", samples=3)
    with h.store.transaction():  # what history.py's prune does to an ended module whose cell has its outcome
        h.store.conn.execute("DELETE FROM modules WHERE uuid=?", (done,))
    h.errors()
    h.send(f"{R}/proc/control", envelope("create", {"type": "module", "uuid": done, "file": "x.wasm", "parent": "rt-1"}))
    errs = h.errors()
    assert len(errs) == 1 and f"module uuid {done} was used before, by a cell of campaign c2" in errs[0]["description"]
    assert status(h, "c2")["done"] == 1
