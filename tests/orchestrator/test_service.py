"""The orchestrator process against real mosquitto, driven by protocol-speaking MQTT
clients (the probe) and read over its REST API. End-to-end tests with real nodes are in
test_e2e.py."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from typing import Any

import pytest

from common.wire import envelope
from testbed.mqtt import MqttProbe
from testbed.orchestrator import ROOT, OrchestratorProc
from testbed.wait import wait_until

pytestmark = pytest.mark.orchestrator(ka_interval=0.5)

R = "realm"


def register(probe: MqttProbe, mgr: str, rt: str, name: str, max_n: int = 0) -> dict[str, Any]:
    probe.subscribe(f"{R}/proc/reg/#")
    probe.publish(f"{R}/proc/reg/{mgr}", envelope("create", {"type": "manager", "uuid": mgr, "name": name}))
    req = envelope("create", {"type": "runtime", "uuid": rt, "name": f"{name}.rt", "runtime_type": "linux",
                              "max_nmodules": max_n, "apis": ["wasm", "wasi"], "platform": {}, "metadata": {}, "parent": mgr})
    probe.publish(f"{R}/proc/reg/{rt}", req)
    got = probe.wait_for(f"{R}/proc/reg/{rt}", lambda m: m.json().get("type") == "resp", timeout=20)
    reply: dict[str, Any] = got[0].json()
    assert reply["object_id"] == req["object_id"]
    return reply


def test_registration_rest_and_errors(orch: OrchestratorProc, probe: MqttProbe) -> None:
    rt = "0f0f0f0f-0000-4000-8000-00000000beef"
    reply = register(probe, "0f0f0f0f-0000-4000-8000-000000000001", rt, "alpha")
    assert reply["data"]["result"] == "ok" and reply["data"]["details"]["ka_interval_sec"] == 0.5
    probe.subscribe(f"{R}/proc/control/#")
    probe.subscribe(f"{R}/proc/log")
    probe.publish(f"{R}/proc/keepalive/{rt}", envelope("update", {"type": "runtime", "uuid": rt, "children": []}))
    probe.publish(f"{R}/proc/control", envelope("create", {"type": "module", "uuid": "mod-1", "name": "hello",
                                                          "file": "hello.wasm", "parent": "beef"}))
    create = probe.wait_for(f"{R}/proc/control/{rt}", lambda m: m.json()["action"] == "create", timeout=20)[0].json()
    assert create["data"]["uuid"] == "mod-1" and create["data"]["parent"] == rt
    for q in (rt, "alpha.rt", "beef"):
        entry = orch.get(f"/api/runtimes/{q}/")
        assert entry["uuid"] == rt and [c["uuid"] for c in entry["children"]] == ["mod-1"]
    assert orch.get("/api/modules/hello/")["uuid"] == "mod-1"
    assert orch.get_status("/api/modules/nothing/")[0] == 404
    assert orch.get_status("/api/runtimes/nothing/")[0] == 404
    lst = orch.get("/api/runtimes/")
    assert lst["count"] == 1 and lst["start"] == 0 and lst["results"][0]["name"] == "alpha.rt"

    probe.publish(f"{R}/proc/control", b"{broken")
    probe.publish(f"{R}/proc/control", envelope("create", {"type": "module", "uuid": "x", "file": "f", "parent": "ghost"}))
    probe.publish(f"{R}/proc/control", envelope("create", {"type": "module", "uuid": "mod-1", "file": "f", "parent": rt}))
    errs = probe.wait_for(f"{R}/proc/log", timeout=20, count=3)
    text = " | ".join(e.json()["data"]["description"] for e in errs)
    assert "malformed JSON" in text and "unknown parent runtime 'ghost'" in text and "already exists" in text
    assert all(e.json()["action"] == "error" and "data" in e.json()["data"] for e in errs)


def test_keepalive_timeout_then_restart_keeps_state(orch: OrchestratorProc, probe: MqttProbe) -> None:
    rt = "11111111-0000-4000-8000-0000000000aa"
    register(probe, "11111111-0000-4000-8000-000000000001", rt, "beta", max_n=1)
    # one keepalive: from now on silence means death (a runtime that never sent one is not expired)
    probe.publish(f"{R}/proc/keepalive/{rt}", envelope("update", {"type": "runtime", "uuid": rt, "name": "beta", "children": []}))
    wait_until(lambda: orch.get(f"/api/runtimes/{rt}/")["sends_keepalives"], what="keepalive seen")
    probe.subscribe(f"{R}/proc/log")
    for u in ("m-a", "m-b"):
        probe.publish(f"{R}/proc/control", envelope("create", {"type": "module", "uuid": u, "file": "f.wasm", "parent": rt}))
    wait_until(lambda: orch.get("/api/queued/")["count"] == 1, what="second module queued")
    orch.restart()
    assert orch.get(f"/api/runtimes/{rt}/")["queued"][0]["uuid"] == "m-b"
    assert orch.get("/api/modules/m-a/")["status"] == "A"
    # no more keepalives (the restart kept that it sends them): dead after 3 intervals, running module killed, queued one dead
    wait_until(lambda: orch.get(f"/api/runtimes/{rt}/")["status"] == "D", what="runtime dead")
    assert orch.get("/api/modules/m-a/")["status"] == "K"
    assert orch.get("/api/modules/m-b/")["status"] == "D"
    probe.wait_for(f"{R}/proc/log", lambda m: "marked dead" in m.json()["data"]["description"], timeout=20)
    orch.restart()
    assert orch.get("/api/modules/m-a/")["status"] == "K"


def test_survives_a_broker_restart(broker: Any, orch: OrchestratorProc) -> None:
    broker.stop()
    wait_until(lambda: not orch.get("/api/status/")["subscribed"], 20, "orchestrator notices the broker is gone")
    broker.start()
    wait_until(lambda: orch.get("/api/status/")["subscribed"], 30, "orchestrator resubscribed")
    p = MqttProbe(broker.port)
    try:
        reply = register(p, "22222222-0000-4000-8000-000000000001", "22222222-0000-4000-8000-0000000000bb", "gamma")
        assert reply["data"]["result"] == "ok"
    finally:
        p.close()


def orchestrator_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=ROOT, capture_output=True, text=True, timeout=30)


def test_command_line_mistakes_are_one_line(tmp_path: Any) -> None:
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"mqtt_port": "high"}))
    r = orchestrator_cli("-c", str(cfg))
    assert r.returncode == 2 and "key 'mqtt_port'" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = orchestrator_cli("-c", os.path.join(str(tmp_path), "missing.json"))
    assert r.returncode == 2 and "does not exist" in r.stderr
    r = orchestrator_cli("--http-port", "abc")
    assert r.returncode == 2 and "--http-port must be an integer" in r.stderr
    with socket.socket() as s:  # the REST port is taken
        s.bind(("127.0.0.1", 0))
        s.listen()
        r = orchestrator_cli("--db", str(tmp_path / "o.db"), "--http-port", str(s.getsockname()[1]), "--mqtt-port", "1")
    assert r.returncode == 1 and "cannot listen on 127.0.0.1:" in r.stderr
