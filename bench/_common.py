"""Shared helpers of the bench/ scripts: percentiles, the machine line, table printing, the --json end."""
from __future__ import annotations

import json
import os
import platform
import statistics
from typing import Any, Callable, Sequence


def pct(xs: Sequence[float], p: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    k = min(len(s) - 1, max(0, int(round(p / 100 * (len(s) - 1)))))
    return s[k]


def machine() -> str:
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{platform.machine()} {os.cpu_count()} CPUs {cpu}, Linux {platform.release()}, Python {platform.python_version()}"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[f"{c:.3g}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def mean(xs: Sequence[float]) -> float:
    return statistics.fmean(xs) if xs else float("nan")


def median_spread(xs: Sequence[float]) -> tuple[float, float, float]:
    """(median, min, max) of the repetitions of one figure."""
    if not xs:
        return float("nan"), float("nan"), float("nan")
    return statistics.median(xs), min(xs), max(xs)


def loadavg() -> list[float]:
    """The 1, 5 and 15 minute load averages (state them with every figure of a shared machine)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        return []


def finish(res: Any, as_json: bool) -> int:
    """The end of a bench script's main(): with --json, the figures as one JSON object on the last
    line of stdout (what `make bench` and the docs' tables read); the exit status."""
    if as_json:
        print(json.dumps(res))
    return 0


def measured(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """`fn`'s figures with the machine and the load average before and after them (the context every
    figure in docs/performance.md is given with); prints that context as the table's first line."""
    res: dict[str, Any] = {"machine": machine(), "loadavg_before": loadavg()}
    res.update(fn())
    res["loadavg_after"] = loadavg()
    print(f"machine: {res['machine']}; load {res['loadavg_before']} -> {res['loadavg_after']}")
    return res
