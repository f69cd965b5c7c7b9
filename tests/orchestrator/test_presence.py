"""Ours (orchestrator/presence.py): online/offline announcements, register requests, duplicate
refusal. Unit tests over the state machine (the Harness of test_core) and the orchestrator process
against a real mosquitto."""
from __future__ import annotations

import signal

import orjson
from typing import Any, Iterator

import pytest

from common.wire import envelope
from orchestrator.presence import REASK_FIRST
from testbed.mqtt import MqttProbe
from testbed.orchestrator import OrchestratorProc
from tests.orchestrator.test_core import Harness

pytestmark = pytest.mark.orchestrator(ka_interval=0.5)

R = "realm"


def keepalive(h: Harness, rt: str) -> None:
    h.send(f"{R}/proc/keepalive/{rt}", envelope("update", {"type": "runtime", "uuid": rt, "name": "x", "children": []}))


def register_requests(h: Harness, rt: str) -> list[dict[str, Any]]:
    return [m[1] for m in h.take(f"{R}/proc/reg/{rt}") if m[1]["data"]["details"].get("register")]


def test_a_keepalive_from_an_unknown_runtime_asks_its_node_to_register(h: Harness) -> None:
    """Regression: after an orchestrator restart with a new store, nodes' keepalives were only
    logged ("never registered"); every node had to be restarted by hand."""
    keepalive(h, "rt-x")
    asks = register_requests(h, "rt-x")
    assert len(asks) == 1 and asks[0]["type"] == "resp" and asks[0]["data"]["result"] == "error"
    assert asks[0]["data"]["details"]["orchestrator"] == h.o.presence.instance
    for _ in range(5):  # once per episode, not at every keepalive (issue #26: a refusal never floods)
        h.now += 1.5
        keepalive(h, "rt-x")
    assert register_requests(h, "rt-x") == []
    h.now += REASK_FIRST  # still talking, still not registered: the request was lost; asked once more
    keepalive(h, "rt-x")
    assert len(register_requests(h, "rt-x")) == 1
    h.now += REASK_FIRST  # the next repeat waits twice as long
    keepalive(h, "rt-x")
    assert register_requests(h, "rt-x") == []


def test_a_keepalive_from_a_dead_runtime_asks_its_node_to_register(h: Harness) -> None:
    h.manager()
    h.runtime("rt-1", "one", pid=100)
    keepalive(h, "rt-1")  # one keepalive: silence means death from then on, never before
    h.now += 3.5
    h.o.tick()
    h.take()
    keepalive(h, "rt-1")
    assert len(register_requests(h, "rt-1")) == 1
    assert h.runtime("rt-1", "one", pid=100)["data"]["result"] == "ok"


def test_the_reply_names_this_orchestrators_instance(h: Harness) -> None:
    h.manager()
    assert h.runtime("rt-1", "one")["data"]["details"]["orchestrator"] == h.o.presence.instance
    first = h.o.presence.instance
    h.restart()
    assert h.o.presence.instance != first


def test_a_runtime_alive_under_another_process_is_refused_until_it_is_dead(h: Harness) -> None:
    h.manager()
    h.runtime("rt-1", "one", pid=100)
    h.create("a", parent="one")
    h.take()
    reply = h.runtime("rt-1", "one", pid=200)
    d = reply["data"]
    assert d["result"] == "error" and d["details"]["reason"] == "duplicate" and d["details"]["holder"]["pid"] == 100
    assert "alive under another connection" in h.errors()[0]["description"]
    assert h.creates("rt-1") == []  # no module runs twice
    keepalive(h, "rt-1")
    h.now += 0.9
    h.o.tick()
    assert h.runtime("rt-1", "one", pid=200)["data"]["details"]["reason"] == "duplicate"  # still heard from
    h.send(f"{R}/proc/reg/rt-1", envelope("delete", {"type": "runtime", "uuid": "rt-1", "name": "one",
                                                     "metadata": {"host": "h", "pid": 100}}))
    assert h.runtime("rt-1", "one", pid=200)["data"]["result"] == "ok"
    assert h.creates("rt-1") == ["a"]  # resurrected on the process that took over


def test_a_runtime_not_heard_from_since_the_orchestrator_started_is_taken_over(h: Harness) -> None:
    """The node restarted while the orchestrator was down (its last will was lost): the store still says
    alive, but nothing proves the old process runs; the new one is accepted and gets the modules."""
    h.manager()
    h.runtime("rt-1", "one", pid=100)
    h.create("a", parent="one")
    h.restart()
    h.take()
    assert h.runtime("rt-1", "one", pid=200)["data"]["result"] == "ok"
    assert h.creates("rt-1") == ["a"]


def test_a_manager_with_a_live_runtime_under_another_process_is_refused(h: Harness) -> None:
    meta = lambda pid: {"host": "h", "pid": pid}  # noqa: E731
    h.send(f"{R}/proc/reg/m-0001", envelope("create", {"type": "manager", "uuid": "m-0001", "name": "node1", "metadata": meta(100)}))
    h.runtime("rt-1", "one", pid=100)
    h.take()
    h.send(f"{R}/proc/reg/m-0001", envelope("create", {"type": "manager", "uuid": "m-0001", "name": "node1", "metadata": meta(200)}))
    reply = h.take(f"{R}/proc/reg/m-0001")[-1][1]
    assert reply["data"]["details"]["reason"] == "duplicate"
    # the refused duplicate's last will (its manager delete) must not take the real node down
    h.send(f"{R}/proc/reg/m-0001", envelope("delete", {"type": "manager", "uuid": "m-0001", "name": "node1", "metadata": meta(200)}))
    assert "refused duplicate" in h.errors()[-1]["description"]
    assert h.o.nodes["m-0001"].alive and h.o.nodes["rt-1"].alive
    # the real node's own delete works; then the other process may register
    h.send(f"{R}/proc/reg/m-0001", envelope("delete", {"type": "manager", "uuid": "m-0001", "name": "node1", "metadata": meta(100)}))
    assert not h.o.nodes["rt-1"].alive
    h.take()
    h.send(f"{R}/proc/reg/m-0001", envelope("create", {"type": "manager", "uuid": "m-0001", "name": "node1", "metadata": meta(200)}))
    assert h.take(f"{R}/proc/reg/m-0001")[-1][1]["data"]["result"] == "ok"


def test_messages_without_process_metadata_keep_the_old_rules(h: Harness) -> None:
    """Nodes that send no pid (the original's) are never taken for duplicates."""
    h.manager()
    h.runtime("rt-1", "one")
    assert h.runtime("rt-1", "one")["data"]["result"] == "ok"
    h.send(f"{R}/proc/reg/rt-1", envelope("delete", {"type": "runtime", "uuid": "rt-1", "name": "one"}))
    assert not h.o.nodes["rt-1"].alive


def test_online_is_retained_offline_on_stop_and_by_last_will(broker: Any, orch: OrchestratorProc) -> None:
    topic = f"{R}/proc/orchestrator"
    probe = MqttProbe(broker.port)
    try:
        probe.subscribe(topic)
        first = probe.wait_for(topic, lambda m: m.retain, timeout=10)[0].json()
        assert first["action"] == "online" and first["data"]["instance"]
        orch.stop(signal.SIGTERM)
        off = probe.wait_for(topic, lambda m: m.json()["action"] == "offline", timeout=10)[0].json()
        assert off["data"]["instance"] == first["data"]["instance"]
        orch.start()
        again = probe.wait_for(topic, lambda m: m.json()["action"] == "online" and m.json()["data"]["instance"] != first["data"]["instance"], timeout=10)
        orch.stop(signal.SIGKILL)  # no clean stop: the broker publishes the last will
        probe.wait_for(topic, lambda m: m.json()["action"] == "offline" and m.json()["data"]["instance"] == again[0].json()["data"]["instance"], timeout=10)
    finally:
        probe.close()
    late = MqttProbe(broker.port)  # a node connecting now sees the retained state at once
    try:
        late.subscribe(topic)
        assert late.wait_for(topic, timeout=5)[0].json()["action"] == "offline"
    finally:
        late.close()


def test_a_keepalive_of_a_stranger_gets_a_register_request_over_mqtt(orch: OrchestratorProc, probe: MqttProbe) -> None:
    rt = "0f0f0f0f-0000-4000-8000-0000000000aa"
    probe.subscribe(f"{R}/proc/reg/{rt}")
    probe.publish(f"{R}/proc/keepalive/{rt}", envelope("update", {"type": "runtime", "uuid": rt, "name": "lost"}))
    ask = probe.wait_for(f"{R}/proc/reg/{rt}", lambda m: m.json().get("type") == "resp", timeout=10)[0].json()
    assert ask["data"]["details"]["register"] is True


def test_a_refusal_says_when_a_silent_holder_would_expire(h: Harness) -> None:
    """`details.retry_after`: what is left of 3 keepalive intervals since the holder was last heard
    from; asked again after that, with the holder silent, the newcomer is accepted."""
    h.manager()
    h.runtime("rt-1", "one", pid=100)
    keepalive(h, "rt-1")
    h.now += 0.4
    d = h.runtime("rt-1", "one", pid=200)["data"]["details"]
    assert d["reason"] == "duplicate" and d["retry_after"] == pytest.approx(3 * 1.0 - 0.4, abs=0.01)  # the harness: 1 s keepalives
    h.now += d["retry_after"] + 0.1
    h.o.tick()
    assert h.runtime("rt-1", "one", pid=200)["data"]["result"] == "ok"


def test_a_dead_runtime_that_keeps_talking_is_asked_once_and_its_refusals_are_summarised(h: Harness) -> None:
    """Issue #26: every keepalive of a runtime declared dead was refused at ERR, reported on proc/log
    and answered with a register request; at 10k runtimes that flood was the outage."""
    h.manager()
    h.runtime("rt-1", "one", pid=100)
    keepalive(h, "rt-1")
    h.now += 3.5
    h.o.tick()
    h.take()
    for _ in range(20):
        h.now += 0.5
        keepalive(h, "rt-1")
    assert len(register_requests(h, "rt-1")) == 1
    errs = h.errors()
    assert len(errs) == 1 and "must register again" in errs[0]["description"]
    h.now += 60
    h.o.tick()
    summary = h.errors()
    assert len(summary) == 1 and summary[0]["description"].startswith("19 keepalives from 1 dead runtimes refused")
    assert h.runtime("rt-1", "one", pid=100)["data"]["result"] == "ok"
    keepalive(h, "rt-1")
    h.now += 3.5  # a new death is a new episode: asked again, at once
    h.o.tick()
    h.take()
    keepalive(h, "rt-1")
    assert len(register_requests(h, "rt-1")) == 1


def test_expiry_counts_from_when_keepalives_arrived_and_what_was_handled(h: Harness) -> None:
    """A keepalive that waited in the inbound queue counts from its arrival; a runtime is dead only
    when the stream was handled 3 intervals past its last keepalive (`heard_until`); a pause (grace)
    gives every runtime a fresh 3 intervals."""
    h.manager()
    h.runtime("rt-1", "one")
    h.runtime("rt-2", "two")
    keepalive(h, "rt-1")
    keepalive(h, "rt-2")
    h.now += 10.0  # the orchestrator was busy: both keepalives below arrived at 1001, handled now
    h.o.handle(f"{R}/proc/keepalive/rt-1", orjson.dumps(envelope("update", {"type": "runtime", "uuid": "rt-1"})), received=1001.0)
    h.o.tick(heard_until=1003.9)  # everything that arrived before 1003.9 is handled: rt-2 is silent since 1000
    assert [n.uuid for n in h.o.nodes.values() if n.kind == "runtime" and not n.alive] == ["rt-2"]
    h.o.tick(heard_until=1003.99)  # rt-1's deadline is 1004
    assert h.o.nodes["rt-1"].alive
    h.o.grace(1010.0)
    h.now = 1020.0
    h.o.tick(heard_until=1012.9)
    assert h.o.nodes["rt-1"].alive
    h.o.tick(heard_until=1013.1)
    assert not h.o.nodes["rt-1"].alive
