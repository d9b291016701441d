"""How often `compare` and the history gate cry wolf on a quiet machine, and how often they see a
real slowdown: the evidence behind their thresholds and tests.

1. `compare` on real A/A pairs: back-to-back runs of the same onnx/cpu image on this project's
   machine (benchmarks/data/aa/, 3 build samples and >= 30 latency samples a run, 3 cold
   starts), each run against the one before it, and each against all the runs before it (up to
   5). Printed: the metrics called worse or better (false alarms) by buildbench's compare and by
   the method it replaced (pooled samples, Mann-Whitney, 1.25 for every time); then a 1.5x
   slowdown injected into the current run's build samples: how often compare calls it worse.
2. The history gate on simulated nightly runs: 12 series (4 cells x build time, latency, cold
   start), 3 samples a run, log-normal noise with a CV drawn from 3-10% per series, judged
   every night from run 6 to 24 exactly as `history --fail-on-regression` judges the newest
   run. Printed: the share of quiet nights on which any of the 12 series fails (goal: at most
   1%), and the share of one-cell steps (+15%, x1.5, from run 17) that fail the gate within
   6 nights, by CV.

3. Whole runs as the workflow judges them, five baseline runs and the newest, judged by compare
   and by history's gate, quiet and with one x2 outlier run among the five, and a x1.3 step in
   one series on the newest run: (a) the nightly run's shape, 4 cells x build time, p50 latency
   and cold start, each series' run-to-run CV drawn from 3-10%, the stepped one's 5%; (b) 12
   series of build time at CV 3/5/10% (the issue's 37% of quiet runs failing was at 5%).
4. The workflow night after night (first printed; `--workflow-only`: it alone): a x1.3 step
   in one series at CV 5%, its first run judged by compare against the newest five runs and by
   history on every run, then the next run likewise (the stepped run now in compare's
   baseline, two runs after the step in history's): the share of steps the workflow (compare
   or history) fails on that series on the first night and within two, after 5 runs
   (history's shortest) or 16, with and without a x2 run three runs before the step.

Measured (2026-12-06, `.venv/bin/python benchmarks/false_alarms.py --trials 1000 --nights 200`
on a shared 2-core machine; 1000 quiet runs a line: 1% is +-0.3%; 250 steps: +-3%):

    compare, A/A pairs of real runs: 4 of 15 metrics worse or better (2 of 5 pairs fail, the
      busy ones); each run against all before it: 5 of 15 (2 of 5 runs, the busy ones);
      x1.5 build time injected: 5 of 5 pairs flagged worse
    whole runs, quiet runs failing compare / history / either, x1.3 caught by compare on its
    first run (history, on a seven-run history, adds nothing by the step's second run):
      (a) 4 cells x 3 metrics, CV 3-10%:  1.5% / 0% / 1.5%, 57%
          with one x2 outlier run:         1.7% / 0% / 1.7%, 49%
          (a prior per metric, i.e. none with 4 cells: 2.7%, 21%; outlier: 1.0%, 10%)
      (b) 12 cells of build time:
          CV 3%:  0.7% / 0% / 0.7%, 100%    with the outlier: 0.4% / 0% / 0.4%, 99%
          CV 5%:  0.4% / 0% / 0.4%, 84%     with the outlier: 0.3% / 0% / 0.3%, 73%
          CV 10%: 0.9% / 0.1% / 1.0%, 12%   with the outlier: 0.2% / 0% / 0.2%, 9%
          (before this method: 37% of quiet runs failed at CV 5%; the step hidden by an
          outlier in 300 of 300)
    the workflow, a x1.3 step at CV 5% failed on its first night / within two (250 steps):
                                     5 runs before        16 runs before
      (a) 4 cells x 3, CVs 3-10%:    64% / 67%            56% / 98%
          with one x2 outlier run:   47% / 47%            50% / 50%
      (b) 12 cells of build time:    78% / 82%            82% / 100%
          with one x2 outlier run:   80% / 82%            73% / 74%
      (history's E-divisive finds no two-run segment in 7 runs; in 18 it does, unless a x2
      run sits three runs before the step: then neither night sees it)
      quiet nights after 16 runs, (a): compare 1.8%, history 1.0%, the job 2.8% (500 nights,
      these helpers: compare on the newest five, history's news; not yet a section here)
    history gate, quiet nights failing (12 series, nights 6..24): 0.89% (34 of 3800 nights);
      the gate before E-divisive's: 6.71%
    history gate, one cell stepped from run 17, failed within 6 nights (x1.3 and x1.5: measured
    before its spreads were shrunk):
      +15%:  CV 3%: 100%  CV 5%: 98%   CV 10%: 68%
      x1.3:  CV 3%: 100%  CV 5%: 100%  CV 10%: 98%
      x1.5:  CV 3%: 100%  CV 5%: 100%  CV 10%: 100%
      x1.3 with a x2 run three runs before the step: CV 3%: 94%  CV 5%: 98%  CV 10%: 86%

A single run against five cannot do better by much: even with the spread known exactly, a x1.3
step at CV 5% is 4.8 standard errors, caught 95% of the time at 1% over 12 tests; with four
runs left (an outlier out), less. Each series' 4 degrees of freedom alone catch 21%; a prior
over all the run's series brings compare to 84% where their spreads agree and 57% where they
differ (3-10%), as a dozen five-run series tell little of how they differ. Quiet runs of such
series still fail 1.5%: most failures are a series whose quietest runs made it look tight, or
one of whose runs was left out as an outlier (its 3 degrees then biased low). History, with
more runs, catches the step within six nights.
On these real pairs the run-as-unit method and the pooled one agree: the quiet pairs were quiet
enough for both, and the busy ones are slower in fact. Those runs predate the interference
check, which now names such a run and marks its phase `#` instead of judging it (the CPU-hog
test in tests/integration/test_significance.py; latencies too once the smoke program reports
`cpu_others_share`). A +15% step in a series with 10% noise
is within what its own runs show (their A/A spread) and is not failed; that is the threshold
doing its job, not a miss of the test.

Run: .venv/bin/python benchmarks/false_alarms.py [--trials N] [--nights N] [--runs DIR]
     [--workflow-only]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import dataclass, replace
from itertools import pairwise
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from buildbench.analyze.changepoints import detect_shifts, newest_starts_worse_segment
from buildbench.analyze.compare import BETTER, WORSE, Row, Thresholds, compare
from buildbench.analyze.history import MAX_AGE, Verdict, judge_all, news
from buildbench.analyze.history import fails as gate_fails
from buildbench.analyze.metrics import METRIC_BY_KEY, METRICS, Metric
from buildbench.analyze.stats import significance
from buildbench.record import model_of
from buildbench.results import RunResults, load_results

HERE = Path(__file__).resolve().parent
TIMES = [metric for metric in METRICS if metric.kind == "time"]
NIGHTS = range(6, 25)  # the history's length on each night judged
STEP_AT = 16
CVS = (0.03, 0.05, 0.10)


# ---------------------------------------------------------------------------------------------
# compare on real A/A pairs


def pooled_marks(baseline: list[RunResults], current: RunResults) -> list[str]:
    """The method compare used before: every baseline run's samples pooled, Mann-Whitney U,
    1.25 for every time."""
    found = []
    for record in current.records:
        history = [r for run in baseline for r in run.records if r.key == record.key]
        for metric in TIMES:
            old = [s for r in history for s in metric.samples(r)]
            new = metric.samples(record)
            if not old or not new:
                continue
            change = statistics.median(new) / statistics.median(old)
            significant = significance(old, new).significant
            if significant and change > 1.25:
                found.append(WORSE)
            elif significant and change < 1 / 1.25:
                found.append(BETTER)
    return found


def timed_rows(rows: list[Row]) -> list[Row]:
    return [row for row in rows if row.metric_key in {m.key for m in TIMES}]


def alarms(rows: list[Row]) -> int:
    return sum(row.mark in (WORSE, BETTER) for row in timed_rows(rows))


def slowed(run: RunResults, factor: float) -> RunResults:
    """The run with every cell's build samples multiplied by `factor`."""
    records = [
        replace(r, build=replace(r.build, seconds=[s * factor for s in r.build.seconds]))
        for r in run.records
    ]
    return RunResults(run.info, records)


def compare_on_real_runs(folder: Path) -> None:
    runs = sorted(
        (load_results(path) for path in folder.glob("*.json")), key=lambda r: r.info.started_at
    )
    thresholds = Thresholds()
    pairs = list(pairwise(runs))
    ours = [timed_rows(compare([a], b, thresholds)) for a, b in pairs]
    before = [pooled_marks([a], b) for a, b in pairs]
    metrics = sum(len(rows) for rows in ours)
    print("compare, A/A pairs of real runs (times only; each run against the one before):")
    print(
        f"  buildbench:       {sum(alarms(r) for r in ours)} of {metrics} metrics worse or "
        f"better ({sum(any(x.mark == WORSE for x in r) for r in ours)} of {len(pairs)} pairs fail)"
    )
    print(
        f"  pooled (before):  {sum(len(m) for m in before)} of {metrics} metrics worse or better "
        f"({sum(WORSE in m for m in before)} of {len(pairs)} pairs fail)"
    )
    for (a, b), rows in zip(pairs, ours, strict=True):
        shown = ", ".join(f"{r.metric} x{r.ratio:.2f} {r.mark.strip() or '='}" for r in rows)
        print(f"    {a.info.run_id} -> {b.info.run_id}: {shown}")
    against_all = [
        timed_rows(compare(runs[max(0, i - 5) : i], runs[i], thresholds))
        for i in range(1, len(runs))
    ]
    print("compare, each run against all the runs before it (up to 5):")
    print(
        f"  buildbench:       {sum(alarms(r) for r in against_all)} of "
        f"{sum(len(r) for r in against_all)} metrics worse or better "
        f"({sum(any(x.mark == WORSE for x in r) for r in against_all)} of {len(against_all)} "
        "runs fail)"
    )
    flagged = 0
    for a, b in pairs:
        rows = compare([a], slowed(b, 1.5), thresholds)
        flagged += any(r.mark == WORSE and r.metric_key == "build_seconds" for r in rows)
    print(f"compare, x1.5 build time injected: {flagged} of {len(pairs)} pairs flagged worse")


# ---------------------------------------------------------------------------------------------
# the history gate on simulated nights


@dataclass(frozen=True)
class Simulated:
    metric: Metric
    cv: float
    values: list[float]  # one value a run: the median of its 3 samples


def simulate(rng: np.random.Generator, cv: float, step: float, metric: Metric) -> Simulated:
    level = np.where(np.arange(max(NIGHTS)) >= STEP_AT, step, 1.0)
    samples = 100.0 * level[:, None] * np.exp(rng.normal(0.0, cv, (max(NIGHTS), 3)))
    return Simulated(metric, cv, np.median(samples, axis=1).tolist())


def nightly(series: list[Simulated], thresholds: Thresholds) -> list[list[bool]]:
    """For each night, which series fail the gate (as `history` judges the newest run)."""
    before: list[Verdict | None] = [None] * len(series)
    found = []
    for night in range(min(NIGHTS) - 1, max(NIGHTS) + 1):
        now = judge_all([s.values[:night] for s in series], [s.metric for s in series], thresholds)
        if night >= min(NIGHTS):
            found.append([news(n, b) for n, b in zip(now, before, strict=True)])
        before = now
    return found


def twelve_series(rng: np.random.Generator, step_cv: float | None, step: float) -> list[Simulated]:
    """4 cells x 3 timed metrics; with `step_cv`, the first series steps by `step` at that CV."""
    metrics = [
        METRIC_BY_KEY[k] for k in ("build_seconds", "latency_b1_seconds", "cold_start_seconds")
    ]
    series = []
    for index in range(12):
        metric = metrics[index % 3]
        if index == 0 and step_cv is not None:
            series.append(simulate(rng, step_cv, step, metric))
        else:
            series.append(simulate(rng, float(rng.uniform(0.03, 0.10)), 1.0, metric))
    return series


def nightly_before(series: list[Simulated]) -> list[list[bool]]:
    """The gate `history` had before: E-divisive's newest worse segment, series by series."""
    return [
        [
            newest_starts_worse_segment(s.values[:night], detect_shifts(s.values[:night]))
            is not None
            for s in series
        ]
        for night in NIGHTS
    ]


def gate_on_simulated_nights(trials: int) -> None:
    thresholds = Thresholds()
    rng = np.random.default_rng(0)
    nights = failing = failing_before = 0
    for _ in range(trials):
        series = twelve_series(rng, None, 1.0)
        for fails, fails_before in zip(
            nightly(series, thresholds), nightly_before(series), strict=True
        ):
            nights += 1
            failing += any(fails)
            failing_before += any(fails_before)
    print(
        f"history gate, quiet nights failing (12 series, nights {min(NIGHTS)}..{max(NIGHTS)}): "
        f"{failing / nights:.2%} ({failing} of {nights} nights); the gate before: "
        f"{failing_before / nights:.2%}"
    )
    print(f"history gate, one cell stepped from run {STEP_AT + 1}, failed within {MAX_AGE} nights:")
    for step in (1.15, 1.3, 1.5):
        shares = []
        for cv in CVS:
            found = 0
            for _ in range(max(50, trials // 4)):
                verdicts = nightly(twelve_series(rng, cv, step), thresholds)
                window = verdicts[STEP_AT - min(NIGHTS) : STEP_AT - min(NIGHTS) + MAX_AGE + 1]
                found += any(fails[0] for fails in window)
            shares.append(f"CV {cv:.0%}: {found / max(50, trials // 4):.0%}")
        print(f"  x{step:g}:  " + "   ".join(shares))


# ---------------------------------------------------------------------------------------------
# whole runs: the nightly workflow's compare (five baseline runs) and history, 12 series at once


BASELINE_RUNS = 5  # the workflow's `buildbench compare history/$MACHINE current`
SERIES = 12
WITHIN_RUN_CV = 0.01  # a run's 3 build samples around its own level: the run effect dominates


# The nightly run's timed metrics a cell, in the order of `cell_runs`'s columns, and their
# levels (build 100 s, p50 latency 20 ms, cold start 0.5 s).
NIGHTLY_TIMES = (
    ("build_seconds", 100.0),
    ("latency_b1_seconds", 0.02),
    ("cold_start_seconds", 0.5),
)


def cell_runs(
    template: RunResults,
    levels: np.ndarray,
    rng: np.random.Generator | None = None,
    timed: int = 1,
) -> list[RunResults]:
    """One RunResults a row of `levels` (runs x series): each series one of the first `timed`
    metrics of NIGHTLY_TIMES of a cell (columns j: cell j // timed), 3 samples at that level x
    the metric's (within WITHIN_RUN_CV of it given `rng`). timed=1: build time alone, no smoke
    test; timed=3: build time, p50 latency and cold start, as the nightly run measures them."""
    base = template.records[0]
    runs = []
    for index, row in enumerate(levels):
        info = replace(template.info, run_id=f"run{index}", started_at=f"2026-12-{index + 1:02d}")
        samples = []
        for column, level in enumerate(row):
            noise = np.ones(3) if rng is None else np.exp(rng.normal(0.0, WITHIN_RUN_CV, 3))
            samples.append([float(x) for x in NIGHTLY_TIMES[column % timed][1] * level * noise])
        records = []
        for cell in range(len(row) // timed):
            found = samples[cell * timed : (cell + 1) * timed]
            build = replace(base.build, seconds=found[0], cpu_others_share=[])
            smoke = None
            if timed > 1 and base.smoke is not None:
                model = model_of(base.smoke)
                latency = replace(model.latency["1"], samples=found[1], cpu_others_share=None)
                cold = found[2] if timed > 2 else []
                detail = replace(model, latency={"1": latency})
                smoke = replace(base.smoke, detail=detail, cold_start_seconds=cold)
            records.append(replace(base, name=f"cell{cell}", smoke=smoke, build=build))
        runs.append(RunResults(info, records))
    return runs


def _levels(rng: np.random.Generator, runs: int, cv: float | np.ndarray) -> np.ndarray:
    """Run-to-run noise: each run's level of each series log-normal with this CV (one a
    series, or one for all)."""
    return np.exp(rng.normal(0.0, 1.0, (runs, SERIES)) * cv)


def _gate_fails(levels: np.ndarray, timed: int, thresholds: Thresholds) -> list[bool]:
    """History's gate on the newest run (the last row), every series judged together."""
    keys = [key for key, _ in NIGHTLY_TIMES[:timed]]
    metrics = [METRIC_BY_KEY[keys[i % timed]] for i in range(SERIES)]
    verdicts = judge_all([list(levels[:, i]) for i in range(SERIES)], metrics, thresholds)
    return [gate_fails(v) for v in verdicts]


def _whole_run(
    template: RunResults,
    levels: np.ndarray,
    rng: np.random.Generator,
    thresholds: Thresholds,
    timed: int = 1,
) -> tuple[bool, bool, bool]:
    """The newest run (the last row) judged as the workflow judges it: (compare fails, history
    fails, the first series is called worse by compare)."""
    runs = cell_runs(template, levels, rng, timed)
    rows = compare(runs[-1 - BASELINE_RUNS : -1], runs[-1], thresholds)
    worse = [row for row in rows if row.mark == WORSE]
    first = NIGHTLY_TIMES[0][0]
    return (
        bool(worse),
        any(_gate_fails(levels, timed, thresholds)),
        any(row.cell.startswith("cell0/") and row.metric_key == first for row in worse),
    )


def whole_runs(folder: Path, trials: int, nightly_shape: bool) -> None:
    """Quiet five-run baselines of 12 series, with and without one x2 outlier run among the
    five, and a x1.3 step in one series on the newest run. 12 cells of build time at CV 3/5/10%
    (the issue's 37% of runs failing was at 5%); or the nightly run's shape, 4 cells x build
    time, p50 latency and cold start, each series' CV drawn from 3-10%, the stepped one's 5%:
    then also whether the workflow catches the step by its second run (compare on the first,
    or history's gate on the second)."""
    template = load_results(next(iter(sorted(folder.glob("*.json")))))
    thresholds = Thresholds()
    rng = np.random.default_rng(4 if nightly_shape else 1)
    timed = 3 if nightly_shape else 1
    shape = (
        "4 cells x 3 time metrics (CV 3-10% a series)"
        if nightly_shape
        else f"{SERIES} series of build time"
    )
    print(
        f"whole runs, {shape}, {BASELINE_RUNS} baseline runs, the newest judged by compare "
        "and by history (the workflow fails on either):"
    )
    steps = max(50, trials // 4)
    for outlier in (False, True):
        name = "one x2 outlier run in the baseline" if outlier else "quiet five-run baseline"
        for cv in (None,) if nightly_shape else CVS:

            def noise(runs: int, cv: float | None = cv, outlier: bool = outlier) -> np.ndarray:
                found = _levels(rng, runs, rng.uniform(0.03, 0.10, SERIES) if cv is None else cv)
                if cv is None:  # the stepped series at 5%
                    found[:, 0] = np.exp(rng.normal(0.0, 0.05, runs))
                if outlier:
                    found[2] *= 2.0
                return found

            quiet = [0, 0, 0]
            for _ in range(trials):
                by_compare, by_history, _ = _whole_run(
                    template, noise(BASELINE_RUNS + 1), rng, thresholds, timed
                )
                quiet[0] += by_compare
                quiet[1] += by_history
                quiet[2] += by_compare or by_history
            caught = by_second = 0
            for _ in range(steps):
                levels = noise(BASELINE_RUNS + 2)
                levels[-2:, 0] *= 1.3
                first = _whole_run(template, levels[:-1], rng, thresholds, timed)[2]
                caught += first
                if nightly_shape:
                    by_second += first or _gate_fails(levels, timed, thresholds)[0]
            label = "CVs 3-10%, stepped at 5%" if cv is None else f"CV {cv:.0%}"
            second = f", by its second run {by_second / steps:.0%}" if nightly_shape else ""
            print(
                f"  {name}, {label}: quiet runs failing: compare {quiet[0] / trials:.2%}, "
                f"history {quiet[1] / trials:.2%}, either {quiet[2] / trials:.2%} (of {trials}); "
                f"x1.3 in one series called worse by compare: {caught / steps:.0%}{second} "
                f"(of {steps})",
                flush=True,
            )


def _workflow_fails(runs: list[RunResults], levels: np.ndarray, timed: int) -> list[bool]:
    """Whether the workflow fails on the first series on each of the two newest runs:
    `buildbench compare history/$MACHINE current` (the newest BASELINE_RUNS runs before it)
    calls it worse, or `history --fail-on-regression` (every run so far) reports it as news."""
    thresholds = Thresholds()
    first = NIGHTLY_TIMES[0][0]
    found = []
    start = len(runs) - 2  # the step's first run
    before = _gate_verdicts(levels[:start], timed, thresholds)[0]
    for night in range(start, len(runs)):
        rows = compare(runs[night - BASELINE_RUNS : night], runs[night], thresholds)
        by_compare = any(
            row.mark == WORSE and row.cell.startswith("cell0/") and row.metric_key == first
            for row in rows
        )
        now = _gate_verdicts(levels[: night + 1], timed, thresholds)[0]
        found.append(by_compare or news(now, before))
        before = now
    return found


def _gate_verdicts(levels: np.ndarray, timed: int, thresholds: Thresholds) -> list[Verdict | None]:
    keys = [key for key, _ in NIGHTLY_TIMES[:timed]]
    metrics = [METRIC_BY_KEY[keys[i % timed]] for i in range(SERIES)]
    return judge_all([list(levels[:, i]) for i in range(SERIES)], metrics, thresholds)


def workflow_nights(folder: Path, steps: int) -> None:
    """A x1.3 step in one series, judged night after night as the nightly workflow judges it:
    the step's first run against the newest five before it, then the next run against the
    newest five (the stepped run among them) while history sees every run, two after the step.
    The share of steps the workflow fails (compare or history, on that series) on the first
    night and within two. The nightly shape (CVs 3-10%, the stepped series at 5%) and 12 cells
    of build time at CV 5%, with and without one x2 outlier run three runs before the step,
    after a history of 5 runs (history's shortest) and of STEP_AT runs."""
    template = load_results(next(iter(sorted(folder.glob("*.json")))))
    rng = np.random.default_rng(5)
    print(
        "the workflow night after night (compare or history), a x1.3 step in one series at CV "
        f"5%, failed on its first night / within two nights (of {steps}):"
    )
    for before in (BASELINE_RUNS, STEP_AT):
        for timed, shape in ((3, "4 cells x 3 times, CVs 3-10%"), (1, "12 cells of build time")):
            for outlier in (False, True):
                first = second = 0
                for _ in range(steps):
                    cv = rng.uniform(0.03, 0.10, SERIES) if timed == 3 else 0.05
                    levels = _levels(rng, before + 2, cv)
                    levels[:, 0] = np.exp(rng.normal(0.0, 0.05, before + 2))
                    if outlier:
                        levels[before - 3] *= 2.0
                    levels[before:, 0] *= 1.3
                    runs = cell_runs(template, levels, rng, timed)
                    nights = _workflow_fails(runs, levels, timed)
                    first += nights[0]
                    second += any(nights)
                name = ", one x2 outlier run" if outlier else ""
                print(
                    f"  {before} runs before the step, {shape}{name}: "
                    f"{first / steps:.0%} / {second / steps:.0%}",
                    flush=True,
                )


def history_outlier(trials: int) -> None:
    """History's gate on simulated nights with one x2 run three runs before a x1.3 step."""
    thresholds = Thresholds()
    rng = np.random.default_rng(2)
    shares = []
    for cv in CVS:
        found = 0
        for _ in range(max(50, trials // 4)):
            series = twelve_series(rng, cv, 1.3)
            series[0].values[STEP_AT - 3] *= 2.0
            verdicts = nightly(series, thresholds)
            window = verdicts[STEP_AT - min(NIGHTS) : STEP_AT - min(NIGHTS) + MAX_AGE + 1]
            found += any(fails[0] for fails in window)
        shares.append(f"CV {cv:.0%}: {found / max(50, trials // 4):.0%}")
    print(
        f"history gate, x1.3 from run {STEP_AT + 1} with a x2 run 3 runs before it, failed "
        f"within {MAX_AGE} nights:  " + "   ".join(shares)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=400, help="simulated histories")
    parser.add_argument(
        "--nights", type=int, help="simulated histories of the nightly gate (default: --trials)"
    )
    parser.add_argument("--runs", type=Path, default=HERE / "data" / "aa", help="real A/A runs")
    parser.add_argument(
        "--workflow-only", action="store_true", help="only the workflow's nights (the slowest)"
    )
    args = parser.parse_args()
    workflow_nights(args.runs, max(50, args.trials // 4))
    if args.workflow_only:
        return
    compare_on_real_runs(args.runs)
    whole_runs(args.runs, args.trials, nightly_shape=True)
    whole_runs(args.runs, args.trials, nightly_shape=False)
    gate_on_simulated_nights(args.nights or args.trials)
    history_outlier(args.nights or args.trials)


if __name__ == "__main__":
    main()
