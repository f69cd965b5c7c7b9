"""The statistics of the report: quantiles, the distribution-free interval of the median, the
Mann-Whitney U test and the verdict of one sample against another."""
from __future__ import annotations

import math
import statistics
from typing import Any


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
