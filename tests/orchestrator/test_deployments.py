"""Declared deployments end to end: real mosquitto, the real orchestrator, real `start.py` nodes that
come and go, `manage.py apply` / `deployments` as an operator types them (issue #27)."""
from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from typing import Any

from testbed.mqtt import MqttProbe
from testbed.node import NodeProcess
from testbed.orchestrator import OrchestratorProc
from testbed.wait import wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def manage(orch: OrchestratorProc, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SL_CONFIG": orch.config}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)


def dep(orch: OrchestratorProc, name: str) -> dict[str, Any]:
    code, body = orch.get_status(f"/api/deployments/{name}/?events=50")
    assert code == 200, body
    return dict(body)


def where(orch: OrchestratorProc, name: str) -> Counter[str]:
    """Runtime name -> modules of the deployment running there."""
    return Counter(s["runtime_name"] for s in dep(orch, name)["slots"] if s["status"] == "A")


def echo_node(broker: Any, tmp_path: Any, name: str) -> NodeProcess:
    return NodeProcess(broker.port, name=name, runtimes=["test/echo"], state_dir=str(tmp_path / name), reg_timeout=5)


def kill(node: NodeProcess, killed: list[int]) -> None:
    """SIGKILL (a node loss); its IPC objects are unlinked at the end of the test (nothing else will)."""
    killed.append(node.pid)
    node.kill()


def unlink_ipc(pids: list[int]) -> None:
    for pid in pids:
        for path in glob.glob(f"/dev/mqueue/sl.{pid}.*") + glob.glob(f"/dev/shm/sl.{pid}.*"):
            try:
                os.unlink(path)
            except OSError:
                pass


def test_apply_restart_move_back_scale_and_orchestrator_restart(broker: Any, orch: OrchestratorProc, probe: MqttProbe,
                                                                 tmp_path: Any) -> None:
    nodes = {n: echo_node(broker, tmp_path, n) for n in ("n1", "n2", "n3")}
    killed: list[int] = []
    try:
        for n in nodes.values():
            n.start()
        spec = tmp_path / "d.yaml"
        spec.write_text("deployments:\n"
                        "  - name: web\n    file: none\n    count: 2\n    placement: {runtimes: [n1, n2]}\n"
                        "    restart: always\n    backoff: [0.2, 1]\n    env: {TOKEN: hunter2}\n"
                        "    channels: [{path: t/web, mode: rw}]\n"
                        "  - name: job\n    file: none\n    restart: on-failure\n    placement: {runtimes: [n3]}\n"
                        "    channels: [{path: t/job, mode: rw}]\n")
        r = manage(orch, "apply", str(spec), "--wait", "30")
        assert r.returncode == 0, r.stderr
        assert "deployment web: applied; 2 of 2 running" in r.stdout
        assert where(orch, "web") == {"n1": 1, "n2": 1}
        listing = manage(orch, "deployments")
        assert listing.returncode == 0 and "web" in listing.stdout and "hunter2" not in listing.stdout
        assert "hunter2" not in json.dumps(orch.get("/api/deployments/"))

        # a module that fails is restarted (a new module, same name); one that exits 0 under on-failure is not
        first = [s["module"] for s in dep(orch, "web")["slots"]]
        probe.publish("t/web", b"!exit 3")  # both web modules read t/web: both exit with code 3
        wait_until(lambda: dep(orch, "web")["restarts"] >= 2 and dep(orch, "web")["running"] == 2, 30, "web restarted")
        assert not set(first) & {s["module"] for s in dep(orch, "web")["slots"]}
        probe.publish("t/job", b"!exit 0")
        wait_until(lambda: dep(orch, "job")["done"] == 1, 30, "job finished")
        assert dep(orch, "job")["running"] == 0 and dep(orch, "job")["restarts"] == 0

        # a node dies: its web module moves to the other allowed node; back when it returns
        kill(nodes["n1"], killed)
        wait_until(lambda: where(orch, "web") == {"n2": 2}, 30, "web moved to n2")
        nodes["n1"] = echo_node(broker, tmp_path, "n1").start()
        wait_until(lambda: where(orch, "web") == {"n1": 1, "n2": 1}, 30, "web spread again")

        # scale up, then the orchestrator restarts (SIGKILL): everything is still kept true
        spec.write_text(spec.read_text().replace("count: 2", "count: 4"))
        assert manage(orch, "apply", str(spec), "--wait", "30").returncode == 0
        assert where(orch, "web") == {"n1": 2, "n2": 2}
        orch.stop(signal.SIGKILL)
        orch.start()
        assert dep(orch, "web")["running"] == 4
        running = {s["module"] for s in dep(orch, "web")["slots"]}
        kill(nodes["n2"], killed)
        wait_until(lambda: where(orch, "web") == {"n1": 4}, 30, "web all on n1 after the restart and n2's death")
        assert running & {s["module"] for s in dep(orch, "web")["slots"]}  # the n1 ones were kept
        steps = [e["step"] for e in dep(orch, "web")["events"]]
        assert "stopped" in steps and "started" in steps and "exited" in steps
        assert "deployment web:" in orch.log()

        # delete: its modules stop
        r = manage(orch, "apply", "--delete", "web")
        assert r.returncode == 0, r.stderr
        wait_until(lambda: not orch.get("/api/modules/?name=web-0")["results"], 30, "web modules stopped")
        r = manage(orch, "apply", "--delete", "web")
        assert r.returncode == 1 and "no deployment named 'web'" in r.stderr
    finally:
        for n in nodes.values():
            n.stop()
        unlink_ipc(killed)


def test_bad_file_is_one_line(orch: OrchestratorProc, tmp_path: Any) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("- name: x\n  file: a.wasm\n  count: -1\n")
    r = manage(orch, "apply", str(bad))
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "count must be an integer" in r.stderr, r.stderr
    bad.write_text("- name: [\n")
    r = manage(orch, "apply", str(bad))
    assert r.returncode == 1 and "is not valid YAML" in r.stderr, r.stderr
    r = manage(orch, "deployments")
    assert r.returncode == 0 and "no deployments" in r.stdout
