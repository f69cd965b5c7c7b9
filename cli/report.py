"""Summarise collected benchmark data: per cell (module and arguments x engine x runtime x kind) the
median, IQR, CV, a 99 % confidence interval of the median and the sample count; cells whose CV is
over --cv-max are flagged. `--compare A,B` compares two campaigns (`--engines E1,E2`: two engines)
cell by cell with a verdict: faster, slower, or not distinguishable (Mann-Whitney U, two-sided,
p < 0.01). Plots (PNG): run-time distributions per engine, a workload x engine heatmap (median
relative to --baseline, log scale), the interference slowdown, the campaign coverage (cells done
and failed by reason); `--html FILE` writes one page with the tables and the pictures.

Reads the collector's files (`DIR/<date>/<runtime>/<module>.<uuid>.<type>.json`, default `data`).
Failed runs are left out and counted (by outcome for our benchmarking-v3 data); interference runs
outside the window in which every co-runner ran are left out and counted. Runtime names missing
from a file are asked from the orchestrator when it answers (else the uuid stands in).

Usage:
    manage.py report [options] [DIR]...
    manage.py report -h | --help

Options:
    -o, --out DIR        Where the plots go [default: report].
    --no-plots           Only the table.
    --json               Print the summary as one JSON object instead of the table.
    --campaign ID        Only the runs of this campaign; coverage from the orchestrator's record of it.
    --compare A,B        Compare campaign B against campaign A (ids), cell by cell.
    --engines E1,E2      Compare engine E2 against engine E1, cell by cell.
    --baseline ENGINE    The heatmap's reference engine (default: the first engine by name).
    --cv-max X           Flag cells whose coefficient of variation is over X [default: 0.05].
    --html FILE          One HTML page with the tables and the pictures.
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

from benchmarking import layouts
from cli._api import Api, CliError, config, guard, parse, setup

SUMMARY = "Summarise collected benchmark data: table and plots."

# the layouts (benchmarking/layouts.py). A module that sent our layout also sent the seed's copy of
# the same runs: read ours only (layouts.NEWER)


@dataclass
class Series:
    module: str  # file base name(s), then ':'-joined arguments (Pitot's workload naming)
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


def median_ci(xs: list[float], level: float = 0.99) -> tuple[float, float]:
    """Distribution-free confidence interval of the median of sorted `xs`: order statistics
    x(j) .. x(k) with P(j <= B < k) >= level, B ~ Binomial(n, 1/2). (nan, nan) when n is too small."""
    n = len(xs)
    if n < 2:
        return (math.nan, math.nan)
    pmf = [math.comb(n, i) / 2.0 ** n for i in range(n + 1)]
    for j in range(n // 2, -1, -1):  # widen symmetric intervals until the coverage is reached
        k = n - j
        if sum(pmf[j:k]) >= level:
            return (xs[j], xs[k - 1]) if j < k else (math.nan, math.nan)
    return (math.nan, math.nan)


def stats(walls_us: list[int]) -> dict[str, Any]:
    xs = sorted(w / 1000 for w in walls_us)
    if not xs:
        return {"n": 0, "median_ms": math.nan, "iqr_ms": math.nan, "cv": math.nan, "ci99_ms": [math.nan, math.nan]}
    mean = statistics.fmean(xs)
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    lo, hi = median_ci(xs)
    return {"n": len(xs), "median_ms": quantile(xs, 0.5), "iqr_ms": quantile(xs, 0.75) - quantile(xs, 0.25),
            "cv": sd / mean if mean else math.nan, "ci99_ms": [lo, hi]}


def mann_whitney_p(a: list[float], b: list[float]) -> float:
    """Two-sided p value of the Mann-Whitney U test (normal approximation with tie correction)."""
    n1, n2 = len(a), len(b)
    if n1 < 2 or n2 < 2:
        return math.nan
    allv = sorted([(v, 0) for v in a] + [(v, 1) for v in b])
    ranks = [0.0] * len(allv)
    ties = 0.0
    i = 0
    while i < len(allv):
        j = i
        while j + 1 < len(allv) and allv[j + 1][0] == allv[i][0]:
            j += 1
        for k in range(i, j + 1):
            ranks[k] = (i + j) / 2 + 1
        t = j - i + 1
        ties += t ** 3 - t
        i = j + 1
    r1 = sum(r for r, (_v, g) in zip(ranks, allv) if g == 0)
    u = r1 - n1 * (n1 + 1) / 2
    n = n1 + n2
    var = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)))
    if var <= 0:
        return 1.0
    z = (abs(u - n1 * n2 / 2) - 0.5) / math.sqrt(var)
    return math.erfc(max(z, 0.0) / math.sqrt(2))


def verdict(a_us: list[int], b_us: list[int], alpha: float = 0.01) -> tuple[str, float, float]:
    """(verdict of B against A, p value, ratio of medians B/A)."""
    a, b = sorted(x / 1000 for x in a_us), sorted(x / 1000 for x in b_us)
    p = mann_whitney_p(a, b)
    if not a or not b:
        return "not distinguishable", p, math.nan
    ratio = quantile(b, 0.5) / quantile(a, 0.5) if quantile(a, 0.5) else math.nan
    if math.isnan(p) or p >= alpha:
        return "not distinguishable", p, ratio
    return ("faster" if ratio < 1 else "slower"), p, ratio


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


def _argv_tail(rec: dict[str, Any]) -> list[str]:
    argv = ((rec.get("module") or {}).get("args") or {}).get("argv") or []
    return [str(a) for a in argv] if isinstance(argv, list) and all(isinstance(a, str) for a in argv) else []


def _module_name(rec: dict[str, Any], file: str | None = None) -> str:
    """`file` (default: the module's, each part of an interference tuple) by base name, then the arguments."""
    mod = rec.get("module") or {}
    f = file if file is not None else mod.get("file")
    if f:
        return ":".join([os.path.basename(x) for x in str(f).split(":")] + _argv_tail(rec))
    return str(mod.get("name") or mod.get("uuid") or "?")


def _engines_of(rec: dict[str, Any]) -> list[str]:
    e = ((rec.get("module") or {}).get("args") or {}).get("engine")
    if isinstance(e, list) and e:
        return [str(x) for x in e]
    return [str(e)] if e else ["wasmtime"]


def load(dirs: list[str], names: Names, campaign: str | None = None,
         cells: dict[str, dict[int, str]] | None = None) -> tuple[dict[tuple[str, str, str, str], Series], list[dict[str, Any]], int]:
    """Series keyed by (module, engine, runtime, kind); opcode records; count of unreadable files.
    `campaign`: only that campaign's records; `cells` (filled when given): campaign -> cell -> state
    from the data (`done`, or the first failed run's outcome)."""
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
    if campaign is not None:
        records = [r for r in records if ((r.get("module") or {}).get("args") or {}).get("campaign") == campaign]
    types_of: dict[str, set[str]] = defaultdict(set)
    for rec in records:
        types_of[str((rec.get("module") or {}).get("uuid"))].add(str(rec.get("type")))
    for rec in records:
        ptype, data = rec.get("type"), rec["data"]
        if layouts.NEWER.get(str(ptype)) in types_of[str((rec.get("module") or {}).get("uuid"))]:
            continue
        rt = names.runtime(rec)
        if ptype == layouts.BENCHMARKING_V3:
            runs = data.get("runs") or {}
            margs = (rec.get("module") or {}).get("args") or {}
            if cells is not None and "campaign" in margs and "cell" in margs:
                bad_runs = [o for o in runs.get("outcome", []) if o != "ok"]
                seen = cells.setdefault(str(margs["campaign"]), {})
                if seen.get(int(margs["cell"])) != "done":  # a resumed cell that succeeded later is done
                    seen[int(margs["cell"])] = bad_runs[0] if bad_runs else "done"
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
        elif ptype == layouts.INTERFERENCE_V2:
            n = len(data.get("loops") or [])
            for lp in data.get("loops") or []:
                s = get(_module_name(rec, str(lp.get("file"))), str(lp.get("engine")), rt, f"interference-{n}")
                r = lp.get("runs") or {}
                for w, o, inside in zip(r.get("wall_ns", []), r.get("outcome", []), r.get("inside", [])):
                    if o != "ok":
                        s.failed += 1
                        s.failures[o] = s.failures.get(o, 0) + 1
                    elif inside:
                        s.walls_us.append(int(w) // 1000)
                    else:
                        s.outside += 1
        elif ptype in layouts.TIMED_SEED:  # 0 = a failed run
            walls = list(data.get("wall_us") or [])
            engs = _engines_of(rec)
            per = max(1, math.ceil(len(walls) / len(engs)))
            for i, w in enumerate(walls):
                s = get(_module_name(rec), engs[min(i // per, len(engs) - 1)], rt, "alone")
                if w:
                    s.walls_us.append(int(w))
                else:
                    s.failed += 1
        elif ptype == layouts.INTERFERENCE:
            engs = _engines_of(rec)
            n = len(data)
            for key, walls in data.items():
                idx, _, file = key.partition(":")
                eng = engs[int(idx) % len(engs)] if idx.isdigit() else engs[0]
                s = get(_module_name(rec, file), eng, rt, f"interference-{n}")
                s.walls_us.extend(int(w) for w in walls if w)
                s.failed += sum(1 for w in walls if not w)
        elif ptype == layouts.OPCODES:
            opcodes.append({"module": _module_name(rec), "runtime": rt, "total": data.get("total"),
                            "top": sorted(((c, op) for op, c in enumerate(data.get("counts") or []) if c), reverse=True)[:5]})
    return series, opcodes, bad


def summary(series: dict[tuple[str, str, str, str], Series], cv_max: float = 0.05) -> list[dict[str, Any]]:
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
                               "failed": s.failed, **st, "cv_over": bool(st["cv"] > cv_max) if st["n"] > 1 else False}
        if s.failures:
            row["failures"] = dict(s.failures)
        if s.outside:
            row["outside_window"] = s.outside
        if s.phases:
            row["phases_median_ms"] = {k: quantile(sorted(v), 0.5) / 1e6 for k, v in s.phases.items()}
        if s.kind != "alone":
            base = stats(alone.get((s.module, s.engine), []))["median_ms"]
            row["slowdown"] = st["median_ms"] / base if base and not math.isnan(base) else None
        rows.append(row)
    return rows


def _f(v: Any, spec: str = ".3f") -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def print_table(rows: list[dict[str, Any]], opcodes: list[dict[str, Any]], bad: int, cv_max: float = 0.05) -> None:
    head = (f"{'module':<24} {'engine':<13} {'runtime':<18} {'kind':<15} {'n':>5} {'fail':>4} {'median ms':>10} "
            f"{'99% CI ms':>19} {'IQR ms':>9} {'CV %':>6} {'slowdown':>8}")
    print(head)
    print("-" * len(head))
    for r in rows:
        ci = r["ci99_ms"]
        ci_s = f"{_f(ci[0])}-{_f(ci[1])}" if not math.isnan(ci[0]) else ""
        flag = " !" if r["cv_over"] else ""
        print(f"{r['module'][:24]:<24} {r['engine'][:13]:<13} {r['runtime'][:18]:<18} {r['kind']:<15} {r['n']:>5} {r['failed']:>4} "
              f"{_f(r['median_ms']):>10} {ci_s:>19} {_f(r['iqr_ms']):>9} {_f(100 * r['cv'], '.2f'):>6} "
              f"{_f(r.get('slowdown')):>8}{flag}")
    if any(r["cv_over"] for r in rows):
        print(f"! CV over {100 * cv_max:g} % (--cv-max): noisy cell, check the node's load, governor and SMT siblings")
    for o in opcodes:
        top = ", ".join(f"0x{op:02X}:{c}" for c, op in o["top"])
        print(f"opcodes {o['module']} on {o['runtime']}: {o['total']} instructions; top {top}")
    if bad:
        print(f"({bad} file(s) without decodable data were skipped)")


def compare(a: dict[tuple[str, str, str, str], Series], b: dict[tuple[str, str, str, str], Series],
            engines: tuple[str, str] | None = None) -> list[dict[str, Any]]:
    """Cell by cell verdicts of B against A (two campaigns), or of engine E2 against E1 (in `a`)."""
    pairs: list[tuple[tuple[str, ...], Series, Series]] = []
    if engines is not None:
        e1, e2 = engines
        by = {(s.module, s.runtime, s.kind): s for s in a.values() if s.engine == e2}
        pairs = [((s.module, s.runtime, s.kind), s, by[(s.module, s.runtime, s.kind)])
                 for s in a.values() if s.engine == e1 and (s.module, s.runtime, s.kind) in by]
    else:
        pairs = [(k, a[k], b[k]) for k in sorted(a) if k in b]
    out = []
    for key, sa, sb in sorted(pairs, key=lambda p: p[0]):
        v, pv, ratio = verdict(sa.walls_us, sb.walls_us)
        out.append({"module": sa.module, "runtime": sa.runtime, "kind": sa.kind,
                    "engine": sa.engine if engines is None else f"{engines[1]} vs {engines[0]}",
                    "n_a": len(sa.walls_us), "n_b": len(sb.walls_us), "ratio": ratio, "p": pv, "verdict": v})
    return out


def print_compare(rows: list[dict[str, Any]], what: str) -> None:
    print(f"\n{what}")
    head = f"{'module':<24} {'engine':<22} {'runtime':<18} {'n A':>5} {'n B':>5} {'B/A':>7} {'p':>8}  verdict"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['module'][:24]:<24} {r['engine'][:22]:<22} {r['runtime'][:18]:<18} {r['n_a']:>5} {r['n_b']:>5} "
              f"{_f(r['ratio']):>7} {_f(r['p'], '.2g'):>8}  {r['verdict']}")


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


def heatmap(series: dict[tuple[str, str, str, str], Series], baseline: str | None,
            out: str | None) -> tuple[str | None, list[dict[str, Any]]]:
    """Workload x engine: median run time relative to `baseline` (log colour scale). (path or None
    when `out` is None, table)."""
    walls: dict[tuple[str, str], list[int]] = defaultdict(list)
    for s in series.values():
        if s.kind == "alone" and s.walls_us:
            walls[(s.module, s.engine)].extend(s.walls_us)
    if not walls:
        return None, []
    engines_ = sorted({e for _m, e in walls})
    base = baseline or engines_[0]
    if base not in engines_:
        raise CliError(f"--baseline {base!r} has no data; engines in the data: {', '.join(engines_)}")
    modules = sorted({m for m, _e in walls})
    med = {k: quantile(sorted(v), 0.5) for k, v in walls.items()}
    table = []
    grid = []
    for m in modules:
        row = []
        b = med.get((m, base))
        for e in engines_:
            v = med.get((m, e))
            r = v / b if v is not None and b else math.nan
            row.append(r)
            if not math.isnan(r):
                table.append({"module": m, "engine": e, "relative": r})
        grid.append(row)
    if out is None:
        return None, table
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    finite = [x for r in grid for x in r if not math.isnan(x) and x > 0]
    lo, hi = (min(finite), max(finite)) if finite else (0.5, 2.0)
    span = max(hi / 1.0, 1.0 / lo, 1.01)
    fig, ax = plt.subplots(figsize=(1.1 * len(engines_) + 3, 0.4 * len(modules) + 2))
    im = ax.imshow(grid, cmap="RdBu_r", norm=LogNorm(vmin=1 / span, vmax=span), aspect="auto")
    ax.set_xticks(range(len(engines_)))
    ax.set_xticklabels(engines_, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(modules)))
    ax.set_yticklabels(modules, fontsize=8)
    for i, cells in enumerate(grid):
        for j, v in enumerate(cells):
            if not math.isnan(v):
                ax.text(j, i, f"{v:.2g}", ha="center", va="center", fontsize=7)
    fig.colorbar(im, ax=ax, label=f"median time / median on {base} (log scale)")
    ax.set_title(f"workload x engine, relative to {base}")
    fig.tight_layout()
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "heatmap.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path, table


COVERAGE_STATES = ("done", "error", "trap", "limit", "killed", "lost", "queued", "running")


def coverage(counts: dict[str, int], title: str, out: str) -> str:
    """Bar chart of a campaign's cells by state."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    states = [st for st in COVERAGE_STATES if counts.get(st)] or ["done"]
    colours = {"done": "tab:green", "queued": "tab:grey", "running": "tab:blue"}
    fig, ax = plt.subplots(figsize=(1.0 * len(states) + 3, 3.5))
    bars = ax.bar(states, [counts.get(st, 0) for st in states], color=[colours.get(st, "tab:red") for st in states])
    ax.bar_label(bars)
    ax.set_ylabel("cells")
    ax.set_title(title)
    fig.tight_layout()
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, f"coverage_{_safe(title.split()[-1])}.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def campaign_counts(api: Api | None, cid: str, from_data: dict[int, str]) -> tuple[dict[str, int], str]:
    """Cells by state: the orchestrator's record of campaign `cid` when it answers, else the data's."""
    if api is not None:
        try:
            s = api.get(f"/api/campaigns/{cid}/")
        except CliError:
            s = None
        if s:
            return {"done": s["done"], **s["failed"], "queued": s["queued"], "running": s["running"]}, "orchestrator"
    counts: dict[str, int] = defaultdict(int)
    for st in from_data.values():
        counts[st if st in COVERAGE_STATES else "error"] += 1
    return dict(counts), "collected data"


def write_html(path: str, title: str, text_blocks: list[tuple[str, str]], images: list[str]) -> None:
    """One self-contained page: the tables as text, the pictures embedded."""
    import base64
    import html

    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;margin:2em} pre{font-size:12px;background:#f6f6f6;padding:1em;"
             "overflow-x:auto} img{max-width:100%;border:1px solid #ddd;margin:0.5em 0}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    for head, text in text_blocks:
        parts.append(f"<h2>{html.escape(head)}</h2><pre>{html.escape(text)}</pre>")
    if images:
        parts.append("<h2>Pictures</h2>")
    for img in images:
        with open(img, "rb") as f:
            data = base64.b64encode(f.read()).decode()
        parts.append(f"<h3>{html.escape(os.path.basename(img))}</h3><img alt='{html.escape(os.path.basename(img))}' "
                     f"src='data:image/png;base64,{data}'>")
    parts.append("</body></html>")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(parts))


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


def data_dirs(opts: dict[str, Any]) -> list[str]:
    """The collector directories named on the command line (default `data`), each checked."""
    dirs: list[str] = opts["DIR"] or ["data"]
    for d in dirs:
        if not os.path.isdir(d):
            raise CliError(f"{d!r} is not a directory (the collector writes into `data/` by default: `make profile`)")
    return dirs


@guard("report")
def main(argv: list[str]) -> int:
    opts = parse(__doc__ or "", "report", argv)
    setup(opts)
    dirs = data_dirs(opts)
    cfg = config(opts)
    try:
        cv_max = float(opts["--cv-max"])
    except ValueError:
        raise CliError(f"--cv-max must be a number (e.g. 0.05 for 5 %), got {opts['--cv-max']!r}") from None
    api = Api(opts["--url"] or cfg.orchestrator_url, timeout=2.0)
    names = Names(api)
    cells: dict[str, dict[int, str]] = {}
    cid = opts["--campaign"]
    series, opcodes, bad = load(dirs, names, cid, cells)
    if not series and not opcodes:
        raise CliError(f"no benchmark data under {', '.join(dirs)}" + (f" for campaign {cid}" if cid else ""))
    rows = summary(series, cv_max)
    comp: list[dict[str, Any]] | None = None
    what = ""
    if opts["--compare"]:
        a_id, _, b_id = opts["--compare"].partition(",")
        if not a_id or not b_id:
            raise CliError(f"--compare needs two campaign ids A,B, got {opts['--compare']!r}")
        sa, _o, _b = load(dirs, names, a_id)
        sb, _o, _b = load(dirs, names, b_id)
        for c, got in ((a_id, sa), (b_id, sb)):
            if not got:
                raise CliError(f"--compare: no data of campaign {c!r} under {', '.join(dirs)}")
        comp, what = compare(sa, sb), f"campaign {b_id} against campaign {a_id}"
    elif opts["--engines"]:
        e1, _, e2 = opts["--engines"].partition(",")
        if not e1 or not e2:
            raise CliError(f"--engines needs two engines E1,E2, got {opts['--engines']!r}")
        comp, what = compare(series, series, (e1, e2)), f"engine {e2} against engine {e1}"
        if not comp:
            raise CliError(f"--engines: no cell has data on both {e1!r} and {e2!r}")
    images: list[str] = []
    heat: list[dict[str, Any]] = []
    counts: dict[str, dict[str, int]] = {}
    drawing = not opts["--no-plots"] or bool(opts["--html"])
    if drawing:
        images = plot(series, rows, opts["--out"])
    hp, heat = heatmap(series, opts["--baseline"], opts["--out"] if drawing else None)
    if hp:
        images.append(hp)
    for c in sorted([cid] if cid else cells):
        counts[c], src = campaign_counts(api, c, cells.get(c, {}))
        if drawing:
            images.append(coverage(counts[c], f"cells by state ({src}), campaign {c}", opts["--out"]))
    if opts["--json"]:
        def clean(r: dict[str, Any]) -> dict[str, Any]:
            return {k: (None if isinstance(v, float) and math.isnan(v) else
                        [None if isinstance(x, float) and math.isnan(x) else x for x in v] if isinstance(v, list) else v)
                    for k, v in r.items()}
        print(json.dumps({"rows": [clean(r) for r in rows], "opcodes": opcodes, "skipped": bad,
                          "compare": [clean(r) for r in comp] if comp is not None else None,
                          "heatmap": heat, "coverage": counts}))
    else:
        print_table(rows, opcodes, bad, cv_max)
        if comp is not None:
            print_compare(comp, what)
        for c, n in counts.items():
            print(f"campaign {c}: " + ", ".join(f"{k} {v}" for k, v in n.items() if v))
    if opts["--html"]:
        import contextlib
        import io

        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            print_table(rows, opcodes, bad, cv_max)
        blocks = [("Cells", buf.getvalue())]
        if comp is not None:
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                print_compare(comp, what)
            blocks.append(("Comparison", buf.getvalue()))
        write_html(opts["--html"], "SilverLine benchmark report" + (f": campaign {cid}" if cid else ""), blocks, images)
        print(f"wrote {opts['--html']}", file=sys.stderr)
    if not opts["--no-plots"]:
        for p in images:
            print(f"wrote {p}", file=sys.stderr)
    return 0
