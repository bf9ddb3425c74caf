"""Paired differences over seeds: mean, standard deviation, Student's t interval and p-value, with no scipy.

For runs paired by seed, ``d_s = x_s - r_s`` (a variant minus its reference), ``n`` pairs ([D] see
docs: Evaluation, section Comparing runs):

```text
mean  = (1/n) Σ d_s                     sd = sqrt(Σ (d_s - mean)² / (n - 1))        SE = sd / sqrt(n)
95 % interval:  mean ± t_{0.975, n-1} · SE                 t = mean / SE
p (two-sided) = 2 · (1 - F_{n-1}(|t|))                     F_ν: Student's t distribution function
```

``F_ν(t) = 1 - ½ I_{ν/(ν+t²)}(ν/2, ½)`` for ``t ≥ 0``, with ``I`` the regularised incomplete beta function
(continued fraction, Numerical Recipes §6.4); the quantile is found by bisection. A difference whose interval
contains 0 is *not resolved*; ``n ≤ 3`` is an indication only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["PairedDifference", "paired_difference", "t_cdf", "t_quantile"]


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz), converged to 1e-15."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def _incomplete_beta(a: float, b: float, x: float, y: float) -> float:
    """The regularised incomplete beta function ``I_x(a, b)``, x in [0, 1], given ``y = 1 - x`` computed without
    cancellation by the caller."""
    if x <= 0.0:
        return 0.0
    if y <= 0.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(y)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, y) / b


def t_cdf(t: float, df: int) -> float:
    """Student's t distribution function ``F_df(t)``."""
    square = t * t
    tail = 0.5 * _incomplete_beta(df / 2.0, 0.5, df / (df + square), square / (df + square))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(probability: float, df: int) -> float:
    """The ``probability`` quantile of Student's t with ``df`` degrees of freedom (bisection to 1e-12)."""
    if not 0.0 < probability < 1.0:
        raise ValueError(f"probability must be in (0, 1); got {probability}")
    low, high = -1e6, 1e6
    for _ in range(200):
        middle = (low + high) / 2.0
        if t_cdf(middle, df) < probability:
            low = middle
        else:
            high = middle
        if high - low < 1e-12:
            break
    return (low + high) / 2.0


@dataclass(frozen=True)
class PairedDifference:
    """A paired difference over ``n`` seeds: ``mean``, ``sd``, the 95 % interval ``(low, high)`` and the two-sided
    ``p`` of the paired t-test (``None`` below two pairs, or for identical differences, whose sd is 0)."""

    n: int
    mean: float
    sd: float | None
    low: float | None
    high: float | None
    p: float | None

    @property
    def resolved(self) -> bool:
        """Whether the interval excludes 0 (a difference whose interval contains 0 is "not resolved")."""
        return self.low is not None and (self.low > 0 or self.high < 0)

    def verdict(self) -> str:
        """``"higher"`` / ``"lower"`` / ``"not resolved"``, with ``"indication, "`` in front when ``n ≤ 3``."""
        if self.low is None:
            return f"n = {self.n}: no interval"
        word = ("higher" if self.mean > 0 else "lower") if self.resolved else "not resolved"
        return f"indication, {word}" if self.n <= 3 else word


def paired_difference(values: list[float], reference: list[float], confidence: float = 0.95) -> PairedDifference:
    """The paired difference ``values - reference`` (same seeds, same order) and its t interval and p-value.

    Raises:
        ValueError: the lists differ in length or are empty.
    """
    if len(values) != len(reference) or not values:
        raise ValueError(f"paired values need the same non-zero length; got {len(values)} and {len(reference)}")
    diffs = [x - r for x, r in zip(values, reference)]
    n = len(diffs)
    mean = sum(diffs) / n
    if n < 2:
        return PairedDifference(n, mean, None, None, None, None)
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    if sd == 0.0:
        return PairedDifference(n, mean, 0.0, None, None, None)
    se = sd / math.sqrt(n)
    half = t_quantile(0.5 + confidence / 2.0, n - 1) * se
    p = 2.0 * (1.0 - t_cdf(abs(mean / se), n - 1))
    return PairedDifference(n, mean, sd, mean - half, mean + half, min(1.0, p))
