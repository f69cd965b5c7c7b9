"""Summarise collected benchmark data: per module x engine x runtime the median, IQR, CV and sample
count, and PNG plots (run-time distributions per engine, interference slowdown).

Reads the collector's files (`DIR/<date>/<runtime>/<module>.<uuid>.<type>.json`, default `data`).
Failed runs (0 samples) are left out and counted. Runtime names missing from a file are asked
from the orchestrator when it answers (else the uuid stands in).

Usage:
    manage.py report [options] [DIR]...
    manage.py report -h | --help

Options:
    -o, --out DIR        Where the plots go [default: report].
    --no-plots           Only the table.
    --json               Print the summary as one JSON object instead of the table.
    -c, --cfg PATH       Config file (default: $SL_CONFIG, else config.json if present, else built-in defaults).
    --url URL            Orchestrator REST URL (default: http://{http}:{http_port} of the config).
    -v, --verbose LEVEL  Log level [default: WRN].
"""
from __future__ import annotations

import glob
import json
import math
import os
import statistics
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from cli._api import Api, CliError, config, guard, parse, setup

SUMMARY = "Summarise collected benchmark data: table and plots."

TIMED = ("benchmarking", "benchmarking-v2", "seeded")  # the older layouts: 0 = failed run
# a module that sent our layout also sent the seed's copy of the same runs: read ours only
NEWER = {"benchmarking": "benchmarking-v3", "benchmarking-v2": "benchmarking-v3", "seeded": "benchmarking-v3",
         "interference": "interference-v2"}


@dataclass
class Series:
    module: str
    engine: str
    runtime: str
    kind: str  # "alone" or "interference-N"
    walls_us: list[int] = field(default_factory=list)
    failed: int = 0
    outside: int = 0  # interference runs outside the window in which every co-runner ran (not counted)
    failures: dict[str, int] = field(default_factory=dict)  # outcome -> runs (benchmarking-v3)
    phases: dict[str, list[int]] = field(default_factory=dict)  # compile_ns/instantiate_ns/execute_ns


def quantile(xs: list[float], q: float) -> float:
    """Linear-interpolation quantile of sorted `xs`."""
    if not xs:
        return math.nan
    pos = (len(xs) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def stats(walls_us: list[int]) -> dict[str, float]:
    xs = sorted(w / 1000 for w in walls_us)
    if not xs:
        return {"n": 0, "median_ms": math.nan, "iqr_ms": math.nan, "cv": math.nan}
    mean = statistics.fmean(xs)
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return {"n": len(xs), "median_ms": quantile(xs, 0.5), "iqr_ms": quantile(xs, 0.75) - quantile(xs, 0.25),
            "cv": sd / mean if mean else math.nan}


class Names:
    """Runtime names by uuid: from the files, else the orchestrator (asked once), else the uuid."""

    def __init__(self, api: Api | None) -> None:
        self.api = api
        self.cache: dict[str, str] = {}

    def runtime(self, rec: dict[str, Any]) -> str:
        rt = rec.get("runtime") or {}
        if rt.get("name"):
            return str(rt["name"])
        uuid = str(rt.get("uuid") or "?")
        if uuid not in self.cache:
            name = uuid
            if self.api is not None:
                try:
                    got = self.api.runtime(uuid)
                    name = (got or {}).get("name") or uuid
                except CliError:
                    self.api = None  # no orchestrator: do not ask again
            self.cache[uuid] = name
        return self.cache[uuid]


def _module_name(rec: dict[str, Any]) -> str:
    mod = rec.get("module") or {}
    f = mod.get("file")
    if f:
        return ":".join(os.path.basename(x) for x in str(f).split(":"))
    return str(mod.get("name") or mod.get("uuid") or "?")


def _engines_of(rec: dict[str, Any]) -> list[str]:
    e = ((rec.get("module") or {}).get("args") or {}).get("engine")
    if isinstance(e, list) and e:
        return [str(x) for x in e]
    return [str(e)] if e else ["wasmtime"]


def load(dirs: list[str], names: Names) -> tuple[dict[tuple[str, str, str, str], Series], list[dict[str, Any]], int]:
    """Series keyed by (module, engine, runtime, kind); opcode records; count of unreadable files."""
    series: dict[tuple[str, str, str, str], Series] = {}
    opcodes: list[dict[str, Any]] = []
    bad = 0

    def get(module: str, engine: str, runtime: str, kind: str) -> Series:
        key = (module, engine, runtime, kind)
        if key not in series:
            series[key] = Series(module, engine, runtime, kind)
        return series[key]

    files = sorted(p for d in dirs for p in glob.glob(os.path.join(d, "**", "*.json"), recursive=True))
    records = []
    for path in files:
        try:
            with open(path) as f:
                rec = json.load(f)
        except (OSError, ValueError):
            bad += 1
            continue
        if not isinstance(rec, dict) or "data" not in rec:
            bad += 1  # undecodable payload kept raw by the collector
            continue
        records.append(rec)
    types_of: dict[str, set[str]] = defaultdict(set)
    for rec in records:
        types_of[str((rec.get("module") or {}).get("uuid"))].add(str(rec.get("type")))
    for rec in records:
        ptype, data = rec.get("type"), rec["data"]
        if NEWER.get(str(ptype)) in types_of[str((rec.get("module") or {}).get("uuid"))]:
            continue
        rt = names.runtime(rec)
        if ptype == "benchmarking-v3":
            runs = data.get("runs") or {}
            for i, w in enumerate(runs.get("wall_ns") or []):
                s = get(_module_name(rec), str(runs["engine"][i]), rt, "alone")
                o = runs["outcome"][i]
                if o == "ok":
                    s.walls_us.append(int(w) // 1000)
                    for ph in ("compile_ns", "instantiate_ns", "execute_ns"):
                        v = (runs.get(ph) or [None] * (i + 1))[i]
                        if v is not None:
                            s.phases.setdefault(ph, []).append(int(v))
                else:
                    s.failed += 1
                    s.failures[o] = s.failures.get(o, 0) + 1
        elif ptype == "interference-v2":
            n = len(data.get("loops") or [])
            for lp in data.get("loops") or []:
                s = get(os.path.basename(str(lp.get("file"))), str(lp.get("engine")), rt, f"interference-{n}")
                r = lp.get("runs") or {}
                for w, o, inside in zip(r.get("wall_ns", []), r.get("outcome", []), r.get("inside", [])):
                    if o != "ok":
                        s.failed += 1
                        s.failures[o] = s.failures.get(o, 0) + 1
                    elif inside:
                        s.walls_us.append(int(w) // 1000)
                    else:
                        s.outside += 1
        elif ptype in TIMED:
            walls = list(data.get("wall_us") or [])
            engs = _engines_of(rec)
            per = max(1, math.ceil(len(walls) / len(engs)))
            for i, w in enumerate(walls):
                s = get(_module_name(rec), engs[min(i // per, len(engs) - 1)], rt, "alone")
                if w:
                    s.walls_us.append(int(w))
                else:
                    s.failed += 1
        elif ptype == "interference":
            engs = _engines_of(rec)
            n = len(data)
            for key, walls in data.items():
                idx, _, file = key.partition(":")
                eng = engs[int(idx) % len(engs)] if idx.isdigit() else engs[0]
                s = get(os.path.basename(file), eng, rt, f"interference-{n}")
                s.walls_us.extend(int(w) for w in walls if w)
                s.failed += sum(1 for w in walls if not w)
        elif ptype == "opcodes":
            opcodes.append({"module": _module_name(rec), "runtime": rt, "total": data.get("total"),
                            "top": sorted(((c, op) for op, c in enumerate(data.get("counts") or []) if c), reverse=True)[:5]})
    return series, opcodes, bad


def summary(series: dict[tuple[str, str, str, str], Series]) -> list[dict[str, Any]]:
    """One row per series, with the interference slowdown against the same module+engine alone."""
    alone: dict[tuple[str, str], list[int]] = defaultdict(list)
    for s in series.values():
        if s.kind == "alone":
            alone[(s.module, s.engine)].extend(s.walls_us)
    rows = []
    for key in sorted(series):
        s = series[key]
        st = stats(s.walls_us)
        row: dict[str, Any] = {"module": s.module, "engine": s.engine, "runtime": s.runtime, "kind": s.kind,
                               "failed": s.failed, **st}
        if s.kind != "alone":
            base = stats(alone.get((s.module, s.engine), []))["median_ms"]
            row["slowdown"] = st["median_ms"] / base if base and not math.isnan(base) else None
        rows.append(row)
    return rows


def print_table(rows: list[dict[str, Any]], opcodes: list[dict[str, Any]], bad: int) -> None:
    head = f"{'module':<24} {'engine':<13} {'runtime':<18} {'kind':<15} {'n':>5} {'fail':>4} {'median ms':>10} {'IQR ms':>9} {'CV %':>6} {'slowdown':>8}"
    print(head)
    print("-" * len(head))
    for r in rows:
        sd = r.get("slowdown")
        print(f"{r['module'][:24]:<24} {r['engine'][:13]:<13} {r['runtime'][:18]:<18} {r['kind']:<15} {r['n']:>5} {r['failed']:>4} "
              f"{r['median_ms']:>10.3f} {r['iqr_ms']:>9.3f} {100 * r['cv']:>6.2f} {'' if sd is None else f'{sd:.3f}':>8}")
    for o in opcodes:
        top = ", ".join(f"0x{op:02X}:{c}" for c, op in o["top"])
        print(f"opcodes {o['module']} on {o['runtime']}: {o['total']} instructions; top {top}")
    if bad:
        print(f"({bad} file(s) without decodable data were skipped)")


def plot(series: dict[tuple[str, str, str, str], Series], rows: list[dict[str, Any]], out: str) -> list[str]:
    """PNG files: one run-time distribution plot per module, one interference slowdown plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(out, exist_ok=True)
    written: list[str] = []
    by_module: dict[str, list[Series]] = defaultdict(list)
    for s in series.values():
        if s.walls_us:
            by_module[s.module].append(s)
    for module, group in sorted(by_module.items()):
        group.sort(key=lambda s: (s.kind, s.engine, s.runtime))
        fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(group) + 2), 4))
        ax.boxplot([[w / 1000 for w in s.walls_us] for s in group], showfliers=True)
        ax.set_xticks(range(1, len(group) + 1))
        ax.set_xticklabels([f"{s.engine}\n{s.runtime}\n{s.kind}" for s in group], fontsize=7)
        ax.set_ylabel("wall time (ms)")
        ax.set_title(f"{module}: run time per engine")
        fig.tight_layout()
        path = os.path.join(out, f"walltime_{_safe(module)}.png")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    slow = [r for r in rows if r.get("slowdown")]
    if slow:
        fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(slow) + 2), 4))
        ax.bar(range(len(slow)), [r["slowdown"] for r in slow])
        ax.axhline(1.0, color="grey", linewidth=0.8)
        ax.set_xticks(range(len(slow)))
        ax.set_xticklabels([f"{r['module']}\n{r['engine']}\n{r['kind']}" for r in slow], fontsize=7)
        ax.set_ylabel("median slowdown vs. alone")
        ax.set_title("interference slowdown")
        fig.tight_layout()
        path = os.path.join(out, "interference.png")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


@guard("report")
def main(argv: list[str]) -> int:
    opts = parse(__doc__ or "", "report", argv)
    setup(opts)
    dirs = opts["DIR"] or ["data"]
    for d in dirs:
        if not os.path.isdir(d):
            raise CliError(f"{d!r} is not a directory (the collector writes into `data/` by default: `make profile`)")
    cfg = config(opts)
    names = Names(Api(opts["--url"] or cfg.orchestrator_url, timeout=2.0))
    series, opcodes, bad = load(dirs, names)
    if not series and not opcodes:
        raise CliError(f"no benchmark data under {', '.join(dirs)}")
    rows = summary(series)
    if opts["--json"]:
        clean = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in rows]
        print(json.dumps({"rows": clean, "opcodes": opcodes, "skipped": bad}))
    else:
        print_table(rows, opcodes, bad)
    if not opts["--no-plots"]:
        for p in plot(series, rows, opts["--out"]):
            print(f"wrote {p}", file=sys.stderr)
    return 0
