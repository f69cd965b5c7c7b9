"""The WebAssembly runtimes end to end: a real mosquitto, `start.py` as a subprocess, real forked
(or exec'd) workers running real wasm from build/modules. Create messages go straight to
`{realm}/proc/control/{runtime_uuid}` (no orchestrator)."""
from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import uuid as uuidlib
from typing import Any, Iterator

import pytest

from common.python310 import find_wasmer_python
from testbed.broker import Mosquitto
from testbed.control import create, delete, exited, js
from testbed.mqtt import MqttProbe, Received
from testbed.node import NodeProcess
from tests.runtimes.conftest import MODULES, ROOT

REALM = "realm"
MEMORY_LIMIT = 32 << 20



class Node:
    """A running node plus helpers to create/delete modules and wait for their output."""

    def __init__(self, broker_port: int, proc: NodeProcess, probe: MqttProbe) -> None:
        self.port = broker_port
        self.proc = proc
        self.probe = probe

    def rt(self, i: int = 0) -> str:
        return list(self.proc.runtime_uuids.values())[i]

    def create(self, file: str, rt: str | None = None, uuid: str | None = None, channels: list[dict[str, str]] | None = None,
               apis: list[str] | None = None, **args: Any) -> str:
        uuid = uuid or str(uuidlib.uuid4())
        create(self.probe, rt or self.rt(), uuid, file=file, name=f"m-{uuid[:8]}", channels=channels, apis=apis, **args)
        return uuid

    def delete(self, uuid: str, rt: str | None = None) -> None:
        delete(self.probe, rt or self.rt(), uuid)

    def exited(self, uuid: str, timeout: float = 30.0) -> dict[str, Any]:
        return exited(self.probe, "+", uuid, timeout)

    def stdout(self, uuid: str) -> bytes:
        return b"".join(m.payload for m in self.probe.messages(f"{REALM}/proc/stdio/{uuid}"))

    def wait_stdout(self, uuid: str, text: bytes, timeout: float = 30.0) -> None:
        self.probe.wait_for(f"{REALM}/proc/stdio/{uuid}", lambda m: text in self.stdout(uuid), timeout=timeout)


DATA_ROOT: list[str] = []  # set by linux_env


def _write_config(tmp: str, settings: dict[str, Any]) -> str:
    path = os.path.join(tmp, "config.json")
    with open(path, "w") as f:
        json.dump({"runtimes": settings}, f)
    return path


@pytest.fixture(scope="module")
def linux_env(modules_dir: str) -> Iterator[tuple[Mosquitto, NodeProcess]]:
    """One node with two `linux` runtimes (loopback across runtimes), shared by this file's tests."""
    with tempfile.TemporaryDirectory() as tmp, Mosquitto() as broker:
        data = os.path.join(tmp, "data")  # a second module root for the dirs tests
        os.makedirs(data)
        DATA_ROOT[:] = [data]
        cfg = _write_config(tmp, {"linux": {"memory_limit": MEMORY_LIMIT, "max_restarts": 2, "restart_backoff": 0.05,
                                            "cache_dir": os.path.join(tmp, "cache"), "module_root": [MODULES, data]}})
        proc = NodeProcess(broker.port, name="wn", runtimes=["linux", "linux"], reg_timeout=0.3,
                           extra_args=["-c", cfg, "--ka-interval", "1"])
        proc.start(timeout=60)
        try:
            yield broker, proc
        finally:
            proc.stop()


@pytest.fixture
def node(linux_env: tuple[Mosquitto, NodeProcess]) -> Iterator[Node]:
    broker, proc = linux_env
    probe = MqttProbe(broker.port)
    try:
        probe.subscribe(f"{REALM}/proc/#")
        yield Node(broker.port, proc, probe)
    finally:
        probe.close()


def test_hello_stdout_then_exited_with_deployed_profile(node: Node) -> None:
    u = node.create("helloworld.wasm", apis=["profile:deployed"])
    data = node.exited(u)
    assert data["status"] == {"reason": "exited", "code": 0, "error": None}
    assert node.stdout(u) == b"Hello, World!\n"  # published before the exited message
    prof = node.probe.wait_for(f"{REALM}/proc/profile/deployed/{node.rt()}/{u}", timeout=10)[0].payload
    start, wall, utime, stime, maxrss, ch_in, ch_out = struct.unpack("<QIIIIII", prof)
    assert start > 1_600_000_000 * 10**6 and wall > 0 and maxrss > 0 and (ch_in, ch_out) == (0, 0)


def test_argv_env_and_exit_code(node: Node) -> None:
    u = node.create("args.wasm", argv=["9", "x y"], env=["GREETING=hi"])
    assert node.exited(u)["status"]["code"] == 9
    assert node.stdout(u).decode().splitlines() == ["argv[0]=args.wasm", "argv[1]=9", "argv[2]=x y", "env GREETING=hi"]


def test_dirs_preopened(node: Node, tmp_path: Any) -> None:
    d = os.path.join(DATA_ROOT[0], "abs")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "data.txt"), "w") as f:
        f.write("dir contents\n")
    u = node.create("readfile.wasm", argv=[f"{d}/data.txt"], dirs=[d])
    assert node.exited(u)["status"]["code"] == 0
    assert node.stdout(u) == b"dir contents\n"


def test_relative_dir_resolves_in_the_roots_and_is_preopened_as_dot(node: Node) -> None:
    """The original's benchmark creates: `dirs: ["."]`-style relative dirs (docs/compatibility.md, "Seen beside the original tools")."""
    d = os.path.join(DATA_ROOT[0], "suite-input")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "input.dat"), "w") as f:
        f.write("relative input\n")
    u = node.create("readfile.wasm", argv=["input.dat"], dirs=["suite-input"])
    assert node.exited(u)["status"] == {"reason": "exited", "code": 0, "error": None}
    assert node.stdout(u) == b"relative input\n"


def test_dirs_outside_the_module_roots_are_refused(node: Node, tmp_path: Any) -> None:
    (tmp_path / "data.txt").write_text("secret\n")
    os.symlink(tmp_path, os.path.join(DATA_ROOT[0], "link-out"))
    for bad in (str(tmp_path), "/", "../..", "link-out", f"{tmp_path}::/data"):
        u = node.create("readfile.wasm", argv=[f"{tmp_path}/data.txt"], dirs=[bad])
        st = node.exited(u)["status"]
        assert st["reason"] == "error" and "outside the module roots" in st["error"] and "args.dirs" in st["error"], (bad, st)
        assert b"secret" not in node.stdout(u)


def test_stdin_from_the_stdio_channel(node: Node) -> None:
    u = node.create("cat.wasm")
    topic = f"{REALM}/proc/stdio/{u}"
    # the module's channel may not be subscribed yet: repeat the input until it comes back
    for _ in range(100):
        node.probe.publish(topic, b"typed line\n", qos=1)
        try:
            node.probe.wait_for(topic, lambda m: m.payload == b"typed line\n", count=2, timeout=0.3)
            break
        except TimeoutError:
            continue
    node.delete(u)
    assert node.exited(u)["status"]["reason"] == "deleted"
    assert len([m for m in node.probe.messages(topic) if m.payload == b"typed line\n"]) >= 2


def test_delete_interrupts_an_infinite_loop(node: Node) -> None:
    u = node.create("loop.wasm")
    node.wait_stdout(u, b"looping")
    node.delete(u)
    assert node.exited(u)["status"] == {"reason": "deleted", "code": None, "error": None}


def test_keepalive_children_carry_cpu_and_memory(node: Node) -> None:
    u = node.create("loop.wasm")
    node.wait_stdout(u, b"looping")

    def busy_child(m: Received) -> bool:
        kids = [c for c in js(m).get("data", {}).get("children", []) if c.get("uuid") == u]
        return bool(kids) and kids[0]["cpu_usage_percent"] > 0 and kids[0]["mem_usage"] > 0 and kids[0].get("last_activity")
    node.probe.wait_for(f"{REALM}/proc/keepalive/{node.rt()}", busy_child, timeout=30)
    node.delete(u)
    node.exited(u)


def test_trap_is_crashed_with_the_trap_message(node: Node) -> None:
    u = node.create("trap.wasm")
    status = node.exited(u)["status"]
    assert status["reason"] == "crashed" and "unreachable" in status["error"]
    assert node.stdout(u) == b"about to trap\n"


def test_fault_crash_restart_recreates_with_a_retry_cap(node: Node) -> None:
    u = node.create("trap.wasm", fault_crash="restart")
    data = node.exited(u)
    assert data["status"]["reason"] == "crashed" and "gave up after 2 restarts" in data["status"]["error"]
    assert node.stdout(u) == b"about to trap\n" * 3  # first run + 2 restarts


def test_memory_hog_stopped_at_its_limit(node: Node) -> None:
    u = node.create("memhog.wasm")
    status = node.exited(u)["status"]
    assert status["reason"] == "limit" and f"memory limit of {MEMORY_LIMIT} bytes" in status["error"]


def test_path_traversal_refused(node: Node) -> None:
    u = node.create("../../../etc/passwd")
    status = node.exited(u)["status"]
    assert status["reason"] == "error" and "../../../etc/passwd" in status["error"] and "refused" in status["error"]
    missing = node.create("no-such-module.wasm")
    st = node.exited(missing)["status"]
    assert st["reason"] == "error" and "no-such-module.wasm" in st["error"] and "not found" in st["error"]


def test_invalid_module_file_is_an_error_naming_it(node: Node) -> None:
    with tempfile.NamedTemporaryFile(suffix=".wasm", dir=ROOT, delete=False) as f:
        f.write(b"\0asm\x01\0\0\0broken")
    try:
        u = node.create(os.path.basename(f.name))
        st = node.exited(u)["status"]
        assert st["reason"] == "error" and os.path.basename(f.name) in st["error"]
    finally:
        os.unlink(f.name)


def test_topic_not_granted_refused(node: Node) -> None:
    u = node.create("opener.wasm", argv=["in/a", "r", "secret/x", "r", "in/a", "w", "$SL/mine", "w"],
                    channels=[{"path": "in/", "mode": "r", "topic": "grant/in/"}])
    assert node.exited(u)["status"]["reason"] == "exited"
    lines = node.stdout(u).decode().splitlines()
    assert lines[0] == "open in/a r -> 0"
    assert lines[1] == "open secret/x r -> -2"
    assert lines[2] == "open in/a w -> -2"
    assert lines[3] == "open $SL/mine w -> 1"
    assert "secret/x" in node.proc.output()  # the refusal is logged


def test_echo_over_channels(node: Node) -> None:
    u = node.create("echo.wasm", argv=["e/in", "e/out"],
                    channels=[{"path": "e/", "mode": "rw", "topic": f"t/{REALM}/echo/"}])
    node.wait_stdout(u, b"ready")
    node.probe.subscribe(f"t/{REALM}/echo/out")
    for _ in range(100):  # until the module's subscription is active at the broker
        node.probe.publish(f"t/{REALM}/echo/in", b"hello echo")
        try:
            node.probe.wait_for(f"t/{REALM}/echo/out", lambda m: m.payload == b"hello echo", timeout=0.3)
            break
        except TimeoutError:
            continue
    node.probe.publish(f"t/{REALM}/echo/in", b"exit")
    assert node.exited(u)["status"] == {"reason": "exited", "code": 0, "error": None}


def test_loopback_between_modules_in_two_runtimes(node: Node) -> None:
    grants = [{"path": "pp/", "mode": "rw", "topic": "lb/pp/"}]
    pong = node.create("pingpong.wasm", rt=node.rt(1), argv=["pong", "pp/ping", "pp/pong", "20"], channels=grants)
    node.wait_stdout(pong, b"ready")
    ping = node.create("pingpong.wasm", rt=node.rt(0), argv=["ping", "pp/pong", "pp/ping", "20"], channels=grants)
    assert node.exited(ping)["status"]["code"] == 0
    assert node.exited(pong)["status"]["code"] == 0
    assert node.stdout(ping).endswith(b"done 20\n") and node.stdout(pong).endswith(b"done 20\n")


def test_128_modules_at_once_in_one_runtime(node: Node) -> None:
    grants = [{"path": "all/", "mode": "rw", "topic": "many/"}]
    node.probe.subscribe("many/out")
    uuids = [node.create("echo.wasm", argv=["all/in", "all/out"], channels=grants) for _ in range(128)]
    for u in uuids:
        node.wait_stdout(u, b"ready", timeout=60)
    # every module is alive at the same time: one message in, 128 answers out
    for _ in range(100):
        node.probe.publish("many/in", b"all of you")
        try:
            node.probe.wait_for("many/out", lambda m: m.payload == b"all of you", count=128, timeout=1.0)
            break
        except TimeoutError:
            node.probe.clear()
    node.probe.publish("many/in", b"exit")
    reasons = [node.exited(u, timeout=60)["status"]["reason"] for u in uuids]
    assert reasons == ["exited"] * 128


def test_cpu_budget_module_completes(node: Node) -> None:
    u = node.create("spin.wasm", argv=["20"], resources={"period": 10_000_000, "runtime": 5_000_000},
                    apis=["profile:deployed"])
    assert node.exited(u)["status"]["code"] == 0
    assert node.stdout(u).startswith(b"spun 20")
    # the runtime's log says by which mechanism (runtimes/engines/cpu_budget.py)
    assert re.search(r"CPU budget 5 ms per 10 ms \(50\.0 %\) by (cgroup v2 cpu\.max|SCHED_DEADLINE|epoch throttle)",
                     node.proc.output()), node.proc.output()[-2000:]


def test_bad_args_are_an_error_naming_the_key(node: Node) -> None:
    u = node.create("helloworld.wasm", env=["NOT_A_PAIR"])
    st = node.exited(u)["status"]
    assert st["reason"] == "error" and "args.env[0]" in st["error"] and "NOT_A_PAIR" in st["error"]


# --------------------------------------------------------------------------- minimal runtimes

def _single(broker: Mosquitto, runtime: str, modules_dir: str) -> NodeProcess:
    return NodeProcess(broker.port, name="mini", runtimes=[runtime], reg_timeout=0.3)


def test_linux_min_wasmtime_hello_and_delete(broker: Mosquitto, probe: MqttProbe, modules_dir: str) -> None:
    with _single(broker, "linux/min/wasmtime", modules_dir) as proc:
        probe.subscribe(f"{REALM}/proc/#")
        n = Node(broker.port, proc, probe)
        u = n.create("helloworld.wasm")
        assert n.exited(u)["status"]["reason"] == "exited"
        assert n.stdout(u) == b"Hello, World!\n"
        loop = n.create("loop.wasm")
        n.wait_stdout(loop, b"looping")
        n.delete(loop)
        assert n.exited(loop)["status"]["reason"] == "deleted"


WASMER_PY, WASMER_WHY = find_wasmer_python()


@pytest.mark.skipif(WASMER_PY is None, reason=f"no wasmer-capable Python here: {WASMER_WHY}")
def test_linux_min_wasmer_end_to_end(broker: Mosquitto, probe: MqttProbe, modules_dir: str) -> None:
    with _single(broker, "linux/min/wasmer", modules_dir) as proc:
        probe.subscribe(f"{REALM}/proc/#")
        n = Node(broker.port, proc, probe)
        u = n.create("args.wasm", argv=["4"], env=["ENGINE=wasmer"])
        assert n.exited(u)["status"] == {"reason": "exited", "code": 4, "error": None}
        assert n.stdout(u) == b"argv[0]=args.wasm\nargv[1]=4\nenv ENGINE=wasmer\n"
        t = n.create("trap.wasm")
        st = n.exited(t)["status"]
        assert st["reason"] == "crashed" and "unreachable" in st["error"]
        loop = n.create("loop.wasm")
        n.wait_stdout(loop, b"looping")
        n.delete(loop)
        assert n.exited(loop)["status"]["reason"] == "deleted"
        assert "python3.10" in os.readlink(f"/proc/{proc.worker_pids()[0]}/exe")  # the exec'd 3.10 worker


def test_linux_min_wamr_refuses_to_start_with_a_reason(broker: Mosquitto) -> None:
    p = subprocess.run([sys.executable, os.path.join(ROOT, "start.py"), "-n", "w", "-r", "linux/min/wamr",
                        "--mqtt", f"127.0.0.1:{broker.port}", "--no-state"], capture_output=True, text=True,
                       timeout=60, cwd=ROOT)
    assert p.returncode == 2
    assert "WAMR" in p.stderr + p.stdout and "linux/min/wasmtime" in p.stderr + p.stdout


def test_module_root_flag_sets_where_files_are_found(broker: Mosquitto, probe: MqttProbe, modules_dir: str, tmp_path: Any) -> None:
    import shutil

    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(os.path.join(modules_dir, "helloworld.wasm"), root / "hi.wasm")
    proc = NodeProcess(broker.port, name="mr", runtimes=["linux/min/wasmtime"], reg_timeout=0.3,
                       extra_args=["--module-root", str(root)])
    proc.start(timeout=60)
    try:
        probe.subscribe(f"{REALM}/proc/#")
        n = Node(broker.port, proc, probe)
        u = n.create("hi.wasm")
        assert n.exited(u)["status"]["reason"] == "exited"
        assert n.stdout(u) == b"Hello, World!\n"
        gone = n.create("helloworld.wasm")  # only under the default root, which the flag replaced
        st = n.exited(gone)["status"]
        assert st["reason"] == "error" and "helloworld.wasm" in st["error"]
    finally:
        proc.stop()


def test_module_root_flag_must_be_a_directory(tmp_path: Any) -> None:
    r = subprocess.run([sys.executable, os.path.join(ROOT, "start.py"), "-n", "x", "-r", "linux",
                        "--module-root", str(tmp_path / "nope"), "--mqtt", "127.0.0.1:1"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--module-root" in r.stderr and "not a directory" in r.stderr
