"""benchmarking/analysis/figures.py: every picture keeps every text inside its canvas, and the
values on the heatmap's cells contrast with their cell. The pictures are rendered for real
(matplotlib Agg) from series shaped like a campaign's, with long names."""
from __future__ import annotations

import math
import os
import random

from benchmarking.analysis import figures, tables
from benchmarking.analysis.dataset import Key, Series
from matplotlib.figure import Figure
from matplotlib.text import Text

ENGINES = ["wasmtime", "wasmtime-aot", "wasmer-j-cl", "wasmer-a-ll", "iwasm-i", "wasm3-i", "wasmedge-a"]
MODULES = ["polybench/medium/2mm.wasm", "polybench-medium-correlation-with-a-long-name.wasm:--size:1024",
           "mibench/network-dijkstra.wasm", "x.wasm"]
RUNTIME = "a-node-with-a-rather-long-hostname.benchmarking"


def campaign_series() -> dict[Key, Series]:
    rng = random.Random(5)
    out: dict[Key, Series] = {}
    for m in MODULES:
        for k, e in enumerate(ENGINES):
            scale = 10_000 * 3.0 ** (k - 2)  # against wasmer-j-cl (k = 2): ratios 1/9 to 81, dark blue to dark red
            out[(m, e, RUNTIME, "alone")] = Series(m, e, RUNTIME, "alone",
                                                   [int(scale * rng.uniform(0.95, 1.05)) for _ in range(12)])
        out[(m, "wasmtime", RUNTIME, "interference-3")] = Series(m, "wasmtime", RUNTIME, "interference-3",
                                                                 [int(13_000 * rng.uniform(0.9, 1.1)) for _ in range(9)])
    return out


def check(fig: Figure) -> None:
    w, h = fig.bbox.width, fig.bbox.height
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    # what is drawn: visible, non-empty, and no label of a tick outside its axis' view (not drawn)
    hidden = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not lo - 1e-9 * abs(hi - lo) <= tick.get_loc() <= hi + 1e-9 * abs(hi - lo):
                    hidden |= {id(tick.label1), id(tick.label2)}
    texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip() and id(t) not in hidden]
    assert texts
    for ax in fig.axes:  # tick labels do not run into each other
        for axis in (ax.xaxis, ax.yaxis):
            boxes = [t.get_window_extent(renderer) for t in axis.get_ticklabels() if t in texts]
            for i, a in enumerate(boxes):
                for b in boxes[i + 1:]:
                    assert not a.overlaps(b), f"tick labels overlap: {a.bounds} {b.bounds}"
    for t in texts:
        bb = t.get_window_extent(renderer)
        assert bb.x0 >= -0.5 and bb.y0 >= -0.5 and bb.x1 <= w + 0.5 and bb.y1 <= h + 0.5, \
            f"{t.get_text()!r} at {bb.bounds} is outside the {w}x{h} canvas"


def test_every_picture_keeps_its_texts_inside(tmp_path) -> None:  # type: ignore[no-untyped-def]
    series = campaign_series()
    rows = tables.summary(series)
    by_module: dict[str, list[Series]] = {}
    for s in series.values():
        by_module.setdefault(s.module, []).append(s)
    drawn = [figures.draw_walltime(m, g) for m, g in by_module.items()]
    drawn.append(figures.draw_interference([r for r in rows if r.get("slowdown")]))
    base, engines_, modules, grid = figures.relative(series, "wasmer-j-cl")
    drawn.append(figures.draw_heatmap(base, engines_, modules, grid))
    long_title = "cells by state (orchestrator), campaign 2026-12-08T04-40-00-a-campaign-with-a-long-id"
    drawn.append(figures.draw_coverage({"done": 480, "data_pending": 5, "trap": 12, "limit": 3, "lost": 1}, long_title))
    drawn.append(figures.draw_coverage({"done": 1}, "cells by state (collected data), campaign c"))
    unfitted = sum(1 for fig in drawn if figures.texts_outside(fig))
    assert unfitted >= 1  # the unfitted pictures clip (the heatmap's colour-bar label did): the check can fail
    for fig in drawn:
        figures.fit(fig)
        check(fig)
    # and what report writes: the same pictures, fitted, as PNG files
    paths = figures.plot(series, rows, str(tmp_path))
    paths.append(figures.heatmap(series, "wasmer-j-cl", str(tmp_path))[0] or "")
    paths.append(figures.coverage({"done": 480, "trap": 12}, long_title, str(tmp_path)))
    assert len(paths) == len(MODULES) + 3 and all(os.path.getsize(p) > 1000 for p in paths)


def test_heatmap_values_contrast_with_their_cells() -> None:
    series = campaign_series()
    base, engines_, modules, grid = figures.relative(series, "wasmer-j-cl")
    fig = figures.draw_heatmap(base, engines_, modules, grid)
    ax = fig.axes[0]
    im = ax.images[0]
    cmap, norm = im.get_cmap(), im.norm
    values = [t for t in ax.texts if t.get_text()]
    assert len(values) == len(MODULES) * len(ENGINES)
    from matplotlib.colors import to_rgb
    worst = math.inf
    for t in values:
        x, y = t.get_position()
        cell = cmap(norm(grid[int(y)][int(x)]))
        worst = min(worst, figures.contrast(to_rgb(t.get_color()), cell))
    assert worst >= 4.5  # WCAG AA for text
    # the colours span the map: some values are on dark cells (white ink), some on light (black)
    assert {t.get_color() for t in values} == {"black", "white"}
