"""The report's pictures (PNG, matplotlib imported only when drawing): run-time distributions per
module, the interference slowdown, the workload x engine heatmap and a campaign's coverage."""
from __future__ import annotations

import math
import os
from collections import defaultdict
from typing import Any

from benchmarking.analysis import AnalysisError
from benchmarking.analysis.dataset import Key, Series
from benchmarking.analysis.stats import quantile


def plot(series: dict[Key, Series], rows: list[dict[str, Any]], out: str) -> list[str]:
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


def heatmap(series: dict[Key, Series], baseline: str | None,
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
        raise AnalysisError(f"--baseline {base!r} has no data; engines in the data: {', '.join(engines_)}")
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


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
