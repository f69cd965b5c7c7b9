"""Benchmark of the benchmarking machinery (issue 6, section 8).

Usage: bench/harness.py [--quick] [--json]

In one run, each figure with its baseline measured in the same run:
1. per-run overhead of the benchmarking harness (what the runtime calls per run: pipe, spawn,
   pidfd wait, wait4, result) against a bare fork/exec/wait4 loop of the same native program;
   and end to end through a real node (broker + start.py + `benchmarking` runtime, repeat=N):
   (create -> exited time) / N against the bare loop;
2. CV of a ~100 ms wasm kernel (wasmtime AOT) over 50 runs pinned to one CPU;
3. opcode counting (instrumented module on wasmtime, in a run child) against the plain wasmtime
   run of the same module (JIT, in a run child), and against the pywasm reference interpreter;
   exactness of the counts against the reference on the test modules.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._common import finish, machine, table  # noqa: E402
from benchmarking import harness  # noqa: E402
from benchmarking.engines import launch as engines  # noqa: E402
from benchmarking.opcodes.instrument import instrument  # noqa: E402
from benchmarking.opcodes.child import child_target, parse_child_result  # noqa: E402
from benchmarking.opcodes.reference import reference_counts  # noqa: E402
from testbed.bench_modules import build_modules  # noqa: E402


def bare_loop(argv: list[str], n: int) -> float:
    """Seconds for n x (fork, exec, wait4) with output to /dev/null: the floor of any harness."""
    null = os.open(os.devnull, os.O_WRONLY)
    t0 = time.perf_counter()
    for _ in range(n):
        pid = os.fork()
        if pid == 0:
            try:
                os.dup2(null, 1)
                os.dup2(null, 2)
                os.execv(argv[0], argv)
            finally:
                os._exit(127)
        os.wait4(pid, 0)
    dt = time.perf_counter() - t0
    os.close(null)
    return dt


def spawn_loop(argv: list[str], n: int) -> float:
    """Seconds for n x (posix_spawn, wait4): the floor of the spawn path the harness uses."""
    fa = [(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0), (os.POSIX_SPAWN_DUP2, 1, 2)]
    t0 = time.perf_counter()
    for _ in range(n):
        os.wait4(os.posix_spawn(argv[0], argv, os.environ, file_actions=fa), 0)
    return time.perf_counter() - t0


def harness_loop(argv: list[str], n: int) -> float:
    prep = engines.Prepared(exec_argv=argv)
    t0 = time.perf_counter()
    for _ in range(n):
        r = engines.run_once(prep, limit=30)
        assert r.exit_code == 0, r.describe()
    return time.perf_counter() - t0


def node_loop(exe: str, n: int) -> float | None:
    """Seconds from create to exited of one `benchmarking` module with repeat=n (native engine)."""
    try:
        from testbed.broker import Mosquitto
        from testbed.mqtt import MqttProbe
        from testbed.node import NodeProcess
    except ImportError:
        return None
    with Mosquitto() as broker:
        probe = MqttProbe(broker.port)
        try:
            probe.subscribe("realm/proc/control/#")
            root = os.path.dirname(exe)  # the module root; `native` is opt-in (benchmarking/engines/gate.py)
            cfg = os.path.join(root, "node-config.json")
            with open(cfg, "w") as f:
                f.write('{"runtimes": {"benchmarking": {"enable_engines": ["native"]}}}')
            with NodeProcess(broker.port, name="bench", runtimes=["benchmarking"], log_level="WRN",
                             extra_args=["--module-root", root, "-c", cfg]) as node:
                rt = node.runtime_uuid()
                dt = 0.0
                # the first module also waits out the node's registration timeouts (no orchestrator here)
                for uuid, repeat in (("bench-warmup", 1), ("bench-mod", n)):
                    msg = {"object_id": uuid, "action": "create", "type": "req", "data": {
                        "type": "module", "uuid": uuid, "name": "spin", "parent": rt, "file": exe,
                        "args": {"repeat": repeat, "engine": "native", "argv": ["0"]}}}
                    t0 = time.perf_counter()
                    probe.publish(f"realm/proc/control/{rt}", msg)
                    probe.wait_for("realm/proc/control/#", lambda m: b'"exited"' in m.payload and uuid.encode() in m.payload,
                                   timeout=300)
                    dt = time.perf_counter() - t0
                return dt
        finally:
            probe.close()


def child_wall(prep: engines.Prepared, n: int) -> list[float]:
    out = []
    for _ in range(n):
        r = engines.run_once(prep, limit=300)
        assert not r.killed and r.exit_code is not None and r.exit_code != harness.EXIT_CHILD_ERROR, r.describe()
        out.append(r.wall_us / 1000)  # kernels exits with a checksum, not 0: that is fine here
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer runs (done within 60 s)")
    ap.add_argument("--json", action="store_true", help="print one JSON object with the figures last")
    args = ap.parse_args()
    q = args.quick
    tmp = tempfile.mkdtemp(prefix="sl-bench-harness-")
    mods = build_modules(tmp)
    native_spin = os.path.join(tmp, "spin")
    res: dict[str, Any] = {"machine": machine(), "quick": q}

    # 1. overhead per run
    n = 100 if q else 400
    tiny = [native_spin, "0"]
    harness_loop(tiny, 10)  # warm up
    bare = bare_loop(tiny, n)
    ours = harness_loop(tiny, n)
    bare2 = bare_loop(tiny, n)  # again, to see the noise of the baseline itself
    spawn_ms = spawn_loop(tiny, n) / n * 1000
    bare_ms = min(bare, bare2) / n * 1000
    res.update(bare_fork_exec_wait4_ms=bare_ms, bare_spawn_wait4_ms=spawn_ms, harness_ms_per_run=ours / n * 1000,
               overhead_ms_per_run=ours / n * 1000 - bare_ms, overhead_vs_spawn_ms_per_run=ours / n * 1000 - spawn_ms)
    n_node = 100 if q else 400
    t_node = node_loop(native_spin, n_node)
    if t_node is not None:
        res["node_ms_per_run"] = t_node / n_node * 1000
        res["node_overhead_ms_per_run"] = t_node / n_node * 1000 - bare_ms

    # 2. CV of a ~100 ms kernel, 50 pinned runs
    cpu = sorted(os.sched_getaffinity(0))[-1]
    prep = engines.prepare("wasmtime-aot", engines.Invocation(mods["spin"], ["spin", "80"]))
    runs = 20 if q else 50
    child_wall(prep, 2)
    walls = []
    for _ in range(runs):
        r = engines.run_once(prep, limit=60, cpus=[cpu])
        assert not r.failed, r.describe()
        walls.append(r.wall_us / 1000)
    qs = statistics.quantiles(walls, n=4)
    res.update(cv_pinned=statistics.stdev(walls) / statistics.fmean(walls), pinned_runs=runs, pinned_cpu=cpu,
               kernel_median_ms=statistics.median(walls), iqr_over_median_pinned=(qs[2] - qs[0]) / statistics.median(walls),
               pinned_min_ms=min(walls), pinned_max_ms=max(walls))
    unpinned = child_wall(prep, runs)
    res["cv_unpinned"] = statistics.stdev(unpinned) / statistics.fmean(unpinned)

    # 3. opcode counting vs plain wasmtime (both JIT-compiled in a run child) and vs pywasm
    size = "150" if q else "250"
    with open(mods["kernels"], "rb") as f:
        data = f.read()
    t0 = time.perf_counter()
    ins = instrument(data)
    res["instrument_ms"] = (time.perf_counter() - t0) * 1000
    k = 3 if q else 5
    plain = child_wall(engines.prepare("wasmtime", engines.Invocation(mods["kernels"], ["kernels", size, "quiet"])), k)
    counted = child_wall(engines.Prepared(target=child_target(ins, ["kernels", size, "quiet"])), k)
    res.update(jit_ms=statistics.median(plain), opcodes_ms=statistics.median(counted),
               opcodes_vs_jit_slowdown=statistics.median(counted) / statistics.median(plain))
    small = ["kernels", "20" if q else "30", "quiet"]
    c_small = child_wall(engines.Prepared(target=child_target(ins, small)), k)
    t0 = time.perf_counter()
    _code, ref_small = reference_counts(data, small[1:])
    t_ref = (time.perf_counter() - t0) * 1000
    res.update(reference_ms=t_ref, opcodes_small_ms=statistics.median(c_small),
               opcodes_vs_reference_speedup=t_ref / statistics.median(c_small), reference_instructions=sum(ref_small))

    # exactness on the test modules
    exact = True
    cases = [("loops", []), ("tables", []), ("memory", []), ("simd", []), ("kernels", ["5"]), ("kernels", ["6", "quiet"])]
    for name, argv in cases:
        with open(mods[name], "rb") as f:
            d = f.read()
        r = harness.run(child_target(instrument(d), [name] + argv), limit=120)
        ours_counts = parse_child_result(r.result).opcodes
        exact = exact and ours_counts == reference_counts(d, argv)[1]
    res["opcodes_exact"] = exact
    res["opcodes_exact_modules"] = len(cases)

    rows = [
        ["per-run overhead (harness)", f"{res['harness_ms_per_run']:.3f} ms", f"bare fork/exec/wait4 {bare_ms:.3f} ms",
         f"{res['overhead_ms_per_run']:.3f} ms (target <= 0.5)"],
    ]
    if "node_ms_per_run" in res:
        rows.append(["per-run, through a node", f"{res['node_ms_per_run']:.3f} ms", f"bare {bare_ms:.3f} ms",
                     f"{res['node_overhead_ms_per_run']:.3f} ms"])
    rows += [
        ["harness bookkeeping", f"{res['harness_ms_per_run']:.3f} ms", f"bare posix_spawn/wait4 {spawn_ms:.3f} ms",
         f"{res['overhead_vs_spawn_ms_per_run']:.3f} ms"],
        [f"CV, {runs} runs of ~{res['kernel_median_ms']:.0f} ms", f"pinned cpu{cpu}: {100 * res['cv_pinned']:.2f} %",
         f"unpinned {100 * res['cv_unpinned']:.2f} %",
         f"target <= 1 % (pinned IQR/median {100 * res['iqr_over_median_pinned']:.2f} %)"],
        [f"opcode counting, kernels {size}", f"{res['opcodes_ms']:.1f} ms", f"plain wasmtime JIT {res['jit_ms']:.1f} ms",
         f"{res['opcodes_vs_jit_slowdown']:.2f}x (target <= 3x)"],
        [f"opcode counting, kernels {small[1]}", f"{res['opcodes_small_ms']:.1f} ms", f"pywasm reference {t_ref:.0f} ms",
         f"{res['opcodes_vs_reference_speedup']:.0f}x faster"],
        ["counts equal the reference", str(exact), f"{len(cases)} module runs", ""],
    ]
    print(f"# bench/harness.py on {res['machine']}{' (quick)' if q else ''}")
    print(table(["what", "ours", "baseline (same run)", "result"], rows))
    return finish(res, args.json)


if __name__ == "__main__":
    sys.exit(main())
