"""Our orchestrator (the real process, real mosquitto) with the original SilverLine tools: every
message here is the original's, field for field as docs/compatibility.md records it
(tests/helpers/original.py); docs/compatibility.md."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest

from tests.helpers import original as O
from testbed.mqtt import MqttProbe
from testbed.orchestrator import ROOT, OrchestratorProc
from testbed.wait import wait_until

pytestmark = pytest.mark.orchestrator(ka_interval=0.3, extra_args=["--delete-timeout", "1.5"])

R = "realm"
MGR = "aaaaaaaa-0000-4000-8000-000000000001"
RT_A = "aaaaaaaa-0000-4000-8000-0000000000a1"
RT_B = "aaaaaaaa-0000-4000-8000-0000000000b2"


def reg(probe: MqttProbe, msg: dict[str, Any]) -> dict[str, Any]:
    """Publish an original registration on its topic; the answer (same object_id) must be ok."""
    topic = f"{R}/proc/reg/{msg['data']['uuid']}"
    probe.subscribe(topic)
    probe.publish(topic, msg, qos=2)
    got = probe.wait_for(topic, lambda m: m.json().get("type") == "resp" and m.json()["object_id"] == msg["object_id"], timeout=20)
    reply: dict[str, Any] = got[0].json()
    assert reply["data"]["result"] == "ok", reply
    return reply


def original_node(probe: MqttProbe, kind: str = "linux/min/wasmer", names: tuple[str, ...] = ("orig.a", "orig.b")) -> None:
    reg(probe, O.manager_create(MGR, "orig"))
    for rt, name in zip((RT_A, RT_B), names):
        reg(probe, O.runtime_create(rt, name, MGR, kind))


def creates_on(probe: MqttProbe, rt: str) -> list[dict[str, Any]]:
    return [m.json()["data"] for m in probe.messages(f"{R}/proc/control/{rt}") if m.json().get("action") == "create"]


def test_create_batch_parent_is_honoured(orch: OrchestratorProc, probe: MqttProbe) -> None:
    """`run --copy` / `run -f a b` / `benchmark` name the runtime once as data.parent."""
    original_node(probe, "linux")  # 128 slots each: the scheduler alone would spread the batch
    probe.subscribe(f"{R}/proc/control/#")
    batch = O.run_batch(RT_B, ["wasm/apps/helloworld.wasm"] * 4, name="hello")
    probe.publish(f"{R}/proc/control", batch, qos=2)
    uuids = [m["uuid"] for m in batch["data"]["modules"]]
    wait_until(lambda: len(creates_on(probe, RT_B)) == 4, what="4 creates on the batch's parent")
    assert creates_on(probe, RT_A) == []
    for u in uuids:
        row = orch.get(f"/api/modules/{u}/")
        assert row["parent"] == RT_B and row["status"] == "A" and row["args"] == O.run_args()
    # a module's own parent still wins over the batch's
    batch = O.run_batch(RT_B, ["wasm/a.wasm", "wasm/b.wasm"])
    batch["data"]["modules"][0]["parent"] = RT_A
    probe.publish(f"{R}/proc/control", batch, qos=2)
    first, second = (m["uuid"] for m in batch["data"]["modules"])
    wait_until(lambda: any(c["uuid"] == first for c in creates_on(probe, RT_A)), what="own parent wins")
    assert orch.get(f"/api/modules/{second}/")["parent"] == RT_B
    # a batch naming an unknown runtime is refused, module by module, on both log topics
    probe.subscribe(f"{R}/proc/log/#")
    bad = O.run_batch("no-such-runtime", ["wasm/a.wasm"])
    probe.publish(f"{R}/proc/control", bad, qos=2)
    for topic in (f"{R}/proc/log", f"{R}/proc/log/orchestrator"):
        probe.wait_for(topic, lambda m: "unknown parent runtime 'no-such-runtime'" in m.json()["data"]["description"])


def test_runtimes_without_keepalives_live_until_their_managers_last_will(broker: Any, orch: OrchestratorProc,
                                                                         probe: MqttProbe) -> None:
    """The original's runtimes never send keepalives; only the last will (or a delete) kills them.
    The manager is a real MQTT client with the original's last will, SIGKILLed."""
    script = textwrap.dedent(f"""
        import json, sys, time, paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion
        sys.path.insert(0, {ROOT!r})
        from tests.helpers import original as O
        c = mqtt.Client(CallbackAPIVersion.VERSION2)
        c.will_set("{R}/proc/reg/{MGR}", json.dumps(O.manager_delete("{MGR}", "orig")), qos=2)
        c.connect("127.0.0.1", {broker.port}, keepalive=60)
        c.loop_start()
        for topic, msg in [("{R}/proc/reg/{MGR}", O.manager_create("{MGR}", "orig")),
                           ("{R}/proc/reg/{RT_A}", O.runtime_create("{RT_A}", "orig", "{MGR}", "linux/min/wasmer"))]:
            c.publish(topic, json.dumps(msg), qos=2).wait_for_publish(10)
            time.sleep(0.3)
        print("registered", flush=True)
        time.sleep(600)
    """)
    mgr = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert mgr.stdout is not None and mgr.stdout.readline().strip() == "registered"
        wait_until(lambda: orch.get(f"/api/runtimes/{RT_A}/")["status"] == "A", what="original runtime registered")
        probe.publish(f"{R}/proc/control", O.run_create(RT_A, "wasm/apps/helloworld.wasm", "hello"), qos=2)
        # ten keepalive intervals without a keepalive, on the orchestrator's own clock: still alive
        rt = wait_until(lambda: (lambda r: r if r["seconds_since_keepalive"] >= 10 * 0.3 else None)(orch.get(f"/api/runtimes/{RT_A}/")),
                        30, "ten keepalive intervals on the orchestrator's clock")
        assert rt["status"] == "A" and not rt["sends_keepalives"] and len(rt["children"]) == 1
        mgr.kill()  # the broker publishes the manager's last will
        mgr.wait(10)
        wait_until(lambda: orch.get(f"/api/runtimes/{RT_A}/")["status"] == "D", what="dead by the last will")
        assert orch.get(f"/api/modules/{rt['children'][0]['uuid']}/")["status"] == "K"
    finally:
        if mgr.poll() is None:
            mgr.kill()
            mgr.wait(10)
        if mgr.stdout is not None:
            mgr.stdout.close()


def test_a_runtime_that_sent_a_keepalive_is_expired(orch: OrchestratorProc, probe: MqttProbe) -> None:
    """The other side of the keepalive rule: ours send keepalives, and silence after one means death."""
    original_node(probe)
    probe.publish(f"{R}/proc/keepalive/{RT_B}", O.req("update", {"type": "runtime", "uuid": RT_B, "name": "orig.b",
                                                                  "apis": [], "children": []}))
    wait_until(lambda: orch.get(f"/api/runtimes/{RT_B}/")["status"] == "D", what="runtime B expired")
    assert orch.get(f"/api/runtimes/{RT_A}/")["status"] == "A"


def test_a_delete_the_runtime_ignores_ends_dead_with_a_reason(orch: OrchestratorProc, probe: MqttProbe) -> None:
    """The original minimal runtime ignores deletes; after --delete-timeout the module is
    dead (reason says so), its slot is freed and the queued module starts."""
    original_node(probe)
    probe.subscribe(f"{R}/proc/control/#")
    probe.subscribe(f"{R}/proc/log/orchestrator")
    first, second = O.run_create(RT_A, "wasm/a.wasm", "first"), O.run_create(RT_A, "wasm/b.wasm", "second")
    for m in (first, second):
        probe.publish(f"{R}/proc/control", m, qos=2)
    mid, queued = first["data"]["uuid"], second["data"]["uuid"]
    wait_until(lambda: orch.get(f"/api/modules/{queued}/")["status"] == "Q", what="second queued (max_nmodules 1)")
    probe.publish(f"{R}/proc/control", O.stop(mid), qos=2)
    probe.wait_for(f"{R}/proc/control/{RT_A}", lambda m: m.json()["action"] == "delete" and m.json()["data"]["uuid"] == mid)
    assert orch.get(f"/api/modules/{mid}/")["status"] == "E"
    t0 = time.monotonic()
    wait_until(lambda: orch.get(f"/api/modules/{mid}/")["status"] == "D", what="deleted module marked dead")
    assert time.monotonic() - t0 > 0.5  # not at once: the runtime had its chance
    row = orch.get(f"/api/modules/{mid}/")
    assert row["exit"]["reason"] == "deleted" and "sent no exited within 1.5 s of the delete" in row["exit"]["error"]
    probe.wait_for(f"{R}/proc/log/orchestrator", lambda m: mid in m.json()["data"]["description"])
    wait_until(lambda: any(c["uuid"] == queued for c in creates_on(probe, RT_A)), what="the queued module started")
    # the original manager's exited (status is the string "exited") ends the next one normally
    probe.publish(f"{R}/proc/control/{RT_A}", O.exited(queued), qos=2)
    wait_until(lambda: orch.get(f"/api/modules/{queued}/")["status"] == "D", what="exited")
    assert orch.get(f"/api/modules/{queued}/")["exit"] == {"reason": "exited", "code": None, "error": None}


def test_reports_go_to_proc_log_orchestrator_too(orch: OrchestratorProc, probe: MqttProbe) -> None:
    """What the original publishes on proc/log/orchestrator, ours publishes there as well
    (the same report, also on proc/log)."""
    probe.subscribe(f"{R}/proc/log/#")
    probe.subscribe(f"{R}/proc/log")
    probe.publish(f"{R}/proc/control", O.stop("no-such-module"), qos=2)
    theirs = probe.wait_for(f"{R}/proc/log/orchestrator")[0].json()
    ours = probe.wait_for(f"{R}/proc/log", lambda m: m.json()["object_id"] == theirs["object_id"])[0].json()
    assert theirs == ours and theirs["action"] == "error" and theirs["type"] == "resp"
    assert "unknown module 'no-such-module'" in theirs["data"]["description"]


@pytest.mark.parametrize("asks,kind", [(["stdio:out"], "ours"), (["wasm", "wasi", "stdout"], "linux/min/wamr"),
                                       (["profile:benchmarking"], "ours-bench"), (["wasm:wasmer", "stdio:in"], "linux/min/wasmer")])
def test_placement_by_the_originals_api_names(orch: OrchestratorProc, probe: MqttProbe, asks: list[str], kind: str) -> None:
    """A module asking for an api by the original's name (or ours) is placed on a runtime
    that registered the other name for it, not refused."""
    reg(probe, O.manager_create(MGR, "mixed"))
    if kind.startswith("ours"):  # a runtime registered with our first names only
        apis = ["wasm", "wasi", "benchmarking"] if kind == "ours-bench" else ["wasm", "wasi", "stdout", "stdin"]
        msg = O.runtime_create(RT_A, "mixed.a", MGR, "linux")
        msg["data"]["apis"] = apis
        reg(probe, msg)
    else:
        reg(probe, O.runtime_create(RT_A, "mixed.a", MGR, kind))
    reg(probe, O.runtime_create(RT_B, "mixed.b", MGR, "test/reg"))  # no apis: never a match
    mod = O.req("create", {"type": "module", "uuid": O.oid(), "name": "m", "file": "wasm/x.wasm", "apis": asks,
                           "args": O.run_args()})
    probe.publish(f"{R}/proc/control", mod, qos=2)
    wait_until(lambda: orch.get_status(f"/api/modules/{mod['data']['uuid']}/")[0] == 200, what="module placed")
    assert orch.get(f"/api/modules/{mod['data']['uuid']}/")["parent"] == RT_A


def test_rest_records_carry_every_field_of_the_originals(orch: OrchestratorProc, probe: MqttProbe) -> None:
    """The original's `manage.py list/run/stop` and its profile collector read our REST API: every
    field of the original's records (model_to_dict) is there, with the same meaning."""
    original_node(probe, "linux")
    mod = O.run_create(RT_A, "wasm/apps/helloworld.wasm", "hello")
    probe.publish(f"{R}/proc/control", mod, qos=2)
    mid = mod["data"]["uuid"]
    wait_until(lambda: orch.get_status(f"/api/modules/{mid}/")[0] == 200, what="module taken")
    want_rt = O.rest_runtime(RT_A, "orig.a", MGR, "linux")
    for rt in (orch.get(f"/api/runtimes/{RT_A}/"), next(r for r in orch.get("/api/runtimes/")["results"] if r["uuid"] == RT_A)):
        assert set(want_rt) <= set(rt), set(want_rt) - set(rt)
        assert {k: rt[k] for k in ("uuid", "name", "runtime_type", "max_nmodules", "status", "parent")} == \
            {k: want_rt[k] for k in ("uuid", "name", "runtime_type", "max_nmodules", "status", "parent")}
        assert rt["apis"] == sorted(want_rt["apis"]) and [c["uuid"] for c in rt["children"]] == [mid]
    row = orch.get(f"/api/modules/{mid}/")
    want_mod = O.rest_module(mid, "hello", RT_A, "wasm/apps/helloworld.wasm")
    assert set(want_mod) <= set(row), set(want_mod) - set(row)
    assert {k: row[k] for k in ("uuid", "name", "parent", "file", "args", "channels", "status")} == \
        {k: want_mod[k] for k in ("uuid", "name", "parent", "file", "args", "channels", "status")}
    assert isinstance(row["index"], int)
