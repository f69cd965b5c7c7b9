"""Module history in the state machine over a real SQLite store (orchestrator/history.py): every
state change is a history row (triggers), ended modules are pruned by count and age, a campaign's
cell without an outcome keeps its module; the output rings are bounded."""
from __future__ import annotations

from typing import Any

from orchestrator import views
from orchestrator.history import Logs
from tests.orchestrator.test_deployments_core import fleet


def test_states_and_pruning(tmp_path: Any) -> None:
    h = fleet(tmp_path)
    for i in range(5):
        h.create(f"u{i}", name="m", parent="rt-1")
        h.exited("rt-1", f"u{i}")
        h.now += 10
    code, body = views.route(h.o, "/api/history/u0/", "")
    assert code == 200 and [s["status"] for s in body["states"]] == ["A", "D"], body
    assert body["states"][-1]["exit"]["reason"] == "exited"
    assert views.route(h.o, "/api/history/nosuch/", "")[0] == 404
    h.o.history.keep, h.o.history.keep_for = 3, 1e9
    assert h.o.history.prune(h.now) == 2
    assert h.store.module_by_uuid("u1") is None and h.store.module_by_uuid("u2") is not None
    assert views.route(h.o, "/api/history/u0/", "")[0] == 404  # its history went with it
    h.o.history.keep_for = 15  # by age: u2 and u3 ended more than 15 s ago
    assert h.o.history.prune(h.now) == 2
    assert h.store.module_by_uuid("u4") is not None
    h.create("alive", name="a", parent="rt-1")
    h.o.history.keep, h.o.history.keep_for = 0, 0
    h.o.history.prune(h.now + 100)
    assert h.store.module_by_uuid("alive") is not None  # never a module that did not end


def test_logs_are_bounded_per_module_and_in_modules() -> None:
    logs = Logs(lines=3, modules=2)
    logs.feed("a", b"one\ntwo\nthr")
    logs.feed("a", b"ee\nfour\nfive\n")
    assert [x["line"] for x in logs.tail("a", 10) or []] == ["three", "four", "five"]
    logs.feed("a", b"partial")
    last = (logs.tail("a", 1) or [{}])[0]
    assert last["line"] == "partial" and last["partial"] is True
    logs.feed("b", b"x\n")
    logs.feed("c", b"y\n")
    assert logs.tail("a", 5) is None and [x["line"] for x in logs.tail("c", 5) or []] == ["y"]
    code, body = logs.answer("/api/logs/c/", "tail=abc")
    assert code == 400
