"""Runs you can follow, against a real broker, orchestrator and node (runtimes linux and
benchmarking): `manage.py run` waits until each module was taken and started or refused and
reports immediate failures; --follow streams stdout and exits with the module's status; a dead
module is found by name; `stop -n NAME` with several modules of that name; placement by kind;
the client library (`silverline`) that these scripts are built on."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from silverline import Client, ClientError, ExitStatus
from testbed.broker import Mosquitto
from testbed.node import NodeProcess
from testbed.orchestrator import ROOT, OrchestratorProc
from testbed.wait import wait_until


class Setup:
    def __init__(self, orch: OrchestratorProc, node: NodeProcess) -> None:
        self.orch = orch
        self.node = node
        self.linux = next(n for n in node.runtime_uuids if n.endswith(".linux"))
        self.bench = next(n for n in node.runtime_uuids if not n.endswith(".linux"))

    def manage(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, os.path.join(ROOT, "manage.py"), args[0], "-c", self.orch.config, *args[1:]],
                              cwd=ROOT, capture_output=True, text=True, timeout=120)

    def client(self) -> Client:
        return Client(self.orch.config)


@pytest.fixture(scope="module")
def s(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    files = tmp_path_factory.mktemp("files")
    (files / "notes.wasm").write_text("these are my notes, not a module\n")
    roots = f"{files}:{ROOT}/build/modules"
    with Mosquitto() as broker, OrchestratorProc(broker.port, str(tmp_path_factory.mktemp("orch")), ka_interval=2.0) as orch, \
            NodeProcess(broker.port, name="node1", runtimes=["linux", "benchmarking"], reg_timeout=5,
                        extra_args=["--module-root", roots]) as node:
        setup = Setup(orch, node)
        wait_until(lambda: len(Client(orch.config).runtimes()) == 2, 30, "both runtimes registered")
        yield setup


def one_line(r: subprocess.CompletedProcess[str], *needles: str) -> str:
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def test_missing_file_fails_at_once_with_its_reason(s: Setup) -> None:
    r = s.manage("run", "-r", s.linux, "-n", "ghost", "-f", "nosuch.wasm")
    assert r.returncode == 1, r.stdout + r.stderr
    one_line(r, "ghost", "failed at once", "nosuch.wasm")
    assert r.stdout.startswith("created ghost "), r.stdout


def test_text_file_named_wasm_says_not_webassembly(s: Setup) -> None:
    r = s.manage("run", "-r", s.linux, "-n", "notes", "-f", "notes.wasm")
    assert r.returncode == 1
    one_line(r, "not a WebAssembly module (no \\0asm header)")


def test_no_wait_keeps_sending_and_returning(s: Setup) -> None:
    r = s.manage("run", "-r", s.linux, "-n", "fire", "-f", "nosuch.wasm", "--no-wait")
    assert r.returncode == 0 and r.stdout.startswith("sent fire "), r.stdout + r.stderr


def test_follow_streams_stdout_and_exits_with_the_module_status(s: Setup) -> None:
    r = s.manage("run", "-n", "argy", "-f", "args.wasm", "-a", "3 two", "--follow")
    assert "argv[1]=3" in r.stdout and "argv[2]=two" in r.stdout, r.stdout + r.stderr
    assert r.returncode == 3, r.stderr
    r = s.manage("run", "-n", "trapper", "-f", "trap.wasm", "--follow")
    assert "about to trap" in r.stdout and r.returncode == 1, r.stdout + r.stderr
    assert "trapper" in r.stderr
    r = s.manage("run", "-n", "hi", "-f", "helloworld.wasm", "-F")
    assert r.returncode == 0 and "Hello, World!" in r.stdout.splitlines(), r.stdout + r.stderr


def test_a_dead_module_is_found_by_name(s: Setup) -> None:
    assert s.manage("run", "-n", "gone", "-f", "helloworld.wasm", "--follow").returncode == 0
    code, _ = s.orch.get_status("/api/modules/gone/")
    assert code == 404  # without ?all only modules that are not dead
    row = s.orch.get("/api/modules/gone/?all")
    assert row["status"] == "D" and row["exit"]["reason"] == "exited" and row["exit"]["code"] == 0
    rec = s.client().module("gone")
    assert rec is not None and rec["uuid"] == row["uuid"]


def test_plain_modules_without_runtime_never_land_on_benchmarking(s: Setup) -> None:
    r = s.manage("run", "-n", "plain", "-f", "helloworld.wasm", "--copy", "6")
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("created plain ")]
    assert len(lines) == 6 and all(f"-> {s.linux} (" in ln for ln in lines), r.stdout


def test_stop_by_a_shared_name(s: Setup) -> None:
    assert s.manage("run", "-r", s.linux, "-n", "triple", "-f", "cat.wasm", "--copy", "3").returncode == 0
    r = s.manage("stop", "-n", "triple")
    assert r.returncode == 1
    one_line(r, "3 modules are named 'triple'", "--all")
    assert len(s.client().modules(name="triple")) == 3  # nothing was stopped
    r = s.manage("stop", "-n", "triple", "--all")
    assert r.returncode == 0 and "stopping 3 modules named 'triple'" in r.stdout, r.stdout + r.stderr
    wait_until(lambda: s.client().modules(status="A,E", name="triple") == [], 30, "all three stopped")


def test_client_library_run_stdout_wait_stop(s: Setup) -> None:
    with s.client() as c:
        (m,) = c.run("args.wasm", argv=["0", "lib"], name="lib", stdout=True)
        assert m.refused is None and m.runtime == s.node.runtime_uuid(s.linux)
        lines = list(m.stdout)
        assert "argv[2]=lib" in lines, lines
        st = m.wait(10)
        assert st == ExitStatus("exited", 0, None) and st.ok and m.status == "D"
        (w,) = c.run("cat.wasm", s.linux, name="waiter")
        assert w.status == "A" and any(r["uuid"] == w.uuid for r in c.modules(runtime=s.linux))
        w.stop()
        assert w.wait(10).reason == "deleted"
        (bad,) = c.run("nosuch.wasm", s.linux, name="bad")
        assert bad.exit is not None and not bad.exit.ok and bad.exit.error and "nosuch.wasm" in bad.exit.error
        (refused,) = c.run("a.wasm", apis=["gpu"])
        assert refused.state == "refused" and "no alive runtime provides apis ['gpu']" in (refused.refused or "")
        with pytest.raises(ClientError, match="unknown runtime 'nope'"):
            c.run("a.wasm", "nope")
        assert c.queued() == [] and {r["name"] for r in c.runtimes()} == {s.linux, s.bench}


def test_client_library_benchmark_goes_to_the_benchmarking_runtime(s: Setup) -> None:
    with s.client() as c:
        (b,) = c.benchmark(f"{ROOT}/build/modules/helloworld.wasm", s.bench, repeat=2)
        assert b.runtime == s.node.runtime_uuid(s.bench) and b.name == "helloworld.wasmtime"
        st = b.wait(60)
        assert st.reason == "exited", st


def test_client_library_channels(s: Setup) -> None:
    """publish/subscribe for scripts: a module's channel, seen from a script (echo over the broker)."""
    with s.client() as c, s.client() as other:
        sub = c.subscribe("demo/+/out")
        other.publish("demo/1/out", "ping")
        assert sub.get(10) == ("demo/1/out", b"ping")
        with pytest.raises(TimeoutError):
            sub.get(0.2)


def test_the_example_of_docs_client_md_runs(s: Setup, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    text = Path(ROOT, "docs", "client.md").read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.setenv("SL_CONFIG", s.orch.config)
    exec(compile(code, "docs/client.md", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert out == ["Hello, World!", "exited 0"], out


def test_list_fits_a_given_width(s: Setup) -> None:
    r = s.manage("list", "--width", "60")
    assert r.returncode == 0 and s.linux in r.stdout, r.stdout + r.stderr
    assert max(len(ln) for ln in r.stdout.splitlines()) <= 60, r.stdout
    wide = s.manage("list").stdout  # a pipe: every column
    assert "UUID" in wide and s.node.runtime_uuid(s.linux) in wide
