"""Many messages per transaction (Orchestrator.handle_batch, issue #26 item 2): one commit for a
batch, a savepoint per message (a refused one goes back alone), sends only after the commit, a
registration repeated inside the batch answered once, and an internal error that keeps what came
before it. Real SQLite store, no broker (the service's tests run the batches over mosquitto)."""
from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from common.wire import envelope
from orchestrator.core import Orchestrator
from orchestrator.store import Store

R = "realm"


def _reg(uuid: str, **data: Any) -> tuple[str, bytes, float]:
    return (f"{R}/proc/reg/{uuid}", orjson.dumps({**envelope("create", {"uuid": uuid, **data}), "object_id": f"o-{uuid}"}), 0.0)


def _create(uuid: str, parent: str, **kw: Any) -> tuple[str, bytes, float]:
    data = {"type": "module", "uuid": uuid, "name": uuid, "file": "hello.wasm", "parent": parent, **kw}
    return (f"{R}/proc/control", orjson.dumps(envelope("create", data)), 0.0)


class Counting(Store):
    """The store, counting its commits."""

    commits = 0

    def transaction(self) -> Any:
        outer = self._depth == 0
        cm = super().transaction()
        if outer:
            type(self).commits += 1
        return cm


def test_a_batch_is_one_commit_sends_after_it_and_a_refusal_goes_back_alone(tmp_path: Any) -> None:
    store = Counting(str(tmp_path / "o.db"))
    sent: list[tuple[str, Any]] = []

    def publish(topic: str, payload: bytes) -> None:
        assert not store.conn.in_transaction, "a message went out before its decision was committed"
        sent.append((topic, orjson.loads(payload)))

    o = Orchestrator(store, publish, realm=R, ka_interval=0)
    Counting.commits = 0
    rt = dict(type="runtime", name="r1", runtime_type="linux", max_nmodules=1, apis=["wasm", "wasi"], platform={},
              metadata={}, parent="m1")
    batch = [_reg("m1", type="manager", name="n1"), _reg("r1", **rt), _reg("r1", **rt),  # the node asked again
             _create("mod-a", "r1"), _create("mod-a", "r1"),  # the same uuid again: refused
             _create("mod-b", "nowhere"),  # an unknown runtime: refused
             _create("mod-c", "r1")]  # queued behind mod-a (max_nmodules 1)
    o.handle_batch(batch)
    assert Counting.commits == 1
    replies = [(t, m) for t, m in sent if t == f"{R}/proc/reg/r1"]
    assert len(replies) == 1 and replies[0][1]["data"]["result"] == "ok", replies
    creates = [m["data"]["uuid"] for t, m in sent if t == f"{R}/proc/control/r1" and m["action"] == "create"]
    assert creates == ["mod-a"]
    errors = [m["data"]["description"] for t, m in sent if t == f"{R}/proc/log"]
    assert len(errors) == 2 and "already exists" in errors[0] and "unknown parent runtime" in errors[1], errors
    with sqlite3.connect(str(tmp_path / "o.db")) as db:
        rows = dict(db.execute("SELECT uuid, status FROM modules").fetchall())
    assert rows == {"mod-a": "A", "mod-c": "Q"}, rows  # what the batch decided is stored, the refused is not
    assert o.mods["mod-c"].status == "Q"
    store.close()


def test_an_internal_error_keeps_what_came_before_and_handles_what_comes_after(tmp_path: Any, caplog: Any) -> None:
    store = Store(str(tmp_path / "o.db"))
    sent: list[tuple[str, Any]] = []
    o = Orchestrator(store, lambda t, p: sent.append((t, orjson.loads(p))), realm=R, ka_interval=0)
    real = o._dispatch

    def dispatch(topic: str, payload: bytes) -> None:
        if b"boom" in payload:
            store.conn.execute("INSERT INTO modules(seq, uuid, name, status, file, data, created, updated)"
                               " VALUES(999, 'half', 'half', 'A', 'f', '{}', 0, 0)")  # a half-done change ...
            raise RuntimeError("a bug")  # ... then the bug
        real(topic, payload)

    o._dispatch = dispatch  # type: ignore[method-assign]
    o.handle_batch([_reg("m1", type="manager", name="n1"), (f"{R}/proc/control", b'{"boom": 1}', 0.0),
                    _reg("m2", type="manager", name="n2")])
    assert {"m1", "m2"} <= set(o.nodes), "the registrations before and after the failing message are kept"
    assert "half" not in o.mods
    with sqlite3.connect(str(tmp_path / "o.db")) as db:
        assert db.execute("SELECT count(*) FROM modules WHERE uuid='half'").fetchone() == (0,)
        assert {r[0] for r in db.execute("SELECT uuid FROM nodes")} == {"m1", "m2"}
    assert any("internal error: RuntimeError: a bug" in m["data"]["description"] for t, m in sent if t == f"{R}/proc/log")
    store.close()
