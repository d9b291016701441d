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
import numpy.typing as npt

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
# Without ties scipy's exact U distribution costs (n1 * n2)^2 / 2 steps where U is central (8 vs
# 5,000: 0.2 s; 8 vs 40,000: 21 s): exact up to this product, sampled beyond.
MAX_EXACT_U = 20_000
# The tie-corrected normal approximation (with continuity correction) replaces the permutation
# distribution once both sides have this many samples and the pooled samples this many distinct
# values, counted as the tie correction counts them, sqrt((N^3 - N) / sum(t^3 - t)) over tie
# groups of t (k equally common values count k, one value holding half the samples about 3).
# Measured against 100,000-draw permutation p-values of data sets near alpha: from 20 a side
# and 20 such values its p is within the draws' own error of the permutation p (within 2-5%
# from 20 vs 20 to 1,000 vs 1,000 and 20 vs 40,000); with fewer distinct values it stays
# anti-conservative however many samples (two values: 42% at 30 vs 30, 13% at 1,000 vs 1,000).
NORMAL_MIN_SAMPLES = 20
NORMAL_MIN_DISTINCT = 20
# Tie groups the sampled permutation distribution draws counts of (draws x groups): beyond, the
# normal approximation whatever the ties (a value holding half of over 1,000 samples).
MAX_TIE_GROUPS = 1_000
# Elements of a batch of sampled permutations (int64: 8 MB).
_DRAW_BATCH_ELEMENTS = 1_000_000
# p-values from sums of probabilities (1/20 for 3 vs 3) may land a rounding error above alpha.
P_TOLERANCE = 1e-9

Alternative = Literal["less", "greater"]
SignificanceMethod = Literal["mann-whitney-u", "interval-overlap", "no-data"]


def finite(samples: Sequence[float]) -> list[float]:
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
    values = finite(samples)
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
    tail = (1.0 - level) / 2.0 + P_TOLERANCE
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
    values = sorted(finite(samples))
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
    values = finite(samples)
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
    values = finite(samples)
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
    values = finite(samples)
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
    base, cur = finite(baseline), finite(current)
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
    return Significance(p <= alpha + P_TOLERANCE, p, "mann-whitney-u")


def _mann_whitney_p(x: list[float], y: list[float], alternative: Alternative) -> float:
    """One-sided p-value of U, in memory and time bounded for any sample count.

    While a side has fewer than NORMAL_MIN_SAMPLES samples, or the pooled samples have fewer
    than NORMAL_MIN_DISTINCT distinct values (ties: identical build times, latencies rounded to
    the microsecond of a fast model), U's own distribution: scipy's exact one without ties
    (n1 * n2 up to MAX_EXACT_U), every split of the permutation distribution with ties (up to
    MAX_EXACT_PERMUTATIONS), else PERMUTATION_DRAWS seeded draws of it (`_sampled_p`: the same
    samples always give the same p). scipy's 'exact' ignores ties and its normal approximation
    is anti-conservative there (3 identical vs 3 identical gives 0.023, the true conditional p
    is 1/20). Beyond, the tie-corrected normal approximation, which is then accurate (see
    NORMAL_MIN_SAMPLES). Needs scipy >= 1.13 (mannwhitneyu with a PermutationMethod).
    """
    from scipy import stats as sps

    pooled = np.asarray(x + y, dtype=np.float64)
    _, group, counts = np.unique(pooled, return_inverse=True, return_counts=True)
    n, small = len(pooled), min(len(x), len(y))
    ties = float(np.sum(counts.astype(np.float64) ** 3 - counts))
    distinct = math.inf if ties == 0 else math.sqrt((float(n) ** 3 - n) / ties)
    method: Literal["exact", "asymptotic"] | sps.PermutationMethod
    if small >= NORMAL_MIN_SAMPLES and (
        distinct >= NORMAL_MIN_DISTINCT or len(counts) > MAX_TIE_GROUPS
    ):
        method = "asymptotic"
    elif ties == 0 and len(x) * len(y) <= MAX_EXACT_U:
        method = "exact"
    elif ties and (splits := _splits(n, len(x))) is not None:
        method = sps.PermutationMethod(n_resamples=splits, random_state=PERMUTATION_SEED)
    else:
        return _sampled_p(len(x), group, counts, alternative)
    result = sps.mannwhitneyu(x, y, alternative=alternative, method=method)
    return float(result.pvalue)


def _splits(n: int, k: int) -> int | None:
    """C(n, k), the number of splits, while at most MAX_EXACT_PERMUTATIONS; else None, without
    computing it (C(80,000, 40,000) has 24,000 digits)."""
    log_splits = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
    if log_splits > math.log(MAX_EXACT_PERMUTATIONS) + 1:
        return None
    splits = math.comb(n, k)
    return splits if splits <= MAX_EXACT_PERMUTATIONS else None


def _sampled_p(
    n_x: int, group: npt.NDArray[np.intp], counts: npt.NDArray[np.intp], alternative: Alternative
) -> float:
    """The permutation p-value of U from PERMUTATION_DRAWS seeded random splits of the pooled
    samples (the first `n_x` are x; `group` is each one's tie group, `counts` their sizes).

    U moves with the rank sum of either side, so only the smaller side's is drawn: as positions
    (Floyd's sampling, draws x side) while that side is below NORMAL_MIN_SAMPLES, else as how
    many of it fall in each tie group (multivariate hypergeometric, draws x groups, groups up to
    MAX_TIE_GROUPS), in batches of _DRAW_BATCH_ELEMENTS: never draws x all the samples.
    Ranks are doubled average ranks, integers, so ties with the observed sum compare exactly.
    """
    n = len(group)
    doubled_ranks = 2 * np.cumsum(counts) - counts + 1  # twice each tie group's average rank
    doubled = doubled_ranks[group]
    side = slice(0, n_x) if n_x <= n - n_x else slice(n_x, n)
    size = min(n_x, n - n_x)
    observed = int(doubled[side].sum())
    # U of x grows with x's rank sum, and shrinks as y's grows.
    sign = 1 if (alternative == "greater") == (side.start == 0) else -1
    rng = np.random.default_rng(PERMUTATION_SEED)
    by_groups = size >= NORMAL_MIN_SAMPLES
    width = len(counts) if by_groups else size
    batch = max(1, _DRAW_BATCH_ELEMENTS // width)
    hits = 0
    for start in range(0, PERMUTATION_DRAWS, batch):
        draws = min(batch, PERMUTATION_DRAWS - start)
        if by_groups:
            sums = rng.multivariate_hypergeometric(counts, size, size=draws) @ doubled_ranks
        else:
            sums = doubled[_random_subsets(n, size, draws, rng)].sum(axis=1)
        hits += int(np.count_nonzero(sign * sums >= sign * observed))
    return (hits + 1) / (PERMUTATION_DRAWS + 1)


def _random_subsets(
    n: int, size: int, draws: int, rng: np.random.Generator
) -> npt.NDArray[np.int64]:
    """`draws` uniformly random subsets of `size` of range(n), as rows (Floyd's algorithm)."""
    chosen = np.empty((draws, size), dtype=np.int64)
    for k, top in enumerate(range(n - size, n)):
        pick = rng.integers(0, top + 1, size=draws)
        taken = (chosen[:, :k] == pick[:, None]).any(axis=1)
        chosen[:, k] = np.where(taken, top, pick)
    return chosen
