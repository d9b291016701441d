"""Statistics of raw timing samples: summaries, quantiles, their intervals, significance.

Build times come in 1 to 5 samples, cold starts in 3, latencies in 30 or more a batch size.
Nothing here assumes a distribution: timings are skewed (a slow outlier is common, a fast one
is not), so every interval is an order-statistic interval, whose coverage follows from the
binomial distribution alone, and the significance test is Mann-Whitney's rank test.

Ideas from airspeed-velocity (asv_runner/statistics.py `quantile_ci`, asv/_stats.py
`is_different`): equal-tailed order-statistic intervals, and a rank test only where the
sample sizes let it reach the threshold, with a range comparison below that.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:  # scipy.stats takes ~1 s to import: only the tests that need it do
    from scipy import stats as sps

from buildbench.record import CiMethod, Interval, Quantiles, Summary

CI_LEVEL = 0.95
# Below this many samples a side, the rank test cannot say anything useful (3 vs 3 is the
# smallest design whose one-sided exact p-value reaches 0.05), so ranges are compared instead.
MIN_RANK_TEST_SAMPLES = 3
# With ties the exact U distribution does not apply; the permutation distribution of U does. It
# is enumerated while the number of distinct splits stays this small (9 vs 9: 48,620, 0.3 s),
# and sampled beyond (a seeded Monte Carlo p-value, (hits + 1) / (draws + 1), which stays valid):
# the normal approximation is anti-conservative there (9 vs 9 with ties: 0.044, exact 0.054).
MAX_EXACT_PERMUTATIONS = 50_000
PERMUTATION_DRAWS = 9_999
PERMUTATION_SEED = 0
# p-values from sums of probabilities (1/20 for 3 vs 3) may land a rounding error above alpha.
_P_TOLERANCE = 1e-9

Alternative = Literal["less", "greater"]
SignificanceMethod = Literal["mann-whitney-u", "interval-overlap", "no-data"]


def _finite(samples: Sequence[float]) -> list[float]:
    """The samples as floats; NaN or infinite timings mean a bug upstream, not a slow run."""
    values = [float(x) for x in samples]
    if not all(math.isfinite(x) for x in values):
        raise ValueError("samples must be finite numbers")
    return values


# ---------------------------------------------------------------------------------------------
# Quantiles and their order-statistic intervals


def quantile(samples: Sequence[float], q: float) -> float:
    """The q-quantile by linear interpolation between order statistics (Hyndman-Fan type 7).

    Type 7 is the default of numpy, pandas, R and spreadsheets' PERCENTILE.INC, so a figure
    here can be checked with any of them; its median of an even sample is the mean of the two
    middle values, as statistics.median's. Nearest-rank would only move p99 by less than one
    sample's spacing and would surprise everyone who checks.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be within [0, 1], got {q}")
    values = _finite(samples)
    if not values:
        raise ValueError("quantile of no samples")
    return float(np.quantile(values, q, method="linear"))


def _order_statistic_ranks(n: int, q: float, level: float) -> tuple[int, int]:
    """1-based ranks (r, s) of the equal-tailed interval [x(r), x(s)] for the q-quantile.

    With K ~ Binomial(n, q) the number of samples below the true quantile, the interval misses
    below when K < r and above when K >= s, so each tail is held to (1 - level) / 2: r is the
    largest rank with P(K <= r - 1) <= tail, s the smallest with P(K >= s) <= tail. For the
    median this is the narrowest symmetric pair. A tail no rank can hold (too few samples) falls
    back to the extreme sample, and the caller reports the coverage actually achieved.
    """
    tail = (1.0 - level) / 2.0 + _P_TOLERANCE
    pmf = _binomial_pmf(n, q)
    below = list(itertools.accumulate(pmf))  # below[k] = P(K <= k)
    above = list(itertools.accumulate(reversed(pmf)))[::-1]  # above[k] = P(K >= k)
    low_ok = [r for r in range(1, n + 1) if below[r - 1] <= tail]
    high_ok = [s for s in range(1, n + 1) if above[s] <= tail]
    r = max(low_ok) if low_ok else 1
    s = min(high_ok) if high_ok else n
    return r, max(r, s)


def _binomial_pmf(n: int, q: float) -> list[float]:
    """P(K = k) for k = 0..n, K ~ Binomial(n, q), through log-gamma (no overflow at large n).
    Plain Python: a run's results need it, and scipy.stats alone takes ~1 s to import."""
    log_q, log_p = math.log(q), math.log1p(-q)
    top = math.lgamma(n + 1)
    return [
        math.exp(top - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * log_q + (n - k) * log_p)
        for k in range(n + 1)
    ]


def _coverage(n: int, q: float, r: int, s: int) -> float:
    """P(x(r) <= true q-quantile <= x(s)) = P(r <= K <= s - 1) for continuous timings."""
    return math.fsum(_binomial_pmf(n, q)[r:s])


def quantile_interval(
    samples: Sequence[float], q: float, level: float = CI_LEVEL
) -> tuple[float, float, float]:
    """(low, high, coverage): an order-statistic confidence interval for the q-quantile.

    Distribution-free: it assumes only independent samples. Where n is too small for `level`
    the interval widens to the extreme samples and `coverage` says what it really is (the
    p99 of 30 samples: [x(28), x(30)] at 26%), rather than pretending.
    """
    if not 0.0 < q < 1.0:
        raise ValueError(f"q must be within (0, 1), got {q}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be within (0, 1), got {level}")
    values = sorted(_finite(samples))
    if not values:
        raise ValueError("interval of no samples")
    n = len(values)
    r, s = _order_statistic_ranks(n, q, level)
    return values[r - 1], values[s - 1], _coverage(n, q, r, s)


# ---------------------------------------------------------------------------------------------
# Summary of a handful of samples (build times, cold starts)


def summarize(samples: Sequence[float]) -> Summary:
    """Median, mean, range, stddev and a confidence interval of the median.

    The interval: from 3 samples on, the order-statistic interval at 95% (n = 10: [x(2), x(9)]
    at 97.9%); for 3 to 5 samples no pair of ranks reaches 95%, so it is [min, max] at its
    actual coverage 1 - 2 * 0.5**n (75% for 3). Below 3 samples [min, max] is shown as the
    spread with no level: with 2 samples it would claim only 50%, which helps nobody.
    """
    values = _finite(samples)
    n = len(values)
    if n == 0:
        return Summary(n=0)
    lo, hi = min(values), max(values)
    if n >= 3:
        ci_low, ci_high, level = quantile_interval(values, 0.5)
        method: CiMethod = "order-statistic"
        ci_level: float | None = level
    else:
        ci_low, ci_high, ci_level, method = lo, hi, None, "min-max"
    return Summary(
        n=n,
        median=statistics.median(values),
        mean=statistics.fmean(values),
        min=lo,
        max=hi,
        stddev=statistics.stdev(values) if n >= 2 else None,
        ci_low=ci_low,
        ci_high=ci_high,
        ci_level=ci_level,
        ci_method=method,
    )


def coefficient_of_variation(samples: Sequence[float]) -> float | None:
    """stddev / |mean|: the noise of a cell in relative terms; None below 2 samples or mean 0."""
    values = _finite(samples)
    if len(values) < 2:
        return None
    mean = statistics.fmean(values)
    if mean == 0:
        return None
    return statistics.stdev(values) / abs(mean)


# ---------------------------------------------------------------------------------------------
# Latency quantiles


def _estimate(values: Sequence[float], q: float) -> tuple[float, Interval]:
    low, high, level = quantile_interval(values, q)
    return quantile(values, q), Interval(low, high, level)


def latency_quantiles(samples: Sequence[float]) -> Quantiles:
    """p50, p95, p99 (type 7) with their 95% order-statistic intervals; all None for no samples."""
    values = _finite(samples)
    if not values:
        return Quantiles(n=0)
    p50, p50_ci = _estimate(values, 0.50)
    p95, p95_ci = _estimate(values, 0.95)
    p99, p99_ci = _estimate(values, 0.99)
    return Quantiles(len(values), p50, p95, p99, p50_ci, p95_ci, p99_ci)


# ---------------------------------------------------------------------------------------------
# Significance of a change between two sets of samples


@dataclass(frozen=True)
class Significance:
    """Whether current differs from baseline beyond noise; method names the rule that decided.

    method: "mann-whitney-u" (both sides >= 3 samples; p_value is one-sided in the direction
    of the change of medians), "interval-overlap" (a side with 1 or 2 samples; no p-value),
    or "no-data" (a side with no samples).
    """

    significant: bool
    p_value: float | None
    method: SignificanceMethod


def significance(
    baseline: Sequence[float], current: Sequence[float], alpha: float = 0.05
) -> Significance:
    """Whether `current` moved away from `baseline` beyond their noise.

    Both sides >= 3 samples: Mann-Whitney U, one-sided in the direction the median moved,
    significant when p <= alpha. One-sided because the question is always "did it get slower
    (or faster) as the medians say", and because with 3 vs 3 the two-sided exact p-value
    cannot go below 0.1. Equal medians give no direction: not significant, no p-value.

    A side with 1 or 2 samples: significant when the [min, max] ranges do not overlap (ranges
    that touch overlap). With one sample a side nothing is known of the noise and this is just
    "the values differ": callers gate on a ratio threshold as well, which is what guards a
    single sample against noise (as asv's compare does).
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be within (0, 1), got {alpha}")
    base, cur = _finite(baseline), _finite(current)
    if not base or not cur:
        return Significance(False, None, "no-data")
    if min(len(base), len(cur)) < MIN_RANK_TEST_SAMPLES:
        apart = max(base) < min(cur) or max(cur) < min(base)
        return Significance(apart, None, "interval-overlap")
    base_median, cur_median = statistics.median(base), statistics.median(cur)
    if base_median == cur_median:
        return Significance(False, None, "mann-whitney-u")
    alternative: Alternative = "greater" if cur_median > base_median else "less"
    p = _mann_whitney_p(cur, base, alternative)
    return Significance(p <= alpha + _P_TOLERANCE, p, "mann-whitney-u")


def _mann_whitney_p(x: list[float], y: list[float], alternative: Alternative) -> float:
    """One-sided p-value of U; ties (identical build times are common) are handled exactly.

    scipy's 'exact' ignores ties and its normal approximation is anti-conservative for small
    samples (3 identical vs 3 identical gives 0.023, the true conditional p is 1/20), so with
    ties the permutation distribution of U is used: every split while there are at most
    MAX_EXACT_PERMUTATIONS, else PERMUTATION_DRAWS seeded draws (the same samples always give
    the same p). Needs scipy >= 1.13 (mannwhitneyu with a PermutationMethod).
    """
    from scipy import stats as sps

    has_ties = len(set(x) | set(y)) < len(x) + len(y)
    method: Literal["auto"] | sps.PermutationMethod = "auto"
    if has_ties:
        splits = math.comb(len(x) + len(y), len(x))
        draws = splits if splits <= MAX_EXACT_PERMUTATIONS else PERMUTATION_DRAWS
        method = sps.PermutationMethod(n_resamples=draws, random_state=PERMUTATION_SEED)
    result = sps.mannwhitneyu(x, y, alternative=alternative, method=method)
    return float(result.pvalue)


# ---------------------------------------------------------------------------------------------
# The run as the unit: one value per run (its median), judged against other runs' values
#
# Samples within one run share that run's machine state (caches, clock, neighbours), so two
# runs of identical images differ by more than their samples' spread suggests: an A/A pair of
# onnx/cpu runs here gave p50 latency 21.7 ms then 29.2 ms, "p < 0.001" over 92 vs 67 pooled
# samples. Between runs the unit is the run.

# Runs of a history before its own A/A spread replaces the default threshold.
MIN_SPREAD_RUNS = 5
# Runs before the run-level test is tried (3 values give the t-distribution 2 degrees).
MIN_TEST_RUNS = 3


def run_spread(values: Sequence[float]) -> float | None:
    """The A/A spread of comparable runs: the largest ratio between two of their values (max /
    min), the biggest difference identical runs have shown; None below MIN_SPREAD_RUNS runs or
    with a value <= 0."""
    found = _finite(values)
    if len(found) < MIN_SPREAD_RUNS or min(found) <= 0:
        return None
    return max(found) / min(found)


def run_p_value(history: Sequence[float], value: float, alternative: Alternative) -> float | None:
    """One-sided p-value that a run like those of `history` lies as far out as `value`.

    A prediction test on log values: with k runs of mean m and standard deviation s,
    (log value - m) / (s * sqrt(1 + 1/k)) follows Student's t with k - 1 degrees of freedom
    when runs vary log-normally. Rank tests cannot judge one run against a few (1 against 5:
    p >= 1/6); this one can, at the price of that assumption. None below MIN_TEST_RUNS runs or
    with a value <= 0; identical history values give p 0 for any other value, 1 for the same.
    """
    return runs_p_value(history, [value], alternative)


def runs_p_value(
    history: Sequence[float], current: Sequence[float], alternative: Alternative
) -> float | None:
    """`run_p_value` for the mean log value of several current runs: the spread is the
    history's alone (k - 1 degrees of freedom), sqrt(1/j + 1/k) its scale for j current runs."""
    found, new = _finite(history), _finite(current)
    if len(found) < MIN_TEST_RUNS or not new or min(found + new) <= 0:
        return None
    logs = np.log(found)
    k, mean, sd = len(logs), float(np.mean(logs)), float(np.std(logs, ddof=1))
    distance = float(np.mean(np.log(new))) - mean
    if alternative == "less":
        distance = -distance
    if sd == 0:
        return 1.0 if distance <= 0 else 0.0
    statistic = distance / (sd * math.sqrt(1 / len(new) + 1 / k))
    from scipy import stats as sps

    return float(sps.t.sf(statistic, k - 1))


def false_discovery(p_values: Sequence[float], alpha: float = 0.05) -> list[bool]:
    """Which of `p_values` are discoveries with the false discovery rate held to alpha
    (Benjamini-Hochberg): what a run judging many series at once needs, as each series tested
    at alpha alone would fail one quiet night in 1 / (alpha * series)."""
    if not p_values:
        return []
    from scipy import stats as sps

    adjusted = sps.false_discovery_control(np.asarray(p_values, dtype=np.float64), method="bh")
    return [bool(p <= alpha + _P_TOLERANCE) for p in np.atleast_1d(adjusted)]
