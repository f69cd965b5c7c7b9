#!/usr/bin/env python3
"""Declared deployments converge (issue #27): 10 deployments across 4 real nodes (`start.py`, runtime
`test/echo`) on a real mosquitto and a real orchestrator process.

Figures, each the median (min..max) of `--reps` repetitions:
- `node_crash_converge_s`: from a node's SIGKILL until every deployment runs its count again, none
  of it on the dead node (REST `/api/deployments/` polled every 20 ms); baseline, same run:
  `node_crash_detect_s`, from the SIGKILL until the orchestrator shows the node's runtime dead (the
  broker sends the node's last will at once: the floor; the difference is the reconciler's share);
- `node_silent_*`: the same for a node that goes silent (SIGSTOP: a frozen or cut-off machine, no
  last will): its death is noticed after 3 missed keepalive intervals;
- `orch_restart_converge_s`: from the orchestrator's SIGKILL and immediate restart until its REST
  answers with every deployment running its count; baseline, same run: `orch_restart_ready_s`, until
  its REST answers and it is subscribed to the broker.
After each node loss the node is started again and the run waits until the deployments are spread
over the 4 nodes again (`spread_back_s`, reported too).

Usage: bench/deployments.py [--quick] [--json] [--reps N] [--ka S]
  --quick  3 repetitions, keepalive 0.5 s: within 60 s here
  --json   one JSON object on the last line
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._common import finish, measured, median_spread, table  # noqa: E402
from testbed.broker import Mosquitto  # noqa: E402
from testbed.node import NodeProcess  # noqa: E402
from testbed.orchestrator import OrchestratorProc  # noqa: E402

DEPLOYMENTS = 10
NODES = 4


def _wait(pred: Callable[[], bool], timeout: float, what: str) -> float:
    t0 = time.monotonic()
    while True:
        try:
            if pred():
                return time.monotonic()
        except OSError:
            pass  # the orchestrator restarting
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"bench/deployments.py: {what} not within {timeout:g} s")
        time.sleep(0.02)


def _converged(orch: OrchestratorProc, avoid: str | None = None) -> bool:
    res = orch.get("/api/deployments/")["results"]
    return len(res) == DEPLOYMENTS and all(
        d["running"] == d["desired"] and not (avoid and any(s["runtime_name"] == avoid for s in d["slots"])) for d in res)


def _spread(orch: OrchestratorProc) -> bool:
    per: dict[str, int] = {}
    for d in orch.get("/api/deployments/")["results"]:
        if d["running"] != d["desired"]:
            return False
        for s in d["slots"]:
            per[s["runtime_name"]] = per.get(s["runtime_name"], 0) + 1
    return len(per) == NODES


def run(reps: int, ka: float) -> dict[str, Any]:
    out: dict[str, list[float]] = {k: [] for k in ("node_crash_detect_s", "node_crash_converge_s", "node_silent_detect_s",
                                                   "node_silent_converge_s", "spread_back_s",
                                                   "orch_restart_ready_s", "orch_restart_converge_s")}
    with tempfile.TemporaryDirectory() as tmp, Mosquitto() as broker, \
            OrchestratorProc(broker.port, tmp, ka_interval=ka) as orch:
        names = [f"b{i}" for i in range(NODES)]
        nodes = {n: NodeProcess(broker.port, name=n, runtimes=["test/echo"], state_dir=os.path.join(tmp, n),
                                reg_timeout=5, log_level="WRN") for n in names}
        killed: list[int] = []
        try:
            for n in nodes.values():
                n.start()
            spec = os.path.join(tmp, "d.json")
            with open(spec, "w") as f:  # 10 deployments of 2 modules, each allowed on every node
                json.dump([{"name": f"d{i}", "file": "none", "count": 2, "backoff": [0.2, 2],
                            "placement": {"runtimes": names}} for i in range(DEPLOYMENTS)], f)
            import subprocess
            r = subprocess.run([sys.executable, "manage.py", "apply", spec, "--wait", "60"], capture_output=True, text=True,
                               env={**os.environ, "SL_CONFIG": orch.config},
                               cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
            if r.returncode:
                raise RuntimeError(f"manage.py apply failed: {r.stderr.strip()}")
            _wait(lambda: _spread(orch), 60, "the first spread")
            for i in range(reps):
                for how, sig in (("crash", signal.SIGKILL), ("silent", signal.SIGSTOP)):
                    victim = names[(2 * i + (how == "silent")) % NODES]
                    rt = nodes[victim].runtime_uuid()
                    killed.append(nodes[victim].pid)
                    t0 = time.monotonic()
                    os.kill(nodes[victim].pid, sig)
                    t_dead = _wait(lambda: orch.get(f"/api/runtimes/{rt}/").get("status") == "D", 60, "the runtime's death")
                    t_conv = _wait(lambda: _converged(orch, victim), 60, "convergence after the node loss")
                    out[f"node_{how}_detect_s"].append(t_dead - t0)
                    out[f"node_{how}_converge_s"].append(t_conv - t0)
                    nodes[victim].kill()  # (SIGKILL also ends a stopped process)
                    nodes[victim] = NodeProcess(broker.port, name=victim, runtimes=["test/echo"],
                                                state_dir=os.path.join(tmp, victim), reg_timeout=5, log_level="WRN")
                    t1 = time.monotonic()
                    nodes[victim].start()
                    out["spread_back_s"].append(_wait(lambda: _spread(orch), 60, "the spread back") - t1)
                t0 = time.monotonic()
                orch.stop(signal.SIGKILL)
                orch.proc = None
                orch.start()
                out["orch_restart_ready_s"].append(time.monotonic() - t0)
                out["orch_restart_converge_s"].append(_wait(lambda: _converged(orch), 60, "convergence after the restart") - t0)
        finally:
            for n in nodes.values():
                n.stop()
            for pid in killed:  # a SIGKILLed node leaves its IPC objects; nothing else will unlink them
                for d in ("/dev/mqueue", "/dev/shm"):
                    for obj in os.listdir(d) if os.path.isdir(d) else []:
                        if obj.startswith(f"sl.{pid}."):
                            try:
                                os.unlink(os.path.join(d, obj))
                            except OSError:
                                pass
    res: dict[str, Any] = {"reps": reps, "ka_interval_s": ka, "deployments": DEPLOYMENTS, "nodes": NODES, "modules": 2 * DEPLOYMENTS}
    for k, xs in out.items():
        med, lo, hi = median_spread(xs)
        res[k] = round(med, 3)
        res[k + "_min"], res[k + "_max"] = round(lo, 3), round(hi, 3)
    return res


def spread(res: dict[str, Any], k: str) -> str:
    return f"{res[k]} ({res[k + '_min']}..{res[k + '_max']})"

def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 repetitions, keepalive 0.5 s (within 60 s)")
    ap.add_argument("--json", action="store_true", help="one JSON object on the last line")
    ap.add_argument("--reps", type=int, help="repetitions (default 8; --quick 3)")
    ap.add_argument("--ka", type=float, help="keepalive interval, s (default 1; --quick 0.5)")
    a = ap.parse_args()
    reps = a.reps or (3 if a.quick else 8)
    ka = a.ka or (0.5 if a.quick else 1.0)
    if reps < 1 or ka <= 0:
        print("bench/deployments.py: --reps and --ka must be positive", file=sys.stderr)
        return 2
    res = measured(lambda: run(reps, ka))
    print(f"{DEPLOYMENTS} deployments x 2 modules over {NODES} nodes, keepalive {ka:g} s, {reps} repetitions (median (min..max))")

    rows = [["node crash (SIGKILL: its last will)", "node_crash_converge_s", "the death noticed", "node_crash_detect_s"],
            [f"node silent (SIGSTOP: {3 * ka:g} s of missed keepalives)", "node_silent_converge_s", "the death noticed",
             "node_silent_detect_s"],
            ["node back: spread again after its start", "spread_back_s", "", ""],
            ["orchestrator SIGKILL + restart", "orch_restart_converge_s", "REST up and subscribed", "orch_restart_ready_s"]]
    print(table(["event", "converged s (min..max)", "baseline", "s (min..max)"],
                [[what, spread(res, k), base, spread(res, bk) if bk else ""] for what, k, base, bk in rows]))
    return finish(res, a.json)


if __name__ == "__main__":
    sys.exit(main())
