"""The report's rows (one per series, one per compared pair) and their text tables."""
from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from benchmarking.analysis.dataset import Key, Series
from benchmarking.analysis.stats import quantile, stats, verdict

Row = dict[str, Any]


def summary(series: dict[Key, Series], cv_max: float = 0.05) -> list[Row]:
    """One row per series, with the interference slowdown against the same module+engine alone."""
    alone: dict[tuple[str, str], list[int]] = defaultdict(list)
    for s in series.values():
        if s.kind == "alone":
            alone[(s.module, s.engine)].extend(s.walls_us)
    rows = []
    for key in sorted(series):
        s = series[key]
        st = stats(s.walls_us)
        row: Row = {"module": s.module, "engine": s.engine, "runtime": s.runtime, "kind": s.kind,
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


def compare(a: dict[Key, Series], b: dict[Key, Series], engines: tuple[str, str] | None = None) -> list[Row]:
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
    for _key, sa, sb in sorted(pairs, key=lambda p: p[0]):
        v, pv, ratio = verdict(sa.walls_us, sb.walls_us)
        out.append({"module": sa.module, "runtime": sa.runtime, "kind": sa.kind,
                    "engine": sa.engine if engines is None else f"{engines[1]} vs {engines[0]}",
                    "n_a": len(sa.walls_us), "n_b": len(sb.walls_us), "ratio": ratio, "p": pv, "verdict": v})
    return out


def _f(v: Any, spec: str = ".3f") -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def table_text(rows: list[Row], opcodes: list[dict[str, Any]], bad: int, cv_max: float = 0.05) -> str:
    lines = []
    head = (f"{'module':<24} {'engine':<13} {'runtime':<18} {'kind':<15} {'n':>5} {'fail':>4} {'median ms':>10} "
            f"{'99% CI ms':>19} {'IQR ms':>9} {'CV %':>6} {'slowdown':>8}")
    lines += [head, "-" * len(head)]
    for r in rows:
        ci = r["ci99_ms"]
        ci_s = f"{_f(ci[0])}-{_f(ci[1])}" if not math.isnan(ci[0]) else ""
        flag = " !" if r["cv_over"] else ""
        lines.append(f"{r['module'][:24]:<24} {r['engine'][:13]:<13} {r['runtime'][:18]:<18} {r['kind']:<15} {r['n']:>5} "
                     f"{r['failed']:>4} {_f(r['median_ms']):>10} {ci_s:>19} {_f(r['iqr_ms']):>9} "
                     f"{_f(100 * r['cv'], '.2f'):>6} {_f(r.get('slowdown')):>8}{flag}")
    if any(r["cv_over"] for r in rows):
        lines.append(f"! CV over {100 * cv_max:g} % (--cv-max): noisy cell, check the node's load, governor and SMT siblings")
    for o in opcodes:
        top = ", ".join(f"0x{op:02X}:{c}" for c, op in o["top"])
        lines.append(f"opcodes {o['module']} on {o['runtime']}: {o['total']} instructions; top {top}")
    if bad:
        lines.append(f"({bad} file(s) without decodable data were skipped)")
    return "\n".join(lines) + "\n"


def compare_text(rows: list[Row], what: str) -> str:
    lines = [f"\n{what}"]
    head = f"{'module':<24} {'engine':<22} {'runtime':<18} {'n A':>5} {'n B':>5} {'B/A':>7} {'p':>8}  verdict"
    lines += [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['module'][:24]:<24} {r['engine'][:22]:<22} {r['runtime'][:18]:<18} {r['n_a']:>5} {r['n_b']:>5} "
                     f"{_f(r['ratio']):>7} {_f(r['p'], '.2g'):>8}  {r['verdict']}")
    return "\n".join(lines) + "\n"


def clean(r: Row) -> Row:
    """A row with NaN as None (JSON)."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else
                [None if isinstance(x, float) and math.isnan(x) else x for x in v] if isinstance(v, list) else v)
            for k, v in r.items()}
