"""Outage scenarios of bench/campaign.py (`--outages`; issue #24): each in the middle of a campaign.

A real mosquitto (persistence on, as docs/orchestrator.md "Broker settings" advises), orchestrator
process, collector process (`python -m collector`, its data directory on a small tmpfs when run as
root) and node (benchmarking runtime, result spool on). Each scenario submits a campaign of N
cells, waits until half of them ran, makes its outage, lets the campaign finish as a researcher
would (`--status --wait`, then `--resume --wait` if cells failed or were lost), waits for the data
of every cell that ran, and counts, from the orchestrator's cells and the collector's store:
- `cells_done_without_data`: cells `done` whose benchmarking-v3 result (of the cell's module) is
  not in the collector's store;
- `results_stored_twice`: results in the store beyond one per cell (a cell run twice, or one
  result under two keys) plus data files holding a key another file holds;
- `cells_lost`: cells not `done` at the end.
Scenarios: `broker` (stopped for 20 s, 5 with --quick), `collector_kill` (SIGKILLed, restarted),
`disk_full` (the collector's tmpfs filled, 10 s, then freed), `node_kill` (SIGKILLed, restarted
with the same state: its spool is read back).
Spool cost: the same clean campaign with the spool on and off (`start.py --spool-max 0`),
interleaved (2 pairs; `--spool-only`: 4 pairs and no outage): `overhead_ms_per_cell` as
bench/campaign.py measures it.
"""
from __future__ import annotations

import contextlib
import glob
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from typing import Any, Callable

import orjson

from bench import campaign as bc
from bench.campaign import ENGINES, PLATFORM, log, tmp_root
from benchmarking.resultdb import ResultDB
from cli import benchmark as bench_cli
from cli._api import Api
from common.config import load_config
from testbed.broker import Mosquitto
from testbed.node import NodeProcess
from testbed.orchestrator import OrchestratorProc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TMPFS_MB = 256


class OutageRig:
    def __init__(self, tmp: str) -> None:
        self.tmp = tmp
        self.broker = Mosquitto(persistent=True).start()
        self.orch = OrchestratorProc(self.broker.port, tmp, ka_interval=5.0).start()
        self.cfg_path = os.path.join(tmp, "config.json")
        with open(self.cfg_path, "w") as f:
            json.dump({"mqtt": "127.0.0.1", "mqtt_port": self.broker.port, "http": "127.0.0.1",
                       "http_port": self.orch.http_port, "platform": PLATFORM,
                       "runtimes": {"benchmarking": {"enable_engines": ["native"]}}}, f)
        self.cfg = load_config(self.cfg_path)
        self.api = Api(self.orch.url, timeout=10)
        self.data = os.path.join(tmp, "data")
        os.makedirs(self.data)
        self.tmpfs = False
        if os.geteuid() == 0:
            r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_MB}m", "tmpfs", self.data], capture_output=True)
            self.tmpfs = r.returncode == 0
        self.col_log = os.path.join(tmp, "collector.log")
        self.collector: subprocess.Popen[bytes] | None = None
        self.start_collector()
        self.state = os.path.join(tmp, "state")
        self.spool = True
        self.node = self._node()

    def start_collector(self) -> None:
        with open(self.col_log, "ab") as out:
            self.collector = subprocess.Popen(
                [sys.executable, "-m", "collector", "-c", self.cfg_path, "-d", self.data, "-v", "INF",
                 "--client-id", f"bench-outages-{os.getpid()}"], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        end = time.monotonic() + 30
        while "collecting " not in open(self.col_log, errors="replace").read():
            if time.monotonic() > end or self.collector.poll() is not None:
                raise RuntimeError(f"the collector did not start:\n{open(self.col_log, errors='replace').read()[-2000:]}")
            time.sleep(0.1)

    def stop_collector(self, sig: int = signal.SIGTERM) -> None:
        if self.collector is not None:
            self.collector.send_signal(sig)
            self.collector.wait(30)
            self.collector = None

    def _node(self) -> NodeProcess:
        extra = ["-c", self.cfg_path, "--module-root", tmp_root(self.tmp)] + ([] if self.spool else ["--spool-max", "0"])
        n = NodeProcess(self.broker.port, name="bn", runtimes=["benchmarking"], state_dir=self.state, reg_timeout=5,
                        log_level="WRN", extra_args=extra)
        n.start(timeout=60)
        return n

    def restart_node(self, kill: bool = True) -> None:
        if kill:
            self.node.kill()
        else:
            self.node.stop()
        self.node = self._node()

    def close(self) -> None:
        for step in (self.node.stop, self.stop_collector, self.orch.stop, self.broker.close):
            with contextlib.suppress(Exception):
                step()
        if self.tmpfs:
            subprocess.run(["umount", "-l", self.data], capture_output=True)


def campaign_args(rig: OutageRig, spin: str, n: int, cid: str, window: int | None = None) -> list[str]:
    """bench/campaign.py's campaign, with the spin kernel's smallest size in every cell (the
    scenarios are about what happens around the runs, not the runs)."""
    args = bc.campaign_args(rig, spin, n, cid, window)  # type: ignore[arg-type]
    path = args[args.index("--argfile") + 1]
    with open(path, "w") as f:
        json.dump({os.path.basename(spin): [["0", f"#{i}"] for i in range(max(1, n // len(ENGINES)))]}, f)
    return args


def clean_campaign(rig: OutageRig, spin: str, n: int, cid: str) -> float:
    """One clean campaign (`--wait`); overhead_ms_per_cell as bench/campaign.py computes it: (submit
    to the collector's receipt of the last profile - the runs' own time) / cells."""
    t_submit = time.time()
    rc = bench_cli.main(campaign_args(rig, spin, n, cid) + ["--wait", "--timeout", "3600"])
    got, own_ns, last = bc.wait_profiles(rig.data, cid, n)
    if rc != 0 or len(got) < n:
        raise RuntimeError(f"clean campaign {cid}: rc {rc}, {len(got)} of {n} cells with a profile")
    over = round(((last - t_submit) - own_ns / 1e9) / n * 1e3, 3)
    log(f"bench/outages: clean campaign {cid} of {n} cells: wall {last - t_submit:.2f} s, runs {own_ns / 1e9:.2f} s, "
        f"overhead {over} ms per cell")
    return over


def status(rig: OutageRig, cid: str) -> dict[str, Any]:
    try:
        return rig.api.get(f"/api/campaigns/{cid}/") or {}
    except Exception:
        return {}


def wait_ran(rig: OutageRig, cid: str, frac: float, n: int, timeout: float = 1800) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        s = status(rig, cid)
        if s and s["done"] + s.get("data_pending", 0) + sum(s["failed"].values()) >= frac * n:
            return
        time.sleep(0.1)
    raise RuntimeError(f"campaign {cid} stalled before {frac:.0%}")


def fill(path: str) -> str:
    """Fill the file system of `path` (a tmpfs) to ENOSPC; returns the filler's path."""
    filler = os.path.join(path, ".filler")
    with open(filler, "wb") as f:
        block = b"\0" * (1 << 20)
        with contextlib.suppress(OSError):
            while True:
                f.write(block)
                f.flush()
    return filler


def measure(rig: OutageRig, cid: str, n: int) -> dict[str, Any]:
    cells = (rig.api.get(f"/api/campaigns/{cid}/cells/?count={n}") or {}).get("results", [])
    db = ResultDB.find(rig.data)
    stored: Counter[tuple[int, str]] = Counter()
    per_cell: Counter[int] = Counter()
    if db is not None:
        try:
            for rec in db.records(campaign=cid, types=["benchmarking-v3"]):
                cell = (rec.get("module") or {}).get("args", {}).get("cell")
                if isinstance(cell, int):
                    stored[(cell, rec["module"]["uuid"])] += 1
                    per_cell[cell] += 1
        finally:
            db.close()
    keys: Counter[str] = Counter()
    for p in glob.glob(os.path.join(rig.data, "**", "*.benchmarking-v3.json"), recursive=True):
        with open(p, "rb") as f:
            rec = orjson.loads(f.read())
        if (rec.get("module") or {}).get("args", {}).get("campaign") == cid:
            keys[rec["key"]] += 1
    done = [c for c in cells if c["state"] == "done"]
    return {
        "cells_done_without_data": sum(1 for c in done if not stored[(c["cell"], c["module"])]),
        "results_stored_twice": sum(v - 1 for v in per_cell.values() if v > 1) + sum(v - 1 for v in keys.values() if v > 1),
        "cells_lost": n - len(done),
        "states": dict(Counter(c["state"] for c in cells)),
    }


def scenario(rig: OutageRig, spin: str, n: int, cid: str, outage: Callable[[], None], settle: float) -> dict[str, Any]:
    t0 = time.perf_counter()
    if bench_cli.main(campaign_args(rig, spin, n, cid)) != 0:
        raise RuntimeError("campaign submit failed")
    wait_ran(rig, cid, 0.5, n)
    log(f"bench/outages: {cid}: outage at {status(rig, cid)}")
    peak = {"data_pending": 0}
    watching = threading.Event()

    def watch() -> None:  # the most cells seen waiting for their data at once (the orchestrator may be away)
        while not watching.wait(0.5):
            peak["data_pending"] = max(peak["data_pending"], status(rig, cid).get("data_pending", 0))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    outage()
    out: dict[str, Any] = {}
    out["wait_rc"] = bench_cli.main(["-c", rig.cfg_path, "--status", cid, "--wait", "--timeout", "1800",
                                     "--data-wait", str(settle)])
    s = status(rig, cid)
    out["resumed"] = False
    if s and (sum(s["failed"].values()) or s["queued"] or s["running"]):
        out["resumed"] = True
        out["resume_rc"] = bench_cli.main(["-c", rig.cfg_path, "--resume", cid, "--wait", "--timeout", "1800",
                                           "--data-wait", str(settle)])
    watching.set()
    watcher.join()
    out["data_pending_peak"] = peak["data_pending"]
    out.update(measure(rig, cid, n))
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    log(f"bench/outages: {cid}: {out}")
    return out


def run(tmp: str, spin: str, n: int, quick: bool, spool_only: bool = False) -> dict[str, Any]:
    rig = OutageRig(tmp)
    res: dict[str, Any] = {"outage_cells": n, "collector_tmpfs": rig.tmpfs}
    try:
        # spool cost: the same clean campaign with the spool on and off, interleaved, after a warm-up
        clean_campaign(rig, spin, 15, "c-warmup")
        on, off = [], []
        for i in range(1 if quick else 4 if spool_only else 2):
            rig.spool = True
            rig.restart_node(kill=False)
            on.append(clean_campaign(rig, spin, n, f"c-spool-on-{i}"))
            rig.spool = False
            rig.restart_node(kill=False)
            off.append(clean_campaign(rig, spin, n, f"c-spool-off-{i}"))
        rig.spool = True
        rig.restart_node(kill=False)
        res["overhead_ms_per_cell_spool"] = round(statistics.median(on), 3)
        res["overhead_ms_per_cell_spool_range"] = [min(on), max(on)]
        res["overhead_ms_per_cell_no_spool"] = round(statistics.median(off), 3)
        res["overhead_ms_per_cell_no_spool_range"] = [min(off), max(off)]
        pause = 5.0 if quick else 20.0
        settle = 60.0

        def broker() -> None:
            rig.broker.stop()
            time.sleep(pause)  # the outage itself: nothing to wait for
            rig.broker.start()

        def collector_kill() -> None:
            rig.stop_collector(signal.SIGKILL)
            rig.start_collector()

        def disk_full() -> None:
            if not rig.tmpfs:
                raise RuntimeError("disk_full needs root (a tmpfs for the collector's data)")
            filler = fill(rig.data)
            time.sleep(pause / 2 if quick else 10.0)  # the outage itself
            os.unlink(filler)

        def node_kill() -> None:
            rig.node.kill()  # SIGKILL; its will tells the orchestrator; then the same node again, as systemd would
            end = time.monotonic() + 60
            while (rig.api.runtime("bn") or {}).get("status") == "A" and time.monotonic() < end:
                time.sleep(0.1)
            rig.node = rig._node()
            while (rig.api.runtime("bn") or {}).get("status") != "A" and time.monotonic() < end:
                time.sleep(0.1)

        scen: dict[str, Any] = {}
        res["outages"] = scen
        if spool_only:
            return res
        for name, fn in (("broker", broker), ("collector_kill", collector_kill), ("disk_full", disk_full), ("node_kill", node_kill)):
            if name == "disk_full" and not rig.tmpfs:
                scen[name] = {"skipped": "not root: no tmpfs"}
                continue
            scen[name] = scenario(rig, spin, n, f"c-{name}", fn, settle)
    finally:
        rig.close()
    return res


def report(res: dict[str, Any]) -> None:
    print(f"outage scenarios, each in the middle of a campaign of {res['outage_cells']} cells ({', '.join(ENGINES)}), "
          f"node spool on, collector data on a {TMPFS_MB} MiB tmpfs: {res['collector_tmpfs']}:")
    for name, r in res["outages"].items():
        if "skipped" in r:
            print(f"  {name:15s} skipped: {r['skipped']}")
            continue
        print(f"  {name:15s} cells_done_without_data {r['cells_done_without_data']}, results_stored_twice "
              f"{r['results_stored_twice']}, cells_lost {r['cells_lost']} (states {r['states']}; data_pending at most "
              f"{r['data_pending_peak']}; --wait rc {r['wait_rc']}, "
              f"resumed {r['resumed']}, {r['wall_s']} s)")
    print(f"  spool cost: overhead_ms_per_cell {res['overhead_ms_per_cell_spool']} with the spool (range "
          f"{res['overhead_ms_per_cell_spool_range']}; target <= 2), same-run baseline without it "
          f"{res['overhead_ms_per_cell_no_spool']} (range {res['overhead_ms_per_cell_no_spool_range']})")
