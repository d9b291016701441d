"""`buildbench history`: a dozen results files of one machine, one cell slowed by 15% from the
eighth run on, noise of +-5% everywhere: the history names that run, and only that one."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from buildbench.analyze.derived import FIGURES, build_summary
from buildbench.analyze.history import history, regressions
from buildbench.cli import cli
from buildbench.results import RunResults, load_results, results_document, write_results
from tests.unit.references import DATA

RUNS, STEP_AT, STEP = 12, 7, 1.15  # the eighth run (index 7) starts the slower segment


def _history(tmp_path: Path, step_at: int = STEP_AT, runs: int = RUNS, seed: int = 0) -> list[str]:
    """`runs` results folders made from a real run's file; their run ids, oldest first."""
    template = load_results(DATA / "vm.json")
    noise = random.Random(seed)
    ids = []
    for n in range(runs):
        run_id = f"20261201T{n:02d}0000Z-{n:04x}"
        info = replace(template.info, run_id=run_id, started_at=f"2026-12-01T{n:02d}:00:00+00:00")
        records = []
        for record in template.records:
            record = replace(record, build=replace(record.build))
            factor = STEP if record.key == "onnx/cpu" and n >= step_at else 1.0
            base = build_summary(record).median or 1.0
            record.build.seconds = [
                round(base * factor * noise.uniform(0.95, 1.05), 3) for _ in range(3)
            ]
            records.append(record)
        run_dir = tmp_path / "results" / run_id
        run_dir.mkdir(parents=True)
        write_results(run_dir, results_document(info, records, FIGURES))
        ids.append(run_id)
    return ids


def _runs(tmp_path: Path) -> list[RunResults]:
    return [load_results(p) for p in sorted((tmp_path / "results").glob("*/results.json"))]


def test_the_history_names_the_run_where_the_cell_got_slower(tmp_path: Path):
    ids = _history(tmp_path)
    series = {(s.cell, s.metric.name): s for s in history(_runs(tmp_path))}
    slowed = series["onnx/cpu", "build time"]
    assert [s.index for s in slowed.shifts] == [STEP_AT]
    assert slowed.run_of(slowed.shifts[0]).run_id == ids[STEP_AT]
    assert slowed.shifts[0].ratio == pytest.approx(STEP, rel=0.05)
    others = [s for key, s in series.items() if key != ("onnx/cpu", "build time") and s.shifts]
    assert others == []


def test_the_command_prints_the_shift_and_fails_only_when_the_newest_run_is_worse(
    tmp_path: Path,
):
    ids = _history(tmp_path)
    runner = CliRunner()
    result = runner.invoke(cli, ["history", str(tmp_path / "results"), "--fail-on-regression"])
    assert result.exit_code == 0, result.output  # the step is old news at the newest run
    line = next(
        line for line in result.stdout.splitlines() if "| build time" in line and "onnx/cpu" in line
    )
    assert f"`{ids[STEP_AT]}`: +1" in line
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    _history(fresh, step_at=RUNS - 2)  # the step at the second-newest run: revealed now
    result = runner.invoke(cli, ["history", str(fresh / "results"), "--fail-on-regression"])
    assert result.exit_code == 1, result.output
    assert result.stdout.startswith("# buildbench history: REGRESSION")
    assert [s.cell for s in regressions(history(_runs(fresh)))] == ["onnx/cpu"]


def test_csv_and_json_have_a_row_per_run_of_each_series(tmp_path: Path):
    _history(tmp_path)
    runner = CliRunner()
    csv = runner.invoke(cli, ["history", str(tmp_path / "results"), "--format", "csv"]).stdout
    assert csv.splitlines()[0] == (
        "machine,cell,metric,run_id,started_at,value,config_hash,shift_ratio,regression,restart,"
        "busy,cause"
    )
    assert sum(",build_seconds," in line for line in csv.splitlines()) == RUNS * 4


def test_charts_are_drawn_next_to_the_output(tmp_path: Path):
    _history(tmp_path)
    out = tmp_path / "history.md"
    result = CliRunner().invoke(cli, ["history", str(tmp_path / "results"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "![build time per run](history-build_seconds.png)" in out.read_text()
    assert (tmp_path / "history-build_seconds.png").stat().st_size > 1000


def test_no_results_is_one_line_and_a_tip(tmp_path: Path):
    result = CliRunner().invoke(cli, ["history", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr.startswith("ERROR: no results.json in")
