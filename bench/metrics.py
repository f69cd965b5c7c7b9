#!/usr/bin/env python3
"""The cost of a Prometheus scrape (`GET /metrics`, orchestrator/metrics.py) at 10k modules (issue #27).

An orchestrator in process over a real SQLite (WAL) store: 20 runtimes (max 200 modules each), 10,000
modules created (4,000 running, 4,000 queued, 2,000 ended), 10 deployments of 3. Timed, `--reps`
times each, interleaved: building the `/metrics` answer (the snapshot published, a read-only
connection, as the REST thread does) and, as the baseline of the same run, the dashboard's answer
(`GET /api/dashboard/`, what an open dashboard asks every second), uncached.

Usage: bench/metrics.py [--quick] [--json] [--modules N] [--reps N]
  --quick  10,000 modules, 20 reps: within 60 s here
  --json   one JSON object on the last line
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import orjson  # noqa: E402

from bench._common import finish, measured, median_spread, table  # noqa: E402
from common.wire import envelope  # noqa: E402
from orchestrator import dashboard, metrics  # noqa: E402
from orchestrator.core import Orchestrator  # noqa: E402
from orchestrator.store import Store  # noqa: E402

R = "realm"
RUNTIMES = 20


def fill(o: Orchestrator, modules: int) -> None:
    o.handle(f"{R}/proc/reg/m-0", orjson.dumps(envelope("create", {"type": "manager", "uuid": "m-0", "name": "bench"})))
    for i in range(RUNTIMES):
        o.handle(f"{R}/proc/reg/rt-{i}", orjson.dumps(envelope("create", {
            "type": "runtime", "uuid": f"rt-{i}", "name": f"bench.{i}", "runtime_type": "linux",
            "max_nmodules": 200, "apis": ["wasm", "wasi"], "parent": "m-0"})))
    ended = modules // 5
    for start in range(0, modules, 1000):
        batch = [{"type": "module", "uuid": f"mod-{j}", "name": f"m{j % 100}", "file": "x.wasm", "parent": f"rt-{j % RUNTIMES}"}
                 for j in range(start, min(modules, start + 1000))]
        o.handle(f"{R}/proc/control", orjson.dumps(envelope("create_batch", {"modules": batch})))
    for j in range(ended):  # the first ones started: they end (and queued ones start in their place)
        o.handle(f"{R}/proc/control/rt-{j % RUNTIMES}", orjson.dumps(envelope("exited", {
            "type": "module", "uuid": f"mod-{j}", "status": {"reason": "exited", "code": 0}})))
    o.handle(f"{R}/proc/control", orjson.dumps(envelope("apply_deployments", {"deployments": [
        {"name": f"d{i}", "file": "x.wasm", "count": 3} for i in range(10)]})))


def run(modules: int, reps: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(os.path.join(tmp, "o.db"))
        o = Orchestrator(store, lambda t, p: None, realm=R)
        t0 = time.perf_counter()
        fill(o, modules)
        filled = time.perf_counter() - t0
        snap = o.snapshots.publish()
        stats = {"messages": 1, "fences": 0, "paused": 0, "inbound_waiting": 0, "mqtt_connected": True}
        scrape, dash = [], []
        size = 0
        for _ in range(reps):
            with store.reader() as r:
                t = time.perf_counter()
                body = metrics.text(snap, r.conn, stats)
                scrape.append(time.perf_counter() - t)
                size = len(body)
                snap.cache.clear()  # the dashboard's answer uncached, as its first poll of a second
                t = time.perf_counter()
                dashboard.snapshot(snap, r)
                dash.append(time.perf_counter() - t)
        counts = dict(store.conn.execute("SELECT status, count(*) FROM modules GROUP BY status").fetchall())
        store.close()
    res: dict[str, Any] = {"modules": modules, "by_state": counts, "reps": reps, "fill_s": round(filled, 2), "bytes": size}
    for k, xs in (("scrape_ms", scrape), ("dashboard_ms", dash)):
        med, lo, hi = median_spread([x * 1e3 for x in xs])
        res[k], res[k + "_min"], res[k + "_max"] = round(med, 2), round(lo, 2), round(hi, 2)
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="10,000 modules, 20 reps (within 60 s)")
    ap.add_argument("--json", action="store_true", help="one JSON object on the last line")
    ap.add_argument("--modules", type=int, default=10_000, help="modules (default 10,000)")
    ap.add_argument("--reps", type=int, help="repetitions (default 50; --quick 20)")
    a = ap.parse_args()
    reps = a.reps or (20 if a.quick else 50)
    if a.modules < 100 or reps < 1:
        print("bench/metrics.py: --modules must be at least 100 and --reps positive", file=sys.stderr)
        return 2
    res = measured(lambda: run(a.modules, reps))
    print(f"{res['modules']} modules {res['by_state']}, {RUNTIMES} runtimes, 10 deployments; {reps} reps, median (min..max)")
    print(table(["answer", "median ms", "min", "max"],
                [[f"/metrics ({res['bytes']} bytes)"] + [res[f"scrape_ms{k}"] for k in ("", "_min", "_max")],
                 ["baseline: the dashboard's"] + [res[f"dashboard_ms{k}"] for k in ("", "_min", "_max")]]))
    return finish(res, a.json)


if __name__ == "__main__":
    sys.exit(main())
