"""`history` where every run of a series shared a busy machine: the series is not dropped, it
says so in a row, in every format."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from click.testing import CliRunner

from buildbench.analyze.derived import FIGURES
from buildbench.cli import cli
from buildbench.results import load_results, results_document, write_results
from tests.unit.test_history_gate import series_of, write_runs

RUNS = 6
CELL = "onnx/cpu"


def busy_builds(folder: Path, cell: str = CELL) -> list[str]:
    """Every run's build samples of `cell` timed while others used 60% of the host's CPU."""
    run_ids = []
    for path in sorted(folder.glob("*/results.json")):
        run = load_results(path)
        for record in run.records:
            if record.key == cell:
                record.build.cpu_others_share = [0.6, 0.6, 0.6]
        write_results(path.parent, results_document(run.info, run.records, FIGURES))
        run_ids.append(run.info.run_id)
    return run_ids


def history_out(folder: Path, *options: str) -> str:
    result = CliRunner().invoke(cli, ["history", str(folder), "--fail-on-regression", *options])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_a_series_busy_in_every_run_keeps_its_row(tmp_path: Path) -> None:
    folder = write_runs(tmp_path / "runs", RUNS, lambda n, cell: None)
    run_ids = busy_builds(folder)
    series = series_of(folder, CELL)
    assert series.points == [] and series.busy == run_ids
    assert series.verdict is None and series.regression is None
    # A quiet series of the same cell is unchanged.
    assert len(series_of(folder, CELL, "image_size_bytes").points) == RUNS


def test_every_format_says_every_run_was_left_out_as_busy(tmp_path: Path) -> None:
    folder = write_runs(tmp_path / "runs", RUNS, lambda n, cell: None)
    run_ids = busy_builds(folder)

    markdown = history_out(folder)
    [line] = [line for line in markdown.splitlines() if CELL in line and "build time" in line]
    cells = [cell.strip() for cell in line.strip("|").split("|")]
    assert cells[:6] == [CELL, "build time", "0", "-", "-", "-"]
    names = ", ".join(f"`{run}`" for run in run_ids)
    assert f"every run left out, busy machine: {names}" in line

    document = json.loads(history_out(folder, "--format", "json"))
    rows = [r for r in document["series"] if (r["cell"], r["metric"]) == (CELL, "build_seconds")]
    assert [(r["run_id"], r["busy"], r["value"]) for r in rows] == [
        (run, True, None) for run in run_ids
    ]
    assert all(r["started_at"] for r in rows)
    busy = [b for b in document["busy"] if (b["cell"], b["metric"]) == (CELL, "build_seconds")]
    assert [b["run_id"] for b in busy] == run_ids

    table = list(csv.DictReader(io.StringIO(history_out(folder, "--format", "csv"))))
    rows = [r for r in table if (r["cell"], r["metric"]) == (CELL, "build_seconds")]
    assert [(r["run_id"], r["busy"], r["value"]) for r in rows] == [
        (run, "True", "") for run in run_ids
    ]
    quiet = [r for r in table if (r["cell"], r["metric"]) == ("pytorch/cpu", "build_seconds")]
    assert len(quiet) == RUNS and all(r["busy"] == "False" for r in quiet)


def test_a_partly_busy_series_names_its_busy_runs_in_every_format(tmp_path: Path) -> None:
    folder = write_runs(tmp_path / "runs", RUNS, lambda n, cell: None)
    paths = sorted(folder.glob("*/results.json"))
    for path in paths[1:]:
        path.parent.rename(tmp_path / path.parent.name)  # only the first run is busy
    [busy_run] = busy_builds(folder)
    for path in paths[1:]:
        (tmp_path / path.parent.name).rename(path.parent)

    markdown = history_out(folder)
    [line] = [line for line in markdown.splitlines() if CELL in line and "build time" in line]
    assert f"left out, busy machine: `{busy_run}`" in line and "every run" not in line
    table = list(csv.DictReader(io.StringIO(history_out(folder, "--format", "csv"))))
    rows = [r for r in table if (r["cell"], r["metric"]) == (CELL, "build_seconds")]
    assert [r["busy"] for r in rows] == ["True"] + ["False"] * (RUNS - 1)
    assert rows[0]["run_id"] == busy_run and rows[0]["value"] == ""
