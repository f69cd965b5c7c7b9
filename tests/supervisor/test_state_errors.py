"""State and config errors are one line and final (issue 25 item 6), each with a real `start.py`:
an unwritable or read-only state directory and a corrupt identity file exit 2 (the systemd unit's
RestartPreventExitStatus) with one line saying what to do, and the identity file is left as it was;
an empty `runtimes` and a wrongly typed runtime setting are refused at start naming the key; an
offending payload is quoted at most 200 bytes on proc/log, by the node and by the orchestrator."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from testbed.control import js
from testbed.mqtt import MqttProbe
from testbed.node import NodeProcess
from testbed.orchestrator import OrchestratorProc

ROOT = Path(__file__).resolve().parents[2]
REALM = "realm"
BIG = b'{"action": "create", "data": {"uuid": 1, "pad": "' + b"x" * (1 << 20) + b'"}}'  # 1 MiB, wrong


def start(*args: str, wrap: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    """start.py with `args`, to its end (these all exit before connecting: no broker needed)."""
    cmd = [*(wrap or []), sys.executable, str(ROOT / "start.py"), "-n", "n1", "--mqtt", "127.0.0.1:1", "-v", "WRN", *args]
    return subprocess.run(cmd, cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)


def one_line(p: subprocess.CompletedProcess[str], *want: str) -> str:
    """Exit 2 and exactly one line of output, containing each of `want`."""
    lines = [ln for ln in (p.stdout + p.stderr).splitlines() if ln.strip()]
    assert p.returncode == 2, (p.returncode, lines)
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    for w in want:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def test_exit_2_is_final_for_the_systemd_unit() -> None:
    unit = (ROOT / "deploy" / "silverline-node@.service").read_text()
    prevent = [ln for ln in unit.splitlines() if ln.startswith("RestartPreventExitStatus=")]
    assert prevent and "2" in prevent[0].split("=", 1)[1].split(), prevent


def test_unwritable_state_dir_is_one_line_and_exit_2(tmp_path: Path) -> None:
    afile = tmp_path / "file"
    afile.write_text("")
    one_line(start("-r", "test/echo", "--state-dir", str(afile / "state")), "state directory", "not writable",
             "--state-dir", "--no-state")


def test_read_only_state_dir_is_one_line_and_exit_2(tmp_path: Path) -> None:
    if shutil.which("unshare") is None:
        pytest.fail("this test needs unshare(1) (util-linux) to mount a read-only tmpfs in a private namespace")
    ro = tmp_path / "ro"
    ro.mkdir()
    # a read-only file system, in a mount namespace of start.py's own (nothing to unmount afterwards)
    wrap = ["unshare", "-m", "sh", "-c", f'mount -t tmpfs -o ro none "{ro}" && exec "$0" "$@"']
    one_line(start("-r", "test/echo", "--state-dir", str(ro), wrap=wrap), "Read-only file system", str(ro))
    one_line(start("-r", "test/echo", "--state-dir", str(ro / "sub"), wrap=wrap), "Read-only file system")


@pytest.mark.parametrize("content,why", [
    ("{not json", "not JSON"),
    ('{"manager": "not-a-uuid", "runtimes": {}}', "no manager uuid"),
    ('{"manager": "11111111-2222-3333-4444-555555555555", "runtimes": {"n1": 5}}', "runtimes must map names to uuids"),
    ("", "not JSON"),
])
def test_corrupt_identity_is_refused_not_replaced(tmp_path: Path, content: str, why: str) -> None:
    ident = tmp_path / "n1.json"
    ident.write_text(content)
    one_line(start("-r", "test/echo", "--state-dir", str(tmp_path)), str(ident), "corrupt", why, "restore it",
             "move it away")
    assert ident.read_text() == content  # never silently replaced by new uuids
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n1.json"]


@pytest.mark.parametrize("runtimes,key", [
    ([], "key 'runtimes' must be object, got array []"),
    ({"linux": {"memory_limit": "1G"}}, "key 'runtimes.linux.memory_limit' must be int, got str '1G'"),
    ({"linux": {"memory_limit": -5}}, "key 'runtimes.linux.memory_limit' must be int >= 1, got -5"),
    ({"linux": []}, "key 'runtimes.linux' must be object"),
    ({"benchmarking": {"child_limits": {"memory": 1}}}, "key 'runtimes.benchmarking.child_limits': unknown key 'memory'"),
    ({"benchmarking": {"warmup": 1.5}}, "key 'runtimes.benchmarking.warmup' must be int"),
])
def test_bad_runtime_settings_are_refused_at_start_naming_the_key(tmp_path: Path, runtimes: Any, key: str) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"runtimes": runtimes}))
    one_line(start("-r", "linux", "--no-state", "-c", str(cfg)), f"{cfg}: {key}")


def test_good_runtime_settings_still_start(broker: Any, tmp_path: Path) -> None:
    """The same checks pass a correct section (and a runtime's own keys) through to the worker."""
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"runtimes": {"test/echo": {"memory_limit": 1 << 20, "own_key": [1]}}}))
    with NodeProcess(broker.port, runtimes=["test/echo"], reg_timeout=0.3, extra_args=["-c", str(cfg)]) as n:
        assert n.proc is not None and n.proc.poll() is None


def test_node_quotes_at_most_200_bytes_of_a_big_bad_payload(broker: Any, probe: MqttProbe) -> None:
    probe.subscribe(f"{REALM}/proc/log")
    with NodeProcess(broker.port, runtimes=["test/echo"], reg_timeout=0.3) as n:
        probe.publish(f"{REALM}/proc/control/{n.runtime_uuid()}", BIG)
        (msg,) = probe.wait_for(f"{REALM}/proc/log", lambda m: "data.uuid" in js(m)["data"].get("error", ""))
        data = js(msg)["data"]
        assert len(data["payload"].encode()) <= 200 + len(f"... ({len(BIG)} bytes)")
        assert data["payload"].endswith(f"... ({len(BIG)} bytes)") and len(data["error"]) < 600
        assert len(msg.payload) < 2000
        assert n.proc is not None and n.proc.poll() is None
    logged = [ln for ln in n.output().splitlines() if "data.uuid" in ln]
    assert logged and all(len(ln) < 800 for ln in logged), logged


def test_orchestrator_quotes_at_most_200_bytes_of_a_big_bad_payload(broker: Any, probe: MqttProbe, tmp_path: Path) -> None:
    probe.subscribe(f"{REALM}/proc/log/#")  # proc/log and proc/log/orchestrator
    with OrchestratorProc(broker.port, str(tmp_path)) as orch:
        probe.publish(f"{REALM}/proc/control", BIG)
        got = probe.wait_for(f"{REALM}/proc/log/#", lambda m: "data.uuid" in js(m)["data"].get("description", ""), count=2)
        for msg in got:  # proc/log and proc/log/orchestrator
            data = js(msg)["data"]["data"]  # what identifies it (for the clients), 200 bytes of it, its length
            assert data["action"] == "create" and data["bytes"] == len(BIG)
            assert data["quote"].endswith(f"... ({len(BIG)} bytes)")
            assert len(data["quote"].encode()) <= 200 + len(f"... ({len(BIG)} bytes)")
            assert len(msg.payload) < 2000
        small = orjson.dumps({"action": "create", "data": {"uuid": 7}})
        probe.publish(f"{REALM}/proc/control", small)
        msg = probe.wait_for(f"{REALM}/proc/log/#", lambda m: js(m)["data"].get("data") == orjson.loads(small), count=2)[0]
        assert "key 'data.uuid' must be str, got int 7" in js(msg)["data"]["description"]
        log = orch.log()
    assert os.path.getsize(orch.logpath) < 200_000 and "x" * 300 not in log
