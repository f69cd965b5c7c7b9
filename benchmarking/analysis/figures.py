"""The report's pictures (PNG; matplotlib imported only when drawing): run-time distributions per
module, the interference slowdown, the workload x engine heatmap and a campaign's coverage.

Each picture is drawn by a `draw_*` function that returns the figure, then `save` fits it: the
figure grows until every text (titles, tick labels, the colour bar's label, values) lies inside
the canvas, and values on coloured cells are black or white, whichever contrasts more with the
cell (tests/benchmarking/test_analysis_figures.py checks both on every picture)."""
from __future__ import annotations

import math
import os
import textwrap
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from benchmarking.analysis import AnalysisError
from benchmarking.analysis.dataset import Key, Series
from benchmarking.analysis.stats import quantile

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 100
TITLE_CHARS = 70  # titles wrap at this many characters
LABEL_CHARS = 24  # and tick labels at this many


def _figure(width: float, height: float) -> "Figure":
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def drawn_texts(fig: "Figure") -> list[Any]:
    """The texts `fig` draws: visible and non-empty, without the tick labels of ticks outside
    their axis' view (matplotlib keeps those but does not draw them)."""
    from matplotlib.text import Text

    hidden: set[int] = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            eps = 1e-9 * max(abs(lo), abs(hi), 1e-300)
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not lo - eps <= tick.get_loc() <= hi + eps:
                    hidden.update((id(tick.label1), id(tick.label2)))
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip() and id(t) not in hidden]


def texts_outside(fig: "Figure") -> list[tuple[str, tuple[float, float, float, float]]]:
    """Every text `fig` draws that does not lie wholly inside the canvas, with its extent in
    pixels (x0, y0, x1, y1)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]  # FigureCanvasAgg has it
    w, h = fig.bbox.width, fig.bbox.height
    out = []
    for t in drawn_texts(fig):
        bb = t.get_window_extent(renderer)
        if bb.x0 < -0.5 or bb.y0 < -0.5 or bb.x1 > w + 0.5 or bb.y1 > h + 0.5:
            out.append((t.get_text(), (bb.x0, bb.y0, bb.x1, bb.y1)))
    return out


def fit(fig: "Figure") -> None:
    """Grow `fig` until no text is outside the canvas (constrained layout places the rest)."""
    for _ in range(8):
        bad = texts_outside(fig)
        if not bad:
            return
        w, h = fig.bbox.width, fig.bbox.height
        grow_x = max([0.0] + [max(-x0, x1 - w) for _t, (x0, _y0, x1, _y1) in bad])
        grow_y = max([0.0] + [max(-y0, y1 - h) for _t, (_x0, y0, _x1, y1) in bad])
        width, height = fig.get_size_inches()
        fig.set_size_inches(width + 2 * grow_x / DPI + 0.2, height + 2 * grow_y / DPI + 0.2)


def save(fig: "Figure", out: str, name: str) -> str:
    fit(fig)
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, name)
    fig.savefig(path, dpi=DPI)
    return path


def _title(text: str) -> str:
    return "\n".join(textwrap.wrap(text, TITLE_CHARS, break_on_hyphens=False, break_long_words=False)) or text


def _labels(parts: list[tuple[str, ...]]) -> tuple[list[str], list[str]]:
    """Tick labels of several name parts (engine, runtime, kind...): the parts that differ
    between ticks, one per line, long ones wrapped; and the parts common to all (for the title)."""
    keep = [i for i in range(len(parts[0])) if len({p[i] for p in parts}) > 1] if parts else []
    common = [parts[0][i] for i in range(len(parts[0])) if i not in keep] if parts else []
    labels = ["\n".join(line for i in keep for line in textwrap.wrap(p[i], LABEL_CHARS, break_on_hyphens=False)) or ""
              for p in parts]
    return labels, common


def _tick_width(labels: list[str], fontsize: float) -> float:
    """Inches per tick so that labels of this many characters do not touch (about 0.6 em a character)."""
    longest = max((len(line) for lab in labels for line in lab.split("\n")), default=1)
    return max(1.0, 0.6 * fontsize / 72 * longest + 0.25)


def luminance(rgb: tuple[float, ...]) -> float:
    """Relative luminance (WCAG 2) of an sRGB colour with channels in 0..1."""
    def lin(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (lin(c) for c in rgb[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """WCAG contrast ratio of two colours (1 .. 21)."""
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def ink_on(background: tuple[float, ...]) -> str:
    """Black or white, whichever contrasts more with `background`."""
    return "black" if contrast(background, (0.0, 0.0, 0.0)) >= contrast(background, (1.0, 1.0, 1.0)) else "white"


def draw_walltime(module: str, group: list[Series]) -> "Figure":
    group = sorted(group, key=lambda s: (s.kind, s.engine, s.runtime))
    labels, common = _labels([(s.engine, s.runtime, s.kind) for s in group])
    fig = _figure(max(4.0, _tick_width(labels, 7) * len(group) + 1.5), 4)
    ax = fig.add_subplot()
    ax.boxplot([[w / 1000 for w in s.walls_us] for s in group], showfliers=True)
    ax.set_xticks(range(1, len(group) + 1))
    ax.set_xticklabels(labels, fontsize=7)
    medians = [quantile(sorted(s.walls_us), 0.5) for s in group]
    wide = min(medians) > 0 and max(medians) / min(medians) > 20
    if wide:  # engines 20x apart: a log scale keeps the fast ones' boxes visible
        ax.set_yscale("log")
    ax.set_ylabel("wall time (ms" + (", log scale)" if wide else ")"))
    ax.set_title(_title(f"{module}: run time per engine" + (f" ({', '.join(common)})" if common else "")))
    return fig


def draw_interference(slow: list[dict[str, Any]]) -> "Figure":
    labels, common = _labels([(r["module"], r["engine"], r["runtime"], r["kind"]) for r in slow])
    fig = _figure(max(4.0, _tick_width(labels, 7) * len(slow) + 1.5), 4)
    ax = fig.add_subplot()
    ax.bar(range(len(slow)), [r["slowdown"] for r in slow])
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.set_xticks(range(len(slow)))
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylabel("median slowdown vs. alone")
    ax.set_title(_title("interference slowdown" + (f" ({', '.join(common)})" if common else "")))
    return fig


def plot(series: dict[Key, Series], rows: list[dict[str, Any]], out: str) -> list[str]:
    """PNG files: one run-time distribution plot per module, one interference slowdown plot."""
    written: list[str] = []
    by_module: dict[str, list[Series]] = defaultdict(list)
    for s in series.values():
        if s.walls_us:
            by_module[s.module].append(s)
    for module, group in sorted(by_module.items()):
        written.append(save(draw_walltime(module, group), out, f"walltime_{_safe(module)}.png"))
    slow = [r for r in rows if r.get("slowdown")]
    if slow:
        written.append(save(draw_interference(slow), out, "interference.png"))
    return written


def relative(series: dict[Key, Series], baseline: str | None) -> tuple[str, list[str], list[str], list[list[float]]]:
    """Workload x engine: median run time relative to `baseline` (default the first engine by
    name): (baseline, engines, modules, grid of ratios, nan where there is no data)."""
    walls: dict[tuple[str, str], list[int]] = defaultdict(list)
    for s in series.values():
        if s.kind == "alone" and s.walls_us:
            walls[(s.module, s.engine)].extend(s.walls_us)
    engines_ = sorted({e for _m, e in walls})
    if not engines_:
        return "", [], [], []
    base = baseline or engines_[0]
    if base not in engines_:
        raise AnalysisError(f"--baseline {base!r} has no data; engines in the data: {', '.join(engines_)}")
    modules = sorted({m for m, _e in walls})
    med = {k: quantile(sorted(v), 0.5) for k, v in walls.items()}
    grid = []
    for m in modules:
        b = med.get((m, base))
        grid.append([v / b if v is not None and b else math.nan for v in (med.get((m, e)) for e in engines_)])
    return base, engines_, modules, grid


def draw_heatmap(base: str, engines_: list[str], modules: list[str], grid: list[list[float]]) -> "Figure":
    from matplotlib.colors import LogNorm

    finite = [x for r in grid for x in r if not math.isnan(x) and x > 0]
    lo, hi = (min(finite), max(finite)) if finite else (0.5, 2.0)
    span = max(hi, 1.0 / lo, 1.01)
    fig = _figure(1.1 * len(engines_) + 3.5, 0.4 * len(modules) + 2.5)
    ax = fig.add_subplot()
    norm = LogNorm(vmin=1 / span, vmax=span)
    im = ax.imshow(grid, cmap="RdBu_r", norm=norm, aspect="auto")
    ax.set_xticks(range(len(engines_)))
    ax.set_xticklabels(engines_, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(modules)))
    ax.set_yticklabels(modules, fontsize=8)
    cmap = im.get_cmap()
    for i, cells in enumerate(grid):
        for j, v in enumerate(cells):
            if not math.isnan(v):
                ax.text(j, i, f"{v:.0f}" if v >= 99.5 else f"{v:.2g}", ha="center", va="center", fontsize=7, color=ink_on(cmap(norm(v))))
    fig.colorbar(im, ax=ax, label=_title(f"median time / median on {base} (log scale)"))
    ax.set_title(_title(f"workload x engine, relative to {base}"))
    return fig


def heatmap(series: dict[Key, Series], baseline: str | None, out: str | None) -> tuple[str | None, list[dict[str, Any]]]:
    """The heatmap's table, and its PNG when `out` is given: (path or None, table)."""
    base, engines_, modules, grid = relative(series, baseline)
    table = [{"module": m, "engine": e, "relative": r} for m, row in zip(modules, grid)
             for e, r in zip(engines_, row) if not math.isnan(r)]
    if out is None or not grid:
        return None, table
    return save(draw_heatmap(base, engines_, modules, grid), out, "heatmap.png"), table


COVERAGE_STATES = ("done", "data_pending", "error", "trap", "limit", "killed", "lost", "queued", "running")


def draw_coverage(counts: dict[str, int], title: str) -> "Figure":
    states = [st for st in COVERAGE_STATES if counts.get(st)] or ["done"]
    colours = {"done": "tab:green", "data_pending": "tab:orange", "queued": "tab:grey", "running": "tab:blue"}
    fig = _figure(1.0 * len(states) + 3, 3.5)
    ax = fig.add_subplot()
    values = [counts.get(st, 0) for st in states]
    bars = ax.bar(states, values, color=[colours.get(st, "tab:red") for st in states])
    ax.bar_label(bars)
    ax.set_ylim(0, max(values + [1]) * 1.15)  # room for the counts above the bars
    ax.set_ylabel("cells")
    ax.set_title(_title(title))
    return fig


def coverage(counts: dict[str, int], title: str, out: str) -> str:
    """Bar chart of a campaign's cells by state."""
    return save(draw_coverage(counts, title), out, f"coverage_{_safe(title.split()[-1])}.png")


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
