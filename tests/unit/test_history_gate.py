"""`history --fail-on-regression` judged as `compare` judges: a deliberate change restarts the
series instead of failing it, a small shift within the noise does not fail, a real slowdown of
an unchanged cell fails once, on the run that reveals it, and the JSON document is stable."""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from buildbench.analyze.compare import Thresholds
from buildbench.analyze.derived import FIGURES
from buildbench.analyze.history import fails, history, judge_all, regressions
from buildbench.analyze.metrics import METRIC_BY_KEY
from buildbench.analyze.runlevel import (
    run_prior,
    runs_p_value,
)
from buildbench.cli import cli
from buildbench.results import load_results, results_document, write_results
from tests.unit.references import DATA

Edit = Callable[[int, dict[str, Any]], None]  # (run index, cell) -> None


def write_runs(folder: Path, runs: int, edit: Edit, noise: float = 0.03, seed: int = 0) -> Path:
    """`runs` weekly results files of one machine made from a real run's file: every cell's
    build samples (3 a run) at +-`noise` around its own level, then `edit` applied."""
    template = json.loads((DATA / "vm.json").read_text())
    rng = random.Random(seed)
    for n in range(runs):
        data = json.loads(json.dumps(template))
        data["run"]["run_id"] = f"20261201T{n:02d}0000Z-{n:04x}"
        data["run"]["started_at"] = f"2026-12-{n + 1:02d}T00:00:00+00:00"
        for cell in data["results"]:
            level = sorted(cell["build_seconds"])[1] if cell["build_seconds"] else 1.0
            cell["build_seconds"] = [
                round(level * rng.uniform(1 - noise, 1 + noise), 3) for _ in range(3)
            ]
            edit(n, cell)
        run_dir = folder / data["run"]["run_id"]
        run_dir.mkdir(parents=True)
        (run_dir / "results.json").write_text(json.dumps(data))
    return folder


def gate(folder: Path, *options: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["history", str(folder), "--fail-on-regression", *options])
    return result.exit_code, result.stdout


def series_of(folder: Path, cell: str, metric: str = "build_seconds"):
    runs = [load_results(p) for p in sorted(folder.glob("*/results.json"))]
    return next(s for s in history(runs) if s.cell == cell and s.metric.key == metric)


def slower_from(at: int, factor: float, cell: str = "onnx/cpu", new_config: bool = False) -> Edit:
    def edit(n: int, record: dict[str, Any]) -> None:
        if f"{record['name']}/{record['variant']}" == cell and n >= at:
            record["build_seconds"] = [round(s * factor, 3) for s in record["build_seconds"]]
            if new_config:
                record["config_hash"] = "0123456789abcdef"

    return edit


def test_a_deliberate_dockerfile_change_restarts_the_series(tmp_path: Path) -> None:
    """Twelve weekly runs, onnx/cpu's Dockerfile changed at run 8 and its build 30% slower:
    `compare` calls that pair not comparable, and so does `history` (it failed, naming run 8)."""
    folder = write_runs(tmp_path / "runs", 12, slower_from(7, 1.3, new_config=True))
    for runs in (8, 9, 12):  # judged on each night from the change on
        night = tmp_path / f"night{runs}"
        night.mkdir()
        for run_dir in sorted(folder.iterdir())[:runs]:
            shutil.copytree(run_dir, night / run_dir.name)
        code, out = gate(night)
        assert code == 0, out
    series = series_of(folder, "onnx/cpu")
    assert [(r.index, r.changed) for r in series.restarts] == [(7, ("Dockerfile or build-args",))]
    assert series.shifts == []  # each stretch is flat: the change is a restart, not a shift
    line = next(line for line in out.splitlines() if "onnx/cpu" in line and "build time" in line)
    assert "`20261201T070000Z-0007`: restarts (Dockerfile or build-args changed)" in line


def test_a_slowdown_of_an_unchanged_cell_fails_on_the_run_that_reveals_it(tmp_path: Path) -> None:
    folder = write_runs(tmp_path / "runs", 12, slower_from(10, 1.35))
    code, out = gate(folder)
    assert code == 1, out
    assert out.startswith("# buildbench history: REGRESSION")
    [failing] = regressions(history([load_results(p) for p in folder.glob("*/results.json")]))
    assert (failing.cell, failing.metric.key) == ("onnx/cpu", "build_seconds")
    assert failing.regression is not None and failing.regression.index == 10
    assert "**worse, starting at the newest run** (x1.3" in out
    # The next night shows the same slower level: old news, the gate passes.
    write_runs(tmp_path / "later", 13, slower_from(10, 1.35))
    assert gate(tmp_path / "later")[0] == 0


def test_a_shift_smaller_than_the_noise_allows_does_not_fail(tmp_path: Path) -> None:
    """pytorch/cuda's build, +-3% noise, 2% slower from run 11: within its own A/A spread."""
    folder = write_runs(tmp_path / "runs", 12, slower_from(10, 1.02, cell="pytorch/cuda"))
    code, out = gate(folder)
    assert code == 0, out
    verdict = series_of(folder, "pytorch/cuda").verdict
    if verdict is not None:  # a shift was found, but it is no regression
        assert not verdict.effect


def test_json_names_the_regressions_and_the_restarts(tmp_path: Path) -> None:
    def both(n: int, record: dict[str, Any]) -> None:
        slower_from(10, 1.35)(n, record)
        slower_from(7, 1.3, cell="pytorch/cpu", new_config=True)(n, record)

    folder = write_runs(tmp_path / "runs", 12, both)
    result = CliRunner().invoke(cli, ["history", str(folder), "--format", "json"])
    document = json.loads(result.stdout)
    assert document["format"] == "buildbench-history/2"
    assert document["regressions"] == [
        {"machine": "vm", "cell": "onnx/cpu", "metric": "build_seconds"}
    ]
    restarts = [row for row in document["series"] if row["restart"]]
    assert {(row["cell"], row["run_id"]) for row in restarts} == {
        ("pytorch/cpu", "20261201T070000Z-0007")
    }


def test_a_newest_run_on_a_busy_machine_is_left_out_not_a_regression(tmp_path: Path) -> None:
    folder = write_runs(tmp_path / "runs", 12, slower_from(10, 1.35))
    for path in sorted(folder.glob("*/results.json"))[10:]:  # a neighbour during both runs
        run = load_results(path)
        for record in run.records:
            record.build.cpu_others_share = [0.6, 0.6, 0.6]
        write_results(path.parent, results_document(run.info, run.records, FIGURES))
    series = series_of(folder, "onnx/cpu")
    assert series.busy == ["20261201T100000Z-000a", "20261201T110000Z-000b"]
    assert len(series.points) == 10 and series.regression is None
    code, out = gate(folder)
    assert code == 0, out
    assert "left out, busy machine: `20261201T100000Z-000a`, `20261201T110000Z-000b`" in out


def test_the_gate_moderates_each_series_by_a_prior_over_all_it_judges() -> None:
    """As compare does: each time series' variance (the runs before its shift) is shrunk
    towards a prior fitted to every time series the run judges, all metrics together (a nightly
    run has 4 cells a metric: too few for a prior of their own). A step in a series whose own
    runs happen to spread widely is then judged by what the others show too."""
    rng = np.random.default_rng(2)
    keys = ("build_seconds", "latency_b1_seconds", "cold_start_seconds")
    metrics = [METRIC_BY_KEY[keys[i % 3]] for i in range(12)]
    stretches = [list(np.exp(rng.normal(0.0, 0.02, 17))) for _ in range(12)]
    stretches[0] = [0.95, 1.05] * 7 + [1.3, 1.31, 1.29]  # its own spread 5%, the others' 2%
    verdicts = judge_all(stretches, metrics, Thresholds())
    verdict = verdicts[0]
    assert verdict is not None and verdict.shift.index == 14
    before, after = stretches[0][:14], stretches[0][14:]
    prior = run_prior([before, *stretches[1:]])  # the quiet series: all their runs
    assert prior.df > 0
    assert verdict.p_value == pytest.approx(runs_p_value(before, after, "greater", prior))
    alone = runs_p_value(before, after, "greater")
    assert alone is not None and verdict.p_value is not None and verdict.p_value < alone / 10
    assert fails(verdict)
