"""`manage.py export --pitot --check` on what a real node sends: the set-up Pitot's data comes
from (one node with a `benchmarking` and a `benchmarking/opcodes` runtime), the node configured
and restarted between runs, one module whose runs all fail; real broker, node and collector."""
from __future__ import annotations

import json
import os
import shutil
import time

from benchmarking.analysis import records
from cli import export
from collector import Collector, ProfileStore
from testbed.control import create, exited
from testbed.node import running_node
from tests.cli.test_export import PLATFORM, pitot_platform_rows, walk

REALM = "realm"


def stored(data: str, uuids: set[str], timeout: float = 60) -> None:
    """Wait until the collector has stored a record of every module in `uuids`."""
    end = time.monotonic() + timeout
    while True:
        got = {str(r["module"].get("uuid")) for r in records.read([data]).records} if os.path.isdir(data) else set()
        if uuids <= got:
            return
        assert time.monotonic() < end, f"the collector stored no record of {sorted(uuids - got)}"
        time.sleep(0.2)


def test_pitot_export_of_a_benchmarking_and_opcodes_node(broker, probe, wasm, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "root"
    (root / "wasm").mkdir(parents=True)
    for name in ("spin", "memory", "trap"):
        shutil.copy(wasm[name], root / "wasm" / f"{name}.wasm")
    data = str(tmp_path / "data")
    cfg = tmp_path / "node.json"
    probe.subscribe(f"{REALM}/proc/control/#")
    col = Collector(ProfileStore(data), "127.0.0.1", broker.port).start()
    try:
        cfg.write_text(json.dumps({}))  # before `manage.py configure`: no platform
        args = ["--module-root", str(root), "-c", str(cfg)]
        with running_node(broker, name="pc", runtimes=["benchmarking", "benchmarking/opcodes"], extra_args=args) as node:
            rts = {n.rsplit(".", 1)[-1]: u for n, u in node.runtime_uuids.items()}
            create(probe, rts["benchmarking"], "m-before", file=str(root / "wasm" / "spin.wasm"), argv=["1"], repeat=3,
                   engine="wasmtime")
            create(probe, rts["opcodes"], "o-spin", file=str(root / "wasm" / "spin.wasm"), argv=["1"])
            create(probe, rts["opcodes"], "o-memory", file=str(root / "wasm" / "memory.wasm"), argv=["1"])
            for rt, m in ((rts["benchmarking"], "m-before"), (rts["opcodes"], "o-spin"), (rts["opcodes"], "o-memory")):
                exited(probe, rt, m, timeout=120)
        cfg.write_text(json.dumps({"platform": PLATFORM}))  # configured, then the node restarted
        with running_node(broker, name="pc", runtimes=["benchmarking", "benchmarking/opcodes"], extra_args=args) as node:
            rt = {n.rsplit(".", 1)[-1]: u for n, u in node.runtime_uuids.items()}["benchmarking"]
            create(probe, rt, "m-after", file=str(root / "wasm" / "memory.wasm"), argv=["1"], repeat=3, engine="wasmtime")
            create(probe, rt, "m-trap", file=str(root / "wasm" / "trap.wasm"), repeat=2, engine="wasmtime")
            for m in ("m-after", "m-trap"):
                exited(probe, rt, m, timeout=120)
        stored(data, {"m-before", "o-spin", "o-memory", "m-after", "m-trap"})
    finally:
        col.stop()
    capsys.readouterr()
    out, ops = str(tmp_path / "session"), str(tmp_path / "opcodes")
    rc = export.main(["--pitot", out, "--opcodes", ops, "--root", str(root), data, "--check"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "layout ok for Pitot's preprocessing" in err and "left out 1 module(s) whose runs all failed" in err
    with open(os.path.join(out, "runtimes.json")) as f:
        rts_json = json.load(f)
    # one device, named once, with the platform of the latest registration (after configure)
    assert [r["name"] for r in rts_json.values()] == ["pc"]
    assert next(iter(rts_json.values()))["platform"]["cpu"]["cpu"] == PLATFORM["cpu"]["cpu"]
    rows = pitot_platform_rows([out], ["wasmtime-j", "wasmer-j-cl"])
    assert len(rows) == len(set(rows))  # what failed with IndexError in Pitot's dataset step
    files = walk(out)
    assert sorted(f["module"]["uuid"] for f in files) == ["m-after", "m-before"]
    assert {(f["module"]["file"], f["module"]["args"]["engine"]) for f in files} == {
        ("wasm/spin.wasm", "wasmtime-j"), ("wasm/memory.wasm", "wasmtime-j")}
    assert all(len(f["wall"]) == 3 and all(w > 0 for w in f["wall"]) for f in files)
    assert sorted(export.workload_name(o["module"]) for o in walk(ops)) == ["memory:1", "spin:1"]
