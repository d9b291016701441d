"""The run as the unit: one value per run (its median), judged against other runs' values.

Used by compare and history for build times, cold starts and latencies between runs; the
statistics of one run's own samples are `stats.py`.
"""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from buildbench.analyze.stats import P_TOLERANCE, Alternative, finite

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
    found = finite(values)
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
    return [p <= alpha + P_TOLERANCE for p in adjusted_p_values(p_values)]
