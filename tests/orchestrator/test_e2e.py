"""End to end: real mosquitto, the real orchestrator process, real nodes (`start.py` with the
`test/echo` runtime) and the real `manage.py` scripts."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

from common.wire import envelope
from testbed.mqtt import MqttProbe
from testbed.node import NodeProcess
from testbed.orchestrator import ROOT, OrchestratorProc
from testbed.wait import wait_until

R = "realm"
WAIT = 30.0


def manage(orch: OrchestratorProc, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([sys.executable, os.path.join(ROOT, "manage.py"), args[0], "-c", orch.config, *args[1:]],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    if check:
        assert r.returncode == 0, f"manage.py {' '.join(args)} -> {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


def created_uuids(out: str) -> list[str]:
    return [line.split()[2] for line in out.splitlines() if line.startswith("created ")]


def node(broker: Any, tmp_path: Any, name: str, **kw: Any) -> NodeProcess:
    return NodeProcess(broker.port, name=name, runtimes=["test/echo"], state_dir=str(tmp_path / "state"),
                       reg_timeout=5, **kw)


def module_status(orch: OrchestratorProc, uuid: str) -> str:
    return str(orch.get(f"/api/modules/{uuid}/")["status"])


def wait_runtime(orch: OrchestratorProc, q: str, status: str = "A") -> dict[str, Any]:
    def ok() -> Any:
        code, rt = orch.get_status(f"/api/runtimes/{q}/")
        return rt if code == 200 and rt["status"] == status else None
    return wait_until(ok, WAIT, f"runtime {q} in state {status}")  # type: ignore[no-any-return]


def echo_works(probe: MqttProbe, topic: str, word: bytes) -> None:
    """The module really runs on the node: what goes in on its channel comes back out.

    Retried: the orchestrator shows a module alive when it sent the create, a moment before
    the node has subscribed its channel."""
    probe.subscribe(topic)
    deadline = time.monotonic() + WAIT
    for attempt in range(1000):
        w = word + b".%d" % attempt
        probe.publish(topic, w)
        try:
            probe.wait_for(topic, lambda m: m.payload == w, timeout=1.0, count=2)  # ours + the echo
            return
        except TimeoutError:
            if time.monotonic() > deadline:
                raise


def test_run_list_exit(broker: Any, probe: MqttProbe, orch: OrchestratorProc, tmp_path: Any) -> None:
    with node(broker, tmp_path, "e2e1"):
        wait_runtime(orch, "e2e1")
        out = manage(orch, "run", "-r", "e2e1", "-n", "hello", "-f", "hello.wasm", "-C", "e2e/hello:rw").stdout
        (uuid,) = created_uuids(out)
        wait_until(lambda: module_status(orch, uuid) == "A", WAIT, "module alive")
        echo_works(probe, "e2e/hello", b"ping")
        listing = manage(orch, "list").stdout
        assert "e2e1" in listing and "hello" in listing and uuid[-8:] in listing
        probe.publish("e2e/hello", b"!exit 0")
        wait_until(lambda: module_status(orch, uuid) == "D", WAIT, "module dead after exiting")
        assert orch.get(f"/api/modules/{uuid}/")["exit"]["reason"] == "exited"
        assert uuid[-8:] not in manage(orch, "list").stdout


def test_second_module_queued_on_max_nmodules_1_then_runs(broker: Any, probe: MqttProbe, orch: OrchestratorProc, tmp_path: Any) -> None:
    with NodeProcess(broker.port, name="solo", runtimes=["test/single"], state_dir=str(tmp_path / "state"), reg_timeout=5):
        assert wait_runtime(orch, "solo")["max_nmodules"] == 1
        out = manage(orch, "run", "-r", "solo", "-n", "one", "-f", "a.wasm", "--copy", "2", "-C", "e2e/solo").stdout
        first, second = created_uuids(out)
        wait_until(lambda: module_status(orch, first) == "A", WAIT, "first module alive")
        assert module_status(orch, second) == "Q"
        assert [m["uuid"] for m in orch.get("/api/queued/")["results"]] == [second]
        listing = manage(orch, "list").stdout
        assert first[-8:] in listing and second[-8:] in listing and "[Q]" in listing
        echo_works(probe, "e2e/solo", b"first")
        probe.publish("e2e/solo", b"!exit 0")  # only the running one listens
        wait_until(lambda: module_status(orch, second) == "A", WAIT, "queued module started")
        assert module_status(orch, first) == "D"
        echo_works(probe, "e2e/solo", b"second")  # really running on the node now


def test_full_runtime_queues_then_starts(broker: Any, orch: OrchestratorProc, tmp_path: Any) -> None:
    """test/echo takes 128 modules (the 7-bit module index): the 129th is queued until one exits."""
    with node(broker, tmp_path, "q1"):
        rt = wait_runtime(orch, "q1")
        assert rt["max_nmodules"] == 128
        out = manage(orch, "run", "-r", "q1", "-n", "bulk", "-f", "x.wasm", "y.wasm", "z.wasm", "--copy", "43").stdout
        uuids = created_uuids(out)
        assert len(uuids) == 129 and out.count(" y.wasm -> q1") == 43
        wait_until(lambda: len(orch.get("/api/runtimes/q1/")["children"]) == 128, WAIT, "128 running")
        queued = orch.get("/api/queued/")
        assert queued["count"] == 1 and queued["results"][0]["uuid"] == uuids[-1]
        assert "1 more queued" in manage(orch, "list", "-q", "0").stdout
        manage(orch, "stop", "-n", uuids[0][-12:])  # by uuid suffix
        wait_until(lambda: module_status(orch, uuids[-1]) == "A", WAIT, "queued module started")
        assert module_status(orch, uuids[0]) == "D"
        assert orch.get("/api/queued/")["count"] == 0


def test_sigkill_last_will_then_restart_resurrects(broker: Any, probe: MqttProbe, orch: OrchestratorProc, tmp_path: Any) -> None:
    n = node(broker, tmp_path, "phoenix")
    try:
        n.start()
        rt_uuid = n.runtime_uuid()
        wait_runtime(orch, rt_uuid)
        (uuid,) = created_uuids(manage(orch, "run", "-r", "phoenix", "-n", "bird", "-f", "b.wasm", "-C", "e2e/bird").stdout)
        wait_until(lambda: module_status(orch, uuid) == "A", WAIT, "module alive")
        n.kill()
        wait_runtime(orch, rt_uuid, "D")  # the last will deleted the manager, hence its runtime
        assert module_status(orch, uuid) == "K"
        assert orch.get(f"/api/runtimes/{n.manager_uuid}/")["status"] == "D"
    finally:
        n.stop()
    with node(broker, tmp_path, "phoenix") as again:
        assert again.runtime_uuid() == rt_uuid  # stable identity from the state directory
        wait_runtime(orch, rt_uuid, "A")
        wait_until(lambda: module_status(orch, uuid) == "A", WAIT, "module resurrected")
        echo_works(probe, "e2e/bird", b"back")


def test_refusals_reach_proc_log(broker: Any, probe: MqttProbe, orch: OrchestratorProc, tmp_path: Any) -> None:
    probe.subscribe(f"{R}/proc/log")
    with node(broker, tmp_path, "strict") as n:
        wait_runtime(orch, "strict")
        (uuid,) = created_uuids(manage(orch, "run", "-r", "strict", "-f", "a.wasm").stdout)
        wait_until(lambda: module_status(orch, uuid) == "A", WAIT, "module alive")
        probe.publish(f"{R}/proc/control", b'{"action": "create", "data": ')
        probe.publish(f"{R}/proc/control", envelope("create", {"type": "module", "uuid": "u-1", "file": "a.wasm", "parent": "ghost"}))
        probe.publish(f"{R}/proc/control", envelope("create", {"type": "module", "uuid": uuid, "file": "a.wasm", "parent": "strict"}))
        for needle in ("malformed JSON", "unknown parent runtime 'ghost'", f"module uuid {uuid} already exists"):
            probe.wait_for(f"{R}/proc/log", lambda m, s=needle: s in m.json()["data"]["description"], timeout=WAIT)
        # a second node claiming the first one's manager uuid under another name is refused,
        # and its exit does not take the first one down
        with NodeProcess(broker.port, name="impostor", runtimes=["test/reg"], extra_args=["--uuid", str(n.manager_uuid)],
                         reg_timeout=2):
            probe.wait_for(f"{R}/proc/log", lambda m: "already alive" in m.json()["data"]["description"], timeout=WAIT)
        probe.wait_for(f"{R}/proc/log", lambda m: "sent by 'impostor'" in m.json()["data"]["description"], timeout=WAIT)
        assert orch.get("/api/runtimes/strict/")["status"] == "A"
        assert module_status(orch, uuid) == "A"
        # the CLI refuses what it can check itself, with one line and a non-zero exit
        r = manage(orch, "run", "-r", "ghost", "-f", "a.wasm", check=False)
        assert r.returncode == 1 and "unknown runtime 'ghost'" in r.stderr and len(r.stderr.strip().splitlines()) == 1
        r = manage(orch, "stop", "-n", "no-such-module", check=False)
        assert r.returncode == 1 and "unknown module 'no-such-module'" in r.stderr


def test_rest_lookups_and_orchestrator_restart(broker: Any, orch: OrchestratorProc, tmp_path: Any) -> None:
    with node(broker, tmp_path, "look") as n:
        rt_uuid = n.runtime_uuid()
        wait_runtime(orch, rt_uuid)
        (uuid,) = created_uuids(manage(orch, "run", "-r", rt_uuid[-6:], "-n", "finder", "-f", "f.wasm").stdout)
        wait_until(lambda: module_status(orch, uuid) == "A", WAIT, "module alive")
        for q in (rt_uuid, "look", rt_uuid[-6:]):
            assert orch.get(f"/api/runtimes/{q}/")["uuid"] == rt_uuid
        for q in (uuid, "finder", uuid[-6:]):
            assert orch.get(f"/api/modules/{q}/")["uuid"] == uuid
        assert orch.get_status("/api/runtimes/nope/")[0] == 404
        assert orch.get_status("/api/modules/nope/")[0] == 404
        orch.restart()
        assert orch.get(f"/api/modules/{uuid}/")["status"] == "A"
        assert [c["uuid"] for c in orch.get("/api/runtimes/look/")["children"]] == [uuid]
        manage(orch, "stop", "-n", "finder")
        wait_until(lambda: module_status(orch, uuid) == "D", WAIT, "module stopped after the restart")
        assert orch.get(f"/api/runtimes/{rt_uuid}/")["status"] == "A"  # keepalives kept it alive across the restart
