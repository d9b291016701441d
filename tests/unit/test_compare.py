"""`buildbench compare`: marks, thresholds, exit codes, and output against stored references."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from buildbench.cli import cli
from buildbench.compare import (
    BETTER,
    EXIT_REGRESSION,
    FAILING,
    FIXED,
    MISSING,
    NOT_COMPARABLE,
    SAME,
    WORSE,
    Row,
    Thresholds,
    compare,
)
from buildbench.record import CellRecord
from buildbench.results import load_results
from tests.unit.references import DATA, reference

VM = DATA / "vm.json"
REGRESSED = DATA / "vm-regressed.json"
GPU = DATA / "gpu-runner.json"


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["compare", *args])
    return result.exit_code, result.stdout, result.stderr


def records(path: Path) -> list[CellRecord]:
    return load_results(path)[1]


def edited(tmp_path: Path, source: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    """A copy of `source` with `edit` applied to each of its cells."""
    data = json.loads(source.read_text())
    for cell in data["results"]:
        edit(cell)
    path = tmp_path / f"edited-{source.name}"
    path.write_text(json.dumps(data))
    return path


def marks(rows: list[Row]) -> dict[tuple[str, str], str]:
    return {(row.cell, row.metric): row.mark for row in rows}


# --- the command and its exit codes ------------------------------------------------------------


def test_a_run_against_itself_passes() -> None:
    code, out, err = invoke(str(VM), str(VM))
    assert (code, err) == (0, "")
    assert out == reference("compare-same.txt", out)


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
    rows = compare(records(VM), records(edited(tmp_path, VM, change)), Thresholds())
    assert {row.mark for row in rows} == {NOT_COMPARABLE}


def test_another_builder_is_not_comparable_not_a_regression(tmp_path: Path) -> None:
    def buildkit(cell: dict[str, Any]) -> None:
        cell["builder"] = "buildkit"
        cell["build_seconds"] = [s * 3 for s in cell["build_seconds"]]

    current = edited(tmp_path, VM, buildkit)
    code, out, _ = invoke(str(VM), str(current))
    assert code == 0
    assert "no regressions" in out
    assert "not comparable (Dockerfile, build-args or builder changed)" in out
    rows = compare(records(VM), records(current), Thresholds())
    assert {row.mark for row in rows} == {NOT_COMPARABLE}
    assert {row.cell for row in rows} == {"pytorch/cpu", "onnx/cpu", "pytorch/cuda", "onnx/cuda"}


def test_the_buildkit_fixture_against_the_classic_one() -> None:
    rows = compare(records(VM), records(DATA / "vm-buildkit.json"), Thresholds())
    found = marks(rows)
    assert found["pytorch/cpu", "build time"] == NOT_COMPARABLE
    assert found["onnx/cpu", "image size"] == NOT_COMPARABLE
    assert found["onnx/cuda", "status"] == FAILING  # a failed build fails with any builder


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


# --- marks ---------------------------------------------------------------------------------


def test_marks_of_the_regressed_fixture() -> None:
    found = marks(compare(records(VM), records(REGRESSED), Thresholds()))
    assert found["pytorch/cpu", "build time"] == WORSE
    assert found["pytorch/cpu", "image size"] == SAME
    assert found["onnx/cpu", "image size"] == BETTER
    assert found["onnx/cpu", "p50 latency b=1"] == WORSE
    assert found["pytorch/cuda", "image size"] == NOT_COMPARABLE
    assert found["onnx/cuda", "status"] == FAILING
    assert found["tensorflow/cpu", "cell"] == MISSING


def test_a_cell_that_builds_again_is_fixed() -> None:
    rows = compare(records(GPU), records(VM), Thresholds())
    assert marks(rows)["onnx/cpu", "status"] == FIXED
    assert marks(rows)["onnx/cuda", "status"] == FIXED
    assert not [row for row in rows if row.metric == "status" and row.regressed]


def test_a_cell_failing_in_both_runs_is_not_newly_failing() -> None:
    rows = compare(records(GPU), records(GPU), Thresholds())
    assert marks(rows)["onnx/cpu", "status"] == SAME
    assert not [row for row in rows if row.regressed]


def test_a_cell_gone_from_the_current_run_is_missing_not_a_regression() -> None:
    baseline = records(VM)
    rows = compare(baseline, baseline[:2], Thresholds())
    assert marks(rows)["pytorch/cuda", "cell"] == MISSING
    assert not [row for row in rows if row.regressed]


def test_a_metric_measured_on_one_side_only_is_missing(tmp_path: Path) -> None:
    def no_smoke(cell: dict[str, Any]) -> None:
        cell["smoke"] = None

    rows = compare(records(VM), records(edited(tmp_path, VM, no_smoke)), Thresholds())
    assert marks(rows)["onnx/cpu", "cold start"] == MISSING
    assert not [row for row in rows if row.regressed]
    rows = compare(records(edited(tmp_path, VM, no_smoke)), records(REGRESSED), Thresholds())
    assert ("onnx/cpu", "cold start") in marks(rows)  # measured now, not before: still shown


def test_not_measured_on_either_side_gives_no_row(tmp_path: Path) -> None:
    def no_smoke(cell: dict[str, Any]) -> None:
        cell["smoke"] = None

    plain = records(edited(tmp_path, VM, no_smoke))
    assert {row.metric for row in compare(plain, plain, Thresholds())} == {
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

    rows = compare(records(VM), records(edited(tmp_path, VM, scale)), Thresholds())
    assert marks(rows)["pytorch/cpu", "build time"] == mark


def test_an_old_schema_baseline_is_not_comparable() -> None:
    rows = compare(records(DATA / "vm-schema0.json"), records(VM), Thresholds())
    assert marks(rows)["pytorch/cpu", "build time"] == NOT_COMPARABLE
    assert not [row for row in rows if row.regressed]
