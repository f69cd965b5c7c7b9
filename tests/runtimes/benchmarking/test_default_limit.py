"""A module that spins without end and whose create gives no `limit` still ends, as `limit`, at
the runtime's default time limit (setting `default_limit`), and the queue behind it goes on
(issue #25 item 5): a real node, a real module that loops for ever (testdata/forever.wat)."""
from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from benchmarking import layouts
from benchmarking.plan import outcome_of
from testbed.node import START, running_node
from tests.runtimes.benchmarking.test_runtimes import REALM, create, exited, profile


def test_a_spinning_module_ends_at_the_default_limit_and_the_queue_goes_on(broker, probe, wasm, wasm_root, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = tmp_path / "node.json"
    cfg.write_text(json.dumps({"runtimes": {"benchmarking": {"default_limit": 3}}}))
    probe.subscribe(f"{REALM}/proc/#")
    with running_node(broker, runtimes=["benchmarking", "benchmarking/opcodes"],
                      extra_args=["--module-root", wasm_root, "-c", str(cfg)]) as node:
        rts = {n.rsplit(".", 1)[-1]: u for n, u in node.runtime_uuids.items()}
        rt = rts["benchmarking"]
        # no limit, no ilimit: only the default can end it; the next create waits behind it
        create(probe, rt, "spin", wasm["forever"], repeat=2, engine="wasmtime-aot", profile="ours")
        create(probe, rt, "next", wasm["spin"], argv=["1"], repeat=2, engine="wasmtime-aot", profile="ours", limit=120.0)
        st = exited(probe, rt, "spin")
        assert st["status"]["reason"] == "limit" and outcome_of(st)[0] == "limit", st
        assert "limit 3 s (the runtime setting default_limit)" in st["status"]["error"]
        runs = layouts.decode("benchmarking-v3", profile(probe, "benchmarking-v3", "spin"))["runs"]
        assert runs["wall_ns"] == [] or runs["outcome"] == ["limit"]  # the run cut by the module's end is no sample
        nxt = exited(probe, rt, "next")
        assert nxt["status"] == {"reason": "exited", "code": 0, "error": None} and nxt["outcomes"] == {"ok": 2}, nxt
        # the `benchmarking` section is the default of every benchmarking/* runtime: opcodes ends too
        create(probe, rts["opcodes"], "count", wasm["forever"])
        st = exited(probe, rts["opcodes"], "count")
        assert st["status"]["reason"] == "limit", st
        # a create's own limit still wins over the default (here: shorter)
        create(probe, rt, "own", wasm["forever"], engine="wasmtime-aot", limit=1.0, profile="ours")
        st = exited(probe, rt, "own")
        assert st["status"]["reason"] == "limit" and "limit 1 s (args.limit)" in st["status"]["error"], st


def run_start(cfg: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, START, "-n", "x", "-r", "benchmarking", "-c", str(cfg), "--mqtt", "127.0.0.1:1"],
                          capture_output=True, text=True, timeout=60)


def test_a_bad_default_limit_stops_the_node_at_start(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = tmp_path / "c.json"
    for bad in (0, "1h", True):
        cfg.write_text(json.dumps({"runtimes": {"benchmarking": {"default_limit": bad}}}))
        r = run_start(cfg)
        # one line naming the key (common/schema.py's RuntimeSettings checks it at start)
        assert r.returncode == 2 and "key 'runtimes.benchmarking.default_limit' must be" in r.stderr, (bad, r.stderr)
        assert r.stderr.count("\n") == 1, r.stderr
