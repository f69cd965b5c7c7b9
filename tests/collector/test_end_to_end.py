"""End-to-end delivery (issue #24 item 1): a real node (`start.py`, test/echo runtime) spools every
profile durably and sends it again until a real collector process says (`proc/stored/RUNTIME`) that
it has stored it; through a real mosquitto that is killed and restarted without persistence, and a
node that is SIGKILLed and started again.

Fences: the node's log lines (`N held`, `sending again`), the collector's files, process exits."""
from __future__ import annotations

import os
import re
import signal
from typing import Any

import orjson

from common.results import encode_ack, stored_topic
from supervisor.spool import Spool
from testbed.broker import Mosquitto
from testbed.control import create
from testbed.mqtt import MqttProbe
from testbed.node import NodeProcess
from testbed.wait import wait_until
from tests.collector.test_delivery import CollectorProc, data_files

REALM = "realm"


def send(probe: MqttProbe, rt: str, ids: list[str]) -> None:
    """One module per id; each sends one profile (JSON with that result id) when it is created."""
    for rid in ids:
        create(probe, rt, f"mod-{rid}", argv=["!profile", orjson.dumps({"id": rid, "n": 1}).decode()])


def stored_ids(data: str) -> list[str]:
    out = []
    for p in data_files(data):
        with open(p, "rb") as f:
            rec = orjson.loads(f.read())
        import base64

        out.append(orjson.loads(base64.b64decode(rec["raw_base64"]))["id"])  # type "test" is kept raw
    return sorted(out)


def held(node: NodeProcess) -> int | None:
    """What the node's last ack line says it still holds."""
    found = re.findall(r"stored \d+ of our results \(\d+ named\); (\d+) held", node.output())
    return int(found[-1]) if found else None


def spooled(state: str, name: str) -> list[str]:
    s = Spool(os.path.join(state, f"{name}.spool"))
    try:
        s.open(readonly=True)
        return sorted(s.held)
    finally:
        s.close()


def node_at(port: int, state: str) -> NodeProcess:
    return NodeProcess(port, name="spooler", runtimes=["test/echo"], state_dir=state)


def test_results_wait_in_the_spool_through_a_node_kill_and_a_broker_restart(tmp_path: Any) -> None:
    state, data = str(tmp_path / "state"), str(tmp_path / "data")
    broker = Mosquitto().start()
    probe = MqttProbe(broker.port)
    node = node_at(broker.port, state)
    col = CollectorProc(broker.port, data, str(tmp_path / "collector.log"), client_id="e2e")
    try:
        node.start()
        rt = node.runtime_uuid()
        probe.subscribe(f"{REALM}/proc/profile/#")
        first = [f"a{i}" for i in range(6)]
        send(probe, rt, first)  # no collector ever connected: the broker keeps none of these
        probe.wait_for(f"{REALM}/proc/profile/#", count=6, timeout=20)  # published: durable in the spool before
        node.kill()  # SIGKILL
        assert spooled(state, "spooler") == first

        col.start()
        node = node_at(broker.port, state)
        node.start()
        wait_until(lambda: held(node) == 0, 30, "the collector's acks of the 6 results sent again after the restart")
        assert "sending again the 6 results" in node.output()
        assert stored_ids(data) == first

        # the collector stops; results wait in its broker session and in the spool; the broker dies
        # (no persistence: the session and its queue are gone); the node sends them again
        assert col.stop() == 0
        second = [f"b{i}" for i in range(4)]
        send(probe, rt, second)
        probe.wait_for(f"{REALM}/proc/profile/#", lambda m: b'"b3"' in m.payload, timeout=20)
        wait_until(lambda: spooled(state, "spooler") == second, 20, "the 4 results in the node's spool")
        probe.close()
        broker.stop()  # SIGTERM; a broker without persistence forgets every session
        broker.start()
        col.start()
        wait_until(lambda: stored_ids(data) == sorted(first + second), 60, "the 4 results after the broker restart")
        wait_until(lambda: held(node) == 0, 30, "the acks of the 4")
        assert [ln for ln in col.lines("ERR", "") if "cannot decode test payload" not in ln] == []
    finally:
        col.stop()
        node.stop()
        broker.close()
    assert spooled(state, "spooler") == []


def test_an_ack_only_names_results_and_only_on_the_runtimes_own_topic(broker: Any, probe: MqttProbe, tmp_path: Any) -> None:
    """A forged or misdirected ack (another runtime's topic, malformed, unknown ids) frees nothing."""
    state = str(tmp_path / "state")
    with node_at(broker.port, state) as node:
        rt = node.runtime_uuid()
        probe.subscribe(f"{REALM}/proc/profile/#")
        send(probe, rt, ["x1", "x2"])
        probe.wait_for(f"{REALM}/proc/profile/#", count=2, timeout=20)
        other = "99999999-9999-4999-8999-999999999999"
        probe.publish(stored_topic(REALM, other), encode_ack("evil", ["x1", "x2"]))  # not its topic: not read
        probe.publish(stored_topic(REALM, rt), b'{"ids": "x1"}')  # malformed
        probe.publish(stored_topic(REALM, rt), encode_ack("c", ["nosuch"]))  # an id it does not hold
        probe.publish(stored_topic(REALM, rt), encode_ack("c", ["x2"]))  # the fence: handled after the others
        wait_until(lambda: "stored 1 of our results" in node.output(), 20, "the node's ack line of x2")
        assert held(node) == 1
        assert "is not {collector, ids}: ignored" in node.output()
        node.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        node.wait_exit(15)
    assert spooled(state, "spooler") == ["x1"]
