"""Past one broker (issue #26 item 4), node side: `--mqtt A,B` (config `mqtt` as a list) and the
broker the node is on stops: it is on the next one within 5 s, re-subscribed and registered again,
and its module keeps running (not restarted, not lost). The two mosquittos are bridged (docs/cluster.md,
"Past one broker"), the orchestrator is on B; real processes throughout."""
from __future__ import annotations

import os
import time
from typing import Any

import orjson

from common.wire import envelope, new_uuid
from testbed.broker import Mosquitto
from testbed.mqtt import MqttProbe
from testbed.node import NodeProcess
from testbed.orchestrator import OrchestratorProc
from testbed.wait import wait_until

R = "realm"


def bridge_conf(remote_port: int) -> str:
    return "\n".join(["connection fleet-bridge", f"address 127.0.0.1:{remote_port}", "topic # both 2",
                      "try_private true", "cleansession true", "bridge_protocol_version mqttv50", "restart_timeout 1 2"])


def ping(probe: MqttProbe, topic: str, mod: str, word: str, timeout: float = 20.0) -> None:
    """Publish `word` on `topic` until the echo module answers it (its channel may not be open yet)."""
    deadline = time.monotonic() + timeout
    while True:
        probe.publish(topic, word.encode())
        try:
            probe.wait_for(topic, lambda m: m.payload == f"{mod}|{word}".encode(), timeout=1.0)
            return
        except TimeoutError:
            if time.monotonic() > deadline:
                raise


def test_a_node_fails_over_to_the_next_broker_within_5_s_and_keeps_its_module(tmp_path: Any) -> None:
    b = Mosquitto().start()
    a = Mosquitto(extra_conf=bridge_conf(b.port)).start()
    orch = OrchestratorProc(b.port, str(tmp_path), ka_interval=1.0).start()
    probe = MqttProbe(b.port)
    n = NodeProcess(a.port, name="hopper", runtimes=["test/echo"], reg_timeout=5, failover=[b.port])
    try:
        n.start()
        rt = n.runtime_uuid()
        wait_until(lambda: orch.get_status(f"/api/runtimes/{rt}/")[1].get("status") == "A", 30, "registered through the bridge")
        mod, topic = new_uuid(), f"fleet/hop/{new_uuid()[:8]}"
        probe.subscribe(topic)
        probe.publish(f"{R}/proc/control", envelope("create", {
            "type": "module", "uuid": mod, "name": "echo", "parent": rt, "file": "none",
            "args": {"prefix": f"{mod}|"}, "channels": [{"path": topic, "mode": "rw", "topic": topic}]}))
        wait_until(lambda: orch.get_status(f"/api/modules/{mod}/")[1].get("status") == "A", 20, "the module runs")
        ping(probe, topic, mod, "before")  # through the bridge to the node on A, and back
        out0 = n.output()
        assert out0.count("connected to MQTT broker") == 1
        t0 = time.monotonic()
        a.stop()  # the broker the node is on
        wait_until(lambda: f"connected to MQTT broker 127.0.0.1:{b.port}" in n.output(), 10, "the node on broker B")
        took = time.monotonic() - t0
        assert took <= 5.0, f"the node was back on another broker after {took:.1f} s"
        # registered again there (it re-registers on every connection) and its module was kept
        wait_until(lambda: "registered runtime hopper" in n.output()[len(out0):], 20, "registered again on broker B")
        probe.clear()
        ping(probe, topic, mod, "after")  # now straight to the node on B
        assert orch.get_status(f"/api/modules/{mod}/")[1].get("status") == "A"  # the same module: never exited
    finally:
        probe.close()
        n.stop()
        orch.stop()
        a.close()
        b.close()


def test_a_client_connects_to_the_first_broker_of_the_list_that_answers(tmp_path: Any) -> None:
    """The client library (manage.py's scripts): `mqtt` = "DOWN,UP" connects to UP; every one down
    is one error naming each."""
    from common.broker import broker_list
    from common.config import Config
    from silverline.errors import ClientError
    from silverline.mqtt import Connection
    from testbed.broker import free_port

    down = free_port()
    with Mosquitto() as up:
        cfg = Config(mqtt=f"127.0.0.1:{down},127.0.0.1:{up.port}")
        assert broker_list(cfg.mqtt, cfg.mqtt_port) == [("127.0.0.1", down), ("127.0.0.1", up.port)]
        with Connection(cfg, timeout=5) as c:
            assert c.where == f"127.0.0.1:{up.port}"
            c.publish([("fleet/x", b"1")])
    cfg = Config(mqtt=f"127.0.0.1:{down},127.0.0.1:{free_port()}")
    try:
        Connection(cfg, timeout=5).open()
        raise AssertionError("connected to no broker at all")
    except ClientError as e:
        assert str(e).count("127.0.0.1:") == 2, e


def test_the_orchestrator_fails_over_and_keeps_deciding(tmp_path: Any) -> None:
    """The orchestrator on A of `A,B` (bridged), a node on B: A stops; the orchestrator is subscribed on
    B at once (its reconnect delay: 1 s), its node's runtime was not declared dead, and a create
    made after the failover runs."""
    b = Mosquitto().start()
    a = Mosquitto(extra_conf=bridge_conf(b.port)).start()
    orch = OrchestratorProc(a.port, str(tmp_path), ka_interval=1.0,
                            mqtt=f"127.0.0.1:{a.port},127.0.0.1:{b.port}").start()
    probe = MqttProbe(b.port)
    n = NodeProcess(b.port, name="stayer", runtimes=["test/echo"], reg_timeout=5)
    try:
        n.start()
        rt = n.runtime_uuid()
        wait_until(lambda: orch.get_status(f"/api/runtimes/{rt}/")[1].get("status") == "A", 30, "registered through the bridge")
        assert orch.get("/api/status/")["broker"] == f"127.0.0.1:{a.port}"
        a.stop()
        wait_until(lambda: orch.get("/api/status/").get("subscribed") and orch.get("/api/status/")["broker"] == f"127.0.0.1:{b.port}",
                   10, "the orchestrator subscribed on broker B")
        mod, topic = new_uuid(), f"fleet/stay/{new_uuid()[:8]}"
        probe.subscribe(topic)
        probe.publish(f"{R}/proc/control", envelope("create", {
            "type": "module", "uuid": mod, "name": "echo", "parent": rt, "file": "none",
            "args": {"prefix": f"{mod}|"}, "channels": [{"path": topic, "mode": "rw", "topic": topic}]}))
        ping(probe, topic, mod, "hello")
        assert orch.get_status(f"/api/runtimes/{rt}/")[1].get("status") == "A"
        assert "missed 3 keepalives" not in orch.log()
    finally:
        probe.close()
        n.stop()
        orch.stop()
        a.close()
        b.close()


def test_the_collector_fails_over_and_stores_what_comes_on_the_next_broker(tmp_path: Any) -> None:
    """`python -m collector --mqtt A,B`: A stops, the collector reconnects to B and stores a profile
    published there."""
    import subprocess
    import sys

    from testbed.procs import stop_process

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    b = Mosquitto().start()
    a = Mosquitto().start()
    data = str(tmp_path / "data")
    log = open(str(tmp_path / "collector.log"), "wb")
    col = subprocess.Popen([sys.executable, "-m", "collector", "--data", data, "--no-rest", "-v", "DBG",
                            "--mqtt", f"127.0.0.1:{a.port},127.0.0.1:{b.port}", "--client-id", f"fo-{new_uuid()[:8]}"],
                           cwd=root, stdout=log, stderr=subprocess.STDOUT)
    probe = MqttProbe(b.port)

    def text() -> str:
        with open(str(tmp_path / "collector.log"), encoding="utf-8", errors="replace") as f:
            return f.read()

    try:
        wait_until(lambda: f"from 127.0.0.1:{a.port}" in text(), 30, "the collector collecting on broker A")
        a.stop()
        wait_until(lambda: f"from 127.0.0.1:{b.port}" in text(), 20, "the collector collecting on broker B")
        topic = f"{R}/proc/profile/benchmarking-v2/22222222-2222-4222-8222-222222222222/mod-fo"
        payload = orjson.dumps({"id": f"fo-{new_uuid()}", "failover": True})
        probe.publish(topic, payload)
        wait_until(lambda: any(p.endswith("mod-fo.benchmarking-v2.json") for p in _files(data)), 20, "the profile stored")
    finally:
        probe.close()
        stop_process(col)
        log.close()
        a.close()
        b.close()


def _files(root: str) -> list[str]:
    return [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if not f.endswith((".tmp", ".lock"))]


def test_a_node_on_a_broker_spoken_to_in_mqtt_311_never_hears_itself(tmp_path: Any) -> None:
    """`--mqtt mqtt311://HOST:PORT`: the node speaks MQTT 3.1.1 (the clustered brokers Debian ships
    speak nothing else); 3.1.1 has no `no_local`, the link drops its own publishes coming back
    (supervisor/echo.py). An echo module answers on the topic it reads: without the emulation it
    would hear its own answer and answer that too (`mod|mod|ping`)."""
    mlog = str(tmp_path / "mosquitto.log")
    with Mosquitto(extra_conf=f"log_dest file {mlog}\nlog_type notice") as broker:
        orch = OrchestratorProc(broker.port, str(tmp_path), ka_interval=1.0).start()
        probe = MqttProbe(broker.port)
        n = NodeProcess(broker.port, name="old", runtimes=["test/echo"], reg_timeout=5, scheme="mqtt311://")
        try:
            n.start()
            rt = n.runtime_uuid()
            wait_until(lambda: orch.get_status(f"/api/runtimes/{rt}/")[1].get("status") == "A", 30, "registered over 3.1.1")
            mod, topic = new_uuid(), f"fleet/old/{new_uuid()[:8]}"
            probe.subscribe(topic)
            probe.publish(f"{R}/proc/control", envelope("create", {
                "type": "module", "uuid": mod, "name": "echo", "parent": rt, "file": "none",
                "args": {"prefix": f"{mod}|"}, "channels": [{"path": topic, "mode": "rw", "topic": topic}]}))
            ping(probe, topic, mod, "ping")
            ping(probe, topic, mod, "fence")  # answered in order: an echo of the first answer would be in by now
            got = [m.payload for m in probe.messages(topic)]
            assert not [p for p in got if p.startswith(f"{mod}|{mod}|".encode())], got
            wait_until(lambda: orch.get_status(f"/api/runtimes/{rt}/")[1].get("sends_keepalives"), 10, "a keepalive over 3.1.1")
            with open(mlog, encoding="utf-8", errors="replace") as f:
                connects = [line for line in f if "New client connected" in line]
            assert any("(p2," in line for line in connects), connects  # mosquitto: p2 = MQTT 3.1.1 (p5 = 5)
        finally:
            probe.close()
            n.stop()
            orch.stop()
