"""Change points over a history of runs, and the regression gate on the newest run.

Thresholds over seeds come from benchmarks/changepoints.py (alpha 0.05, 199 permutations, 500
series a scenario): a +15% step at run index 7 of 12 under uniform +-5% noise is the only
shift found in 97.8% of series, and 4 to 6% of step-free series of 12 or 50 runs show a shift
(the permutation test's alpha, by design).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from buildbench.analyze.changepoints import Shift, detect_shifts, newest_starts_worse_segment

GIB = 1.2e9


def step_series(seed: int, n: int = 12, at: int | None = 7, step: float = 0.15) -> list[float]:
    """Build times around 600 s, uniform +-5% noise, one +`step` from run index `at`."""
    rng = np.random.default_rng(seed)
    level = np.where(np.arange(n) >= (n if at is None else at), 1.0 + step, 1.0)
    values: list[float] = (600.0 * level * rng.uniform(0.95, 1.05, n)).tolist()
    return values


def indices(shifts: list[Shift]) -> list[int]:
    return [s.index for s in shifts]


def levels(shifts: list[Shift]) -> list[tuple[int, float, float]]:
    """(index, before, after) of each shift, after checking its ratio."""
    for s in shifts:
        assert s.ratio == pytest.approx(s.after / s.before)
    return [(s.index, s.before, s.after) for s in shifts]


# ---------------------------------------------------------------------------------------------
# detect_shifts


def test_one_step_at_the_eighth_run_is_found_exactly() -> None:
    series = step_series(seed=0)
    [shift] = detect_shifts(series)
    assert shift.index == 7
    assert shift.before == pytest.approx(np.median(series[:7]))
    assert shift.after == pytest.approx(np.median(series[7:]))
    assert shift.ratio == pytest.approx(shift.after / shift.before)
    assert 1.05 < shift.ratio < 1.25


def test_one_step_is_found_exactly_in_almost_every_seed() -> None:
    found = [indices(detect_shifts(step_series(seed))) for seed in range(50)]
    exact = sum(f == [7] for f in found)
    assert exact >= 47  # measured: 49 of these 50
    assert sum(7 in f for f in found) >= 48


def test_step_free_series_of_12_runs_rarely_show_a_shift() -> None:
    with_shift = sum(bool(detect_shifts(step_series(seed, at=None))) for seed in range(200))
    assert with_shift <= 16  # measured: 9 of 200 (4.5%); alpha is 5%


def test_step_free_series_of_50_runs_rarely_show_a_shift() -> None:
    with_shift = sum(bool(detect_shifts(step_series(s, n=50, at=None))) for s in range(60))
    assert with_shift <= 6  # measured: 3% over 200 seeds


def test_constant_series_has_no_shift() -> None:
    assert detect_shifts([GIB] * 12) == []
    assert detect_shifts([0.0] * 12) == []


@pytest.mark.parametrize("scale", [1.0, 1e-3, GIB])
def test_constant_series_with_one_jump_has_exactly_that_shift(scale: float) -> None:
    series = [scale] * 7 + [scale * 1.005] * 5
    assert levels(detect_shifts(series)) == [(7, scale, scale * 1.005)]


def test_shift_in_bytes_and_in_seconds_is_the_same() -> None:
    for seed in range(10):
        seconds = step_series(seed)
        in_bytes = [x * 2e6 for x in seconds]
        assert indices(detect_shifts(seconds)) == indices(detect_shifts(in_bytes))


def test_series_shorter_than_two_segments_has_no_shift() -> None:
    assert detect_shifts([]) == []
    assert detect_shifts([1.0, 2.0, 3.0]) == []
    assert detect_shifts([1.0] * 5 + [9.0] * 3, min_size=5) == []


def test_a_single_outlier_is_no_segment() -> None:
    assert detect_shifts([100.0] * 5 + [300.0] + [100.0] * 6) == []
    assert detect_shifts([100.0] * 11 + [300.0]) == []


def test_a_step_up_and_back_down_gives_two_shifts() -> None:
    series = [100.0] * 8 + [130.0] * 8 + [100.0] * 8
    assert levels(detect_shifts(series)) == [(8, 100.0, 130.0), (16, 130.0, 100.0)]


def test_detection_is_deterministic() -> None:
    series = step_series(seed=13)
    assert detect_shifts(series) == detect_shifts(series)


def test_a_zero_level_before_gives_an_infinite_ratio() -> None:
    [shift] = detect_shifts([0.0] * 6 + [5.0] * 6)
    assert (shift.index, shift.before, shift.after) == (6, 0.0, 5.0)
    assert math.isinf(shift.ratio)


def test_bad_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="finite"):
        detect_shifts([1.0, math.nan, 1.0, 1.0])
    with pytest.raises(ValueError, match="min_size"):
        detect_shifts([1.0] * 4, min_size=0)
    with pytest.raises(ValueError, match="alpha"):
        detect_shifts([1.0] * 4, alpha=1.0)


# ---------------------------------------------------------------------------------------------
# newest_starts_worse_segment


# +12% from run 9; the history shows it only once the step has three runs.
BEFORE_STEP = [96.3, 100.0, 101.0, 95.3, 96.5, 104.3, 95.7, 96.3, 104.5]
REVEALED_ON_THIRD_RUN = [*BEFORE_STEP, 113.4, 110.5, 112.1]


def gate(series: list[float], worse_is_higher: bool = True) -> Shift | None:
    return newest_starts_worse_segment(series, detect_shifts(series), worse_is_higher)


def test_a_regression_fails_on_its_second_run() -> None:
    history = [100.0] * 10 + [120.0] * 2
    assert gate(history[:-1]) is None  # one slow run: maybe an outlier
    shift = gate(history)
    assert shift is not None
    assert levels([shift]) == [(10, 100.0, 120.0)]


def test_a_regression_fails_once() -> None:
    history = [100.0] * 10 + [120.0] * 4
    fails = [n for n in range(10, len(history) + 1) if gate(history[:n])]
    assert fails == [12]


def test_an_improvement_is_no_regression_unless_lower_is_worse() -> None:
    history = [120.0] * 10 + [100.0] * 2
    assert gate(history) is None
    shift = gate(history, worse_is_higher=False)
    assert shift is not None
    assert levels([shift]) == [(10, 120.0, 100.0)]


def test_a_regression_whose_detection_took_a_third_run_fails_on_that_run() -> None:
    history = REVEALED_ON_THIRD_RUN
    assert detect_shifts(history[:-1]) == []
    shift = gate(history)
    assert shift is not None
    assert shift.index == 9  # the newest run is the segment's third


def test_a_shift_seen_before_the_newest_run_does_not_fail() -> None:
    assert gate([100.0] * 8 + [120.0] * 4) is None


def test_a_shift_older_than_max_age_does_not_fail() -> None:
    assert gate([100.0] * 6 + [120.0] * 7) is None


def test_max_age_bounds_how_late_a_regression_may_be_revealed() -> None:
    history = REVEALED_ON_THIRD_RUN
    shifts = detect_shifts(history)
    assert newest_starts_worse_segment(history, shifts, max_age=3) is not None
    assert newest_starts_worse_segment(history, shifts, max_age=2) is None


def test_no_shift_no_fail() -> None:
    assert gate([100.0] * 12) is None
    assert newest_starts_worse_segment([1.0, 2.0], []) is None


def test_max_age_below_min_size_is_rejected() -> None:
    with pytest.raises(ValueError, match="max_age"):
        newest_starts_worse_segment([1.0] * 6, [], min_size=3, max_age=2)
