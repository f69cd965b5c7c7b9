#!/usr/bin/env python3
"""Benchmark campaigns through a real mosquitto, orchestrator process, collector and node.

1. A campaign of short kernels (the spin kernel at sizes 0-2, repeat 1) on 3 engines (wasmtime-j,
   wasmtime-a, native) through `manage.py benchmark --wait`: `overhead_ms_per_cell` = (campaign
   wall time - the runs' own wall time from the profiles) / cells, with the default window (cells
   in flight per runtime, `--window`). The wall time runs from the submit to the collector's
   receipt of the last cell's profile (the CLI's own end, which polls once a second, is printed
   too as `campaign_cli_wall_s`). Same-run baselines: the same campaign with `--window 1` (the
   serial dispatch: next cell created when the last exited), interleaved with the default one;
   and the same runs back to back in one process through the harness alone
   (`benchmarking/harness.py`, no orchestrator, MQTT or node).
2. `plan_100k_submit_s`: `manage.py benchmark` of a 100,000-cell plan (1 runtime x 100 files x 10
   engines x 100 argument sets) until the orchestrator shows the campaign. Same-run baseline:
   the same 100,000 modules as one `create_batch` (what `benchmark` sent before campaigns),
   until the orchestrator has them all queued. A registered stand-in runtime holds the queue.
3. The campaign of 1 again, with the node SIGKILLed (and restarted, same uuids) at ~1/3 and the
   orchestrator SIGKILLed (and restarted, same store) at ~2/3, then `--resume`: every cell's
   collected benchmarking-v3 profiles are counted: `cells_done_twice` (more than one complete
   profile) and `cells_lost` (no complete profile, or not done in the campaign).
4. `pitot_layout_ok`: `manage.py export --pitot` of campaign 1's data, checked as Pitot reads it.

Medians with spread: the clean campaign per window (2 times, 1 with --quick) and the plan
submission (3 times, 1 with --quick) are repeated.
5. `--outages` (bench/outages.py, issue #24) runs only the outage scenarios, each in the middle of a
   campaign (full: 510 cells, --quick: 60): broker stopped 20 s, collector SIGKILLed and restarted,
   the collector's disk full (a tmpfs, as root) then freed, node SIGKILLed; `cells_done_without_data`,
   `results_stored_twice`, `cells_lost` for each; and `overhead_ms_per_cell` with the node's result
   spool on beside the same-run baseline without it.
Usage: bench/campaign.py [--quick] [--json] [--cells N] [--outages [--spool-only]]
  --quick    150 cells per campaign (~60 s here); full: 2,100
  --json     one JSON object on the last line
  --outages  the outage scenarios only (see 5); with --spool-only the spool's cost alone (4 pairs)
"""
from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from typing import Any

import orjson

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench._common import finish, loadavg, machine  # noqa: E402
from cli import benchmark as bench_cli  # noqa: E402
from cli import export  # noqa: E402
from cli._api import Api, Session  # noqa: E402
from collector import Collector, ProfileStore  # noqa: E402
from common.config import load_config  # noqa: E402
from common.wire import envelope, new_uuid  # noqa: E402
from benchmarking.engines import catalog, launch as engines  # noqa: E402
from testbed.bench_modules import build_modules  # noqa: E402
from testbed.broker import Mosquitto  # noqa: E402
from testbed.node import NodeProcess  # noqa: E402
from testbed.orchestrator import OrchestratorProc  # noqa: E402

ENGINES = ["wasmtime-j", "wasmtime-a", "native"]
PLATFORM = {"cpu": {"cpu": "bench-vm", "cpufreq": 2_000_000_000, "cores": os.cpu_count()},
            "mem": {"l1d_size": 32768, "l1i_size": 32768, "l2_size": 1 << 20, "l2_line": 64, "l2_assoc": 8, "l3_size": 0}}


def tmp_root(tmp: str) -> str:
    return os.path.join(tmp, "wasm")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Rig:
    """Broker, orchestrator process, collector, node (benchmarking runtime), config files."""

    def __init__(self, tmp: str) -> None:
        self.tmp = tmp
        self.broker = Mosquitto()
        self.broker.start()
        # the stand-in runtime of part 2 sends no keepalive (never expired for it); a SIGKILLed node is noticed
        # through its last will; after the orchestrator's SIGKILL, the node's keepalives (every 5 s) tell which
        # creates were lost with it (orchestrator/core.py `_reconcile`)
        self.orch = OrchestratorProc(self.broker.port, tmp, ka_interval=5.0)
        self.orch.start()
        self.cfg_path = os.path.join(tmp, "config.json")
        with open(self.cfg_path, "w") as f:
            json.dump({"mqtt": "127.0.0.1", "mqtt_port": self.broker.port, "http": "127.0.0.1",
                       "http_port": self.orch.http_port, "platform": PLATFORM,
                       "runtimes": {"benchmarking": {"enable_engines": ["native"]}}}, f)  # native is opt-in
        self.cfg = load_config(self.cfg_path)
        self.api = Api(self.orch.url, timeout=10)
        self.data = os.path.join(tmp, "data")
        self.collector = Collector(ProfileStore(self.data), "127.0.0.1", self.broker.port).start()
        self.state = os.path.join(tmp, "state")
        self.node = self._node()

    def _node(self) -> NodeProcess:
        n = NodeProcess(self.broker.port, name="bn", runtimes=["benchmarking"], state_dir=self.state, reg_timeout=5,
                        log_level="WRN", extra_args=["-c", self.cfg_path, "--module-root", tmp_root(self.tmp)])
        n.start(timeout=60)
        return n

    def restart_node(self) -> None:
        self.node.kill()
        self.node = self._node()

    def close(self) -> None:
        for step in (self.node.stop, self.collector.stop, self.orch.stop, self.broker.stop):
            with contextlib.suppress(Exception):
                step()


def argfile(tmp: str, spin: str, sizes: int) -> str:
    """norepeat argument lists: one cell per (size, index); spin's argv[1] = millions of iterations."""
    path = os.path.join(tmp, f"args{sizes}.json")
    with open(path, "w") as f:
        json.dump({os.path.basename(spin): [[str(i % 3), f"#{i}"] for i in range(sizes)]}, f)
    return path


def campaign_args(rig: Rig, spin: str, n: int, cid: str, window: int | None = None) -> list[str]:
    sizes = max(1, n // len(ENGINES))
    return ["-c", rig.cfg_path, "-f", spin, "-r", "bn", "--engine", *ENGINES, "--norepeat",
            "--argfile", argfile(rig.tmp, spin, sizes), "--campaign", cid, "--seed", "1", "--no-dir", "--profile", "ours",
            *(["--window", str(window)] if window else [])]


def run_campaign(rig: Rig, spin: str, n: int, cid: str, window: int | None = None) -> tuple[int, float, float]:
    """`manage.py benchmark ... --wait`: (rc, CLI wall s, wall clock at the submit)."""
    t_submit = time.time()
    t0 = time.perf_counter()
    rc = bench_cli.main(campaign_args(rig, spin, n, cid, window) + ["--wait", "--timeout", "3600"])
    return rc, time.perf_counter() - t0, t_submit


def clean_campaign(rig: Rig, spin: str, n: int, cid: str, window: int | None) -> dict[str, Any]:
    """One clean campaign: rc, cells with a profile, wall (submit -> last profile), runs' own time, overhead."""
    rc, cli_wall, t_submit = run_campaign(rig, spin, n, cid, window)
    got, own_ns, last = wait_profiles(rig.data, cid, n)
    wall = last - t_submit
    out = {"rc": rc, "cells_with_profile": len(got), "wall_s": round(wall, 3), "cli_wall_s": round(cli_wall, 2),
           "runs_own_s": round(own_ns / 1e9, 3), "overhead_ms_per_cell": round((wall - own_ns / 1e9) / n * 1e3, 3)}
    log(f"bench/campaign: clean campaign {cid} of {n} cells, window {window or 'default'}: {out}")
    return out


def profiles(data: str, cid: str) -> tuple[Counter[int], int, float]:
    """cell -> complete benchmarking-v3 profiles of campaign `cid`; total ns of their runs; the
    collector's receipt time of the last one (wall clock)."""
    got: Counter[int] = Counter()
    total_ns = 0
    last = 0.0
    for p in glob.glob(os.path.join(data, "**", "*.benchmarking-v3.json"), recursive=True):
        with open(p, "rb") as f:
            rec = orjson.loads(f.read())
        args = rec["module"].get("args") or {}
        if args.get("campaign") != cid:
            continue
        runs = rec["data"]["runs"]
        if set(runs["outcome"]) == {"ok"}:
            got[int(args["cell"])] += 1
            total_ns += sum(runs["wall_ns"])
            last = max(last, float(rec["received"]))
    return got, total_ns, last


def wait_profiles(data: str, cid: str, n: int, timeout: float = 60) -> tuple[Counter[int], int, float]:
    end = time.monotonic() + timeout
    while True:
        got, ns, last = profiles(data, cid)
        if len(got) >= n or time.monotonic() > end:
            return got, ns, last
        time.sleep(0.2)


def baseline_harness(spin: str, n: int) -> tuple[float, float]:
    """The same runs back to back through harness.run in this process: (wall s, runs' own s)."""
    sizes = max(1, n // len(ENGINES))
    t0 = time.perf_counter()
    own = 0
    for i in range(sizes):
        for e in ENGINES:
            prep = engines.prepare(e, engines.Invocation(spin, ["spin", str(i % 3), f"#{i}"]))
            r = engines.run_once(prep, limit=60)
            own += r.wall_ns
    return time.perf_counter() - t0, own / 1e9


def bench_cli_window() -> int:
    """The default `--window` of `manage.py benchmark` (its usage text)."""
    import re
    m = re.search(r"--window N.*?\[default: (\d+)\]", bench_cli.__doc__ or "", re.S)
    return int(m.group(1)) if m else 0


def fake_runtime(rig: Rig, name: str) -> str:
    """Register a stand-in runtime (max_nmodules 1, never exits a module) that holds a queue."""
    uuid = new_uuid()
    with Session(rig.cfg) as s:
        s.publish([(f"{rig.cfg.realm}/proc/reg/{uuid}", envelope("create", {
            "type": "runtime", "uuid": uuid, "name": name, "runtime_type": "benchmarking", "max_nmodules": 1,
            "apis": ["wasm", "wasi", "benchmarking"], "platform": PLATFORM, "metadata": {}}))])
    end = time.monotonic() + 30
    while rig.api.runtime(uuid) is None:
        if time.monotonic() > end:
            raise RuntimeError("the stand-in runtime did not register")
        time.sleep(0.05)
    return uuid


def plan_submit(rig: Rig, rt: str, cid: str) -> float:
    files = [f"wasm/suite/p{i}.wasm" for i in range(100)]
    engs = catalog.all_names()[:10]  # names the catalog knows: `benchmark` refuses a plan with an unknown engine
    argf = os.path.join(rig.tmp, "args100.json")
    with open(argf, "w") as f:
        json.dump({fn: [[str(j)] for j in range(100)] for fn in files}, f)
    t0 = time.perf_counter()
    rc = bench_cli.main(["-c", rig.cfg_path, "-f", *files, "-r", rt, "--engine", *engs, "--norepeat",
                         "--argfile", argf, "--campaign", cid])
    dt = time.perf_counter() - t0
    if rc != 0:
        raise RuntimeError(f"100k campaign submit failed ({rc})")
    s = rig.api.get(f"/api/campaigns/{cid}/")
    assert s is not None and s["cells"] == 100_000, s
    return dt


def batch_submit(rig: Rig, rt_uuid: str) -> float:
    """Baseline: 100,000 modules as one create_batch, until all are queued on the runtime."""
    mods = [{"type": "module", "uuid": new_uuid(), "name": f"p{i % 100}.e{i // 10000}", "file": f"wasm/suite/p{i % 100}.wasm",
             "parent": rt_uuid, "args": {"engine": f"e{i // 10000}", "argv": [str(i % 100)], "repeat": 1}} for i in range(100_000)]
    before = (rig.api.runtime(rt_uuid) or {}).get("nqueued", 0)
    t0 = time.perf_counter()
    with Session(rig.cfg, timeout=60) as s:
        s.publish([(f"{rig.cfg.realm}/proc/control", envelope("create_batch", {"modules": mods, "parent": rt_uuid}))])
    while (rig.api.runtime(rt_uuid) or {}).get("nqueued", 0) < before + 100_000 - 1:
        if time.perf_counter() - t0 > 120:
            raise RuntimeError(f"the baseline create_batch did not arrive: {rig.api.runtime(rt_uuid)}\n{rig.orch.log()[-3000:]}")
        time.sleep(0.05)
    return time.perf_counter() - t0


def kill_campaign(rig: Rig, spin: str, n: int, cid: str) -> dict[str, Any]:
    """Submit; SIGKILL the node at 1/3 (restart it, `--resume` what was lost); SIGKILL the
    orchestrator at 2/3 (restart it); follow to the end; `--resume` again if a cell is not done."""
    t0 = time.perf_counter()
    if bench_cli.main(campaign_args(rig, spin, n, cid)) != 0:
        raise RuntimeError("campaign submit failed")

    def wait_done(frac: float) -> None:
        end = time.monotonic() + 1800
        while time.monotonic() < end:
            try:
                s = rig.api.get(f"/api/campaigns/{cid}/")
            except Exception:
                s = None
            if s and s["done"] >= frac * n:
                return
            time.sleep(0.1)
        raise RuntimeError(f"campaign {cid} stalled before {frac:.0%}")

    out: dict[str, Any] = {}
    wait_done(1 / 3)
    log("bench/campaign: SIGKILL the node (restarted with the same uuids), then --resume")
    rig.restart_node()
    time.sleep(0.5)  # its re-registration resurrects the module it was running
    out["after_node_kill"] = rig.api.get(f"/api/campaigns/{cid}/")
    out["resume_1_rc"] = bench_cli.main(["-c", rig.cfg_path, "--resume", cid])
    wait_done(2 / 3)
    log("bench/campaign: SIGKILL the orchestrator (restarted on the same store)")
    assert rig.orch.proc is not None
    rig.orch.proc.kill()
    rig.orch.proc.wait()
    rig.orch.start()
    out["follow_rc"] = bench_cli.main(["-c", rig.cfg_path, "--status", cid, "--wait", "--timeout", "3600"])
    out["resume_2_rc"] = None
    if out["follow_rc"] != 0:
        out["resume_2_rc"] = bench_cli.main(["-c", rig.cfg_path, "--resume", cid, "--wait", "--timeout", "3600"])
    out["wall_s"] = round(time.perf_counter() - t0, 2)
    out["final"] = rig.api.get(f"/api/campaigns/{cid}/")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--cells", type=int, default=None)
    ap.add_argument("--outages", action="store_true")
    ap.add_argument("--spool-only", action="store_true")
    a = ap.parse_args()
    if a.outages:
        return outages_main(a)
    n = a.cells or (150 if a.quick else 2100)
    n -= n % len(ENGINES)
    reps = 1 if a.quick else 3
    reps_clean = 1 if a.quick else 2
    tmp = tempfile.mkdtemp(prefix="sl-bench-campaign-")
    res: dict[str, Any] = {"machine": machine(), "loadavg_start": loadavg(), "cells": n, "engines": ENGINES}
    try:
        os.makedirs(os.path.join(tmp, "wasm"))
        spin = build_modules(os.path.join(tmp, "wasm"))["spin"]  # .../wasm/spin.wasm: Pitot's names need wasm/
        base_wall, base_own = baseline_harness(spin, n)
        res["baseline_harness_overhead_ms_per_run"] = round((base_wall - base_own) / n * 1e3, 3)
        rig = Rig(tmp)
        try:
            # 1. clean campaigns: the default window and window 1 (serial), interleaved
            runs: dict[str, list[dict[str, Any]]] = {"default": [], "serial": []}
            for i in range(reps_clean):
                runs["default"].append(clean_campaign(rig, spin, n, f"c-clean-{i}" if i else "c-clean", None))
                runs["serial"].append(clean_campaign(rig, spin, n, f"c-serial-{i}", 1))
            last = runs["default"][0]
            res["clean_rc"] = max(r["rc"] for r in runs["default"] + runs["serial"])
            res["clean_cells_with_profile"] = min(r["cells_with_profile"] for r in runs["default"] + runs["serial"])
            res["campaign_wall_s"] = last["wall_s"]
            res["campaign_cli_wall_s"] = last["cli_wall_s"]
            res["runs_own_s"] = last["runs_own_s"]
            res["window"] = bench_cli_window()
            for key, rs in (("overhead_ms_per_cell", runs["default"]), ("overhead_ms_per_cell_window1", runs["serial"])):
                vals = [r["overhead_ms_per_cell"] for r in rs]
                res[key] = round(statistics.median(vals), 3)
                res[key + "_range"] = [min(vals), max(vals)]
            # 4. Pitot layout of that data
            out = os.path.join(tmp, "pitot", "session")
            rc_e = export.main(["--pitot", out, "--opcodes", os.path.join(tmp, "pitot", "opcodes"), rig.data, "--check"])
            res["pitot_layout_ok"] = rc_e == 0 and not export.pitot_problems(out)
            # 2. a 100k-cell plan, and the baseline
            rt = fake_runtime(rig, "standin.benchmarking")
            subs = [plan_submit(rig, "standin.benchmarking", f"c-100k-{i}") for i in range(reps)]
            bases = [batch_submit(rig, rt) for _ in range(reps)]
            res["plan_100k_submit_s"] = round(statistics.median(subs), 2)
            res["plan_100k_submit_s_range"] = [round(min(subs), 2), round(max(subs), 2)]
            res["baseline_create_batch_100k_s"] = round(statistics.median(bases), 2)
            res["baseline_create_batch_100k_s_range"] = [round(min(bases), 2), round(max(bases), 2)]
            # the stand-in's queue would stay in front of nothing (own runtime), but keep the store small
            rig.orch.stop()
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(rig.orch.db + suffix)
            rig.orch.start()
            rig.node.stop()
            rig.node = rig._node()
            # 3. the campaign again, SIGKILLs in the middle, --resume
            k = kill_campaign(rig, spin, n, "c-kill")
            s = k["final"] or {}
            got, _, _ = wait_profiles(rig.data, "c-kill", n)
            res["kill_run"] = {key: k[key] for key in ("resume_1_rc", "follow_rc", "resume_2_rc", "wall_s")}
            res["kill_run"]["lost_after_node_kill"] = ((k["after_node_kill"] or {}).get("failed") or {}).get("lost")
            res["cells_done_twice"] = sum(1 for v in got.values() if v > 1)
            res["cells_lost"] = n - len([c for c in got if got[c] >= 1]) if s.get("done") == n else n - min(s.get("done", 0), len(got))
        finally:
            rig.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res["loadavg_end"] = loadavg()
    print(f"machine: {res['machine']}; load average {res['loadavg_start']} at the start, {res['loadavg_end']} at the end")
    print(f"campaign of {n} cells (spin kernel, wasmtime-j/-a and native, 1 run each) through broker + orchestrator + node + collector:")
    print(f"  window {res['window']}: wall {res['campaign_wall_s']} s (the CLI's, polling: {res['campaign_cli_wall_s']} s), the runs' own"
          f" time {res['runs_own_s']} s -> overhead_ms_per_cell {res['overhead_ms_per_cell']} (median of {reps_clean}, range"
          f" {res['overhead_ms_per_cell_range']}; target <= 2; ratio {res['overhead_ms_per_cell'] / 2:.2f})")
    print(f"  baseline, window 1 (serial dispatch), same run: {res['overhead_ms_per_cell_window1']} ms per cell (range "
          f"{res['overhead_ms_per_cell_window1_range']})")
    print(f"  baseline, same runs back to back through the harness alone: {res['baseline_harness_overhead_ms_per_run']} ms per run")
    print(f"100k-cell plan submitted in {res['plan_100k_submit_s']} s (median of {reps}, range {res['plan_100k_submit_s_range']};"
          f" target <= 10, ratio {res['plan_100k_submit_s'] / 10:.2f}); baseline one create_batch of the same 100k modules: "
          f"{res['baseline_create_batch_100k_s']} s (range {res['baseline_create_batch_100k_s_range']})")
    print(f"node and orchestrator SIGKILLed mid-campaign, with --resume: {res['kill_run']}, "
          f"cells_done_twice {res['cells_done_twice']}, cells_lost {res['cells_lost']}")
    print(f"pitot_layout_ok {res['pitot_layout_ok']}")
    return finish(res, a.json)


def outages_main(a: argparse.Namespace) -> int:
    from bench import outages

    n = a.cells or (60 if a.quick else 510)
    n -= n % len(ENGINES)
    tmp = tempfile.mkdtemp(prefix="sl-bench-outages-")
    res: dict[str, Any] = {"machine": machine(), "loadavg_start": loadavg()}
    try:
        os.makedirs(os.path.join(tmp, "wasm"))
        spin = build_modules(os.path.join(tmp, "wasm"))["spin"]
        res.update(outages.run(tmp, spin, n, a.quick, a.spool_only))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res["loadavg_end"] = loadavg()
    print(f"machine: {res['machine']}; load average {res['loadavg_start']} at the start, {res['loadavg_end']} at the end")
    outages.report(res)
    if a.json:
        print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
