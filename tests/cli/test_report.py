"""manage.py report's statistics: the 99 % interval of the median, the Mann-Whitney verdict."""
from __future__ import annotations

import math
import random

from benchmarking.analysis import stats as report


def test_median_ci_covers_and_narrows() -> None:
    rng = random.Random(1)
    xs = sorted(rng.gauss(100, 5) for _ in range(200))
    lo, hi = report.median_ci(xs)
    assert lo < report.quantile(xs, 0.5) < hi and hi - lo < 3
    assert all(math.isnan(v) for v in report.median_ci([1.0, 2.0, 3.0]))  # too few for 99 %
    # n = 8: the order statistics x(1)..x(8) cover 99.2 %: the whole sample
    assert report.median_ci([float(i) for i in range(8)]) == (0.0, 7.0)
    # the coverage over many draws is at least the level
    hits = 0
    for _ in range(300):
        ys = sorted(rng.expovariate(1.0) for _ in range(30))
        lo, hi = report.median_ci(ys)
        hits += lo <= math.log(2) <= hi
    assert hits / 300 >= 0.97


def test_verdicts() -> None:
    rng = random.Random(2)
    a = [int(rng.gauss(10_000, 300)) for _ in range(30)]
    slow = [int(rng.gauss(11_000, 300)) for _ in range(30)]
    same = [int(rng.gauss(10_000, 300)) for _ in range(30)]
    v, p, ratio = report.verdict(a, slow)
    assert v == "slower" and p < 1e-6 and 1.05 < ratio < 1.15
    assert report.verdict(slow, a)[0] == "faster"
    assert report.verdict(a, same)[0] == "not distinguishable"
    assert report.verdict(a, [1])[0] == "not distinguishable"  # one sample: no test
    assert report.mann_whitney_p([1.0, 1.0, 1.0], [1.0, 1.0, 1.0]) == 1.0
