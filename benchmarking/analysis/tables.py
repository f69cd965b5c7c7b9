"""The report's rows (one per series, one per compared pair) and their text tables."""
from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from benchmarking.analysis.dataset import Key, Series
from benchmarking.analysis.stats import OUTLIER_Z, compare_samples, quantile, stats

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


def compare(a: dict[Key, Series], b: dict[Key, Series], engines: tuple[str, str] | None = None,
            alpha: float = 0.01) -> list[Row]:
    """Cell by cell verdicts of B against A (two campaigns), or of engine E2 against E1 (in `a`),
    at significance `alpha` (stats.compare_samples)."""
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
        out.append({"module": sa.module, "runtime": sa.runtime, "kind": sa.kind,
                    "engine": sa.engine if engines is None else f"{engines[1]} vs {engines[0]}",
                    "n_a": len(sa.walls_us), "n_b": len(sb.walls_us), "alpha": alpha,
                    **compare_samples(sa.walls_us, sb.walls_us, alpha)})
    return out


def _f(v: Any, spec: str = ".3f") -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def _grid(head: list[tuple[str, str]], rows: list[list[str]]) -> list[str]:
    """Lines of a table whose every column is as wide as its widest cell (names are never cut);
    head: (title, "<" or ">") per column."""
    widths = [max([len(t)] + [len(r[i]) for r in rows]) for i, (t, _a) in enumerate(head)]
    def line(cells: list[str]) -> str:
        return " ".join(f"{c:{a}{w}}" for c, (_t, a), w in zip(cells, head, widths)).rstrip()
    top = line([t for t, _a in head])
    return [top, "-" * len(top)] + [line(r) for r in rows]


def table_text(rows: list[Row], opcodes: list[dict[str, Any]], bad: int, cv_max: float = 0.05) -> str:
    head = [("module", "<"), ("engine", "<"), ("runtime", "<"), ("kind", "<"), ("n", ">"), ("fail", ">"),
            ("out", ">"), ("median ms", ">"), ("99% CI ms", ">"), ("IQR ms", ">"), ("CV %", ">"), ("slowdown", ">")]
    cells = []
    for r in rows:
        ci = r["ci99_ms"]
        ci_s = f"{_f(ci[0])}-{_f(ci[1])}" if not math.isnan(ci[0]) else ""
        cells.append([r["module"], r["engine"], r["runtime"], r["kind"], str(r["n"]), str(r["failed"]),
                      str(r.get("outliers") or ""), _f(r["median_ms"]), ci_s, _f(r["iqr_ms"]),
                      _f(100 * r["cv"], ".2f"), _f(r.get("slowdown")) + (" !" if r["cv_over"] else "")])
    lines = _grid(head, cells)
    if any(r["cv_over"] for r in rows):
        lines.append(f"! CV over {100 * cv_max:g} % (--cv-max): noisy cell, check the node's load, governor and SMT siblings")
    if any(r.get("outliers") for r in rows):
        lines.append(f"out: runs more than {OUTLIER_Z:g} robust standard deviations from the median (modified z-score); "
                     "they stay in the statistics, which are medians; many of them point at interference")
    for o in opcodes:
        top = ", ".join(f"0x{op:02X}:{c}" for c, op in o["top"])
        lines.append(f"opcodes {o['module']} on {o['runtime']}: {o['total']} instructions; top {top}")
    if bad:
        lines.append(f"({bad} file(s) without decodable data were skipped)")
    return "\n".join(lines) + "\n"


def compare_text(rows: list[Row], what: str) -> str:
    alpha = rows[0]["alpha"] if rows else 0.01
    level = f"{100 * (1 - alpha):g}%"
    head = [("module", "<"), ("engine", "<"), ("runtime", "<"), ("kind", "<"), ("n A", ">"), ("n B", ">"),
            ("B/A", ">"), (f"{level} CI of B/A", ">"), ("p", ">"), ("verdict", "<")]
    cells = []
    for r in rows:
        lo, hi = r["ratio_ci"]
        ci = f"{_f(lo, '.4g')}-{_f(hi, '.4g')}" if not math.isnan(lo) else "n too small"
        p = _f(r["p"], ".2g") + ("" if r["p_method"] != "normal" else "~")
        cells.append([r["module"], r["engine"], r["runtime"], r["kind"], str(r["n_a"]), str(r["n_b"]),
                      _f(r["ratio"], ".4g"), ci, p, r["verdict"] + (" (too few runs)" if r["warning"] else "")])
    lines = [f"\n{what} (Mann-Whitney U, two-sided, alpha {alpha:g})"] + _grid(head, cells)
    lines.append(f"B/A: ratio of medians; its {level} interval is the Hodges-Lehmann interval of the ratio; "
                 "p exact, or ~ for the normal approximation (ties or large samples)")
    for w in sorted({r["warning"] for r in rows if r["warning"]}):
        lines.append(f"warning: {w}")
    return "\n".join(lines) + "\n"


def clean(r: Row) -> Row:
    """A row with NaN as None (JSON)."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else
                [None if isinstance(x, float) and math.isnan(x) else x for x in v] if isinstance(v, list) else v)
            for k, v in r.items()}
