"""The supervisor loads no benchmark engine: a real node with a benchmarking runtime, the modules
its supervisor process had imported when it stopped (SILVERLINE_DUMP_MODULES, node.py). The engine
list reaches the orchestrator from the worker's report (RT_REGISTER) instead."""
from __future__ import annotations

import os
from typing import Any

from testbed.node import running_node

# the benchmark engines (before and after their move to benchmarking/engines/) and the engine bindings
FORBIDDEN = ("runtimes.benchmarking.engines", "runtimes.benchmarking.aot", "runtimes.benchmarking.conformance",
             "runtimes.benchmarking.wasm2c", "runtimes.benchmarking.wasm3_wasi", "runtimes.benchmarking.gate",
             "benchmarking.engines", "wasmtime", "wasmer", "wasm3", "pywasm")


def test_a_node_with_a_benchmarking_runtime_imports_no_engine_in_its_supervisor(broker: Any, tmp_path: Any) -> None:
    dump = str(tmp_path / "modules.txt")
    with running_node(broker, runtimes=["benchmarking", "test/echo"], reg_timeout=0.3,
                      env={"SILVERLINE_DUMP_MODULES": dump}) as node:
        reg = next(r["data"] for r in node.registrations if r["data"].get("runtime_type") == "benchmarking")
        # the first registration the orchestrator sees already names the engines the worker found
        assert "wasmtime" in reg["metadata"]["engines"] and reg["metadata"]["queue_ahead"] == 3
    assert os.path.exists(dump), node.output()
    with open(dump, encoding="utf-8") as f:
        loaded = f.read().split()
    assert "runtimes.benchmarking.runtime" in loaded and "supervisor.node" in loaded  # the dump is the supervisor's
    bad = [m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]
    assert bad == [], f"the supervisor imported benchmark engines: {bad}"
