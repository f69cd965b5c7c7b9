"""Unit tests of the orchestrator's state machine over a real SQLite store; messages are
fed as a node would send them and the outgoing ones are collected (no broker here; the
service and end-to-end tests use real mosquitto and real nodes)."""
from __future__ import annotations

from typing import Any, Iterator

import orjson
import pytest

from common.wire import envelope
from orchestrator.core import Orchestrator
from orchestrator.store import Store
from orchestrator import views

R = "realm"


class Harness:
    """An Orchestrator on a store in tmp_path, a settable clock, and the published messages."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.now = 1000.0
        self.out: list[tuple[str, Any]] = []
        self.store = Store(path)
        self.o = self._make()

    def _make(self) -> Orchestrator:
        return Orchestrator(self.store, lambda t, p: self.out.append((t, orjson.loads(p))), realm=R, ka_interval=1.0,
                            clock=lambda: self.now)

    def restart(self) -> None:
        self.store.close()
        self.store = Store(self.path)
        self.o = self._make()

    def send(self, topic: str, msg: Any) -> None:
        self.o.handle(topic, msg if isinstance(msg, bytes) else orjson.dumps(msg))

    def take(self, prefix: str = "") -> list[tuple[str, Any]]:
        got = [m for m in self.out if m[0].startswith(prefix)]
        self.out = [m for m in self.out if not m[0].startswith(prefix)]
        return got

    def manager(self, uuid: str = "m-0001", name: str = "node1") -> None:
        self.send(f"{R}/proc/reg/{uuid}", envelope("create", {"type": "manager", "uuid": uuid, "name": name}))

    def runtime(self, uuid: str, name: str, max_n: int = 0, apis: list[str] | None = None, parent: str = "m-0001",
                pid: int | None = None) -> dict[str, Any]:
        self.send(f"{R}/proc/reg/{uuid}", envelope("create", {
            "type": "runtime", "uuid": uuid, "name": name, "runtime_type": "linux", "max_nmodules": max_n,
            "apis": apis if apis is not None else ["wasm", "wasi"], "platform": {},
            "metadata": {"host": "h", "pid": pid} if pid else {}, "parent": parent}))
        replies = self.take(f"{R}/proc/reg/{uuid}")
        assert replies, "no registration reply"
        return replies[-1][1]

    def create(self, uuid: str, name: str = "mod", parent: str | None = None, **kw: Any) -> None:
        data = {"type": "module", "uuid": uuid, "name": name, "file": "hello.wasm", **kw}
        if parent is not None:
            data["parent"] = parent
        self.send(f"{R}/proc/control", envelope("create", data))

    def exited(self, rt: str, uuid: str) -> None:
        self.send(f"{R}/proc/control/{rt}", envelope("exited", {"type": "module", "uuid": uuid,
                                                                "status": {"reason": "exited", "code": 0, "error": None}}))

    def creates(self, rt: str) -> list[str]:
        return [m[1]["data"]["uuid"] for m in self.take(f"{R}/proc/control/{rt}") if m[1]["action"] == "create"]

    def errors(self) -> list[dict[str, Any]]:
        """Reports on proc/log; each must also be on proc/log/orchestrator (where the original reports)."""
        got = self.take(f"{R}/proc/log")
        ours = [m[1] for m in got if m[0] == f"{R}/proc/log"]
        assert [m[1] for m in got if m[0] == f"{R}/proc/log/orchestrator"] == ours
        return [m["data"] for m in ours]

    def status(self, uuid: str) -> str:
        row = self.store.module_by_uuid(uuid)
        assert row is not None
        return str(row["status"])


def test_registration_reply_carries_ka_interval(h: Harness) -> None:
    h.manager()
    assert h.take(f"{R}/proc/reg/m-0001")[0][1]["data"]["result"] == "ok"
    reply = h.runtime("rt-aaaa", "node1.wasmtime")
    assert reply["type"] == "resp" and reply["data"]["result"] == "ok"
    assert reply["data"]["details"]["ka_interval_sec"] == 1.0


def test_create_by_parent_name_uuid_and_suffix(h: Harness) -> None:
    h.manager()
    h.runtime("rt-aaaa-1111", "one")
    h.create("mod-1", parent="one")
    h.create("mod-2", parent="rt-aaaa-1111")
    h.create("mod-3", parent="1111")
    msgs = h.take(f"{R}/proc/control/rt-aaaa-1111")
    assert [m[1]["data"]["uuid"] for m in msgs] == ["mod-1", "mod-2", "mod-3"]
    d = msgs[0][1]["data"]
    assert d["parent"] == "rt-aaaa-1111" and d["file"] == "hello.wasm" and d["status"] == "A" and d["type"] == "module"
    assert h.errors() == []


def test_second_module_queued_then_started_when_first_exits(h: Harness) -> None:
    h.manager()
    h.runtime("rt-1", "one", max_n=1)
    h.create("a", parent="one")
    h.create("b", parent="one")
    assert h.creates("rt-1") == ["a"]
    assert h.status("b") == "Q"
    assert [m["uuid"] for m in views.route(h.o, "/api/queued/", "")[1]["results"]] == ["b"]
    h.exited("rt-1", "b")  # a queued module cannot exit
    assert "is queued" in h.errors()[0]["description"] and h.status("b") == "Q"
    h.exited("rt-1", "a")
    assert h.creates("rt-1") == ["b"]
    assert h.status("a") == "D" and h.status("b") == "A"
    assert h.store.module_by_uuid("a")["exit"] == {"reason": "exited", "code": 0, "error": None}  # type: ignore[index]


def test_unparented_least_loaded_then_round_robin_and_apis(h: Harness) -> None:
    h.manager()
    h.runtime("rt-1", "one", apis=["wasm", "wasi"])
    h.runtime("rt-2", "two", apis=["wasm", "wasi", "channels"])
    for i in range(4):
        h.create(f"m{i}")
    a, b = h.creates("rt-1"), h.creates("rt-2")
    assert len(a) == 2 and len(b) == 2  # ties alternate
    h.create("needs-channels", apis=["channels"])
    assert h.creates("rt-2") == ["needs-channels"]
    h.exited("rt-1", a[0])
    h.create("next")
    assert h.creates("rt-1") == ["next"]  # rt-1 is now least loaded
    h.create("nothing-has-it", apis=["gpu"])
    errs = h.errors()
    assert len(errs) == 1 and "no alive runtime provides apis ['gpu']" in errs[0]["description"]


def test_scheduler_prefers_a_free_slot_over_a_full_runtime(h: Harness) -> None:
    h.manager()
    h.runtime("rt-small", "small", max_n=1)
    h.runtime("rt-big", "big", max_n=10)
    for i in range(4):
        h.create(f"m{i}")
    assert len(h.creates("rt-small")) == 1
    assert len(h.creates("rt-big")) == 3
    assert h.errors() == []


def test_keepalive_timeout_kills_modules_and_reregistration_resurrects(h: Harness) -> None:
    h.manager()
    h.runtime("rt-1", "one", max_n=1)
    h.create("a", parent="one")
    h.create("q", parent="one")
    h.take()
    h.now += 2.0
    h.send(f"{R}/proc/keepalive/rt-1", envelope("update", {"type": "runtime", "uuid": "rt-1", "name": "one", "children": []}))
    h.o.tick()
    assert h.status("a") == "A"
    h.now += 3.5
    h.o.tick()
    assert h.status("a") == "K" and h.status("q") == "D"
    assert "marked dead" in h.errors()[0]["description"]
    assert views.route(h.o, "/api/runtimes/", "")[1]["count"] == 0
    assert views.route(h.o, "/api/runtimes/rt-1/", "")[1]["status"] == "D"  # full uuid finds dead ones
    # a keepalive from the dead runtime is refused
    h.send(f"{R}/proc/keepalive/rt-1", envelope("update", {"type": "runtime", "uuid": "rt-1"}))
    assert "must register again" in h.errors()[0]["description"]
    h.runtime("rt-1", "one", max_n=1)
    assert h.creates("rt-1") == ["a"]
    assert h.status("a") == "A"


def test_deleted_manager_deletes_its_runtimes(h: Harness) -> None:
    h.manager()
    h.runtime("rt-1", "one")
    h.runtime("rt-2", "two")
    h.create("a", parent="one")
    h.send(f"{R}/proc/reg/m-0001", envelope("delete", {"type": "manager", "uuid": "m-0001"}))
    assert h.o.nodes["rt-1"].status == "D" and h.o.nodes["rt-2"].status == "D"
    assert h.status("a") == "K"


def test_delete_goes_exiting_forwarded_then_dead(h: Harness) -> None:
    h.manager()
    h.runtime("rt-1", "one", max_n=1)
    h.create("a", name="alpha", parent="one")
    h.create("b", name="beta", parent="one")
    h.take()
    h.send(f"{R}/proc/control", envelope("delete", {"type": "module", "uuid": "alpha"}))  # by name
    fwd = h.take(f"{R}/proc/control/rt-1")
    assert fwd[0][1]["action"] == "delete" and fwd[0][1]["data"]["uuid"] == "a"
    assert h.status("a") == "E"
    h.send(f"{R}/proc/control", envelope("delete", {"type": "module", "uuid": "b"}))  # queued: dead at once
    assert h.status("b") == "D"
    h.exited("rt-1", "a")
    assert h.status("a") == "D"
    assert h.take(f"{R}/proc/control/rt-1") == []  # nothing left to start
    h.send(f"{R}/proc/control", envelope("delete", {"type": "module", "uuid": "nope"}))
    assert "unknown module 'nope'" in h.errors()[0]["description"]
    h.create("c", parent="one")
    h.send(f"{R}/proc/control", envelope("delete", {"type": "module", "uuid": ""}))  # matches no suffix
    assert "unknown module ''" in h.errors()[0]["description"] and h.status("c") == "A"


@pytest.mark.parametrize("topic,payload,needle", [
    ("realm/proc/control", b"{not json", "malformed JSON"),
    ("realm/proc/control", orjson.dumps(envelope("create", {"type": "module", "uuid": "x", "file": "f.wasm", "parent": "ghost"})), "unknown parent runtime 'ghost'"),
    ("realm/proc/control", orjson.dumps(envelope("create", {"type": "module", "uuid": "x"})), "missing key 'data.file'"),
    ("realm/proc/control", orjson.dumps(envelope("frobnicate", {})), "key 'action': invalid value 'frobnicate'"),
    ("realm/proc/control", orjson.dumps({"action": "create"}), "missing key 'data'"),
    ("realm/proc/keepalive/rt-1", orjson.dumps(envelope("create", {"type": "runtime"})), "key 'action': invalid value 'create' (realm/proc/keepalive/rt-1 takes update)"),
    ("realm/proc/reg/rt-1", orjson.dumps(envelope("delete", {"type": "runtime", "uuid": "rt-1", "name": "impostor"})), "sent by 'impostor'"),
    ("realm/proc/control/rt-1", orjson.dumps(envelope("exited", {"type": "module", "uuid": "ghost"})), "unknown or already dead"),
    ("realm/proc/reg/rt-9", orjson.dumps(envelope("create", {"type": "runtime", "uuid": "rt-9", "name": "n", "max_nmodules": "x"})), "max_nmodules"),
])
def test_bad_requests_are_reported_on_proc_log(h: Harness, topic: str, payload: bytes, needle: str) -> None:
    h.manager()
    h.runtime("rt-1", "one")
    h.take()
    h.send(topic, payload)
    errs = h.errors()
    assert len(errs) == 1, errs
    assert needle in errs[0]["description"]
    assert errs[0]["topic"] == topic
    assert errs[0]["data"] is not None  # the offending data comes along


def test_duplicate_alive_uuids_refused(h: Harness) -> None:
    h.manager()
    h.runtime("rt-1", "one")
    h.create("a", parent="one")
    h.create("a", parent="one")
    assert "already exists" in h.errors()[0]["description"]
    reply = h.runtime("rt-1", "impostor")
    assert reply["data"]["result"] == "error" and "already alive" in reply["data"]["details"]["description"]
    assert "already alive" in h.errors()[0]["description"]
    assert h.o.nodes["rt-1"].name == "one"
    assert h.runtime("rt-1", "one")["data"]["result"] == "ok"  # the same runtime again: a refresh
    assert h.o.nodes["rt-1"].children == {"a"}


def test_create_batch_places_valid_reports_invalid(h: Harness) -> None:
    h.manager()
    h.runtime("rt-1", "one", max_n=2)
    mods = [{"type": "module", "uuid": f"b{i}", "name": "b", "file": "x.wasm"} for i in range(50)]
    mods.append({"type": "module", "uuid": "bad"})
    h.send(f"{R}/proc/control", envelope("create_batch", {"modules": mods}))
    assert h.creates("rt-1") == ["b0", "b1"]
    assert h.store.count_modules(("Q",)) == 48
    assert len(h.errors()) == 1


def test_restart_reloads_state_and_queue_order(h: Harness) -> None:
    h.manager()
    h.runtime("rt-1", "one", max_n=1)
    for u in ("a", "b", "c"):
        h.create(u, parent="one")
    h.take()
    h.restart()
    assert h.o.nodes["rt-1"].alive and list(h.o.nodes["rt-1"].queue) == ["b", "c"]
    h.exited("rt-1", "a")
    assert h.creates("rt-1") == ["b"]


def test_rest_lookup_and_pagination(h: Harness) -> None:
    h.manager()
    h.runtime("rt-1-abcd", "one")
    for i in range(5):
        h.create(f"mod-{i:04d}", name=f"n{i}", parent="one")
    code, page = views.route(h.o, "/api/modules/", "start=1&count=2")
    assert code == 200 and page["count"] == 5 and page["start"] == 1 and [m["uuid"] for m in page["results"]] == ["mod-0001", "mod-0002"]
    assert views.route(h.o, "/api/modules/n3/", "")[1]["uuid"] == "mod-0003"
    assert views.route(h.o, "/api/modules/0004/", "")[1]["uuid"] == "mod-0004"
    assert views.route(h.o, "/api/modules/zzz/", "")[0] == 404
    assert views.route(h.o, "/api/runtimes/abcd/", "")[1]["uuid"] == "rt-1-abcd"
    assert views.route(h.o, "/api/runtimes/one/", "")[1]["children"][0]["uuid"] == "mod-0000"
    assert views.route(h.o, "/api/runtimes/zzz/", "")[0] == 404
    assert views.route(h.o, "/api/modules/", "count=x")[0] == 400
    assert views.route(h.o, "/api/nothing/", "")[0] == 404


def test_queries_use_indexes(h: Harness) -> None:
    """The per-decision statements never scan the modules table."""
    c = h.store.conn
    for sql, args in [
        ("UPDATE modules SET status=?, parent=?, updated=? WHERE uuid=?", ("A", "r", 0.0, "u")),
        ("SELECT data FROM modules WHERE uuid=?", ("u",)),
        ("SELECT seq FROM modules WHERE status=? ORDER BY seq LIMIT 10", ("Q",)),
        ("SELECT seq FROM modules WHERE parent=? AND status=? ORDER BY seq LIMIT 1", ("r", "Q")),
    ]:
        plan = " ".join(str(r[-1]) for r in c.execute("EXPLAIN QUERY PLAN " + sql, args))
        assert "SCAN modules" not in plan, (sql, plan)


def test_same_runtime_from_a_new_process_resurrects_its_modules_once_the_old_one_is_dead(h: Harness) -> None:
    """A node restarted before its death was noticed: same uuid and name, another pid. While the old
    process is alive (heard from, not dead by keepalive) it is a duplicate (tests/orchestrator/test_presence.py);
    once its keepalives stopped, the new process takes over and the module is re-created."""
    h.manager()
    h.runtime("rt-1", "one", pid=100)
    h.send(f"{R}/proc/keepalive/rt-1", envelope("update", {"type": "runtime", "uuid": "rt-1", "name": "one", "children": []}))
    h.create("a", parent="one")
    h.take()
    h.runtime("rt-1", "one", pid=100)  # a broker reconnect: same process, modules still there
    assert h.creates("rt-1") == []
    assert h.runtime("rt-1", "one", pid=200)["data"]["details"]["reason"] == "duplicate"
    h.now += 3.5  # 3 missed intervals of 1 s
    h.o.tick()
    assert h.runtime("rt-1", "one", pid=200)["data"]["result"] == "ok"  # a new process: the module is re-created
    assert h.creates("rt-1") == ["a"]
    assert h.status("a") == "A"


def test_a_long_message_does_not_cost_runtimes_their_keepalives(h: Harness) -> None:
    h.manager()
    h.runtime("rt-1", "one")
    real = h.o.clock
    calls = [0]

    def slow_clock() -> float:  # the batch below "takes" 10 s of orchestrator time
        calls[0] += 1
        return real() + (10.0 if calls[0] > 1 else 0.0)

    h.o.clock = slow_clock
    h.send(f"{R}/proc/control", envelope("create_batch", {"modules": [{"uuid": "x", "file": "f"}]}))
    h.o.clock = lambda: h.now + 10.0
    h.o.tick()
    assert h.o.nodes["rt-1"].alive


def test_internal_error_rolls_back_memory_with_the_store(h: Harness, monkeypatch: Any) -> None:
    h.manager()
    h.runtime("rt-1", "one", max_n=1)
    h.create("a", parent="one")
    h.create("b", parent="one")
    h.take()

    def broken(*a: Any, **k: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(h.store, "set_exit", broken)
    h.exited("rt-1", "a")
    assert "internal error: OSError: disk full" in h.errors()[0]["description"]
    assert h.take(f"{R}/proc/control/rt-1") == []  # nothing announced
    assert h.o.mods["a"].status == "A" and list(h.o.nodes["rt-1"].queue) == ["b"]
    monkeypatch.undo()
    h.exited("rt-1", "a")
    assert h.creates("rt-1") == ["b"]


def test_keepalives_from_a_runtime_never_registered(h: Harness) -> None:
    for _ in range(2):  # the first ones may overtake the registration: not an error
        h.send(f"{R}/proc/keepalive/rt-x", envelope("update", {"type": "runtime", "uuid": "rt-x", "name": "lost"}))
    assert h.errors() == []
    h.send(f"{R}/proc/keepalive/rt-x", envelope("update", {"type": "runtime", "uuid": "rt-x", "name": "lost"}))
    errs = h.errors()
    assert len(errs) == 1 and "never registered here" in errs[0]["description"] and "'lost'" in errs[0]["description"]
