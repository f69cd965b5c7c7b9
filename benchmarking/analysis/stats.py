"""The statistics of the report, all distribution-free: quantiles, the interval of the median,
outliers, the Mann-Whitney U test (exact for small samples without ties, else the normal
approximation with tie and continuity correction, as scipy.stats.mannwhitneyu), the smallest p a
pair of sample sizes can reach, and the effect size: the ratio of medians B/A with the
Hodges-Lehmann interval of the ratio (the pairwise log differences' order statistics bounded by
the U distribution's quantiles; exact where the test is). tests/benchmarking/test_analysis_stats.py
checks them against scipy.stats."""
from __future__ import annotations

import functools
import math
import statistics
from dataclasses import dataclass
from typing import Any

EXACT_WORK = 200_000  # the exact U distribution when min(n1, n2) * n1 * n2 is at most this (and no ties)
HL_PAIRS = 4_000_000  # the Hodges-Lehmann interval up to this many pairwise differences
OUTLIER_Z = 3.5  # modified z-score (Iglewicz and Hoaglin) beyond which a run is an outlier


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


def outliers(xs: list[float]) -> int:
    """Runs whose modified z-score 0.6745 |x - median| / MAD is over OUTLIER_Z (none when MAD is 0)."""
    if len(xs) < 3:
        return 0
    med = statistics.median(xs)
    mad = statistics.median(abs(x - med) for x in xs)
    if mad == 0:
        return 0
    return sum(1 for x in xs if 0.6745 * abs(x - med) / mad > OUTLIER_Z)


def stats(walls_us: list[int], level: float = 0.99) -> dict[str, Any]:
    xs = sorted(w / 1000 for w in walls_us)
    if not xs:
        return {"n": 0, "median_ms": math.nan, "iqr_ms": math.nan, "cv": math.nan, "ci99_ms": [math.nan, math.nan],
                "outliers": 0}
    mean = statistics.fmean(xs)
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    lo, hi = median_ci(xs, level)
    return {"n": len(xs), "median_ms": quantile(xs, 0.5), "iqr_ms": quantile(xs, 0.75) - quantile(xs, 0.25),
            "cv": sd / mean if mean else math.nan, "ci99_ms": [lo, hi], "outliers": outliers(xs)}


@functools.lru_cache(maxsize=64)  # a report compares many cells of the same run counts
def u_counts(n1: int, n2: int) -> tuple[int, ...]:
    """How many of the C(n1+n2, n1) orderings (no ties) give U = 0, 1, ..., n1*n2: the
    coefficients of the Gaussian binomial [n1+n2, n1]_q = prod_i (1 - q^(n2+i)) / (1 - q^i)."""
    small, large = min(n1, n2), max(n1, n2)
    m = small * large
    c = [0] * (m + 1)
    c[0] = 1
    for i in range(1, small + 1):
        a = large + i
        for u in range(m, a - 1, -1):  # times (1 - q^a)
            c[u] -= c[u - a]
        for u in range(i, m + 1):  # divided by (1 - q^i)
            c[u] += c[u - i]
    return tuple(c)


def _ranks(values: list[float]) -> tuple[list[float], float]:
    """Mid-ranks (1-based) of `values` in their order, and the tie term sum(t^3 - t)."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    ties = 0.0
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        t = j - i + 1
        ties += t ** 3 - t
        i = j + 1
    return ranks, ties


@dataclass
class MannWhitney:
    u: float  # U of the first sample: pairs (a, b) with a > b, ties counted 1/2
    p: float  # two-sided
    method: str  # "exact" or "normal"


def mann_whitney(a: list[float], b: list[float]) -> MannWhitney:
    """Two-sided Mann-Whitney U test of `a` against `b`: exact when there is no tie and
    min(n1, n2) * n1 * n2 <= EXACT_WORK, else the normal approximation with tie correction and
    continuity correction. p is nan when a sample has fewer than 2 values."""
    n1, n2 = len(a), len(b)
    if n1 < 2 or n2 < 2:
        return MannWhitney(math.nan, math.nan, "none")
    ranks, ties = _ranks(list(a) + list(b))
    u = sum(ranks[:n1]) - n1 * (n1 + 1) / 2
    m = n1 * n2
    if ties == 0 and min(n1, n2) * m <= EXACT_WORK:
        c = u_counts(n1, n2)
        k = int(min(u, m - u))
        return MannWhitney(u, min(1.0, 2 * sum(c[:k + 1]) / math.comb(n1 + n2, n1)), "exact")
    n = n1 + n2
    var = m / 12 * ((n + 1) - ties / (n * (n - 1)))
    if var <= 0:
        return MannWhitney(u, 1.0, "normal")
    z = (abs(u - m / 2) - 0.5) / math.sqrt(var)
    return MannWhitney(u, min(1.0, math.erfc(max(z, 0.0) / math.sqrt(2))), "normal")


def mann_whitney_p(a: list[float], b: list[float]) -> float:
    return mann_whitney(a, b).p


def min_p(n1: int, n2: int) -> float:
    """The smallest two-sided p the test can give for these sample sizes (all of one sample
    below all of the other): 2 / C(n1+n2, n1)."""
    if n1 < 2 or n2 < 2:
        return 1.0
    return min(1.0, 2 / math.comb(n1 + n2, n1))


def runs_needed(alpha: float) -> int:
    """The fewest runs per side with which p < alpha can be reached."""
    n = 2
    while min_p(n, n) >= alpha:
        n += 1
    return n


def _z(q: float) -> float:
    """The standard normal quantile (statistics.NormalDist)."""
    return statistics.NormalDist().inv_cdf(q)


def hl_ratio(a: list[float], b: list[float], level: float = 0.99) -> tuple[float, float, float]:
    """(estimate, low, high) of the ratio B/A by Hodges-Lehmann on the log scale: the median of
    all ln(b) - ln(a), and the interval [d(k), d(N+1-k)] of their order statistics with k the
    largest for which P(U <= k-1) <= (1 - level) / 2 (exact U distribution where the test is
    exact, else its normal approximation). nans when a sample is too small for the level."""
    n1, n2 = len(a), len(b)
    m = n1 * n2
    if n1 < 2 or n2 < 2 or m > HL_PAIRS or min(a) <= 0 or min(b) <= 0:
        return (math.nan, math.nan, math.nan)
    la, lb = [math.log(x) for x in a], [math.log(y) for y in b]
    d = sorted(y - x for x in la for y in lb)
    est = math.exp(quantile(d, 0.5))
    tail = (1 - level) / 2
    if min(n1, n2) * m <= EXACT_WORK:
        c = u_counts(n1, n2)
        total = math.comb(n1 + n2, n1)
        k, cum = 0, 0
        while k < m and (cum + c[k]) / total <= tail:  # P(U <= k) <= tail: d(k+1) is a valid bound
            cum += c[k]
            k += 1
    else:
        k = int(math.floor(m / 2 - _z(1 - tail) * math.sqrt(m * (n1 + n2 + 1) / 12)))
    if k < 1:
        return (est, math.nan, math.nan)
    return (est, math.exp(d[k - 1]), math.exp(d[m - k]))


def verdict(a_us: list[int], b_us: list[int], alpha: float = 0.01) -> tuple[str, float, float]:
    """(verdict of B against A, p value, ratio of medians B/A)."""
    c = compare_samples(a_us, b_us, alpha)
    return c["verdict"], c["p"], c["ratio"]


def compare_samples(a_us: list[int], b_us: list[int], alpha: float = 0.01) -> dict[str, Any]:
    """B against A (run times in us): the verdict (faster, slower or not distinguishable at
    `alpha`), p and its method, the ratio of medians B/A with the Hodges-Lehmann interval of the
    ratio at level 1 - alpha, and a warning when the sample sizes can never reach p < alpha."""
    a, b = sorted(x / 1000 for x in a_us), sorted(x / 1000 for x in b_us)
    mw = mann_whitney(a, b)
    out: dict[str, Any] = {"p": mw.p, "p_method": mw.method, "ratio": math.nan, "ratio_hl": math.nan,
                           "ratio_ci": [math.nan, math.nan], "warning": None}
    if not a or not b:
        out["verdict"] = "not distinguishable"
        return out
    ma = quantile(a, 0.5)
    out["ratio"] = quantile(b, 0.5) / ma if ma else math.nan
    est, lo, hi = hl_ratio(a, b, 1 - alpha)
    out["ratio_hl"], out["ratio_ci"] = est, [lo, hi]
    floor = min_p(len(a), len(b))
    if floor >= alpha:
        out["warning"] = (f"too few runs: with {len(a)} and {len(b)} runs p is never below {floor:.2g}, "
                          f"so never below alpha {alpha:g}; take at least {runs_needed(alpha)} runs each")
    if math.isnan(mw.p) or mw.p >= alpha:
        out["verdict"] = "not distinguishable"
    else:
        out["verdict"] = "faster" if out["ratio"] < 1 else "slower"
    return out
