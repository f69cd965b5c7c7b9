"""`manage.py benchmark` checks a plan before anything is sent (issue #24 item 4), normalises engine
aliases, and gives failures by reason with the first message of each. Real mosquitto, orchestrator
process and node (a benchmarking runtime), `manage.py` run as a process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from cli._api import Api
from collector import Collector, ProfileStore
from testbed.node import running_node
from testbed.orchestrator import ROOT
from testbed.wait import wait_until

pytestmark = pytest.mark.orchestrator(ka_interval=0.5)


def manage(cfg: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, os.path.join(ROOT, "manage.py"), "benchmark", "-c", cfg, *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


def config(tmp_path: Any, broker: Any, orch: Any) -> str:
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"mqtt": "127.0.0.1", "mqtt_port": broker.port, "http": "127.0.0.1",
                               "http_port": orch.http_port}))
    return str(cfg)


def test_a_plan_with_problems_says_each_on_one_line_and_sends_nothing(broker, orch, wasm, wasm_root, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = config(tmp_path, broker, orch)
    api = Api(orch.url)
    with running_node(broker, name="pc", runtimes=["benchmarking"], state_dir=str(tmp_path / "state"), reg_timeout=5,
                      extra_args=["--module-root", wasm_root]) as n:
        rt = n.runtime_uuid()
        wait_until(lambda: "engines" in ((api.runtime(rt) or {}).get("metadata") or {}), 30, "the runtime's engines")
        r = manage(cfg, "-r", "pc", "nosuch", "-f", os.path.basename(wasm["spin"]), "nosuch.wasm",
                   "--engine", "wasmtime", "wasmtme", "wasmer-j-cl", "--campaign", "bad")
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 1, r.stderr
        assert len(lines) == 4, r.stderr
        assert "runtime 'nosuch' is unknown to the orchestrator" in lines[0]
        assert "unknown engine 'wasmtme'; did you mean 'wasmtime'?" in lines[1]
        assert "engine 'wasmer-j-cl' is off on runtime pc:" in lines[2] and "enable_engines" in lines[2]
        assert "file 'nosuch.wasm' not found in the module roots" in lines[3] and "nothing was sent" in lines[3]
        assert all(line.startswith("manage.py benchmark: ") for line in lines)
        assert api.get("/api/campaigns/bad/") is None and api.get("/api/campaigns/")["count"] == 0
        # a good plan goes through, with the default engine under its catalog name (a collector stores
        # its data: a cell is done when its result is stored)
        col = Collector(ProfileStore(str(tmp_path / "data")), "127.0.0.1", broker.port).start()
        try:
            r = manage(cfg, "-r", "pc", "-f", os.path.basename(wasm["spin"]), "--engine", "wasmtime", "wasmtime-j",
                       "--argv", "1", "--campaign", "good", "--wait", "--timeout", "120")
        finally:
            col.stop()
        assert r.returncode == 0, r.stderr
        s = api.get("/api/campaigns/good/")
        assert s["cells"] == 1 and s["plan"]["engines"] == ["wasmtime-j"] and s["done"] == 1


def test_engine_aliases_are_one_engine(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = tmp_path / "config.json"
    cfg.write_text("{}")
    r = manage(str(cfg), "--dry-run", "-r", "x", "-f", "a.wasm", "--engine", "wasmtime", "wasmtime-j", "wasmtime-aot")
    assert r.returncode == 0, r.stderr
    cells = [json.loads(line) for line in r.stdout.splitlines()]
    assert sorted(c["args"]["engine"] for c in cells) == ["wasmtime-a", "wasmtime-j"]
    assert sorted(c["name"] for c in cells) == ["a.wasmtime-a", "a.wasmtime-j"]
    r = manage(str(cfg), "--dry-run", "-r", "x", "-f", "a.wasm", "--engine", "wasmtme")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.strip() == ("manage.py benchmark: unknown engine 'wasmtme'; did you mean 'wasmtime'? "
                                "(`manage.py engines` lists them) (nothing was sent)")


def test_failures_are_given_by_reason_with_their_first_message(broker, orch, wasm, wasm_root, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = config(tmp_path, broker, orch)
    col = Collector(ProfileStore(str(tmp_path / "data")), "127.0.0.1", broker.port).start()
    try:
        with running_node(broker, name="pf", runtimes=["benchmarking"], state_dir=str(tmp_path / "state"), reg_timeout=5,
                          extra_args=["--module-root", wasm_root]):
            api = Api(orch.url)
            wait_until(lambda: api.runtime("pf") is not None, 30, "the runtime registered")
            r = manage(cfg, "-r", "pf", "-f", wasm["spin"], wasm["trap"], "--argv", "1", "--plan-order",
                       "--campaign", "reasons", "--wait", "--timeout", "120")
            assert r.returncode == 1, r.stderr
            cells = api.get("/api/campaigns/reasons/cells/?state=trap")["results"]
            assert len(cells) == 1
            message = cells[0]["record"]["status"]["error"]
            assert message
            line = next(x for x in r.stderr.splitlines() if x.startswith("  trap (1 cell), the first: "))
            assert " ".join(message.split()) in line and "trap.wasm, engine wasmtime-j, runtime pf" in line
            st = manage(cfg, "--status", "reasons")
            assert st.returncode == 0 and line in st.stdout.splitlines()
    finally:
        col.stop()
