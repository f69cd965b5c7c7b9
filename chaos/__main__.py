"""`python -m chaos [--quick] [--json] [--only NAME ...]`: run the scenarios, print their figures.

Exit status 0 when every scenario kept its promises, 1 when one broke one (the table says which).
"""
from __future__ import annotations

import argparse
import importlib
import json
import platform
import os
import sys
import time
import traceback
from typing import Any

from chaos.base import SIZES, Outcome

SCENARIOS = ["worker_kills", "broker_loss", "supervisor_kill", "orchestrator_restart", "fuzz", "sandbox", "security", "fleet", "fleet_security"]

# the --json keys the issue names, and where they come from: (scenario, figure, how to combine)
SUMMARY = {
    "worker_kills": ("worker_kills", "worker_kills"),
    "worker_restarts": ("worker_kills", "worker_restarts"),
    "modules_unreported": ("worker_kills", "modules_unreported"),
    "leaked_ipc_objects": ("*", "leaked_ipc_objects"),
    "broker_reregister_s": ("broker_loss", "broker_reregister_s"),
    "control_lost": ("broker_loss", "control_lost"),
    "orphans_after_supervisor_kill": ("supervisor_kill", "orphans_after_supervisor_kill"),
    "fuzz_cases": ("fuzz", "fuzz_cases"),
    "crashes": ("*", "crashes"),
    "sandbox_attempts": ("sandbox", "sandbox_attempts"),
    "sandbox_escapes": ("sandbox", "sandbox_escapes"),
    "acl_refusals_expected": ("sandbox", "acl_refusals_expected"),
    "acl_refusals_seen": ("sandbox", "acl_refusals_seen"),
    "register_after_orchestrator_start_s_max": ("fleet", "register_after_orchestrator_start_s_max"),
    "reregister_after_fresh_store_s_max": ("fleet", "reregister_after_fresh_store_s_max"),
    "duplicate_executions": ("fleet", "duplicate_executions"),
    "last_wills_on_clean_stop": ("fleet", "last_wills_on_clean_stop"),
    "clean_stops": ("fleet", "clean_stops"),
    "resurrected_after_graceful_restart": ("fleet", "resurrected_after_graceful_restart"),
    "graceful_restart_modules": ("fleet", "graceful_restart_modules"),
    "bridge_channel_ok": ("fleet", "bridge_channel_ok"),
    "bridge_duplicates": ("fleet", "bridge_duplicates"),
    "attacks_tried": ("fleet_security", "attacks_tried"),
    "attacks_refused": ("fleet_security", "attacks_refused"),
    "attacks_succeeded": ("fleet_security", "attacks_succeeded"),
}


def machine() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass
    return {"cpu": model, "cpus": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version()}


def summary(outcomes: dict[str, Outcome]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, (scen, fig) in SUMMARY.items():
        if scen == "*":
            vals = [o.figures[fig] for o in outcomes.values() if isinstance(o.figures.get(fig), (int, float))]
            out[key] = sum(vals) if vals else None
        else:
            o = outcomes.get(scen)
            out[key] = o.figures.get(fig) if o else None
    out["failures"] = sum(len(o.failures) for o in outcomes.values())
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m chaos", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller numbers (about two minutes)")
    ap.add_argument("--json", action="store_true", help="one JSON object with every figure on the last line")
    ap.add_argument("--only", nargs="+", choices=SCENARIOS, metavar="NAME", help=f"run only these ({', '.join(SCENARIOS)})")
    ap.add_argument("--size", choices=sorted(SIZES), help="size profile (overrides --quick)")
    a = ap.parse_args(argv)
    size = SIZES[a.size or ("quick" if a.quick else "full")]
    outcomes: dict[str, Outcome] = {}
    t_all = time.monotonic()
    for name in a.only or SCENARIOS:
        print(f"== {name} ({size.name})", flush=True)
        t0 = time.monotonic()
        try:
            o = importlib.import_module(f"chaos.{name}").run(size)
        except Exception as e:  # a scenario that cannot finish is a failure with its reason, not a traceback
            traceback.print_exc()
            o = Outcome(name, failures=[f"scenario did not finish: {type(e).__name__}: {e}"])
        o.seconds = round(time.monotonic() - t0, 1)
        outcomes[name] = o
        for k, v in o.figures.items():
            print(f"   {k:<36} {v}")
        for f in o.failures:
            print(f"   FAIL {f}")
        print(f"   ({o.seconds} s, {'ok' if not o.failures else f'{len(o.failures)} failures'})", flush=True)
    s = summary(outcomes)
    print(f"\n{'figure':<36} value")
    for k, v in s.items():
        print(f"{k:<36} {v}")
    print(f"total {time.monotonic() - t_all:.0f} s on {machine()['cpus']} CPUs ({machine()['cpu']})")
    if a.json:
        doc = dict(s)
        doc.update({"size": size.name, "machine": machine(), "seconds": round(time.monotonic() - t_all, 1),
                    "scenarios": {n: {"figures": o.figures, "failures": o.failures, "seconds": o.seconds} for n, o in outcomes.items()}})
        print(json.dumps(doc, default=str))
    return 1 if s["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
