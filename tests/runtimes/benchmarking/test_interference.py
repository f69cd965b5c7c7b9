"""An interference cell is `done` only if every co-runner produced its runs (issue #24 item 8): real
node, real modules, the cell's outcome as the orchestrator records it from the `exited` message."""
from __future__ import annotations

import os

from benchmarking import layouts
from benchmarking.plan import outcome_of
from testbed.bench_modules import node_args
from testbed.node import running_node
from tests.runtimes.benchmarking.test_runtimes import REALM, create, exited, profile


def test_a_cell_is_done_only_if_every_co_runner_produced_its_runs(broker, probe, wasm, wasm_root, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cpus = sorted(os.sched_getaffinity(0))
    probe.subscribe(f"{REALM}/proc/#")
    with running_node(broker, runtimes=["benchmarking/if"], extra_args=["-g", ",".join(map(str, cpus[:2]))] + node_args(tmp_path, [wasm_root])) as node:
        rt = node.runtime_uuid()
        if len(cpus) < 2:  # what a one-CPU machine can check: the refusal
            create(probe, rt, "if-trap", f"{wasm['spin']}:{wasm['trap']}", argv=["1"], limit=3.0, engine="wasmtime-aot")
            assert "need 2 CPUs" in exited(probe, rt, "if-trap")["status"]["error"]
            return
        # both co-runners fine: done (a long limit: on a busy machine one run of spin took 0.3-1.5 s)
        create(probe, rt, "if-ok", f"{wasm['spin']}:{wasm['spin']}", argv=["1"], limit=10.0, engine="wasmtime-aot")
        st = exited(probe, rt, "if-ok")
        assert st["status"] == {"reason": "exited", "code": 0, "error": None} and outcome_of(st)[0] == "done", st
        # co-runner 0 traps on every run: the cell is not done; its runs are still published as they were
        create(probe, rt, "if-trap", f"{wasm['trap']}:{wasm['spin']}", argv=["1"], limit=3.0, engine="wasmtime-aot")
        st = exited(probe, rt, "if-trap")
        v2 = layouts.decode("interference-v2", profile(probe, "interference-v2", "if-trap"))
        trap_runs = v2["loops"][0]["runs"]["outcome"]
        assert trap_runs and set(trap_runs) == {"trap"} and set(v2["loops"][1]["runs"]["outcome"]) <= {"ok"}
        err = st["status"]["error"]
        assert st["failure"] == "trap" and f"co-runner 0 ({wasm['trap']}" in err, st
        assert f"failed {len(trap_runs)} of {len(trap_runs)} runs" in err and "trap" in err
        assert outcome_of(st)[0] == "trap"
        # co-runner 0 never finishes a run inside the limit: no sample of it, not done either
        create(probe, rt, "if-none", f"{wasm['forever']}:{wasm['spin']}", argv=["1"], limit=1.0, engine="wasmtime-aot")
        st = exited(probe, rt, "if-none")
        assert st["status"]["reason"] == "limit" and "co-runner 0" in st["status"]["error"], st
        assert "finished no run within the limit of 1.0 s" in st["status"]["error"]
        assert st["samples"][f"0:{wasm['forever']}"] == 0
        assert outcome_of(st)[0] == "limit"
