#!/usr/bin/env python3
"""CPU budget benchmark: asked vs measured share of a CPU for 5 periods x 3 fractions.

A spinning module (build/modules/loop.wasm, an endless loop) runs on the wasmtime engine with a CPU budget
(`args.resources {period, runtime}`, what `manage.py run -u/-t` sends); its share is the CPU
time of the module's thread (its CPU clock, read from another thread) over a window of whole
periods after a warm-up. Measured in one run: the best mechanism this machine offers (the one
the node uses, runtimes/engines/cpu_budget.py) and the fallback epoch throttle, and the same
module without a budget (the share the machine gives an unthrottled thread now: under load it is
below 100 %, and a budget can only be met below it). Error = measured - asked, percentage points.
The load average is printed with the figures.

Usage: bench/budget.py [--quick] [--json] [--mechanism auto|cgroup|deadline|throttle]
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from typing import Any, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench._common import finish, loadavg, machine, table  # noqa: E402
from runtimes.engines import Limits, RunSpec  # noqa: E402
from runtimes.engines import cpu_budget  # noqa: E402
from runtimes.engines.wasmtime_engine import WasmtimeEngine  # noqa: E402

PERIODS_MS = [5, 10, 50, 100, 1000]
FRACTIONS = [0.1, 0.2, 0.5]
SPIN = os.path.join(ROOT, "build", "modules", "loop.wasm")


def share(engine: WasmtimeEngine, module: Any, period_ns: Optional[int], fraction: float, window_s: float,
          setting: str) -> tuple[float, str]:
    """(CPU share of the module's thread over `window_s`, mechanism used)."""
    os.environ["SL_CPU_BUDGET"] = setting
    limits = Limits(cpu_period_ns=period_ns, cpu_runtime_ns=int(period_ns * fraction) if period_ns else None)
    run = engine.start(module, RunSpec(argv=["loop"], limits=limits))
    try:
        deadline = time.monotonic() + 10
        while run.thread is None or run.control.native_id is None:
            if time.monotonic() > deadline:
                raise RuntimeError("the module did not start within 10 s")
            time.sleep(0.001)
        assert run.thread.ident is not None
        clock = time.pthread_getcpuclockid(run.thread.ident)
        period_s = (period_ns or 10_000_000) / 1e9
        time.sleep(max(0.05, 2 * period_s))  # warm-up: compile, instantiate, first periods
        if run.done.is_set():
            raise RuntimeError(f"the module ended early: {run.result}")
        w0, c0 = time.monotonic(), time.clock_gettime(clock)
        time.sleep(window_s)
        w1, c1 = time.monotonic(), time.clock_gettime(clock)
        return (c1 - c0) / (w1 - w0), run.control.budget_mechanism or "none"
    finally:
        run.stop("bench done")
        run.wait(30)
        os.environ.pop("SL_CPU_BUDGET", None)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="shorter windows: done within 60 s")
    ap.add_argument("--json", action="store_true", help="print one JSON object with the figures last")
    ap.add_argument("--mechanism", default="auto", choices=["auto", "cgroup", "deadline", "throttle"],
                    help="the first mechanism to try for the main column (default: auto = the node's choice)")
    a = ap.parse_args()
    if not os.path.exists(SPIN):
        print(f"bench/budget.py: {SPIN} is missing: run `make modules` first", file=sys.stderr)
        return 2
    load_before = loadavg()
    engine = WasmtimeEngine()
    module = engine.load(SPIN)
    min_window, n_periods = (0.5, 3) if a.quick else (2.0, 5)
    rows: list[dict[str, Any]] = []
    try:
        free_before, _ = share(engine, module, None, 0, 0.5, "auto")
        for period_ms in PERIODS_MS:
            window = max(min_window, n_periods * period_ms / 1000)
            window = round(window / (period_ms / 1000)) * period_ms / 1000  # whole periods
            for f in FRACTIONS:
                got, mech = share(engine, module, period_ms * 1_000_000, f, window, a.mechanism)
                thr, _ = share(engine, module, period_ms * 1_000_000, f, window, "throttle")
                rows.append({"period_ms": period_ms, "asked": f, "measured": got, "mechanism": mech,
                             "error_pp": 100 * (got - f), "throttle_measured": thr, "throttle_error_pp": 100 * (thr - f),
                             "window_s": window})
                print(f"period {period_ms} ms, {f:.0%}: {got:.3f} ({mech}), throttle {thr:.3f}", file=sys.stderr)
        free_after, _ = share(engine, module, None, 0, 0.5, "auto")
    finally:
        engine.close()
    load_after = loadavg()
    mechs = sorted({r["mechanism"] for r in rows})
    out: dict[str, Any] = {
        "machine": machine(), "quick": a.quick, "loadavg_before": load_before, "loadavg_after": load_after,
        "mechanism": mechs[0] if len(mechs) == 1 else mechs,
        "budget_error_pp_max": max(abs(r["error_pp"]) for r in rows),
        "throttle_error_pp_max": max(abs(r["throttle_error_pp"]) for r in rows),
        "unthrottled_share": [free_before, free_after], "rows": rows,
    }
    print(f"machine: {out['machine']}")
    print(f"load average (1, 5, 15 min): before {load_before}, after {load_after}")
    print(f"no budget (same run, before/after): {free_before:.1%} / {free_after:.1%} of a CPU")
    print(table(["period ms", "asked %", "measured %", "error pp", "mechanism", "throttle %", "throttle pp"],
                [[r["period_ms"], 100 * r["asked"], 100 * r["measured"], r["error_pp"], r["mechanism"],
                  100 * r["throttle_measured"], r["throttle_error_pp"]] for r in rows]))
    print(f"budget_error_pp_max {out['budget_error_pp_max']:.2f} (target <= 3; {out['mechanism']}), "
          f"epoch throttle alone {out['throttle_error_pp_max']:.2f}")
    return finish(out, a.json)


if __name__ == "__main__":
    sys.exit(main())
