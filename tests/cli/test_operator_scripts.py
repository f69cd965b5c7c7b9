"""manage.py run/stop/list/status/configure/index: arguments, output, and the one-line errors a
person gets for their mistakes (unknown runtime/module, unreachable orchestrator, bad config)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from cli import run as run_script
from cli._api import CliError, expand_multi
from common.config import load_config
from testbed.broker import free_port
from testbed.node import NodeProcess
from testbed.orchestrator import ROOT, OrchestratorProc
from testbed.procs import interrupt
from testbed.wait import wait_until


def manage(*args: str, cwd: str = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    e = dict(os.environ)
    e.pop("SL_CONFIG", None)
    e.update(env or {})
    return subprocess.run([sys.executable, os.path.join(ROOT, "manage.py"), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60, env=e)


def one_line_error(r: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert r.returncode != 0, r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_bare_and_unknown_scripts() -> None:
    r = manage()
    assert r.returncode == 2 and "    list " in r.stdout and "    apply " in r.stdout, r.stdout  # the script list
    assert r.stderr.strip().count("\n") == 0 and "name a script" in r.stderr
    r = manage("lst")
    one_line_error(r, "unknown script 'lst'", "did you mean 'list'?")
    assert r.returncode == 2


def test_help_lists_scripts_and_each_has_usage() -> None:
    r = manage("-h")
    assert r.returncode == 0
    for name in ("run", "stop", "list", "status", "configure", "index"):
        assert f"    {name} " in r.stdout
        h = manage(name, "-h")
        assert h.returncode == 0 and "Usage:" in h.stdout and f"manage.py {name}" in h.stdout


@pytest.mark.parametrize("script,args", [("list", []), ("run", ["-f", "a.wasm"]), ("stop", ["-n", "x"]),
                                         ("run", ["-f", "a.wasm", "-r", "rt"])])
def test_unreachable_orchestrator_names_the_url(script: str, args: list[str]) -> None:
    port = free_port()
    r = manage(script, "--url", f"http://127.0.0.1:{port}", *args)
    one_line_error(r, f"manage.py {script}:", "cannot reach the orchestrator", f"http://127.0.0.1:{port}/api/")


def test_bad_config_names_the_key(tmp_path: Any) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"http_port": "eighty"}))
    one_line_error(manage("list", "-c", str(cfg)), "key 'http_port'", str(cfg))
    one_line_error(manage("run", "-f", "x", "-c", str(tmp_path / "missing.json")), "does not exist")
    one_line_error(manage("list", env={"SL_CONFIG": str(cfg)}), "key 'http_port'")


def test_run_option_errors_are_one_line() -> None:
    one_line_error(manage("run", "-f", "a", "-u", "2"), "--utilization")
    one_line_error(manage("run", "-f", "a", "-e", "NOEQUALS"), "KEY=VALUE")
    one_line_error(manage("run", "-f", "a", "--fault_crash", "maybe"), "ignore or restart")
    one_line_error(manage("run", "-f", "a", "-C", "x/#:w"), "must not contain")
    one_line_error(manage("run", "-f", "a", "--copy", "0"), "--copy must be at least 1, got '0'")


def test_run_builds_the_protocol_args() -> None:
    opts = {"--argv": ["10 'two words'", "x"], "--env": ["A=1"], "--dir": ["/tmp"], "--period": "1000",
            "--utilization": "0.25", "--repeat": "3", "--limit": "2.5", "--engine": ["wasmtime", "wasmer"],
            "--fault_crash": "restart"}
    args = run_script.build_args(opts)
    assert args == {"argv": ["10", "two words", "x"], "env": ["A=1"], "dirs": ["/tmp"],
                    "resources": {"period": 1000, "runtime": 250}, "repeat": 3, "limit": 2.5,
                    "engine": ["wasmtime", "wasmer"], "fault_crash": "restart"}
    assert run_script.build_channels(["in/x", "out/y:w:real/out"]) == [
        {"path": "in/x", "mode": "rw", "topic": "in/x"}, {"path": "out/y", "mode": "w", "topic": "real/out"}]
    with pytest.raises(CliError):
        run_script.build_channels(["a:rx"])


def test_unknown_runtime_and_module_against_a_real_orchestrator(orch: OrchestratorProc) -> None:
    one_line_error(manage("run", "-c", orch.config, "-r", "nosuch", "-f", "a.wasm"), "unknown runtime 'nosuch'", orch.url)
    one_line_error(manage("stop", "-c", orch.config, "-n", "nosuch"), "unknown module 'nosuch'")
    r = manage("list", "-c", orch.config)
    assert r.returncode == 0 and "0 runtime(s)" in r.stdout
    assert json.loads(manage("list", "-c", orch.config, "--json").stdout) == []
    # no runtime at all: the orchestrator refuses on proc/log, run says so
    one_line_error(manage("run", "-c", orch.config, "-f", "a.wasm", "--apis", "gpu"),
                   "refused by the orchestrator", "no alive runtime provides apis ['gpu']")
    r = manage("run", "-c", orch.config, "-f", "a.wasm", "--copy", "3")
    one_line_error(r, "no alive runtime provides apis []")
    assert r.stdout == ""


def test_list_watch_redraws_until_interrupted(broker: Any, orch: OrchestratorProc) -> None:
    with NodeProcess(broker.port, name="watched", runtimes=["test/reg"], reg_timeout=5):
        wait_until(lambda: orch.get_status("/api/runtimes/watched/")[0] == 200, 30, "runtime registered")
        p = subprocess.Popen([sys.executable, os.path.join(ROOT, "manage.py"), "list", "-c", orch.config, "--watch", "0.2"],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            # interrupted once it sleeps between two draws, not after 2 s: a busy machine may take longer
            # to start it, and a SIGINT before it runs its loop ends it another way
            def sleeping() -> bool:
                with open(f"/proc/{p.pid}/wchan") as f:
                    return f.read() == "hrtimer_nanosleep"
            wait_until(sleeping, 60, "manage.py list --watch in its loop")
            out, err = interrupt(p, 20)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        assert p.returncode == 130, err
        assert "watched" in out


def test_status_shows_manifest_devices(broker: Any, orch: OrchestratorProc, tmp_path: Any) -> None:
    # reachability over the SSH options: tests/cluster/test_status.py (a real sshd)
    manifest = tmp_path / "manifest.tsv"
    cols = ["Device", "Model", "CPU", "Target", "Triple", "Arch", "SMT", "Cgroup", "Memory", "Network", "Storage"]
    rows = [["127.0.0.1", "vm", "epyc", "x86_64", "x86_64-linux-gnu", "x86_64", "no", "v2", "8G", "eth", "ssd"],
            ["192.0.2.1", "pi4", "a72", "aarch64", "aarch64-linux-gnu", "arm64", "no", "v2", "4G", "wifi", "sd"]]
    manifest.write_text("\n".join("\t".join(r) for r in [cols, *rows]) + "\n")
    with NodeProcess(broker.port, name="127.0.0.1", runtimes=["test/reg"], reg_timeout=5) as n:
        wait_until(lambda: orch.get_status(f"/api/runtimes/{n.runtime_uuid()}/")[0] == 200, 30, "runtime registered")
        r = manage("status", "-c", orch.config, "-m", str(manifest), "--timeout", "0.5")
        assert r.returncode == 0, r.stderr
        lines = {ln.split("│")[1].strip(): ln for ln in r.stdout.splitlines() if ln.count("│") > 3}
        assert "up" in lines["127.0.0.1"] and n.runtime_uuid() in lines["127.0.0.1"] and "epyc" in lines["127.0.0.1"]
        assert "down" in lines["192.0.2.1"] and "pi4" in lines["192.0.2.1"]
    r = manage("status", "--url", f"http://127.0.0.1:{free_port()}", "-m", str(manifest), "--timeout", "0.5")
    one_line_error(r, "manage.py status:", "cannot reach the orchestrator")  # the devices' table still on stdout
    assert "192.0.2.1" in r.stdout
    one_line_error(manage("status", "-c", orch.config, "-m", str(tmp_path / "none.tsv")), "does not exist")
    one_line_error(manage("status", "-c", orch.config), "no manifest")


def test_configure_writes_a_loadable_config_with_platform_facts(tmp_path: Any) -> None:
    out = tmp_path / "sub" / "config.json"
    r = manage("configure", "-o", str(out), "--mqtt", "ssl:broker.example", "--realm", "lab", "--http_port", "9000",
               "--target", "x86_64-unknown-linux-gnu")
    assert r.returncode == 0, r.stderr
    cfg = load_config(str(out))
    assert (cfg.mqtt, cfg.mqtt_port, cfg.use_ssl, cfg.realm, cfg.http_port) == ("broker.example", 8883, True, "lab", 9000)
    assert cfg.platform["cpu"]["cores"] == os.cpu_count() and cfg.platform["cpu"]["target"] == "x86_64-unknown-linux-gnu"
    assert cfg.platform["mem"]["total"] > 0
    one_line_error(manage("configure", "-o", str(out), "--http_port", "99999"), "--http_port")


def test_index_excludes_common_and_substitutes(tmp_path: Any) -> None:
    base = tmp_path / "benchmarks"
    for p in ("wasm/a/x.wasm", "wasm/a/common/lib.wasm", "wasm/b/y.wasm", "wasm/common.wasm", "wasm/z.wasm"):
        (base / p).parent.mkdir(parents=True, exist_ok=True)
        (base / p).write_text("")
    r = manage("index", "-p", str(base), "-d", "wasm", "-r", "wasm/=aot/", "-r", ".wasm=.cwasm")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["aot/z.cwasm", "aot/a/x.cwasm", "aot/b/y.cwasm"]
    r = manage("index", "-p", str(base), "-t", "2", "--seed", "1")
    sets = r.stdout.split()
    assert len(sets) == 3 and all(s.count(":") == 1 for s in sets)
    one_line_error(manage("index", "-p", str(base), "-d", "nothere"), "does not exist")
    one_line_error(manage("index", "-p", str(base), "-r", "noequals"), "SRC=DST")


def test_seed_style_multi_values() -> None:
    """`-f a.wasm b.wasm` (the seed's nargs='+') means `-f a.wasm -f b.wasm`."""
    flags = ("-f", "-r", "-a")
    assert expand_multi(["-f", "a", "b", "-n", "x", "-r", "r1", "r2", "-a", "1", "--copy", "3"], flags) == \
        ["-f", "a", "-f", "b", "-n", "x", "-r", "r1", "-r", "r2", "-a", "1", "--copy", "3"]
    assert expand_multi(["-f", "a", "-f", "b"], flags) == ["-f", "a", "-f", "b"]
