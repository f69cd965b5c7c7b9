"""Past one broker (docs/cluster.md "Past one broker"): two mosquitto brokers joined by a
mosquitto bridge, a node on each, the orchestrator on one. Registration, keepalives, module runs and a
channel between modules on nodes of different brokers work; no message arrives twice, none loops."""
from __future__ import annotations

import time
from typing import Any, Iterator

import pytest

from common.wire import envelope, new_uuid
from testbed.broker import Mosquitto
from testbed.mqtt import MqttProbe
from testbed.node import NodeProcess
from testbed.orchestrator import OrchestratorProc
from testbed.wait import wait_until

R = "realm"


def bridge_conf(remote_port: int) -> str:
    """The bridge section of docs/cluster.md, pointed at the other broker."""
    return "\n".join([
        "connection silverline-bridge",
        f"address 127.0.0.1:{remote_port}",
        "topic # both 2",
        "try_private true",
        "cleansession true",
        "bridge_protocol_version mqttv50",
        "restart_timeout 1 5",
    ])


@pytest.fixture
def brokers() -> Iterator[tuple[Mosquitto, Mosquitto]]:
    a = Mosquitto()
    b: Mosquitto | None = None
    try:
        a.start()
        b = Mosquitto(extra_conf=bridge_conf(a.port))
        b.start()
        yield a, b
    finally:
        if b is not None:
            b.close()
        a.close()


def bridged(pa: MqttProbe, pb: MqttProbe, timeout: float = 20.0) -> None:
    """Wait until the bridge carries messages both ways (it connects a moment after B starts)."""
    pa.subscribe("bridge-check/#")
    pb.subscribe("bridge-check/#")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tag = new_uuid()
        pb.publish(f"bridge-check/{tag}", b"b")
        pa.publish(f"bridge-check/{tag}", b"a")
        try:
            pa.wait_for(f"bridge-check/{tag}", lambda m: m.payload == b"b", timeout=0.5)
            pb.wait_for(f"bridge-check/{tag}", lambda m: m.payload == b"a", timeout=0.5)
            return
        except TimeoutError:
            continue
    raise TimeoutError("the mosquitto bridge did not come up")


def test_two_bridged_brokers_one_orchestrator_channel_across(brokers: tuple[Mosquitto, Mosquitto], tmp_path: Any) -> None:
    a, b = brokers
    pa, pb = MqttProbe(a.port), MqttProbe(b.port)
    try:
        bridged(pa, pb)
        with OrchestratorProc(a.port, str(tmp_path), ka_interval=0.5) as orch, \
                NodeProcess(a.port, name="on-a", runtimes=["linux"], reg_timeout=5) as na, \
                NodeProcess(b.port, name="on-b", runtimes=["linux"], reg_timeout=5) as nb:
            for n in (na, nb):  # registration across the bridge (node on B, orchestrator on A)
                wait_until(lambda: orch.get_status(f"/api/runtimes/{n.runtime_uuid()}/")[0] == 200, 30, f"{n.name} registered")
            time.sleep(2.0)  # 4 keepalive intervals: both stay alive only if their keepalives arrive
            for n in (na, nb):
                assert orch.get(f"/api/runtimes/{n.runtime_uuid()}/")["status"] == "A", n.name
            for p in (pa, pb):
                p.subscribe("br/#", qos=2)
                p.subscribe(f"{R}/proc/control/#")
                p.subscribe(f"{R}/proc/stdio/#")
            grants = [{"path": "br/", "mode": "rw", "topic": "br/"}]
            mods = {}
            # on B: br/a -> br/b; on A: br/b -> br/c; the probe on B feeds br/a and counts br/c
            for node, inp, out in ((nb, "br/a", "br/b"), (na, "br/b", "br/c")):
                uid = new_uuid()
                mods[node.name] = uid
                pa.publish(f"{R}/proc/control", envelope("create", {
                    "type": "module", "uuid": uid, "name": f"echo-{node.name}", "parent": node.runtime_uuid(),
                    "file": "echo.wasm", "args": {"argv": [inp, out]}, "channels": grants}))
            for uid in mods.values():
                pb.wait_for(f"{R}/proc/stdio/{uid}", lambda m: b"ready" in m.payload, timeout=30)
            n_msgs = 50
            for i in range(n_msgs):
                pb.publish("br/a", f"m{i}".encode(), qos=2)
            want = {f"m{i}".encode() for i in range(n_msgs)}
            got_c = pb.wait_for("br/c", lambda m: m.payload in want, count=n_msgs, timeout=30)
            # fence: one more message down the chain; on each topic at each broker, anything looping or
            # duplicated from the ones before would come before it
            pb.publish("br/a", b"fence", qos=2)
            pairs = ((pb, "br/c"), (pa, "br/c"), (pa, "br/b"), (pb, "br/b"), (pa, "br/a"), (pb, "br/a"))
            for p, topic in pairs:
                p.wait_for(topic, lambda m: m.payload == b"fence", timeout=30)
            for p, topic in pairs:
                payloads = [m.payload for m in p.messages(topic) if m.payload != b"fence"]
                assert sorted(payloads) == sorted(want), (topic, len(payloads))  # each exactly once, on both brokers
            assert len(got_c) == n_msgs
            pb.publish("br/a", b"exit", qos=2)  # echo does not forward "exit": each module gets its own
            pb.publish("br/b", b"exit", qos=2)
            for node, uid in ((nb, mods["on-b"]), (na, mods["on-a"])):
                wait_until(lambda: orch.get_status(f"/api/modules/{uid}/")[1].get("status") == "D", 30, f"{node.name} module exited")
            exits = [m for m in pa.messages(f"{R}/proc/control/#") if m.json().get("action") == "exited"]
            assert sorted(m.json()["data"]["uuid"] for m in exits) == sorted(mods.values())  # once each
    finally:
        pa.close()
        pb.close()
