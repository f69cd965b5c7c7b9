"""Benchmark of the benchmark engines: startup, kernel speed and memory of every engine.

Usage: bench/engines.py [--quick] [--json] [--plot PNG] [--check]

In one run, interleaved (every repetition runs every kernel on every engine, engines in a fresh
random order each time), through the same harness the benchmarking runtimes use:
- startup: wall time of an empty module (`_start` returns at once), per engine;
- kernel time of 3 kernels of modules/conformance/kernels.c (integer matmul, recursive calls,
  CRC over memory), measured by the module itself on the WASI monotonic clock around the kernel
  (`kernels KIND N timed`: start, compile or load and libc init are not in it; a lazy compiler's
  work is), as a ratio to `wasmtime-j` (the baseline, measured in the same run); pywasm-i
  (~50,000x slower) gets startup only;
- peak RSS (wait4) of the kernel runs. For spawned engines (CLI, Node, wasmer's Python, wasm2c,
  native) the kernel counts the worker's pages before exec (posix_spawn is vfork + exec, and exec
  records the old, shared mm's high-water mark): their floor is this process's RSS (~31 MiB here).
Each figure is a median with its spread (min-max) over the repetitions. `engines_available`
(target >= 15) counts the engines enabled here; `engines_conformant` those whose stored conformance
verdict passed (`--check` runs the suite first, ~2 min; else the verdicts of the last
`manage.py engines --check`). `--json` prints one JSON object on the last line.
"""
from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._common import finish, loadavg, machine, median_spread, table  # noqa: E402
from benchmarking.engines import conformance  # noqa: E402
from benchmarking.engines import launch as engines  # noqa: E402
from benchmarking.engines.verdicts import cached_verdict  # noqa: E402

ROOT = engines.PROJECT_ROOT
KERNELS_WASM = os.path.join(ROOT, "build", "modules", "conformance", "kernels.wasm")
SIZES = {"quick": {"matmul": "150", "fib": "27", "crc": "2000000"},
         "full": {"matmul": "300", "fib": "32", "crc": "16000000"}}
SKIP_KERNELS = {"pywasm-i": "~50,000x slower than wasmtime: startup only"}
BASELINE = "wasmtime-j"
EMPTY_WAT = '(module (memory (export "memory") 1) (func (export "_start")))'


def build_empty(tmp: str) -> str:
    """An empty WASI program: `_start` returns at once; plus its native build for `native`."""
    import wasmtime  # wat2wasm only: no wasm runs in this process

    path = os.path.join(tmp, "empty.wasm")
    with open(path, "wb") as f:
        f.write(wasmtime.wat2wasm(EMPTY_WAT))
    src = os.path.join(tmp, "empty.c")
    with open(src, "w") as f:
        f.write("int main(void) { return 0; }\n")
    subprocess.run(["cc", "-O2", src, "-o", os.path.join(tmp, "empty.native")], check=True)
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 repetitions, small kernels (within 60 s)")
    ap.add_argument("--json", action="store_true", help="one JSON object on the last line")
    ap.add_argument("--plot", metavar="PNG", help="write a plot of the kernel ratios")
    ap.add_argument("--check", action="store_true", help="run the conformance suite first (~2 min)")
    ap.add_argument("--reps", type=int, default=None)
    a = ap.parse_args()
    if not os.path.exists(KERNELS_WASM):
        subprocess.run(["make", "-s", "-C", os.path.join(ROOT, "modules")], check=True)
    reps = a.reps or (2 if a.quick else 5)
    sizes = SIZES["quick" if a.quick else "full"]
    names = [n for n, e in engines.ENGINES.items() if e.tested and engines.availability(n)[0]]
    if a.check:
        conformance.check(names)
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sl-bench-engines-") as tmp:
        empty = build_empty(tmp)
        preps: dict[tuple[str, str], engines.Prepared] = {}
        prep_s: dict[str, float] = {}
        failed: dict[str, str] = {}
        for n in names:
            t0 = time.monotonic()
            try:  # AOT compilation happens here (cached per module hash and version)
                preps[(n, "empty")] = engines.prepare(n, engines.Invocation(empty, ["empty"]))
                if n not in SKIP_KERNELS:
                    for k, size in sizes.items():
                        preps[(n, k)] = engines.prepare(n, engines.Invocation(KERNELS_WASM, ["kernels", k, size, "timed"]))
            except Exception as e:  # an engine that cannot prepare is reported, the others go on
                failed[n] = str(e)
            prep_s[n] = time.monotonic() - t0
        wall: dict[tuple[str, str], list[float]] = {key: [] for key in preps}
        rss: dict[tuple[str, str], list[int]] = {key: [] for key in preps}
        phases: dict[tuple[str, str], list[dict[str, int]]] = {}
        order = list(preps)
        rng = random.Random(15)
        kernel_ms: dict[tuple[str, str], list[float]] = {}
        out_file = os.path.join(tmp, "stdout")
        for _ in range(reps):
            rng.shuffle(order)
            for key in order:
                if os.path.exists(out_file):
                    os.unlink(out_file)
                r = engines.run_once(preps[key], limit=300, stdout=out_file)
                if r.failed:
                    failed.setdefault(key[0], f"{key[1]}: {r.describe()}")
                    continue
                wall[key].append(r.wall_ns / 1e6)
                if key[1] != "empty":
                    with open(out_file) as f:
                        said = [ln.split()[1] for ln in f if ln.startswith("elapsed_ns ")]
                    if said:
                        kernel_ms.setdefault(key, []).append(int(said[-1]) / 1e6)
                rss[key].append(r.maxrss_kb)
                if r.phases:
                    phases.setdefault(key, []).append(r.phases)
    results: dict[str, Any] = {}
    base_kernel: dict[str, float] = {}
    for n in names:
        st = median_spread(wall.get((n, "empty"), []))
        kern: dict[str, list[float]] = {}
        for k in sizes:
            kern[k] = kernel_ms.get((n, k), [])
        results[n] = {"kind": engines.ENGINES[n].kind, "version": engines.version(n),
                      "startup_ms": list(st), "kernel_ms": {k: list(median_spread(v)) for k, v in kern.items()},
                      "rss_kb": list(median_spread([float(x) for k in sizes for x in rss.get((n, k), [])])),
                      "phases_ms": _phases(phases, n, sizes),
                      "prepare_s": round(prep_s.get(n, 0), 2)}
        if n in SKIP_KERNELS:
            results[n]["kernels_skipped"] = SKIP_KERNELS[n]
        if n in failed:
            results[n]["failed"] = failed[n]
    for k in sizes:
        base_kernel[k] = results.get(BASELINE, {}).get("kernel_ms", {}).get(k, [float("nan")])[0]
    for n, res in results.items():
        res["kernel_rel"] = {k: [v / base_kernel[k] for v in res["kernel_ms"][k]] if res["kernel_ms"][k][0] == res["kernel_ms"][k][0] else None
                             for k in sizes}
    conformant = [n for n in names if (cached_verdict(n, engines.version(n)) or {}).get("ok")]
    unchecked = [n for n in names if cached_verdict(n, engines.version(n)) is None]
    out = {"machine": machine(), "loadavg": loadavg(), "reps": reps, "sizes": sizes, "baseline": BASELINE,
           "engines_available": len(names), "engines_available_target": 15,
           "engines_conformant": len(conformant), "engines_unchecked": unchecked,
           "seconds": round(time.monotonic() - t_start, 1), "engines": results}

    def cell(x: list[float] | None, scale: float = 1.0) -> str:
        if not x or x[0] != x[0]:
            return "-"
        return f"{x[0] * scale:.3g} [{x[1] * scale:.3g}-{x[2] * scale:.3g}]"

    rows = []
    for n, res in results.items():
        rows.append([n, res["kind"], cell(res["startup_ms"])] + [cell(res["kernel_rel"][k]) for k in sizes]
                    + [cell(res["rss_kb"], 1 / 1024), res.get("failed", res.get("kernels_skipped", ""))[:40]])
    print(f"# bench/engines.py on {out['machine']}, load {out['loadavg']}, {reps} repetitions, interleaved")
    print(f"# kernel time (the module's own clock around the kernel) as a ratio to {BASELINE} "
          f"({', '.join(f'{k} {base_kernel[k]:.3g} ms' for k in sizes)}); median [min-max]")
    print(table(["engine", "kind", "startup ms"] + [f"{k} {sizes[k]} x" for k in sizes] + ["peak RSS MiB", "note"], rows))
    print(f"engines_available {len(names)} (target >= 15), engines_conformant {len(conformant)}"
          + (f" (unchecked: {', '.join(unchecked)}: run `manage.py engines --check` or --check)" if unchecked else "")
          + f"; {out['seconds']} s")
    if a.plot:
        plot(results, sizes, a.plot)
    return finish(_no_nan(out), a.json)


def _no_nan(x: Any) -> Any:
    """JSON has no NaN: a figure that could not be measured is null."""
    if isinstance(x, float) and x != x:
        return None
    if isinstance(x, dict):
        return {k: _no_nan(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_no_nan(v) for v in x]
    return x


def _phases(phases: dict[tuple[str, str], list[dict[str, int]]], n: str, sizes: dict[str, str]) -> dict[str, float]:
    """Median compile / instantiate / execute ms of the engine's kernel runs (engines that report them)."""
    runs = [p for k in sizes for p in phases.get((n, k), [])]
    if not runs:
        return {}
    return {ph[:-3]: round(median_spread([p[ph] / 1e6 for p in runs if ph in p])[0], 3)
            for ph in ("compile_ns", "instantiate_ns", "execute_ns")}


def plot(results: dict[str, Any], sizes: dict[str, str], path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n, r in results.items() if r["kernel_rel"].get("matmul")]
    names.sort(key=lambda n: results[n]["kernel_rel"]["matmul"][0])
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / len(sizes)
    for i, k in enumerate(sizes):
        med = [results[n]["kernel_rel"][k][0] for n in names]
        lo = [med[j] - results[n]["kernel_rel"][k][1] for j, n in enumerate(names)]
        hi = [results[n]["kernel_rel"][k][2] - med[j] for j, n in enumerate(names)]
        ax.bar([j + i * width for j in range(len(names))], med, width, yerr=[lo, hi], label=f"{k}")
    ax.set_yscale("log")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xticks([j + width for j in range(len(names))], names, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel(f"kernel time / {BASELINE} (log)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
