"""Module control (supervisor/modules.py) over real rings: create/delete requests to the worker,
refusals with a message, and what a worker's death means for its modules."""
from __future__ import annotations

import orjson

from ipc import messages
from supervisor.states import WorkerState
from testbed.control import module_create, module_delete
from tests.supervisor.fakes import REALM, Rig


def exits(rig: Rig) -> list[dict[str, object]]:
    return [m["data"] for m in rig.link.on(f"{REALM}/proc/control/rt-0") if m.get("action") == "exited"]


def test_create_goes_to_the_worker_with_our_slot_index(rig: Rig) -> None:
    rig.control(0, module_create("a", "rt-0", index=77))
    rig.control(0, module_create("b", "rt-0"))
    got = rig.to_worker(0)
    assert [(h1, h2) for h1, h2, _ in got] == [(messages.ctrl(0), messages.MGR_CREATE), (messages.ctrl(1), messages.MGR_CREATE)]
    body = orjson.loads(got[0][2])
    assert body["uuid"] == "a" and body["index"] == 0 and body["args"] == {"index": 77}
    assert rig.workers[0].modules.find("b") is not None


def test_bad_requests_are_refused_with_a_message(rig: Rig) -> None:
    rig.control(0, module_create("a", "rt-0"))
    rig.control(0, module_create("a", "rt-0"))
    rig.control(0, module_delete("nope"))
    rig.modules.control(rig.workers[0], "t", b"{not json")
    errs = rig.errors()
    assert errs[0] == "create: module a already exists on runtime n.echo0"
    assert errs[1] == "delete: unknown module nope on runtime n.echo0"
    assert "malformed JSON" in errs[2]
    assert len(rig.to_worker(0)) == 1


def test_a_full_runtime_refuses(rig: Rig) -> None:
    w = rig.workers[0]
    for i in range(w.max_nmodules):
        rig.control(0, module_create(f"m{i}", "rt-0"))
    rig.control(0, module_create("one-more", "rt-0"))
    assert rig.errors() == [f"create of module one-more: runtime n.echo0 is full (max_nmodules {w.max_nmodules})"]


def test_delete_is_sent_and_the_worker_reports_the_exit(rig: Rig) -> None:
    rig.control(0, module_create("a", "rt-0"))
    rig.to_worker(0)
    rig.control(0, module_delete("a"))
    assert rig.to_worker(0) == [(messages.ctrl(0), messages.MGR_DELETE, b"")]
    rig.from_worker(0, messages.ctrl(0), messages.RT_EXITED, orjson.dumps({"status": {"reason": "deleted"}, "runs": 3}))
    assert exits(rig) == [{"type": "module", "uuid": "a", "name": "mod-a", "runs": 3,
                           "status": {"reason": "deleted", "code": None, "error": None}}]
    assert rig.workers[0].modules.find("a") is None


def test_create_while_the_worker_is_down_waits_and_delete_answers_at_once(rig: Rig) -> None:
    w = rig.workers[0]
    w.ep = None  # BACKOFF: its IPC is gone until the restart
    rig.control(0, module_create("a", "rt-0"))
    rig.control(0, module_create("b", "rt-0"))
    rig.control(0, module_delete("b"))
    assert [d["uuid"] for d in exits(rig)] == ["b"] and exits(rig)[0]["status"]["reason"] == "deleted"  # type: ignore[index]
    w.ep = rig.node_ipc.workers[0]
    rig.modules.send_pending(w)
    assert [orjson.loads(p)["uuid"] for _, _, p in rig.to_worker(0)] == ["a"]


def test_a_create_larger_than_the_ring_takes_is_refused(rig: Rig) -> None:
    rig.control(0, module_create("big", "rt-0", blob="x" * (1 << 16)))
    assert "more than a worker takes" in rig.errors()[0]
    assert exits(rig)[0]["status"]["reason"] == "error"  # type: ignore[index]


def test_modules_of_a_dead_worker_crash_or_wait_for_the_restart(rig: Rig) -> None:
    w = rig.workers[0]
    rig.control(0, module_create("plain", "rt-0"))
    rig.control(0, module_create("again", "rt-0", fault_crash="restart"))
    w.died(-9, 20.0)
    assert w.state is WorkerState.BACKOFF
    rig.modules.worker_died(w, -9)
    (crashed,) = exits(rig)
    assert crashed["uuid"] == "plain" and crashed["status"] == {
        "reason": "crashed", "code": None, "error": "worker process of runtime n.echo0 died (exit -9)"}
    rec = w.modules.find("again")
    assert rec is not None and rec.pending_create
    rig.modules.runtime_fatal(w)
    assert [d["uuid"] for d in exits(rig)] == ["plain", "again"] and len(w.modules) == 0
