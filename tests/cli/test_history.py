"""Module history against a real broker, orchestrator and node (runtime linux, real wasm modules):
ended modules stay visible (`list --all`, `inspect`, `logs`, `stop` by name says how it ended),
and `run -F` then Ctrl-C stops the module it started, or leaves it running with --detach (issue #27)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Iterator

import pytest

from silverline import Client
from testbed.broker import Mosquitto
from testbed.node import NodeProcess
from testbed.orchestrator import ROOT, OrchestratorProc
from testbed.procs import interrupt
from testbed.wait import wait_until


class Setup:
    def __init__(self, orch: OrchestratorProc) -> None:
        self.orch = orch

    def cmd(self, *args: str) -> list[str]:
        return [sys.executable, os.path.join(ROOT, "manage.py"), args[0], "-c", self.orch.config, *args[1:]]

    def manage(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.cmd(*args), cwd=ROOT, capture_output=True, text=True, timeout=120)

    def status(self, name: str) -> str:
        with Client(self.orch.config) as c:
            row = c.module(name)
        return str(row["status"]) if row else "?"


@pytest.fixture(scope="module")
def s(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    with Mosquitto() as broker, OrchestratorProc(broker.port, str(tmp_path_factory.mktemp("orch")), ka_interval=2.0) as orch, \
            NodeProcess(broker.port, name="node1", runtimes=["linux"], reg_timeout=5,
                        extra_args=["--module-root", f"{ROOT}/build/modules"]):
        wait_until(lambda: len(Client(orch.config).runtimes()) == 1, 30, "the runtime registered")
        yield Setup(orch)


def test_an_ended_module_stays_visible(s: Setup) -> None:
    r = s.manage("run", "-n", "hi", "-f", "helloworld.wasm", "-F")
    assert r.returncode == 0, r.stderr
    wait_until(lambda: s.status("hi") == "D", 20, "hi ended")
    r = s.manage("list", "--all", "--wide")
    assert r.returncode == 0 and "Ended modules" in r.stdout and "hi" in r.stdout and "exited" in r.stdout, r.stdout
    r = s.manage("list", "--all", "--json")
    ended = json.loads(r.stdout)["ended"]
    assert ended[0]["name"] == "hi" and ended[0]["exit"]["reason"] == "exited"
    r = s.manage("inspect", "hi")
    assert r.returncode == 0, r.stderr
    assert "module hi " in r.stdout and "exit     exited, code 0" in r.stdout and "runtime  node1" in r.stdout, r.stdout
    d = json.loads(s.manage("inspect", "hi", "--json").stdout)
    assert [x["status"] for x in d["states"]][-1] == "D" and "A" in [x["status"] for x in d["states"]], d["states"]
    assert d["states"] == sorted(d["states"], key=lambda x: x["time"])
    wait_until(lambda: "Hello" in s.manage("logs", "hi").stdout, 20, "its output kept")
    r = s.manage("logs", "hi", "--tail", "1", "-f")  # ended: the tail, then it returns
    assert r.returncode == 0 and r.stdout.count("\n") == 1, r.stdout
    r = s.manage("stop", "-n", "hi")
    assert r.returncode == 1 and "already ended (exited, code 0)" in r.stderr, r.stderr
    r = s.manage("inspect", "nosuch")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "unknown module 'nosuch'" in r.stderr


@pytest.mark.parametrize("detach", [False, True])
def test_follow_then_ctrl_c(s: Setup, detach: bool) -> None:
    name = f"cat{int(detach)}"
    p = subprocess.Popen(s.cmd("run", "-n", name, "-f", "cat.wasm", "-F", *(["--detach"] if detach else [])), cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None
        line = p.stdout.readline()
        assert line.startswith(f"created {name} "), line
        uuid = line.split()[2]
        wait_until(lambda: s.status(uuid) == "A", 20, "running")
        out, err = interrupt(p)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    if detach:
        assert p.returncode == 0 and "keeps running" in err, err
        assert s.status(uuid) == "A"
        assert s.manage("stop", "-n", uuid).returncode == 0
    else:
        assert p.returncode == 130 and f"stopping {name}" in err, err
    wait_until(lambda: s.status(uuid) == "D", 20, "stopped")


def test_logs_follow_prints_new_output_then_returns_at_the_end(s: Setup) -> None:
    r = s.manage("run", "-n", "spinner", "-f", "spin.wasm", "-a", "1500", "--settle", "0")  # seconds of spinning
    assert r.returncode == 0, r.stderr
    uuid = r.stdout.split()[2]
    f = s.manage("logs", uuid, "-f")  # prints what comes (the count, at the end), returns when it ended
    assert f.returncode == 0, f.stderr
    assert f.stdout.startswith("spun 1500 ("), f.stdout
    assert s.status(uuid) == "D"


def test_inspect_a_running_module_shows_its_resource_use(s: Setup) -> None:
    r = s.manage("run", "-n", "waiter", "-f", "cat.wasm")  # waits on stdin: stays running
    assert r.returncode == 0, r.stderr
    uuid = r.stdout.split()[2]

    def used() -> dict[str, object] | None:
        got = json.loads(s.manage("inspect", uuid, "--json").stdout)["resources"]
        return got if got and "mem_usage" in got else None

    res = wait_until(used, 30, "the runtime's keepalive with the module's figures")
    assert isinstance(res["mem_usage"], int) and res["mem_usage"] > 0, res
    out = s.manage("inspect", "waiter").stdout
    assert "use      cpu " in out and "running" in out.splitlines()[0], out
    assert s.manage("stop", "-n", uuid).returncode == 0
