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

import functools
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


# ---------------------------------------------------------------------------------------------
# The run as the unit: one value per run (its median), judged against other runs' values
#
# Samples within one run share that run's machine state (caches, clock, neighbours), so two
# runs of identical images differ by more than their samples' spread suggests: an A/A pair of
# onnx/cpu runs here gave p50 latency 21.7 ms then 29.2 ms, "p < 0.001" over 92 vs 67 pooled
# samples. Between runs the unit is the run.
#
# Runs vary log-normally around their level (a model checked on the A/A runs of
# benchmarks/false_alarms.py), so everything below works on log run values:
#
# - An outlier run (a neighbour's build, a cold cache) is left out before the spread is
#   estimated: from MIN_SPREAD_RUNS runs on, the run farthest from the median is dropped when
#   the runs without it predict it with p <= OUTLIER_ALPHA (two-sided, Bonferroni over the runs:
#   an externally studentized residual, Grubbs' test in its leave-one-out form); at most one run
#   in four. A quiet run is dropped about 1 time in 100 series alone, 1 or 2 in 1000 once a
#   prior lends degrees; a x2 run at 3-10% noise then nearly always (at 10% under a 4-degree
#   prior, 88%; alone, five runs drop it 99%, 76%, 23% of the time at 3%, 5%, 10%). One
#   outlier run then neither inflates the spread (blinding the test) nor the threshold, as
#   the largest ratio between two runs did (a single x2 run hid a +30% step).
# - Five runs tell little of their own spread (4 degrees of freedom: a t quantile of 4.6 where
#   the normal's is 2.6 at 1%). The series one run judges (every cell's build time, latencies,
#   cold start: on log values one scale) borrow each other's: each series' variance is shrunk
#   towards a prior fitted to all of them by empirical Bayes (limma's moderated t, Smyth 2004),
#   which pools them when their spreads agree (at most MAX_PRIOR_DF degrees) and leaves each
#   its own when they do not; the test then has the prior's degrees of freedom too.
# - The test is a prediction test: (mean log current - mean log baseline) over its standard
#   error sqrt(variance * (1/j + 1/k)) follows Student's t. The caller corrects for the number
#   of metrics one run judges (`false_discovery`).

# Runs before a history's own spread replaces the default threshold, and before one outlier
# run may be left out (4 runs then remain to show the spread).
MIN_SPREAD_RUNS = 5
# Runs before the run-level test is tried (3 values give the t-distribution 2 degrees).
MIN_TEST_RUNS = 3
# How unlikely a run must be, among its runs, to be left out as an outlier. A stricter 0.001
# (compare's tests on benchmarks/false_alarms.py's whole runs, 1000 quiet runs a scenario,
# the same draws) left quiet runs failing about as often (the nightly shape 1.6% vs 1.7%;
# 12 cells 0.1-0.9% vs 0.5-1.1%: a quiet run is rarely left out once a prior lends degrees,
# 0.1-0.2% of series) but kept a x2 run at CV 10% under a 4-degree prior
# 69% of the time (12% at 0.01), and a x1.3 step behind one outlier run was caught 36% of the
# time, not 43%. Without a prior (fewer than MIN_PRIOR_SERIES series), a x2 run at CV 10% is
# left out only 23% of the time even at 0.01: five runs alone cannot tell.
OUTLIER_ALPHA = 0.01
# The threshold a history's own runs set: exp(SPREAD_SDS x their standard deviation of log
# values), the change a single quiet run exceeds about once in 40 (one-sided).
SPREAD_SDS = 2.0
# Series needed to fit a prior to their variances (fewer: each keeps its own): every time
# series one run judges, all cells and timed metrics together (4 cells x 3 a nightly run).
MIN_PRIOR_SERIES = 5
# The most degrees of freedom a prior may claim. From a dozen series of 4 degrees, limma's
# moments cannot tell 12 from infinity (series of CV 3-10%: "one variance fits all" 21% of the
# time), and pooling fully then judges a 10% series by a 6% spread: quiet runs of such series
# failed 3.1% of the time, 1.9% with this cap (benchmarks/false_alarms.py). A lower cap buys
# little: 8 or 6 degrees left the nightly shape's quiet runs failing 1.5% or 1.3% (1.6% at 12,
# all at OUTLIER_ALPHA 0.001) while a x1.3 step at CV 5% in 12 cells was caught 73% or 66%
# of the time, not 80%.
MAX_PRIOR_DF = 12.0


@dataclass(frozen=True)
class Prior:
    """What the time series of one run say of each other's run-to-run variance (of log
    values): the prior variance and its degrees of freedom (0: nothing borrowed; MAX_PRIOR_DF:
    as much as a dozen series can tell), and pooled_df, every series' degrees of freedom
    together, which caps a series' own (a prior fitted to 12 series of 4 degrees knows no
    more than their 48)."""

    variance: float = 0.0
    df: float = 0.0
    pooled_df: float = math.inf


NO_PRIOR = Prior()


@dataclass(frozen=True)
class RunLevel:
    """A baseline's runs as the test sees them: the mean and the (moderated) variance of the
    log values of the runs kept, with its degrees of freedom, and how many runs were left out."""

    mean: float
    variance: float
    df: float
    runs: int
    outliers: int


def _posterior(variance: float, df: float, prior: Prior) -> tuple[float, float]:
    """A series' variance shrunk towards the prior, and its degrees of freedom."""
    if prior.df == 0:
        return variance, df
    shrunk = (prior.df * prior.variance + df * variance) / (prior.df + df)
    return shrunk, min(prior.df + df, prior.pooled_df)


def _without_outliers(logs: list[float], prior: Prior) -> list[float]:
    """The runs less the outliers: while the run farthest from the median is predicted by the
    others with p <= OUTLIER_ALPHA (two-sided, x the runs), at most one run in four."""
    from scipy import stats as sps

    kept = list(logs)
    while len(kept) >= MIN_SPREAD_RUNS and len(logs) - len(kept) < len(logs) // 4:
        center = statistics.median(kept)
        far = max(range(len(kept)), key=lambda i: abs(kept[i] - center))
        rest = kept[:far] + kept[far + 1 :]
        variance, df = _posterior(statistics.variance(rest), len(rest) - 1, prior)
        distance = abs(kept[far] - statistics.fmean(rest))
        if variance == 0:
            if distance == 0:
                break
            p = 0.0
        else:
            scale = math.sqrt(variance * (1 + 1 / len(rest)))
            p = 2 * float(sps.t.sf(distance / scale, df)) * len(kept)
        if p > OUTLIER_ALPHA:
            break
        kept = rest
    return kept


def _logs(values: Sequence[float]) -> list[float] | None:
    found = _finite(values)
    if not found or min(found) <= 0:
        return None
    return [math.log(x) for x in found]


def run_level(values: Sequence[float], prior: Prior = NO_PRIOR) -> RunLevel | None:
    """The runs' level and spread on the log scale, outlier runs left out; None below
    MIN_TEST_RUNS runs or with a value <= 0."""
    logs = _logs(values)
    if logs is None or len(logs) < MIN_TEST_RUNS:
        return None
    kept = _without_outliers(logs, prior)
    variance, df = _posterior(statistics.variance(kept), len(kept) - 1, prior)
    return RunLevel(statistics.fmean(kept), variance, df, len(kept), len(logs) - len(kept))


def run_prior(series: Sequence[Sequence[float]]) -> Prior:
    """A prior for the run-to-run variances of `series` (each one time metric's run values in
    one cell: all of those a run judges), fitted by limma's moments on log variances (Smyth
    2004, `fitFDist`), each series' outlier runs left out (found with a first prior fitted to
    the series less their most extreme run, each variance divided by what that trimming takes
    from a normal sample's).
    NO_PRIOR below MIN_PRIOR_SERIES series of MIN_TEST_RUNS runs or more."""
    found = [logs for values in series if (logs := _logs(values)) and len(logs) >= MIN_TEST_RUNS]
    if len(found) < MIN_PRIOR_SERIES:
        return NO_PRIOR
    first = _fit_prior([_trimmed_variance(logs) for logs in found])
    kept = [_without_outliers(logs, first) for logs in found]
    return _fit_prior([(statistics.variance(logs), len(logs) - 1) for logs in kept])


def _trimmed_variance(logs: list[float]) -> tuple[float, int]:
    """The variance of the runs less the one farthest from their median (from MIN_SPREAD_RUNS
    runs on), made unbiased for normal runs, and its degrees of freedom."""
    if len(logs) < MIN_SPREAD_RUNS:
        return statistics.variance(logs), len(logs) - 1
    center = statistics.median(logs)
    far = max(range(len(logs)), key=lambda i: abs(logs[i] - center))
    rest = logs[:far] + logs[far + 1 :]
    return statistics.variance(rest) / _trimming_bias(len(logs)), len(rest) - 1


# Normal values drawn for `_trimming_bias`, at most: its error falls with draws x runs, so a
# long history (1,000 runs) needs no 20,000 x 1,000 of them (4 s and 460 MB): 1,000 x 1,000 are
# within 0.2%, in 0.1 s.
_TRIMMING_VALUES = 1_000_000


@functools.lru_cache
def _trimming_bias(runs: int) -> float:
    """E[variance of `runs` standard normal values less the one farthest from their median]:
    a seeded simulation (20,000 samples below 50 runs: within 2% for 5 runs; fewer beyond, each
    with more values, at most _TRIMMING_VALUES in all), the same on every call."""
    samples = max(1_000, min(20_000, _TRIMMING_VALUES // runs))
    draws = np.random.default_rng(0).normal(size=(samples, runs))
    far = np.argmax(np.abs(draws - np.median(draws, axis=1, keepdims=True)), axis=1)
    rest = draws[np.arange(runs)[None, :] != far[:, None]].reshape(len(draws), runs - 1)
    return float(np.mean(np.var(rest, axis=1, ddof=1)))


def _fit_prior(pairs: Sequence[tuple[float, int]]) -> Prior:
    """limma's `fitFDist` without covariates, on (variance, degrees of freedom) pairs: log
    sample variances, less their expectation under the chi-square, have a variance that says
    how far the true variances differ."""
    from scipy import special

    pairs = [(variance, df) for variance, df in pairs if variance > 0]
    if len(pairs) < MIN_PRIOR_SERIES:
        return NO_PRIOR
    variances = np.array([variance for variance, _ in pairs])
    dfs = np.array([df for _, df in pairs], dtype=np.float64)
    e = np.log(variances) - special.digamma(dfs / 2) + np.log(dfs / 2)
    spread = float(np.var(e, ddof=1) - np.mean(special.polygamma(1, dfs / 2)))
    pooled = float(dfs.sum())
    if spread <= 0:  # no sign that their variances differ: one variance, pooled
        return Prior(float(np.sum(dfs * variances) / pooled), MAX_PRIOR_DF, pooled)
    df = 2 * _trigamma_inverse(spread)
    variance = float(np.exp(np.mean(e) + special.digamma(df / 2) - np.log(df / 2)))
    return Prior(variance, min(df, MAX_PRIOR_DF), pooled)


def _trigamma_inverse(x: float) -> float:
    """y with trigamma(y) = x, by limma's Newton iteration (trigammaInverse)."""
    from scipy import special

    if x > 1e7:
        return 1 / math.sqrt(x)
    if x < 1e-6:
        return 1 / x
    y = 0.5 + 1 / x
    for _ in range(50):
        tri = float(special.polygamma(1, y))
        step = tri * (1 - tri / x) / float(special.polygamma(2, y))
        y += step
        if -step / y < 1e-8:
            break
    return y


def run_spread(values: Sequence[float], prior: Prior = NO_PRIOR) -> float | None:
    """The A/A spread of comparable runs: exp(SPREAD_SDS x their standard deviation of log
    values), outlier runs left out, the variance moderated by `prior`; None below
    MIN_SPREAD_RUNS runs or with a value <= 0."""
    if len(values) < MIN_SPREAD_RUNS:
        return None
    level = run_level(values, prior)
    return None if level is None else math.exp(SPREAD_SDS * math.sqrt(level.variance))


def run_p_value(
    history: Sequence[float], value: float, alternative: Alternative, prior: Prior = NO_PRIOR
) -> float | None:
    """One-sided p-value that a run like those of `history` lies as far out as `value`.

    A prediction test on log values: with k runs kept (outliers left out, see `run_level`) of
    mean m and standard deviation s, (log value - m) / (s * sqrt(1 + 1/k)) follows Student's t
    with k - 1 degrees of freedom (more with a prior) when runs vary log-normally. Rank tests
    cannot judge one run against a few (1 against 5: p >= 1/6); this one can, at the price of
    that assumption. None below MIN_TEST_RUNS runs or with a value <= 0; identical history
    values give p 0 for any other value, 1 for the same.
    """
    return runs_p_value(history, [value], alternative, prior)


def runs_p_value(
    history: Sequence[float],
    current: Sequence[float],
    alternative: Alternative,
    prior: Prior = NO_PRIOR,
) -> float | None:
    """`run_p_value` for the mean log value of several current runs: the spread is the
    history's alone, sqrt(1/j + 1/k) its scale for j current runs."""
    level, new = run_level(history, prior), _logs(current)
    if level is None or new is None:
        return None
    distance = statistics.fmean(new) - level.mean
    if alternative == "less":
        distance = -distance
    if level.variance == 0:
        return 1.0 if distance <= 0 else 0.0
    statistic = distance / math.sqrt(level.variance * (1 / len(new) + 1 / level.runs))
    from scipy import stats as sps

    return float(sps.t.sf(statistic, level.df))


def adjusted_p_values(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg's adjusted p-values: each is a discovery at any false discovery rate
    it is at most; with one p-value, itself."""
    if not p_values:
        return []
    from scipy import stats as sps

    adjusted = sps.false_discovery_control(np.asarray(p_values, dtype=np.float64), method="bh")
    return [float(p) for p in np.atleast_1d(adjusted)]


def false_discovery(p_values: Sequence[float], alpha: float = 0.05) -> list[bool]:
    """Which of `p_values` are discoveries with the false discovery rate held to alpha
    (Benjamini-Hochberg): what a run judging many series at once needs, as each series tested
    at alpha alone would fail one quiet night in 1 / (alpha * series). On a quiet run (every
    series unchanged) that is the chance that any series is called changed."""
    return [p <= alpha + _P_TOLERANCE for p in adjusted_p_values(p_values)]
