"""Statistics of raw samples: summaries, order-statistic intervals, quantiles, significance."""

from __future__ import annotations

import json
import math
import re
import statistics
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest
from scipy import stats as sps

from buildbench.analyze.runlevel import (
    MAX_PRIOR_DF,
    NO_PRIOR,
    Prior,
    _trimming_bias,
    false_discovery,
    run_level,
    run_p_value,
    run_prior,
    run_spread,
)
from buildbench.analyze.stats import (
    Interval,
    Quantiles,
    Significance,
    Summary,
    coefficient_of_variation,
    latency_quantiles,
    quantile,
    quantile_interval,
    significance,
    summarize,
)
from buildbench.record import from_json, to_json

T = TypeVar("T")
ONE_TO_TEN = [float(x) for x in range(1, 11)]


def binomial_between(n: int, q: float, r: int, s: int) -> float:
    """P(r <= K <= s - 1) for K ~ Binomial(n, q): the coverage of [x(r), x(s)], by hand."""
    return sum(math.comb(n, k) * q**k * (1 - q) ** (n - k) for k in range(r, s))


# ---------------------------------------------------------------------------------------------
# summarize


def test_summary_of_no_samples_is_all_none() -> None:
    assert summarize([]) == Summary(n=0)
    assert to_json(summarize([])) == {
        "n": 0,
        "median": None,
        "mean": None,
        "min": None,
        "max": None,
        "stddev": None,
        "ci_low": None,
        "ci_high": None,
        "ci_level": None,
        "ci_method": None,
    }


def test_one_sample_has_no_stddev_and_a_min_max_interval_without_level() -> None:
    s = summarize([42.0])
    assert (s.n, s.median, s.mean, s.min, s.max, s.stddev) == (1, 42.0, 42.0, 42.0, 42.0, None)
    assert (s.ci_low, s.ci_high, s.ci_level, s.ci_method) == (42.0, 42.0, None, "min-max")


def test_two_samples_use_min_max_without_level() -> None:
    s = summarize([12.0, 10.0])
    assert s.median == 11.0
    assert s.stddev == pytest.approx(math.sqrt(2))
    assert (s.ci_low, s.ci_high, s.ci_level, s.ci_method) == (10.0, 12.0, None, "min-max")


@pytest.mark.parametrize(
    ("n", "level"), [(3, 0.75), (4, 0.875), (5, 0.9375), (6, 0.96875), (8, 0.9921875)]
)
def test_few_samples_give_min_max_at_its_actual_coverage(n: int, level: float) -> None:
    samples = [float(x) for x in range(n, 0, -1)]
    s = summarize(samples)
    assert (s.ci_low, s.ci_high, s.ci_method) == (1.0, float(n), "order-statistic")
    assert s.ci_level == pytest.approx(1 - 2 * 0.5**n)
    assert s.ci_level == pytest.approx(level)


def test_ten_samples_give_the_second_and_ninth_order_statistics() -> None:
    s = summarize(ONE_TO_TEN[::-1])
    assert (s.n, s.median, s.mean, s.min, s.max) == (10, 5.5, 5.5, 1.0, 10.0)
    assert (s.ci_low, s.ci_high) == (2.0, 9.0)
    assert s.ci_level == pytest.approx(1002 / 1024)  # 97.9%
    assert s.ci_method == "order-statistic"


def test_nine_samples_give_the_second_and_eighth() -> None:
    s = summarize([float(x) for x in range(1, 10)])
    assert (s.ci_low, s.ci_high) == (2.0, 8.0)
    assert s.ci_level == pytest.approx(1 - 2 * 10 / 512)  # 96.1%


def test_identical_samples_have_zero_spread() -> None:
    s = summarize([5.0, 5.0, 5.0])
    assert (s.median, s.stddev, s.ci_low, s.ci_high) == (5.0, 0.0, 5.0, 5.0)


def test_non_finite_samples_are_rejected() -> None:
    with pytest.raises(ValueError, match="finite"):
        summarize([1.0, math.nan])


def test_summary_round_trips_through_json() -> None:
    s = summarize([3.0, 1.0, 2.0, 8.0])
    assert from_json(Summary, json.loads(json.dumps(to_json(s)))) == s
    assert from_json(Summary, {**to_json(s), "later_key": 1}) == s
    assert from_json(Summary, {"n": 0}) == Summary(n=0)


def test_summary_from_json_rejects_unknown_method() -> None:
    with pytest.raises(ValueError, match="ci_method"):
        from_json(Summary, {"n": 3, "ci_method": "bootstrap"})


# ---------------------------------------------------------------------------------------------
# quantile and quantile_interval


def test_quantile_is_type_7_as_numpy_linear() -> None:
    rng = np.random.default_rng(1)
    samples = rng.lognormal(size=37).tolist()
    for q in (0.0, 0.1, 0.5, 0.95, 0.99, 1.0):
        assert quantile(samples, q) == pytest.approx(float(np.quantile(samples, q)))
    assert quantile(ONE_TO_TEN, 0.5) == 5.5
    assert quantile(ONE_TO_TEN, 0.95) == pytest.approx(9.55)


def test_quantile_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        quantile([], 0.5)
    with pytest.raises(ValueError):
        quantile([1.0], 1.5)


def test_median_interval_of_ten() -> None:
    low, high, level = quantile_interval(ONE_TO_TEN, 0.5)
    assert (low, high) == (2.0, 9.0)
    assert level == pytest.approx(0.978515625)


def test_tail_interval_of_few_samples_runs_to_the_max_and_says_so() -> None:
    samples = [float(x) for x in range(30)]
    low, high, level = quantile_interval(samples, 0.99)
    assert (low, high) == (27.0, 29.0)  # x(28) and the max
    assert level == pytest.approx(binomial_between(30, 0.99, 28, 30))  # 26%, not 95%
    assert level == pytest.approx(0.2570, abs=1e-4)


def test_p95_interval_reaches_95_percent_with_enough_samples() -> None:
    samples = [float(x) for x in range(1, 201)]
    low, high, level = quantile_interval(samples, 0.95)
    assert level >= 0.95
    assert low < quantile(samples, 0.95) < high
    assert high < 200.0  # no longer the maximum


def test_interval_coverage_is_what_it_claims() -> None:
    """Simulated: the interval holds the true median of an exponential at its stated level."""
    rng = np.random.default_rng(7)
    true_median = math.log(2)
    hits = 0
    trials = 2000
    for _ in range(trials):
        low, high, level = quantile_interval(rng.exponential(size=10).tolist(), 0.5)
        hits += low <= true_median <= high
    assert level == pytest.approx(0.9785, abs=1e-4)
    assert hits / trials == pytest.approx(level, abs=0.015)


# ---------------------------------------------------------------------------------------------
# latency quantiles


def test_latency_quantiles_of_no_samples() -> None:
    assert latency_quantiles([]) == Quantiles(n=0)
    assert from_json(Quantiles, to_json(Quantiles(n=0))) == Quantiles(n=0)


def test_latency_quantiles_of_one_sample_is_that_sample_with_no_coverage() -> None:
    point = Interval(2.0, 2.0, 0.0)
    assert latency_quantiles([2.0]) == Quantiles(1, 2.0, 2.0, 2.0, point, point, point)


def test_latency_quantiles_of_thirty_samples() -> None:
    samples = [float(x) for x in range(30)]
    qs = latency_quantiles(samples)
    assert qs.n == 30
    assert qs.p50 == 14.5
    assert qs.p95 == pytest.approx(27.55)
    assert qs.p99 == pytest.approx(28.71)
    assert qs.p50_ci is not None
    assert (qs.p50_ci.low, qs.p50_ci.high) == (9.0, 20.0)
    assert qs.p50_ci.level == pytest.approx(binomial_between(30, 0.5, 10, 21))
    assert qs.p95_ci is not None
    assert (qs.p95_ci.low, qs.p95_ci.high) == (25.0, 29.0)
    assert qs.p95_ci.level == pytest.approx(binomial_between(30, 0.95, 26, 30))


def test_latency_quantiles_round_trip_through_json() -> None:
    qs = latency_quantiles(np.random.default_rng(3).lognormal(size=40).tolist())
    data = json.loads(json.dumps(to_json(qs)))
    assert set(data) == {
        "n",
        *(
            f"{p}{suffix}"
            for p in ("p50", "p95", "p99")
            for suffix in ("", "_ci_low", "_ci_high", "_ci_level")
        ),
    }
    assert from_json(Quantiles, data) == qs


# ---------------------------------------------------------------------------------------------
# significance


def assert_significant(result: Significance, p_value: float) -> None:
    assert (result.significant, result.method) == (True, "mann-whitney-u")
    assert result.p_value == pytest.approx(p_value)


def test_tight_one_and_a_half_times_shift_of_five_vs_five_is_significant() -> None:
    base = [100.0, 101.0, 99.0, 102.0, 98.0]
    cur = [150.0, 151.0, 149.0, 152.0, 148.0]
    assert_significant(significance(base, cur), 1 / 252)  # the most extreme of C(10, 5)


def test_improvement_is_tested_in_its_own_direction() -> None:
    base = [150.0, 151.0, 149.0, 152.0, 148.0]
    cur = [100.0, 101.0, 99.0, 102.0, 98.0]
    assert_significant(significance(base, cur), 1 / 252)


def test_overlapping_noisy_samples_with_a_1_3x_median_ratio_are_not_significant() -> None:
    base = [100.0, 160.0, 80.0, 140.0, 95.0]
    cur = [130.0, 70.0, 170.0, 125.0, 150.0]
    assert statistics.median(cur) / statistics.median(base) == pytest.approx(1.3)
    result = significance(base, cur)
    assert result.method == "mann-whitney-u"
    assert not result.significant
    assert result.p_value is not None and result.p_value > 0.1


def test_three_vs_three_fully_separated_reaches_exactly_0_05() -> None:
    assert_significant(significance([10.0, 11.0, 12.0], [13.0, 14.0, 15.0]), 1 / 20)
    assert not significance([10.0, 11.0, 12.0], [13.0, 14.0, 15.0], alpha=0.01).significant


def test_three_vs_three_one_overlap_is_not_significant() -> None:
    result = significance([10.0, 11.0, 14.0], [12.0, 15.0, 16.0])
    assert not result.significant
    assert result.p_value == pytest.approx(0.1)


def test_ties_use_the_exact_permutation_distribution() -> None:
    """Normal approximation would give p = 0.023 here; the truth for 3 vs 3 is 1/20."""
    assert_significant(significance([10.0, 10.0, 10.0], [11.0, 11.0, 11.0]), 1 / 20)


def test_identical_samples_are_not_significant() -> None:
    assert significance([5.0] * 4, [5.0] * 4) == Significance(False, None, "mann-whitney-u")


def test_equal_medians_are_not_significant() -> None:
    assert significance([1.0, 5.0, 9.0], [4.0, 5.0, 6.0]) == Significance(
        False, None, "mann-whitney-u"
    )


def test_one_vs_one_compares_the_values() -> None:
    assert significance([10.0], [11.0]) == Significance(True, None, "interval-overlap")
    assert significance([10.0], [10.0]) == Significance(False, None, "interval-overlap")


def test_two_samples_a_side_compare_ranges() -> None:
    assert significance([10.0, 10.4], [10.5, 11.0]).significant
    assert not significance([10.0, 10.5], [10.5, 11.0]).significant  # touching ranges overlap
    # 2 vs 10: still ranges, the rank test needs 3 a side
    assert not significance([10.0, 12.0], [float(x) for x in range(11, 21)]).significant
    assert significance([10.0, 12.0], [float(x) for x in range(13, 23)]).method == (
        "interval-overlap"
    )


def test_no_samples_on_a_side_is_not_significant() -> None:
    assert significance([], [1.0, 2.0, 3.0]) == Significance(False, None, "no-data")


def test_ties_with_many_splits_are_not_anti_conservative() -> None:
    """9 vs 9 with ties (48,620 splits): the normal approximation gave p = 0.044, below alpha;
    the permutation distribution, every split, gives 0.0537."""
    base = [9.0, 9.0, 9.0, 10.0, 10.0, 10.0, 10.0, 11.0, 11.0]
    cur = [9.0, 10.0, 10.0, 10.0, 11.0, 11.0, 12.0, 12.0, 12.0]
    result = significance(base, cur)
    assert result.p_value == pytest.approx(2610 / 48620, abs=1e-3)
    assert not result.significant


def test_many_samples_with_ties_draw_seeded_permutations() -> None:
    """40 vs 40 with ties: 1e23 splits, so 9,999 seeded draws; p is (hits + 1) / (draws + 1),
    the same on every call."""
    base = [1.0, 2.0] * 20
    cur = [2.0, 3.0] * 20
    result = significance(base, cur)
    assert result.significant
    assert result.p_value == pytest.approx(1 / 10_000)
    assert significance(base, cur) == result
    middling = significance([1.0, 2.0, 3.0] * 10, [1.0, 2.0, 3.0, 3.0] * 8)
    assert middling == significance([1.0, 2.0, 3.0] * 10, [1.0, 2.0, 3.0, 3.0] * 8)
    assert middling.p_value is not None and 0.05 < middling.p_value < 0.5


def _with_peak_memory(call: Callable[[], T]) -> tuple[T, int]:
    """call()'s result and the most bytes Python and numpy held at once during it."""
    tracemalloc.start()
    try:
        return call(), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_forty_thousand_tied_samples_a_side_answer_in_bounded_memory() -> None:
    """A fast model's latencies, rounded to the microsecond as the load generator writes them:
    40,000 vs 40,000 with ties. 9,999 permutations of all of them took 9,999 x 80,000 values
    (6.4 GB: compare was killed); at this size the tie-corrected normal approximation is as
    accurate as they were, and holds the samples only."""
    rng = np.random.default_rng(0)
    base = np.round(rng.lognormal(math.log(300e-6), 0.15, 40_000), 6)
    cur = np.round(rng.lognormal(math.log(302e-6), 0.15, 40_000), 6)
    assert len(np.unique(np.concatenate([base, cur]))) < 2_000  # ties everywhere
    assert np.median(cur) > np.median(base)
    result, peak = _with_peak_memory(lambda: significance(base.tolist(), cur.tolist()))
    assert peak < 200_000_000
    expected = sps.mannwhitneyu(cur, base, alternative="greater", method="asymptotic").pvalue
    assert result.p_value == pytest.approx(expected, rel=1e-9)


def test_few_distinct_values_keep_the_permutation_distribution_at_any_size() -> None:
    """Two values only (a coarse clock): the normal approximation stays anti-conservative
    however many samples, so U's permutation distribution is drawn, as counts a tie group
    (9,999 x 2 values, not 9,999 x 80,000). With two values U counts the current samples in the
    upper group, so the exact p is hypergeometric: 0.080 here."""
    base = [1.0] * 20_100 + [2.0] * 19_900
    cur = [1.0] * 19_900 + [2.0] * 20_100
    result, peak = _with_peak_memory(lambda: significance(base, cur))
    assert peak < 200_000_000
    exact = sps.hypergeom.sf(20_100 - 1, 80_000, 40_000, 40_000)
    assert result.p_value == pytest.approx(exact, abs=0.01)  # 9,999 draws: sd 0.0027
    assert significance(base, cur) == result  # seeded


def test_a_few_samples_against_many_are_drawn_not_enumerated() -> None:
    """8 vs 3,000 without ties: scipy's exact U distribution costs (8 x 3,000)^2 steps (8 vs
    40,000: 21 s), so U is drawn from the 8 samples' ranks; it agrees with the exact p."""
    rng = np.random.default_rng(1)
    many = rng.random(3_000).tolist()
    few = [float(x) for x in np.quantile(many, [0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.9])]
    few = [x + 1e-9 for x in few]  # no ties
    exact = sps.mannwhitneyu(few, many, alternative="greater", method="exact").pvalue
    result = significance(many, few)
    assert result.p_value == pytest.approx(exact, abs=0.01)
    _, peak = _with_peak_memory(lambda: significance(rng.random(40_000).tolist(), few))
    assert peak < 200_000_000


def test_scipy_floor_has_what_the_tie_handling_uses() -> None:
    """mannwhitneyu takes a PermutationMethod from scipy 1.13 on (with 1.12 any tie crashed
    compare); the pin must say so."""
    pyproject = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    floor = re.search(r'"scipy>=(\d+)\.(\d+)', pyproject)
    assert floor is not None
    assert (int(floor[1]), int(floor[2])) >= (1, 13)


def test_alpha_must_be_a_probability() -> None:
    with pytest.raises(ValueError):
        significance([1.0], [2.0], alpha=0.0)


# ---------------------------------------------------------------------------------------------
# coefficient of variation


def test_coefficient_of_variation() -> None:
    assert coefficient_of_variation([]) is None
    assert coefficient_of_variation([3.0]) is None
    assert coefficient_of_variation([-1.0, 1.0]) is None
    assert coefficient_of_variation([9.0, 11.0]) == pytest.approx(math.sqrt(2) / 10)


# ---------------------------------------------------------------------------------------------
# the run as the unit


def test_run_spread_needs_five_runs_and_is_two_standard_deviations_of_log_values() -> None:
    assert run_spread([10.0, 11.0, 12.0, 13.0]) is None
    values = [10.0, 11.0, 12.0, 13.0, 12.5]
    expected = math.exp(2 * np.std(np.log(values), ddof=1))
    assert run_spread(values) == pytest.approx(expected)
    assert run_spread([0.0, 1.0, 1.0, 1.0, 1.0]) is None


def test_one_outlier_run_sets_neither_the_spread_nor_the_test() -> None:
    """A x2 run among five (a busy night): left out, the four others set the spread, and +30%
    is still far beyond them. The largest ratio between two runs was 2.0 here, and hid it."""
    runs = [10.0, 10.3, 20.0, 9.8, 10.1]
    quiet = [10.0, 10.3, 9.8, 10.1]
    assert run_spread(runs) == pytest.approx(run_spread([*quiet, 10.05]), rel=0.2)
    assert run_spread(runs) < 1.1
    level = run_level(runs)
    assert level is not None and (level.runs, level.outliers) == (4, 1)
    p = run_p_value(runs, 13.0, "greater")
    assert p is not None and p < 0.001
    # a quiet run is no outlier: all five count
    level = run_level([10.0, 10.3, 10.6, 9.8, 10.1])
    assert level is not None and level.outliers == 0


def test_an_x2_run_is_left_out_at_cv_3_to_10_percent_once_a_prior_lends_degrees() -> None:
    """OUTLIER_ALPHA (0.01) against a stricter 0.001 (benchmarks/false_alarms.py): an x2 run
    among runs of CV 10% is 7 sd out, left out with a prior of 4 degrees only at 0.01 (with
    none, 3 degrees of its own, it stays: five runs alone cannot tell); a quiet run 3 sd out is
    never left out, whose loss would bias the spread low."""
    for cv in (0.03, 0.05, 0.10):
        rest = [math.exp(cv * z) for z in (-1.0, -0.3, 0.3, 1.0)]
        runs = [*rest[:2], 2.0, *rest[2:]]
        for df in (4.0, 12.0):
            level = run_level(runs, Prior(cv * cv, df, 48))
            assert level is not None and (level.runs, level.outliers) == (4, 1), (cv, df)
        alone = run_level(runs)
        assert alone is not None and alone.outliers == (0 if cv == 0.10 else 1)
        quiet = [*rest, math.exp(3 * cv)]
        for prior in (NO_PRIOR, Prior(cv * cv, 4.0, 48), Prior(cv * cv, 12.0, 48)):
            level = run_level(quiet, prior)
            assert level is not None and level.outliers == 0, (cv, prior)


def test_a_prior_pools_the_spread_of_many_series_that_agree() -> None:
    """Twelve cells whose runs vary alike (5%): their prior gives each series the others'
    degrees of freedom, so a x1.25 run, which five runs alone cannot tell from noise at 1% over
    12 tests, is significant; series that disagree widely borrow less."""
    rng = np.random.default_rng(1)
    series = [list(np.exp(rng.normal(0.0, 0.05, 5))) for _ in range(12)]
    prior = run_prior(series)
    assert prior.df == MAX_PRIOR_DF and prior.pooled_df == 48
    assert 0.03**2 < prior.variance < 0.07**2
    assert run_prior(series[:4]) == NO_PRIOR  # too few series to say anything of each other
    spread = [list(np.exp(rng.normal(0.0, cv, 5))) for cv in (0.01, 0.3, 0.02, 0.4, 0.01, 0.2)]
    assert run_prior(spread).df < 10


def test_a_prior_of_series_that_differ_claims_at_most_max_prior_df() -> None:
    """Twelve series of CV 3-10% (a nightly run's cells and metrics): their variances differ
    11-fold, but a dozen five-run series often look alike to limma's moments (here: no sign
    of a difference, "one variance fits all"); pooled fully, the 10% series would be judged
    by a 6% spread. The prior claims no more than MAX_PRIOR_DF degrees."""
    rng = np.random.default_rng(3)
    claimed = []
    for _ in range(20):
        cvs = rng.uniform(0.03, 0.10, 12)
        claimed.append(run_prior([list(np.exp(rng.normal(0.0, cv, 5))) for cv in cvs]).df)
    assert max(claimed) == MAX_PRIOR_DF
    assert all(0 < df <= MAX_PRIOR_DF for df in claimed)


def test_run_p_value_is_a_t_prediction_test_on_log_values() -> None:
    runs = [10.0, 10.2, 9.9, 10.1, 10.0]
    logs = np.log(runs)
    statistic = (math.log(10.5) - logs.mean()) / (logs.std(ddof=1) * math.sqrt(1 + 1 / 5))
    expected = 1 - sps.t.cdf(statistic, 4)
    assert run_p_value(runs, 10.5, "greater") == pytest.approx(expected)
    assert run_p_value(runs, 10.5, "less") == pytest.approx(1 - expected)
    assert run_p_value(runs[:2], 10.5, "greater") is None  # two runs: no spread to speak of
    assert run_p_value([10.0] * 3, 10.0, "greater") == 1.0
    assert run_p_value([10.0] * 3, 10.1, "greater") == 0.0


def test_run_p_value_holds_its_level_on_log_normal_runs() -> None:
    """A/A: a new run drawn like the five before it is called significant 5% of the time."""
    rng = np.random.default_rng(0)
    draws = np.exp(rng.normal(0.0, 0.05, (4000, 6)))
    p = [run_p_value(list(row[:5]), float(row[5]), "greater") for row in draws]
    assert np.mean([value is not None and value <= 0.05 for value in p]) == pytest.approx(
        0.05, abs=0.012
    )


def test_false_discovery_is_benjamini_hochberg() -> None:
    # sorted 0.001, 0.012, 0.03, 0.2 against 0.05 x k/4 = 0.0125, 0.025, 0.0375, 0.05
    assert false_discovery([0.03, 0.001, 0.2, 0.012]) == [True, True, False, True]
    assert false_discovery([0.04, 0.04, 0.5, 0.5]) == [False, False, False, False]
    assert false_discovery([]) == []


def test_a_prior_over_long_histories_answers_in_bounded_memory() -> None:
    """history's gate fits a prior over every series before its candidate shift: 12 series of
    1,000 runs drew 20,000 x 1,000 normal values for the trimming's bias (460 MB)."""
    _trimming_bias.cache_clear()
    rng = np.random.default_rng(3)
    series = [list(np.exp(rng.normal(0, 0.05, 1_000))) for _ in range(12)]
    prior, peak = _with_peak_memory(lambda: run_prior(series))
    assert 0 < prior.df <= MAX_PRIOR_DF
    assert peak < 64 * 2**20
    assert _trimming_bias(1_000) == pytest.approx(1.0, abs=0.02)  # what a run's variance keeps
