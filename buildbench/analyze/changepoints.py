"""Change points in a history of runs: where a cell's build time or image size shifted.

The method is E-divisive means (Matteson & James 2014, "A nonparametric approach for multiple
change point analysis"): split the series where the energy distance between a segment and the
one after it is largest, keep the split only if a permutation test says so, repeat within the
parts. benchmarks/changepoints.py chose it over ruptures' PELT (l1, l2, rbf and normal costs,
several penalties) and over MongoDB's E-divisive:
- PELT needs its penalty in units of the noise. Divided by the median only, one penalty fits
  one noise level (21% false positives at 5% noise where 1% would do at 2.5%); standardised by
  a noise estimate, twelve runs estimate the noise too poorly (its 5th percentile is half the
  truth), and a single slow outlier becomes a shift under the l2 cost (50% of 12-run series
  of outlier-prone noise). The permutation test needs no noise estimate: its false-positive
  rate is its alpha (4 to 6% measured) whatever the noise, scale and distribution, constant
  series give no shift by construction, and a jump in a constant series is as significant as
  a permutation test can make it.
- MongoDB's E-divisive (signal-processing-algorithms) compares a split only with the whole
  rest of the series, so a regression that was fixed later is mostly missed (17% found; here,
  with the end of the second segment searched too, 97%). The package is no dependency either:
  it pins numpy<2, gevent and setuptools<71, and draws its permutations from numpy's global
  generator, so its answers change from call to call. Here they come from a generator seeded
  with `seed`: the same history always gives the same shifts, and a CI gate on it cannot flake.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from itertools import pairwise

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]

ALPHA = 0.05
PERMUTATIONS = 199  # p-values in steps of 1/200; 0.05 is then exactly reachable
SEED = 0
# Permuted statistics within this relative distance of the observed one count as ties (>=):
# otherwise rounding could make a constant-then-jump series in bytes and in seconds disagree.
_TIE_TOLERANCE = 1e-9
# Elements of the batched (permutations x n x n) distance arrays computed at once: ~32 MB.
_BATCH_ELEMENTS = 4_000_000
# Permutations counted between checks whether the test can still come out significant.
_EARLY_STOP_BATCH = 20


@dataclass(frozen=True)
class Shift:
    """A change of level: run `index` is the first of a segment whose median is `after`."""

    index: int
    before: float  # median of the segment before (from the previous shift, or the first run)
    after: float  # median of the segment from `index` to the next shift (or the newest run)
    ratio: float  # after / before; inf where before is 0 and after is not


def detect_shifts(
    series: Sequence[float],
    *,
    min_size: int = 2,
    alpha: float = ALPHA,
    permutations: int = PERMUTATIONS,
    seed: int = SEED,
) -> list[Shift]:
    """The shifts of level in a time-ordered series (one value per run), oldest first.

    Every segment has at least `min_size` runs, so a single outlier is no segment of its own
    and a change is first seen when `min_size` runs show it. A split is kept when its
    permutation p-value is <= alpha, which is then also the chance that a step-free series
    shows any shift. The series may be in any unit: it is divided by its median first.

    Each shift found costs `permutations` statistics of O(n^2): about 10 ms for 12 runs with a
    shift, 0.25 s for 200 and 1.4 s for 500; a step-free series stops the test early (0.06 s
    for 200 runs).
    """
    if min_size < 1:
        raise ValueError(f"min_size must be at least 1, got {min_size}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be within (0, 1), got {alpha}")
    if permutations < 1:
        raise ValueError(f"permutations must be at least 1, got {permutations}")
    values = np.asarray(series, dtype=np.float64)
    if values.ndim != 1 or not np.all(np.isfinite(values)):
        raise ValueError("series must be a sequence of finite numbers")
    if len(values) < 2 * min_size:
        return []
    settings = _Settings(min_size, alpha, permutations)
    bounds = _e_divisive(_relative(values), settings, np.random.default_rng(seed))
    return _shifts(values, bounds)


def newest_starts_worse_segment(
    series: Sequence[float],
    shifts: Sequence[Shift],
    worse_is_higher: bool = True,
    *,
    min_size: int = 2,
    max_age: int = 6,
    alpha: float = ALPHA,
    permutations: int = PERMUTATIONS,
    seed: int = SEED,
) -> Shift | None:
    """The newest shift, when the newest run is what reveals a worse segment; else None.

    `shifts` are `detect_shifts(series, ...)`, and the keyword settings must be the ones they
    were detected with. The newest run starts a worse segment when the newest shift is worse
    (`after` > `before` when `worse_is_higher`, as for time and size; `after` < `before`
    otherwise) and
    - the newest segment is at most `max_age` runs long: a shift found late in an old segment
      is no news about the newest run, and
    - the history without the newest run did not show it: no shift in the same direction
      within `min_size` runs of it. A segment of fewer than `min_size` runs cannot have been
      shown, so this costs a second detection only when the newest segment is older.

    So `history --fail-on-regression` fails once per regression, on the run that reveals it,
    however many runs its detection took (up to `max_age`), and a regression that was accepted
    stops failing the gate. With `min_size` 2 a regression is revealed on its second run at the
    earliest: one slow run cannot be told from an outlier, and with 12 runs no test could call
    it significant anyway (it is the slowest of 12 by chance 1 time in 12).

    Measured by benchmarks/changepoints.py (histories of 12..24 runs, +15% from run 16, 200
    a noise): under +-5% noise every regression fails the gate, once, mostly on its second run;
    under noise with slow outliers 74% do (median: third run). Failing only while the newest
    run is among the segment's first `min_size` catches 97.5% and 32%; no age limit 87.5% of
    the latter, at up to three times the false fails. False fails of this rule: 0.3 to 0.6% of
    gate evaluations on step-free histories.
    """
    newest = newest_worse_shift(
        len(series), shifts, worse_is_higher, min_size=min_size, max_age=max_age
    )
    if newest is None:
        return None
    if newest.index >= len(series) - min_size:
        return newest
    earlier = detect_shifts(
        series[:-1], min_size=min_size, alpha=alpha, permutations=permutations, seed=seed
    )
    seen = any(
        abs(shift.index - newest.index) <= min_size and _is_worse(shift, worse_is_higher)
        for shift in earlier
    )
    return None if seen else newest


def newest_worse_shift(
    length: int,
    shifts: Sequence[Shift],
    worse_is_higher: bool = True,
    *,
    min_size: int = 2,
    max_age: int = 6,
) -> Shift | None:
    """The newest of `shifts` (of a series of `length` runs) when it is worse and its segment
    at most `max_age` runs long: the candidate a gate on the newest run judges."""
    if max_age < min_size:
        raise ValueError(f"max_age ({max_age}) must be at least min_size ({min_size})")
    if not shifts:
        return None
    newest = shifts[-1]
    if not _is_worse(newest, worse_is_higher) or newest.index < length - max_age:
        return None
    return newest


def _is_worse(shift: Shift, worse_is_higher: bool) -> bool:
    return shift.after > shift.before if worse_is_higher else shift.after < shift.before


# ---------------------------------------------------------------------------------------------
# E-divisive means


def _relative(values: Array) -> Array:
    """Values in units of their median: the test is scale-free, the arithmetic better scaled."""
    scale = float(np.median(np.abs(values)))
    return values / scale if scale > 0 else values


@dataclass(frozen=True)
class _Settings:
    min_size: int
    alpha: float
    permutations: int


def _e_divisive(values: Array, settings: _Settings, rng: np.random.Generator) -> list[int]:
    """Boundaries [0, ..., n] of the segments, found by repeated significant splits.

    Each round takes the strongest split over all segments and keeps it if significant; the
    first split that is not ends the search (Matteson & James's hierarchical procedure).
    """
    bounds = [0, len(values)]
    while True:
        segments = [(a, b) for a, b in pairwise(bounds) if b - a >= 2 * settings.min_size]
        if not segments:
            return bounds
        best_q, best_tau = -np.inf, -1
        for a, b in segments:
            q = _split_statistics(values[None, a:b], settings.min_size)[0]
            at = int(np.argmax(q))
            if q[at] > best_q:
                best_q, best_tau = float(q[at]), a + at // (b - a + 1)
        if not _significant(values, segments, best_q, settings, rng):
            return bounds
        bounds = sorted([*bounds, best_tau])


def _split_statistics(runs: Array, min_size: int) -> Array:
    """Q(tau, kappa) of every split of each row of `runs` (a batch of orders of m runs).

    Q = a*b/(a+b) * (2/(a*b) sum|X-Y| - sum|X-X'|/(a(a-1)) - sum|Y-Y'|/(b(b-1))), with X the a
    runs before tau and Y the b runs from tau to kappa: the scaled energy distance between
    them (U-statistics, as Matteson & James). Searching kappa, not only the end of the series,
    is what finds a step that reverts (a regression fixed later): against the whole rest of
    the series, which mixes both levels, its first edge is weak.

    The block sums come from one 2-D cumulative sum S of the distances (S[t, k]: rows < t,
    columns < k): sum|X-X'| = S[t, t], sum|X-Y| = S[t, k] - S[t, t], sum|Y-Y'| = S[k, k] -
    2 S[t, k] + S[t, t]. So Q = S[t, k] A - S[t, t] B - S[k, k] C over the whole
    (m+1) x (m+1) grid, with A, B, C fixed by m (see _coefficients), flattened row-major.
    """
    m = runs.shape[-1]
    cum = np.zeros((runs.shape[0], m + 1, m + 1))
    distances = np.abs(runs[:, :, None] - runs[:, None, :])
    cum[:, 1:, 1:] = distances.cumsum(axis=1).cumsum(axis=2)
    diagonal = np.diagonal(cum, axis1=1, axis2=2)
    coef_a, coef_b, coef_c, invalid = _coefficients(m, min_size)
    q = cum * coef_a - diagonal[:, :, None] * coef_b - diagonal[:, None, :] * coef_c + invalid
    result: Array = q.reshape(runs.shape[0], -1)
    return result


@cache
def _coefficients(m: int, min_size: int) -> tuple[Array, Array, Array, Array]:
    """A, B, C of Q (see _split_statistics), and -inf where a split is not allowed (tau <
    min_size or kappa - tau < min_size), over the (tau, kappa) grid 0..m x 0..m."""
    tau, kappa = np.meshgrid(np.arange(m + 1.0), np.arange(m + 1.0), indexing="ij")
    valid = (tau >= min_size) & (kappa - tau >= min_size)
    a, b = np.where(valid, tau, 2.0), np.where(valid, kappa - tau, 2.0)  # no 0-divisions
    scale = a * b / (a + b)
    # A side of one run (min_size 1) has no pairs and a zero sum: any divisor will do.
    within_x = scale / np.maximum(a * (a - 1), 1.0)
    within_y = scale / np.maximum(b * (b - 1), 1.0)
    cross = 2 / (a + b)
    zero = np.zeros_like(a)
    coef_a = np.where(valid, cross + 2 * within_y, zero)
    coef_b = np.where(valid, cross + within_x + within_y, zero)
    coef_c = np.where(valid, within_y, zero)
    invalid = np.where(valid, zero, -np.inf)
    return coef_a, coef_b, coef_c, invalid


def _significant(
    values: Array,
    segments: list[tuple[int, int]],
    observed: float,
    settings: _Settings,
    rng: np.random.Generator,
) -> bool:
    """Whether the observed best split beats random orders of the runs within each segment.

    p = (1 + permutations whose best split is as strong) / (1 + permutations). They are drawn
    all at once, so the answer does not depend on how they are batched, and counted batch by
    batch, stopping as soon as p must exceed alpha: most tests are of the last, step-free
    segments and stop after a few dozen permutations instead of all of them.
    """
    orders = [_random_orders(b - a, settings.permutations, rng) for a, b in segments]
    threshold = observed - _TIE_TOLERANCE * max(abs(observed), 1e-12)
    largest = max(b - a for a, b in segments) + 1
    batch = max(1, min(_EARLY_STOP_BATCH, _BATCH_ELEMENTS // (largest * largest)))
    as_strong = 0
    for start in range(0, settings.permutations, batch):
        best = np.full(min(batch, settings.permutations - start), -np.inf)
        for (a, b), order in zip(segments, orders, strict=True):
            shuffled = values[a:b][order[start : start + batch]]
            best = np.maximum(best, _split_statistics(shuffled, settings.min_size).max(axis=1))
        as_strong += int(np.count_nonzero(best >= threshold))
        if (as_strong + 1) / (settings.permutations + 1) > settings.alpha:
            return False
    return True


def _random_orders(m: int, permutations: int, rng: np.random.Generator) -> npt.NDArray[np.intp]:
    orders: npt.NDArray[np.intp] = rng.permuted(np.tile(np.arange(m), (permutations, 1)), axis=1)
    return orders


def _shifts(values: Array, bounds: list[int]) -> list[Shift]:
    medians = [statistics.median(values[a:b].tolist()) for a, b in pairwise(bounds)]
    return [
        Shift(index, before, after, _ratio(before, after))
        for index, before, after in zip(bounds[1:-1], medians, medians[1:], strict=False)
    ]


def _ratio(before: float, after: float) -> float:
    if before != 0:
        return after / before
    return 1.0 if after == 0 else float("inf")
