"""alias (through bash and the real ssh client), runall (real mosquitto + real orchestrator)."""
from __future__ import annotations

import subprocess
from typing import Any

import pytest

from common.wire import envelope
from tests.cluster.conftest import Cluster
from testbed.mqtt import MqttProbe
from testbed.orchestrator import OrchestratorProc

pytestmark = pytest.mark.orchestrator(ka_interval=5)

R = "realm"


def test_alias_file_works_in_bash_over_real_ssh(cluster: Cluster) -> None:
    path = cluster.root / "aliases.sh"
    rc, out, _ = cluster.run("alias", "-o", str(path), "--prefix", "sl-")
    assert rc == 0 and "wrote 3 device aliases" in out
    text = path.read_text()
    assert "alias sl-dev1=" in text and "alias sl-dev3=" in text and "alias sl-cmd=" in text
    script = f"""shopt -s expand_aliases
. {path}
sl-dev2 'echo hello from $USER'
sl-cmd -d dev1 'echo {{name}} via sl-cmd'
sl-dev3 true || echo "dev3 failed: $?"
"""
    p = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert f"hello from {cluster.sshd.user}" in p.stdout
    assert "dev1| dev1 via sl-cmd" in p.stdout
    assert "dev3 failed: 255" in p.stdout and "Connection refused" in p.stderr


def test_alias_to_stdout(cluster: Cluster) -> None:
    rc, out, _ = cluster.run("alias", "-o", "-")
    assert rc == 0 and out.startswith("# SilverLine cluster aliases")
    assert out.count("alias dev") == 3


def register_runtime(probe: MqttProbe, mgr: str, rt: str, name: str) -> None:
    probe.subscribe(f"{R}/proc/reg/#")
    probe.publish(f"{R}/proc/reg/{mgr}", envelope("create", {"type": "manager", "uuid": mgr, "name": name}))
    req = envelope("create", {"type": "runtime", "uuid": rt, "name": name, "runtime_type": "linux", "max_nmodules": 0,
                              "apis": ["wasm", "wasi"], "platform": {}, "metadata": {}, "parent": mgr})
    probe.publish(f"{R}/proc/reg/{rt}", req)
    probe.wait_for(f"{R}/proc/reg/{rt}", lambda m: m.json().get("type") == "resp", timeout=20)


def test_runall_creates_a_module_on_every_device_through_the_orchestrator(cluster: Cluster, broker: Any, orch: OrchestratorProc,
                                                                          probe: MqttProbe) -> None:
    # dev1 and dev2 have a runtime named after them; dev3's node is down
    rts = {"dev1": "aaaaaaaa-0000-4000-8000-000000000001", "dev2": "aaaaaaaa-0000-4000-8000-000000000002"}
    for i, (name, rt) in enumerate(rts.items()):
        register_runtime(probe, f"bbbbbbbb-0000-4000-8000-00000000000{i}", rt, name)
    probe.subscribe(f"{R}/proc/control/#")
    rc, out, _ = cluster.run("runall", "--mqtt", f"127.0.0.1:{broker.port}", "--listen", "3",
                             "-f", "/opt/wasm/{arch}/hello.wasm", "-a", "one 'two words'", "-a", "{cgroup}",
                             "-e", "WHO={name}", "--dir", "/tmp", "-k", "3")
    assert rc == 1, out
    for name, rt in rts.items():
        got = probe.wait_for(f"{R}/proc/control/{rt}", lambda m: m.json()["action"] == "create", timeout=20)
        data = got[0].json()["data"]
        assert data["name"] == f"hello.{name}" and data["file"] == "/opt/wasm/x86_64/hello.wasm"
        assert data["args"]["argv"] == ["one", "two words", "cg" + name[-1]] and data["args"]["env"] == [f"WHO={name}"]
        assert data["args"]["dirs"] == ["/tmp"] and data["args"]["repeat"] == 3
        assert f"created {data['uuid']}" in next(ln for ln in out.splitlines() if ln.startswith(name + " "))
    line3 = next(ln for ln in out.splitlines() if ln.startswith("dev3 "))
    assert "FAILED" in line3 and "refused by the orchestrator" in line3 and "dev3" in line3
    assert "3 module(s) on 3 device(s): 2 sent, 1 refused" in out
    assert orch.get("/api/modules/hello.dev1/")["parent"] in (rts["dev1"], "dev1")


def test_runall_with_the_broker_down_says_where_it_tried(cluster: Cluster) -> None:
    from testbed.broker import free_port
    port = free_port()
    rc, _, err = cluster.run("runall", "--mqtt", f"127.0.0.1:{port}", "-f", "x.wasm")
    assert rc == 2 and f"127.0.0.1:{port}" in err
