"""benchmarking/analysis/stats.py: the interval of the median, Mann-Whitney (cross-checked against
scipy.stats), the smallest reachable p, the Hodges-Lehmann interval of the ratio, outliers."""
from __future__ import annotations

import math
import random

import pytest
import scipy.stats

from benchmarking.analysis import stats, tables
from benchmarking.analysis.dataset import Series


def test_median_ci_covers_and_narrows() -> None:
    rng = random.Random(1)
    xs = sorted(rng.gauss(100, 5) for _ in range(200))
    lo, hi = stats.median_ci(xs)
    assert lo < stats.quantile(xs, 0.5) < hi and hi - lo < 3
    assert all(math.isnan(v) for v in stats.median_ci([1.0, 2.0, 3.0]))  # too few for 99 %
    # n = 8: the order statistics x(1)..x(8) cover 99.2 %: the whole sample
    assert stats.median_ci([float(i) for i in range(8)]) == (0.0, 7.0)
    # the coverage over many draws is at least the level
    hits = 0
    for _ in range(300):
        ys = sorted(rng.expovariate(1.0) for _ in range(30))
        lo, hi = stats.median_ci(ys)
        hits += lo <= math.log(2) <= hi
    assert hits / 300 >= 0.97


def test_verdicts() -> None:
    rng = random.Random(2)
    a = [int(rng.gauss(10_000, 300)) for _ in range(30)]
    slow = [int(rng.gauss(11_000, 300)) for _ in range(30)]
    same = [int(rng.gauss(10_000, 300)) for _ in range(30)]
    v, p, ratio = stats.verdict(a, slow)
    assert v == "slower" and p < 1e-6 and 1.05 < ratio < 1.15
    assert stats.verdict(slow, a)[0] == "faster"
    assert stats.verdict(a, same)[0] == "not distinguishable"
    assert stats.verdict(a, [1])[0] == "not distinguishable"  # one sample: no test
    assert stats.mann_whitney_p([1.0, 1.0, 1.0], [1.0, 1.0, 1.0]) == 1.0


def test_five_against_five_fully_separated_is_exact() -> None:
    """The issue's case: the normal approximation said 0.012; the exact p is 2/252."""
    mw = stats.mann_whitney([1.0, 2, 3, 4, 5], [6.0, 7, 8, 9, 10])
    assert mw.method == "exact" and mw.p == pytest.approx(2 / 252)
    assert mw.p == pytest.approx(scipy.stats.mannwhitneyu([1, 2, 3, 4, 5], [6, 7, 8, 9, 10], method="exact").pvalue)
    c = stats.compare_samples([1000, 2000, 3000, 4000, 5000], [6000, 7000, 8000, 9000, 10000], 0.01)
    assert c["verdict"] == "slower" and c["warning"] is None


@pytest.mark.parametrize("seed", range(6))
def test_mann_whitney_matches_scipy(seed: int) -> None:
    """Exact without ties (scipy method="exact"), else the normal approximation with tie and
    continuity correction (scipy method="asymptotic"), on samples of assorted sizes and shifts."""
    rng = random.Random(seed)
    for _ in range(40):
        n1, n2 = rng.randint(2, 25), rng.randint(2, 25)
        shift = rng.choice([0.0, 0.3, 1.0])
        ties = rng.random() < 0.3
        a = [rng.gauss(0, 1) for _ in range(n1)]
        b = [rng.gauss(shift, 1) for _ in range(n2)]
        if ties:
            a, b = [round(x, 1) for x in a], [round(x, 1) for x in b]
        ours = stats.mann_whitney(a, b)
        method = "exact" if ours.method == "exact" else "asymptotic"
        ref = scipy.stats.mannwhitneyu(a, b, alternative="two-sided", method=method, use_continuity=True)
        assert ours.u == pytest.approx(float(ref.statistic))
        assert ours.p == pytest.approx(float(ref.pvalue), rel=1e-9, abs=1e-12), (a, b, ours.method)
    # large samples: the approximation, as scipy's
    a = [rng.gauss(0, 1) for _ in range(120)]
    b = [rng.gauss(0.2, 1) for _ in range(90)]
    ours = stats.mann_whitney(a, b)
    assert ours.method == "normal"
    assert ours.p == pytest.approx(float(scipy.stats.mannwhitneyu(a, b, method="asymptotic").pvalue), rel=1e-9)


def test_u_distribution_is_scipy_exact_distribution() -> None:
    """Every exact tail probability of U for small sizes, against scipy's exact p values."""
    for n1 in range(2, 9):
        for n2 in range(2, 9):
            c = stats.u_counts(n1, n2)
            assert sum(c) == math.comb(n1 + n2, n1) and c == c[::-1]
            labels = ["a"] * n1 + ["b"] * n2  # in value order: U = 0
            for u in range(0, n1 * n2 + 1):
                a = [float(k) for k, lab in enumerate(labels) if lab == "a"]
                b = [float(k) for k, lab in enumerate(labels) if lab == "b"]
                ref = scipy.stats.mannwhitneyu(a, b, method="exact")
                mw = stats.mann_whitney(a, b)
                assert mw.u == u and mw.method == "exact"
                assert mw.p == pytest.approx(float(ref.pvalue), rel=1e-12)
                k = max((k for k in range(n1 + n2 - 1) if labels[k] == "a" and labels[k + 1] == "b"), default=None)
                if k is not None:  # swapping one adjacent (a, b) raises U by one
                    labels[k], labels[k + 1] = "b", "a"


def test_small_n_warning() -> None:
    assert stats.min_p(4, 4) == pytest.approx(2 / 70)  # never below 0.01
    assert stats.runs_needed(0.01) == 5 and stats.runs_needed(0.05) == 4
    c = stats.compare_samples([10, 11, 12, 13], [20, 21, 22, 23], 0.01)
    assert c["verdict"] == "not distinguishable" and "at least 5 runs" in c["warning"]
    assert stats.compare_samples([10, 11, 12, 13], [20, 21, 22, 23], 0.05)["verdict"] == "slower"


def test_hodges_lehmann_ratio_interval() -> None:
    # 5 vs 5, 99 %: P(U <= 0) = 1/252 <= 0.005 < P(U <= 1): the interval is min..max of b/a
    est, lo, hi = stats.hl_ratio([10.0, 11, 12, 13, 14], [20.0, 21, 22, 23, 24], 0.99)
    assert (lo, hi) == (pytest.approx(20 / 14), pytest.approx(24 / 10)) and lo < est < hi
    # coverage of a true ratio of 1.2 over many draws (log-normal, same shape): at least the level
    rng = random.Random(3)
    for n, level in ((12, 0.95), (80, 0.99)):  # exact and normal-approximation regimes
        hits = 0
        for _ in range(200):
            a = [math.exp(rng.gauss(0, 0.3)) for _ in range(n)]
            b = [1.2 * math.exp(rng.gauss(0, 0.3)) for _ in range(n)]
            _e, lo, hi = stats.hl_ratio(a, b, level)
            hits += lo <= 1.2 <= hi
        assert hits / 200 >= level - 0.04
    assert math.isnan(stats.hl_ratio([1.0, 2.0], [3.0, 4.0], 0.99)[1])  # too few for 99 %


def test_outliers_are_counted_and_noted() -> None:
    walls = [10_000 + 10 * i for i in range(30)] + [40_000]
    assert stats.stats(walls)["outliers"] == 1
    assert stats.outliers([5.0] * 10) == 0  # MAD 0: nothing to call far
    s = Series("m.wasm", "wasmtime", "n.bench", "alone", walls)
    text = tables.table_text(tables.summary({("m.wasm", "wasmtime", "n.bench", "alone"): s}), [], 0)
    assert "robust standard deviations" in text


def test_full_engine_names_in_the_tables() -> None:
    a = Series("polybench-small-2mm.wasm", "wasmer-j-cl", "node-with-a-long-name.benchmarking", "alone",
               [10_000 + i for i in range(5)])
    b = Series("polybench-small-2mm.wasm", "wasmtime-j", "node-with-a-long-name.benchmarking", "alone",
               [20_000 + i for i in range(5)])
    series = {("m", s.engine, s.runtime, s.kind): s for s in (a, b)}
    rows = tables.compare(series, series, ("wasmtime-j", "wasmer-j-cl"))
    text = tables.compare_text(rows, "engines")
    assert "wasmer-j-cl vs wasmtime-j" in text and "node-with-a-long-name.benchmarking" in text
    assert "polybench-small-2mm.wasm" in text and "0.0079" in text and "faster" in text
    assert "wasmer-j-cl" in tables.table_text(tables.summary(series), [], 0)
