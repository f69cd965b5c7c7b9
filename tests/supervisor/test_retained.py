"""Issue #25: a retained create is never executed, by the node (a create left on its control topic
for its next start) nor by the orchestrator (a request left on `proc/control`). Real mosquitto,
real node and orchestrator processes; a live create sent afterwards is the fence."""
from __future__ import annotations

import json
import os
import uuid as _uuid
from typing import Any

import pytest

from common.wire import envelope
from testbed.broker import Mosquitto
from testbed.mqtt import MqttProbe
from testbed.node import NodeProcess
from testbed.orchestrator import OrchestratorProc

R = "realm"


def _create(u: str, parent: str) -> dict[str, Any]:
    return envelope("create", {"type": "module", "uuid": u, "name": "hello", "parent": parent, "file": "helloworld.wasm", "args": {}})


def _publish_retained(probe: MqttProbe, topic: str, msg: dict[str, Any]) -> None:
    probe.client.publish(topic, json.dumps(msg), qos=1, retain=True).wait_for_publish(5)


def test_a_retained_create_for_the_node_never_runs(broker: Mosquitto, probe: MqttProbe, tmp_path: Any) -> None:
    state = tmp_path / "state"
    state.mkdir()
    rt = str(_uuid.uuid4())
    (state / "rn.json").write_text(json.dumps({"manager": str(_uuid.uuid4()), "runtimes": {"rn": rt}}))
    probe.subscribe(f"{R}/proc/#")
    retained, fence = str(_uuid.uuid4()), str(_uuid.uuid4())
    _publish_retained(probe, f"{R}/proc/control/{rt}", _create(retained, rt))  # left for the node's next start
    node = NodeProcess(broker.port, name="rn", runtimes=["linux"], state_dir=str(state), reg_timeout=0.3)
    try:
        node.start(timeout=90)
        assert node.runtime_uuid() == rt
        probe.publish(f"{R}/proc/control/{rt}", _create(fence, rt))
        probe.wait_for(f"{R}/proc/control/{rt}", lambda m: b'"exited"' in m.payload and fence.encode() in m.payload, timeout=60)
        assert not [m for m in probe.messages() if retained in m.topic or (retained.encode() in m.payload and not m.retain
                                                                           and b'"exited"' in m.payload)]
        assert retained not in node.output()
    finally:
        node.stop()
        probe.client.publish(f"{R}/proc/control/{rt}", b"", qos=1, retain=True).wait_for_publish(5)


@pytest.mark.orchestrator(ka_interval=0.5)
def test_a_retained_request_is_never_executed_by_the_orchestrator(broker: Mosquitto, probe: MqttProbe, tmp_path: Any) -> None:
    retained, fence = str(_uuid.uuid4()), str(_uuid.uuid4())
    _publish_retained(probe, f"{R}/proc/control", _create(retained, "nobody"))
    probe.subscribe(f"{R}/proc/log")
    orch = OrchestratorProc(broker.port, str(tmp_path))
    orch.start()
    try:
        probe.publish(f"{R}/proc/control", _create(fence, "nobody"))  # refused (no such runtime): the fence
        probe.wait_for(f"{R}/proc/log", lambda m: fence.encode() in m.payload, timeout=30)
        assert not [m for m in probe.messages(f"{R}/proc/log") if retained.encode() in m.payload]
        assert retained not in orch.log()
    finally:
        orch.stop()
        probe.client.publish(f"{R}/proc/control", b"", qos=1, retain=True).wait_for_publish(5)
