"""Student's t interval and p-value of paired differences, against scipy (the reference implementation)."""

from __future__ import annotations

import random

import pytest

from wrim.study.stats import paired_difference, t_cdf, t_quantile

stats = pytest.importorskip("scipy.stats")


@pytest.mark.parametrize("df", [1, 2, 3, 4, 9, 30])
def test_t_distribution_matches_scipy(df: int) -> None:
    for t in (-12.0, -3.0, -0.5, 0.0, 0.7, 2.5, 40.0):
        assert t_cdf(t, df) == pytest.approx(stats.t.cdf(t, df), abs=1e-12)
    for probability in (0.025, 0.5, 0.9, 0.975, 0.995):
        assert t_quantile(probability, df) == pytest.approx(stats.t.ppf(probability, df), abs=1e-8)


@pytest.mark.parametrize("n", [2, 3, 5, 10])
def test_paired_difference_matches_ttest_rel(n: int) -> None:
    rng = random.Random(n)
    reference = [rng.gauss(16, 1) for _ in range(n)]
    values = [r + rng.gauss(1.0, 0.7) for r in reference]
    ours = paired_difference(values, reference)
    theirs = stats.ttest_rel(values, reference)
    interval = theirs.confidence_interval(0.95)
    assert ours.n == n and ours.mean == pytest.approx(sum(values) / n - sum(reference) / n)
    assert ours.p == pytest.approx(theirs.pvalue, rel=1e-9)
    assert (ours.low, ours.high) == (pytest.approx(interval.low, abs=1e-9), pytest.approx(interval.high, abs=1e-9))


def test_verdicts_follow_the_interval_and_n() -> None:
    clear = paired_difference([3.0, 3.2, 2.9, 3.1, 3.0], [1.0, 1.1, 0.9, 1.0, 1.1])
    assert clear.resolved and clear.verdict() == "higher"
    noisy = paired_difference([1.0, -1.0, 2.0, -2.5, 0.2], [0.0] * 5)
    assert not noisy.resolved and noisy.verdict() == "not resolved"
    assert paired_difference([2.0, 2.2, 2.1], [0.0, 0.1, 0.0]).verdict() == "indication, higher"
    single = paired_difference([1.0], [0.0])
    assert single.low is None and single.p is None and single.verdict() == "n = 1: no interval"
    with pytest.raises(ValueError, match="same non-zero length"):
        paired_difference([1.0], [])
