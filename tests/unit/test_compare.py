"""`buildbench compare`: marks, thresholds, significance with the run as the unit, exit codes,
and output against stored references. The fixtures are schema 1 results (every comparison goes
through the migration), and real A/A pairs of this machine."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from benchmarks.false_alarms import cell_runs
from buildbench.analyze.compare import (
    BETTER,
    BUSY,
    BUSY_SHARE,
    EXIT_REGRESSION,
    FAILING,
    FIXED,
    MISSING,
    NOISE,
    NOT_COMPARABLE,
    SAME,
    WORSE,
    Row,
    Thresholds,
    compare,
    environment_warnings,
    regressions,
)
from buildbench.analyze.interference import interference_warnings
from buildbench.cli import cli
from buildbench.record import model_of
from buildbench.results import RunResults, load_results
from tests.unit.references import DATA, reference

VM = DATA / "vm.json"
REGRESSED = DATA / "vm-regressed.json"
GPU = DATA / "gpu-runner.json"


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["compare", *args])
    return result.exit_code, result.stdout, result.stderr


def run(path: Path) -> RunResults:
    return load_results(path)


def rows_of(baseline: Path | RunResults, current: Path | RunResults) -> list[Row]:
    """compare() of one baseline run against the current one."""
    before = baseline if isinstance(baseline, RunResults) else run(baseline)
    after = current if isinstance(current, RunResults) else run(current)
    return compare([before], after, Thresholds())


def edited(
    tmp_path: Path,
    source: Path,
    edit: Callable[[dict[str, Any]], None] = lambda cell: None,
    name: str = "edited",
) -> Path:
    """A copy of `source`, another run (its own run id), with `edit` applied to each cell."""
    data = json.loads(source.read_text())
    data["run"]["run_id"] += f"-{name}"
    for cell in data["results"]:
        edit(cell)
    path = tmp_path / f"{name}-{source.name}"
    path.write_text(json.dumps(data))
    return path


def marks(rows: list[Row]) -> dict[tuple[str, str], str]:
    return {(row.cell, row.metric): row.mark for row in rows}


# --- the command and its exit codes ------------------------------------------------------------


def test_a_run_against_an_identical_run_passes(tmp_path: Path) -> None:
    code, out, err = invoke(str(VM), str(edited(tmp_path, VM, name="same")))
    assert (code, err) == (0, "")
    assert out == reference("compare-same.txt", out)


def test_a_run_is_not_its_own_baseline() -> None:
    code, out, err = invoke(str(VM), str(VM))
    assert (code, out) == (2, "")
    assert err == ("ERROR: the baseline holds no other run\nTIP: give an earlier run's results\n")


def test_a_regressed_run_fails() -> None:
    code, out, err = invoke(str(VM), str(REGRESSED))
    assert (code, err) == (EXIT_REGRESSION, "")
    assert out == reference("compare-regressed.txt", out)


def test_markdown_for_a_ci_summary() -> None:
    code, out, _ = invoke(str(VM), str(REGRESSED), "--format", "markdown")
    assert code == EXIT_REGRESSION
    assert out == reference("compare-regressed.md", out)


def test_a_changed_dockerfile_is_not_comparable_not_a_regression(tmp_path: Path) -> None:
    def change(cell: dict[str, Any]) -> None:
        cell["config_hash"] = "0" * 16
        cell["build_seconds"] = [s * 3 for s in cell["build_seconds"]]

    code, out, _ = invoke(str(VM), str(edited(tmp_path, VM, change)))
    assert code == 0
    assert "no regressions" in out
    rows = rows_of(VM, edited(tmp_path, VM, change))
    assert {row.mark for row in rows} == {NOT_COMPARABLE}
    assert {row.evidence for row in rows} == {""}  # no test of samples that are not comparable


def test_another_builder_is_not_comparable_not_a_regression(tmp_path: Path) -> None:
    def buildkit(cell: dict[str, Any]) -> None:
        cell["builder"] = "buildkit"
        cell["build_seconds"] = [s * 3 for s in cell["build_seconds"]]

    current = edited(tmp_path, VM, buildkit)
    code, out, _ = invoke(str(VM), str(current))
    assert code == 0
    assert "no regressions" in out
    assert "x not comparable (Dockerfile, build-args, builder, base image, smoke test" in out
    assert "warning: builder differs: classic (baseline) vs buildkit (current)" not in out
    rows = rows_of(VM, current)
    assert {row.mark for row in rows} == {NOT_COMPARABLE}
    assert {row.cell for row in rows} == {"pytorch/cpu", "onnx/cpu", "pytorch/cuda", "onnx/cuda"}


def test_the_buildkit_fixture_against_the_classic_one() -> None:
    rows = rows_of(VM, DATA / "vm-buildkit.json")
    found = marks(rows)
    assert found["pytorch/cpu", "build time"] == NOT_COMPARABLE
    assert found["onnx/cpu", "image size"] == NOT_COMPARABLE
    assert found["onnx/cuda", "status"] == FAILING  # a failed build fails with any builder
    code, out, _ = invoke(str(VM), str(DATA / "vm-buildkit.json"))
    assert code == EXIT_REGRESSION
    assert "warning: builder differs: classic (baseline) vs buildkit (current)" in out


def test_prefetch_makes_only_the_build_time_not_comparable(tmp_path: Path) -> None:
    def prefetched(cell: dict[str, Any]) -> None:
        cell["build_seconds"] = [s / 3 for s in cell["build_seconds"]]
        cell["image_size_bytes"] *= 2

    current = run(edited(tmp_path, VM, prefetched))
    for record in current.records:
        record.build.mode = "prefetch"  # schema 1 had no wheel mode: set it as a run would
    found = marks(rows_of(VM, current))
    assert {found[cell, "build time"] for cell, _ in found} == {NOT_COMPARABLE}
    assert {found[cell, "image size"] for cell, _ in found} == {WORSE}  # still comparable


def test_thresholds_are_options(tmp_path: Path) -> None:
    def slower(cell: dict[str, Any]) -> None:
        cell["build_seconds"] = [s * 1.4 for s in cell["build_seconds"]]

    current = str(edited(tmp_path, VM, slower))
    assert invoke(str(VM), current)[0] == EXIT_REGRESSION
    assert invoke(str(VM), current, "--max-slowdown", "1.5")[0] == 0


def test_thresholds_below_one_are_refused() -> None:
    code, _, err = invoke(str(VM), str(VM), "--max-growth", "0.9")
    assert code == 2
    assert "0.9 is not in the range x>=1.0" in err


def test_unreadable_baseline_is_a_usage_error(tmp_path: Path) -> None:
    missing = tmp_path / "old"
    code, out, err = invoke(str(missing), str(VM))
    assert (code, out) == (2, "")
    assert err == (
        f"ERROR: no results file at {missing}\nTIP: give a results.json or a run directory\n"
    )


def test_a_folder_of_earlier_runs_counts_each_of_the_machines_newest_once(tmp_path: Path) -> None:
    history = tmp_path / "history"
    history.mkdir()
    for day in ("1", "2", "3"):
        path = edited(history, VM, name=f"day{day}")
        data = json.loads(path.read_text())
        data["run"]["started_at"] = f"2026-11-2{day}T00:00:00+00:00"
        (history / day).mkdir()
        (history / day / "results.json").write_text(json.dumps(data))
        path.unlink()
    (history / "gpu").mkdir()
    (history / "gpu" / "results.json").write_text(GPU.read_text())  # another machine
    code, out, _ = invoke(str(history), str(REGRESSED), "--baseline-runs", "2")
    assert code == EXIT_REGRESSION
    assert out.splitlines()[0] == (
        f"baseline: {run(VM).info.run_id}-day3 on vm (2026-11-23T00:00:00+00:00) "
        "and 1 earlier run(s)"
    )
    row = next(line for line in out.splitlines() if "pytorch/cpu     build time" in line)
    # Two runs cannot show their run-to-run spread: the newest's samples are the check (3 vs 3),
    # not 6 pooled samples of two runs (which gave p=0.012).
    assert row.endswith("p=0.050 (3 vs 3 samples)")


# --- marks ---------------------------------------------------------------------------------


def test_marks_of_the_regressed_fixture() -> None:
    found = marks(rows_of(VM, REGRESSED))
    assert found["pytorch/cpu", "build time"] == WORSE
    assert found["pytorch/cpu", "image size"] == SAME
    assert found["onnx/cpu", "image size"] == BETTER
    # x1.47: within the smoke default (1.5), as real A/A pairs here reach x1.35 and x1.45
    assert found["onnx/cpu", "p50 latency b=1"] == SAME
    assert found["pytorch/cuda", "image size"] == NOT_COMPARABLE
    assert found["onnx/cuda", "status"] == FAILING
    assert found["tensorflow/cpu", "cell"] == MISSING


def test_times_carry_their_significance_and_sizes_are_exact() -> None:
    rows = {(row.cell, row.metric): row for row in rows_of(VM, REGRESSED)}
    assert rows["pytorch/cpu", "build time"].evidence == "p=0.050 (3 vs 3 samples)"
    assert rows["pytorch/cpu", "image size"].evidence == "exact"
    assert rows["onnx/cpu", "cold start"].evidence == "interval-overlap (1 vs 1 samples)"
    assert rows["pytorch/cpu", "build time"].ratio == pytest.approx(128.4 / 91.588)


def test_a_slowdown_the_samples_do_not_support_is_noise_not_a_regression(
    tmp_path: Path,
) -> None:
    def noisy(cell: dict[str, Any]) -> None:
        if cell["name"] == "pytorch" and cell["variant"] == "cpu":
            cell["build_seconds"] = [80.0, 130.0, 200.0]  # median x1.42, ranges overlap

    current = edited(tmp_path, VM, noisy)
    rows = rows_of(VM, current)
    assert marks(rows)["pytorch/cpu", "build time"] == NOISE
    assert not [row for row in rows if row.regressed]
    code, out, _ = invoke(str(VM), str(current))
    assert code == 0
    assert out.splitlines()[-1] == (
        "no regressions (1 change(s) beyond the threshold, not significant)"
    )
    assert any(line.startswith("~ ") and "pytorch/cpu" in line for line in out.splitlines())


def test_a_cell_that_builds_again_is_fixed() -> None:
    rows = rows_of(GPU, VM)
    assert marks(rows)["onnx/cpu", "status"] == FIXED
    assert marks(rows)["onnx/cuda", "status"] == FIXED
    assert not [row for row in rows if row.metric == "status" and row.regressed]


def test_a_cell_failing_in_both_runs_is_not_newly_failing() -> None:
    rows = rows_of(GPU, GPU)
    assert marks(rows)["onnx/cpu", "status"] == SAME
    assert not [row for row in rows if row.regressed]


def test_a_cell_gone_from_the_current_run_is_missing_not_a_regression() -> None:
    baseline = run(VM)
    rows = rows_of(baseline, RunResults(baseline.info, baseline.records[:2]))
    assert marks(rows)["pytorch/cuda", "cell"] == MISSING
    assert not [row for row in rows if row.regressed]


def test_a_metric_measured_on_one_side_only_is_missing(tmp_path: Path) -> None:
    def no_smoke(cell: dict[str, Any]) -> None:
        cell["smoke"] = None

    rows = rows_of(VM, edited(tmp_path, VM, no_smoke))
    assert marks(rows)["onnx/cpu", "cold start"] == MISSING
    assert not [row for row in rows if row.regressed]
    rows = rows_of(edited(tmp_path, VM, no_smoke), REGRESSED)
    assert ("onnx/cpu", "cold start") in marks(rows)  # measured now, not before: still shown


def test_not_measured_on_either_side_gives_no_row(tmp_path: Path) -> None:
    def no_smoke(cell: dict[str, Any]) -> None:
        cell["smoke"] = None

    plain = run(edited(tmp_path, VM, no_smoke))
    assert {row.metric for row in rows_of(plain, plain)} == {
        "build time",
        "image size",
        "compressed size",
    }


@pytest.mark.parametrize(
    ("factor", "mark"),
    [(1.25, SAME), (1.26, WORSE), (1 / 1.25, SAME), (1 / 1.26, BETTER)],
)
def test_the_threshold_itself_is_not_worse(tmp_path: Path, factor: float, mark: str) -> None:
    def scale(cell: dict[str, Any]) -> None:
        cell["build_seconds"] = [s * factor for s in cell["build_seconds"]]

    rows = rows_of(VM, edited(tmp_path, VM, scale))
    assert marks(rows)["pytorch/cpu", "build time"] == mark


def test_an_old_schema_baseline_is_not_comparable() -> None:
    rows = rows_of(DATA / "vm-schema0.json", VM)
    assert marks(rows)["pytorch/cpu", "build time"] == NOT_COMPARABLE
    assert not [row for row in rows if row.regressed]


def test_what_differs_between_the_environments_is_a_warning() -> None:
    assert environment_warnings(run(VM).info, run(VM).info) == []
    assert environment_warnings(run(VM).info, run(GPU).info) == [
        "CPU differs: AMD EPYC (baseline) vs Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz (current)"
    ]


def _with_build_seconds(tmp_path: Path, name: str, samples: list[float]) -> Path:
    def edit(cell: dict[str, Any]) -> None:
        if cell["name"] == "onnx" and cell["variant"] == "cpu":
            cell["build_seconds"] = samples

    return edited(tmp_path, VM, edit, name)


def test_a_tight_one_and_a_half_times_shift_is_worse_and_fails(tmp_path: Path) -> None:
    before = _with_build_seconds(tmp_path, "a", [20.0, 20.2, 19.9, 20.1, 19.8])
    after = _with_build_seconds(tmp_path, "b", [30.0, 30.3, 29.8, 30.1, 29.9])
    rows = {(row.cell, row.metric): row for row in rows_of(before, after)}
    assert rows["onnx/cpu", "build time"].mark == WORSE
    assert rows["onnx/cpu", "build time"].evidence == "p=0.004 (5 vs 5 samples)"
    code, out, _ = invoke(str(before), str(after))
    assert code == EXIT_REGRESSION
    assert out.splitlines()[-1].startswith("REGRESSION: 1 metric(s) worse")


def test_overlapping_noisy_samples_at_one_point_three_times_are_not_significant(
    tmp_path: Path,
) -> None:
    before = _with_build_seconds(tmp_path, "a", [18.0, 20.0, 31.0, 19.0, 26.0])
    after = _with_build_seconds(tmp_path, "b", [26.0, 17.0, 33.0, 27.0, 24.0])
    rows = {(row.cell, row.metric): row for row in rows_of(before, after)}
    row = rows["onnx/cpu", "build time"]
    assert row.ratio == pytest.approx(1.3)  # medians 20 -> 26, the samples overlapping
    assert row.mark == NOISE
    code, out, _ = invoke(str(before), str(after))
    assert code == 0, out


# --- the run as the unit ---------------------------------------------------------------------


def _history_at_levels(tmp_path: Path, levels: list[float], current: float) -> tuple[Path, Path]:
    """Runs whose onnx/cpu build samples are tight (+-0.5%) around 20 s x each level, oldest
    first, in one folder; and a current run at `current`."""
    folder = tmp_path / "history"
    folder.mkdir()

    def at(level: float, name: str, day: int) -> Path:
        path = _with_build_seconds(tmp_path, name, [20.0 * level * f for f in (0.995, 1, 1.005)])
        data = json.loads(path.read_text())
        data["run"]["started_at"] = f"2026-11-{day:02d}T00:00:00+00:00"
        path.write_text(json.dumps(data))
        return path

    for day, level in enumerate(levels, start=1):
        (folder / f"{day}").mkdir()
        at(level, f"run{day}", day).rename(folder / f"{day}" / "results.json")
    return folder, at(current, "current", len(levels) + 1)


def _onnx_build_row(baseline: Path, current: Path) -> Row:
    rows = compare(
        [run(p) for p in sorted(baseline.glob("*/results.json"))], run(current), Thresholds()
    )
    return next(row for row in rows if (row.cell, row.metric) == ("onnx/cpu", "build time"))


def test_a_noisy_machines_own_spread_raises_its_threshold(tmp_path: Path) -> None:
    """Runs that differ by up to x1.6 among themselves: x1.4 is within what A/A runs do here,
    though the samples of the current run and of any one baseline run never overlap."""
    baseline, current = _history_at_levels(tmp_path, [1.0, 1.3, 0.85, 1.36, 1.1], 1.4)
    row = _onnx_build_row(baseline, current)
    assert row.ratio == pytest.approx(1.4 / 1.1)
    levels = np.log([1.0, 1.3, 0.85, 1.36, 1.1])
    assert row.threshold == pytest.approx(math.exp(2 * np.std(levels, ddof=1)))  # x1.46
    assert row.mark == SAME
    assert "(run vs 5 runs)" in row.evidence
    code, _, _ = invoke(str(baseline), str(current))
    assert code == 0


def test_a_quiet_machines_own_spread_lowers_its_threshold(tmp_path: Path) -> None:
    """Runs within 2% of each other: +15% is beyond them all and significant as a run."""
    baseline, current = _history_at_levels(tmp_path, [1.0, 1.01, 0.99, 1.005, 0.995], 1.15)
    row = _onnx_build_row(baseline, current)
    assert row.threshold == pytest.approx(1.05)  # the spread, 1.02, raised to the minimum effect
    assert row.mark == WORSE
    assert row.p_value is not None and row.p_value < 0.001
    # Every time row is a run-level test, those level with their baseline too (p about 0.5),
    # so the correction counts all 12 (4 cells x build time, latency, cold start).
    assert row.evidence == "p<0.001 (run vs 5 runs); adjusted p<0.001 over 12 tests"
    assert invoke(str(baseline), str(current))[0] == EXIT_REGRESSION


def test_a_time_level_with_its_baseline_is_a_run_level_test(tmp_path: Path) -> None:
    """Not the samples' check, whose p-value is of another test and would join the correction
    as if it were a run's."""
    baseline, current = _history_at_levels(tmp_path, [1.0, 1.01, 0.99, 1.005, 0.995], 1.0)
    row = _onnx_build_row(baseline, current)
    assert row.ratio == pytest.approx(1.0)
    assert row.mark == SAME
    assert row.evidence.startswith("p=0.5") and "(run vs 5 runs)" in row.evidence


def test_a_run_within_the_runs_spread_is_not_significant(tmp_path: Path) -> None:
    """Three runs, too few for their own threshold (1.25 holds), spread widely: x1.3 beyond the
    threshold is noise as a run, whatever its own samples say."""
    baseline, current = _history_at_levels(tmp_path, [0.8, 1.0, 1.25], 1.3)
    row = _onnx_build_row(baseline, current)
    assert row.threshold == pytest.approx(1.25)
    assert row.mark == NOISE
    assert row.p_value is not None and row.p_value > 0.05


def test_another_base_image_is_not_comparable(tmp_path: Path) -> None:
    def rebased(cell: dict[str, Any]) -> None:
        cell["build_seconds"] = [s * 3 for s in cell["build_seconds"]]

    before, after = run(VM), run(edited(tmp_path, VM, rebased))
    for records, base in ((before.records, "sha256:old"), (after.records, "sha256:new")):
        for record in records:
            if record.image is not None:
                record.image = replace(record.image, base_image_id=base)
    found = marks(rows_of(before, after))
    assert found["pytorch/cpu", "build time"] == NOT_COMPARABLE
    assert found["onnx/cpu", "image size"] == NOT_COMPARABLE


def test_json_is_one_document_a_dashboard_reads() -> None:
    code, out, _ = invoke(str(VM), str(REGRESSED), "--format", "json")
    assert code == EXIT_REGRESSION
    assert out == reference("compare-regressed.json", out)
    document = json.loads(out)
    assert document["format"] == "buildbench-compare/1"
    assert document["regressed"] is True
    row = next(r for r in document["rows"] if r["metric_key"] == "build_seconds")
    assert (row["cell"], row["mark"], row["meaning"]) == ("pytorch/cpu", "+", "worse")


def test_csv_has_a_row_per_metric() -> None:
    code, out, _ = invoke(str(VM), str(REGRESSED), "--format", "csv")
    assert code == EXIT_REGRESSION
    assert out == reference("compare-regressed.csv", out)


# --- a busy machine --------------------------------------------------------------------------


def test_a_slowdown_while_others_used_the_cpu_is_marked_busy_not_worse(tmp_path: Path) -> None:
    def slower(cell: dict[str, Any]) -> None:
        cell["build_seconds"] = [s * 2 for s in cell["build_seconds"]]

    current = run(edited(tmp_path, VM, slower))
    for record in current.records:
        record.build.cpu_others_share = [0.02, 0.48, None]  # a neighbour during sample 2
    rows = {(row.cell, row.metric): row for row in rows_of(VM, current)}
    row = rows["pytorch/cpu", "build time"]
    assert row.mark == BUSY
    assert row.evidence == "p=0.050 (3 vs 3 samples); busy: others used 48% of the host's CPU"
    assert row.cpu_others_share == pytest.approx(0.48)
    assert not row.regressed
    assert rows["pytorch/cpu", "image size"].mark == SAME  # sizes do not mind a busy machine


def test_a_quiet_share_below_the_threshold_changes_nothing(tmp_path: Path) -> None:
    def slower(cell: dict[str, Any]) -> None:
        cell["build_seconds"] = [s * 2 for s in cell["build_seconds"]]

    current = run(edited(tmp_path, VM, slower))
    for record in current.records:
        record.build.cpu_others_share = [0.02, BUSY_SHARE, 0.1]
    assert marks(rows_of(VM, current))["pytorch/cpu", "build time"] == WORSE


def test_interference_is_named_in_the_cells_warnings() -> None:
    record = run(VM).records[1]
    assert interference_warnings(record) == []
    record.build.cpu_others_share = [0.1, 0.52]
    assert record.smoke is not None
    model_of(record.smoke).latency["1"] = replace(
        model_of(record.smoke).latency["1"], cpu_others_share=0.4
    )
    assert interference_warnings(record) == [
        "busy machine: others used up to 52% of the engine host's CPU around the build samples "
        "(over 25%): build times are noisy",
        "busy machine: others used 40% of the engine host's CPU during the batch-1 latency loop "
        "(over 25%): its latency is noisy",
    ]


# ---------------------------------------------------------------------------------------------
# A whole run judged at once


def _twelve_cells(levels: list[list[float]]) -> list[RunResults]:
    """Runs (one a row of `levels`) of 12 cells with build time alone, each cell's 3 samples
    at its level x 100 s: the nightly workflow's compare, five baseline runs and the newest."""
    return cell_runs(load_results(VM), np.array(levels))


def _build_marks(runs: list[RunResults]) -> dict[str, str]:
    rows = compare(runs[:-1], runs[-1], Thresholds())
    return {row.cell.split("/")[0]: row.mark for row in rows if row.metric_key == "build_seconds"}


def test_compare_corrects_for_the_number_of_times_it_judges() -> None:
    """One of 12 cells at x1.11, p = 0.003 as a single test (beyond its threshold, 1.07):
    among 12 tests that is what a quiet run shows once in 25 (adjusted p 0.035), so `~`, not
    worse. Alone it would have been worse at 0.05, as compare judged before."""
    spread = [1.0, 1.04, 0.96, 1.02, 0.98]
    levels = [[level] * 12 for level in spread]
    runs = _twelve_cells([*levels, [1.11] + [1.001] * 11])
    rows = compare(runs[:-1], runs[-1], Thresholds())
    row = next(r for r in rows if r.cell.startswith("cell0/") and r.metric_key == "build_seconds")
    assert row.p_value is not None and 0.001 < row.p_value < 0.01
    assert row.threshold is not None and row.ratio is not None and row.ratio > row.threshold
    assert row.mark == NOISE
    assert "adjusted p=0.0" in row.evidence and "over 12 tests" in row.evidence
    assert not regressions(rows)


def test_quiet_whole_runs_rarely_fail_compare() -> None:
    """80 seeded quiet nights of 12 cells, five baseline runs, run-to-run noise 5%: the largest
    ratio and one test a metric failed 37% of such runs (about 30 of 80; 0 or 1 has a chance
    below 1e-12 then); at a false discovery rate of 1% over the run, about 1 in 100 fails."""
    rng = np.random.default_rng(7)
    failed = 0
    for _ in range(80):
        levels = np.exp(rng.normal(0.0, 0.05, (6, 12))).tolist()
        failed += WORSE in _build_marks(_twelve_cells(levels)).values()
    assert failed <= 2


def test_one_outlier_run_in_the_baseline_hides_no_step() -> None:
    """A x2 run among the five (all 12 cells): left out, +30% in one cell is still worse. The
    largest ratio between two runs (2.0) hid it."""
    rng = np.random.default_rng(3)
    caught = 0
    for _ in range(10):
        levels = np.exp(rng.normal(0.0, 0.03, (6, 12)))
        levels[2] *= 2.0
        levels[-1, 0] *= 1.3
        caught += _build_marks(_twelve_cells(levels.tolist()))["cell0"] == WORSE
    assert caught >= 9


def test_a_nightly_runs_cells_and_metrics_share_one_prior() -> None:
    """The nightly run: 4 cells x build time, p50 latency and cold start (CV 5%), five baseline
    runs. A prior per metric had 4 series to fit, so none: each kept its own 4 degrees and a
    x1.3 build step was significant at 1% over 12 tests 5 times in these 20 runs. One prior
    for all 12 series catches it 17 times, and no quiet run fails."""
    rng = np.random.default_rng(5)
    caught = quiet_failed = 0
    for _ in range(20):
        levels = np.exp(rng.normal(0.0, 0.05, (6, 12)))
        quiet = cell_runs(load_results(VM), levels, timed=3)
        quiet_failed += bool(regressions(compare(quiet[:-1], quiet[-1], Thresholds())))
        levels[-1, 0] *= 1.3
        runs = cell_runs(load_results(VM), levels, timed=3)
        rows = compare(runs[:-1], runs[-1], Thresholds())
        assert {r.metric_key for r in rows} >= {
            "build_seconds",
            "latency_b1_seconds",
            "cold_start_seconds",
        }
        caught += any(
            r.cell.startswith("cell0/") and r.metric_key == "build_seconds" and r.mark == WORSE
            for r in rows
        )
    assert caught >= 14
    assert quiet_failed == 0
