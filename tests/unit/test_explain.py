"""`compare` explains each flagged metric: sizes by distribution and step, build time by the
steps (matched by instruction) that moved, start-up by phase and version, and the conditions
that differ (a Dockerfile's instructions as a unified diff), in every format."""

from __future__ import annotations

import json
import random
import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from buildbench.analyze.derived import FIGURES
from buildbench.analyze.explain import Difference, Side, explain
from buildbench.analyze.metrics import METRIC_BY_KEY
from buildbench.cli import cli
from buildbench.record import Download
from buildbench.results import load_results, results_document, write_results
from tests.unit.references import DATA
from tests.unit.test_compare import edited
from tests.unit.test_diff import SCHEMA2, with_contents

CAUSE = "+27.00 MB: sympy 1.13.3 added by step 2 `RUN pip install -r requirements.txt`"


def compare(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["compare", *args])
    return result.exit_code, result.stdout


def onnx_only(data: dict[str, Any]) -> None:
    data["results"] = [c for c in data["results"] if c["name"] == "onnx" and c["variant"] == "cpu"]


def before(cell: dict[str, Any]) -> None:
    with_contents(cell, ("numpy", "1.26.4", 20_000_000))
    cell["build"]["seconds"] = [40.0, 41.0, 42.0]
    cell["build"]["steps"][1]["seconds"] = [20.0, 21.0, 22.0]
    cell["smoke"]["framework_version"] = cell["image"]["framework_version"] = "1.19.0"
    for phases in cell["smoke"]["startup"]:
        phases["framework_import"] = 0.5


def after(cell: dict[str, Any]) -> None:
    with_contents(cell, ("numpy", "2.1.0", 21_000_000), ("sympy", "1.13.3", 27_000_000))
    cell["build"]["seconds"] = [70.0, 71.0, 72.0]
    cell["build"]["steps"][1]["seconds"] = [50.0, 51.0, 52.0]
    cell["smoke"]["framework_version"] = cell["image"]["framework_version"] = "1.20.1"
    for phases in cell["smoke"]["startup"]:
        phases["framework_import"] = 1.5
    cell["smoke"]["cold_start_seconds"] = [1.4, 1.41, 1.39]
    cell["image"]["compressed_size_bytes"] += 10_000_000


def pair(tmp_path: Path, edit_after: Any = after) -> tuple[str, str]:
    old = edited(tmp_path, SCHEMA2, before, "old")
    new = edited(tmp_path, SCHEMA2, edit_after, "new")
    for path in (old, new):  # one cell: the lines under test are its own
        data = json.loads(path.read_text())
        onnx_only(data)
        if path == new:
            data["run"]["engine"]["server_version"] = "24.0.7"
        path.write_text(json.dumps(data))
    return str(old), str(new)


def test_a_regression_line_ends_with_its_largest_cause(tmp_path: Path):
    code, out = compare(*pair(tmp_path))
    assert code == 1
    lines = out.splitlines()
    why = lines[lines.index("why:") + 1 :]
    size = next(line for line in why if line.startswith("+ onnx/cpu image size"))
    assert size.endswith(CAUSE)
    assert (
        "    distributions: " + f"{CAUSE}; +1.00 MB: numpy 1.26.4 -> 2.1.0 by step 2"
        in why[why.index(size) + 2]
    )
    build = next(line for line in why if line.startswith("+ onnx/cpu build time"))
    assert build.endswith(
        ": +30.0 s: step 2 `RUN pip install -r requirements.txt` 21.0 s -> 51.0 s"
    )
    packed = next(line for line in why if line.startswith("+ onnx/cpu compressed size"))
    assert packed.endswith(f"{CAUSE} (uncompressed bytes)")
    cold = next(line for line in why if line.startswith("+ onnx/cpu cold start"))
    assert cold.endswith(": +1.0 s: framework import 0.50 s -> 1.5 s; framework 1.19.0 -> 1.20.1")
    # The runs' conditions that differ, under each flagged metric.
    assert "    conditions: engine version 20.10.24+dfsg1 -> 24.0.7" in why


def test_markdown_puts_each_regression_and_its_cause_first(tmp_path: Path):
    code, out = compare(*pair(tmp_path), "--format", "markdown")
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith("## buildbench compare: REGRESSION")
    first = [line for line in lines[1:8] if line.startswith("**")]
    assert any(line.endswith(CAUSE + "**") for line in first), first
    assert "### Why" in lines


def test_json_and_csv_carry_the_explanation(tmp_path: Path):
    old, new = pair(tmp_path)
    document = json.loads(compare(old, new, "--format", "json")[1])
    assert any(line.endswith(CAUSE) for line in document["why"])
    row = next(r for r in document["rows"] if r["metric_key"] == "image_size_bytes")
    explanation = row["explanation"]
    assert explanation["cause"] == CAUSE
    sympy = next(c for c in explanation["sizes"]["changes"] if c["name"] == "sympy")
    assert (sympy["change"], sympy["new_version"], sympy["delta_bytes"], sympy["step"]) == (
        "added",
        "1.13.3",
        27_000_000,
        2,
    )
    steps = next(r for r in document["rows"] if r["metric_key"] == "build_seconds")
    assert steps["explanation"]["steps"][0]["new_seconds"] == 51.0
    assert all(r["explanation"] is None for r in document["rows"] if r["mark"] == " ")
    csv = compare(old, new, "--format", "csv")[1]
    assert csv.splitlines()[0].endswith(",regressed,cause")
    assert any(line.endswith(CAUSE) for line in csv.splitlines())


def test_a_changed_dockerfile_is_not_comparable_and_explained(tmp_path: Path):
    def more_steps(cell: dict[str, Any]) -> None:
        after(cell)
        cell["config_hash"] = "another"
        cell["build"]["steps"].insert(
            1, {"index": 2, "instruction": "RUN apt-get update", "seconds": [3.0]}
        )
        cell["build"]["steps"][2]["index"] = 3
        attribution = cell["contents"]["attribution"]  # one layer more below
        attribution["layers"][0]["index"] = 4
        for distribution in attribution["distributions"]:
            distribution["layer"] = 4

    _, out = compare(*pair(tmp_path, more_steps))
    lines = out.splitlines()
    size = next(line for line in lines if line.startswith("x onnx/cpu image size"))
    assert "+27.00 MB: sympy 1.13.3 added by step 3" in size
    assert size.endswith("(not comparable: Dockerfile changed)")
    # The Dockerfile's instructions as a unified diff, once for the cell (under its first row).
    assert lines.count("      +RUN apt-get update") == 1
    assert lines.index("      --- baseline") < lines.index(size)


# ---------------------------------------------------------------------------------------------
# history: each shift, and the gate's regression first


def slower_step_history(tmp_path: Path, runs: int = 12, step_at: int = 10) -> list[str]:
    """A machine's runs of vm.json where onnx/cpu's longest step takes 20 s more from run
    `step_at` on (the build with it), the rest steady with a little noise."""
    template = load_results(DATA / "vm.json")
    noise = random.Random(0)
    ids = []
    for n in range(runs):
        run_id = f"20261201T{n:02d}0000Z-{n:04x}"
        info = replace(template.info, run_id=run_id, started_at=f"2026-12-01T{n:02d}:00:00+00:00")
        records = []
        for record in template.records:
            slower = 20.0 if record.key == "onnx/cpu" and n >= step_at else 0.0
            steps = [replace(step, seconds=list(step.seconds)) for step in record.build.steps]
            longest = max(steps, key=lambda step: statistics.median(step.seconds))
            longest.seconds = [s + slower for s in longest.seconds]
            base = statistics.median(record.build.seconds)
            seconds = [round((base + slower) * noise.uniform(0.99, 1.01), 3) for _ in range(3)]
            records.append(
                replace(record, build=replace(record.build, seconds=seconds, steps=steps))
            )
        run_dir = tmp_path / "results" / run_id
        run_dir.mkdir(parents=True)
        write_results(run_dir, results_document(info, records, FIGURES))
        ids.append(run_id)
    return ids


def test_history_explains_its_shift_and_puts_the_regression_first(tmp_path: Path):
    ids = slower_step_history(tmp_path)
    runner = CliRunner()
    folder = str(tmp_path / "results")
    result = runner.invoke(cli, ["history", folder, "--fail-on-regression"])
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("# buildbench history: REGRESSION")
    first = next(line for line in lines[1:4] if line)
    assert first.startswith(f"**onnx/cpu build time worse from `{ids[10]}` (x1.")
    assert ": +20.0 s: step 6 `RUN " in first and first.endswith("**")
    assert "## Why" in lines
    document = json.loads(runner.invoke(cli, ["history", folder, "--format", "json"]).stdout)
    assert document["why"] and "+20.0 s: step 6" in document["why"][0]
    row = next(
        r
        for r in document["series"]
        if r["run_id"] == ids[10] and r["cell"] == "onnx/cpu" and r["metric"] == "build_seconds"
    )
    assert row["cause"].startswith("+20.0 s: step 6 `RUN ")
    csv = runner.invoke(cli, ["history", folder, "--format", "csv"]).stdout
    assert csv.splitlines()[0].endswith(",busy,cause")


def test_build_time_names_a_prefetched_download_that_left_the_timing():
    run = load_results(DATA / "vm.json")
    [old] = [r for r in run.records if r.key == "onnx/cpu"]
    new = replace(
        old,
        build=replace(old.build, mode="prefetch", download=Download(120_000_000, 3.2, 14)),
    )
    metric = METRIC_BY_KEY["build_seconds"]
    found = explain(metric, Side(old, run.info), Side(new, run.info))
    assert (
        Difference(
            "prefetched download",
            "none (downloads inside the timed build)",
            "120.0 MB in 3.2 s (14 files)",
        )
        in found.versions
    )
    assert Difference("wheel mode", "network", "prefetch") in found.conditions


def test_a_slower_latency_is_not_blamed_on_the_start_up_phases(tmp_path: Path):
    """The latency is timed after start-up: a phase that moved is no cause of it."""

    def slower(cell: dict[str, Any]) -> None:
        before(cell)  # the same image and versions: only the latency and the phases moved
        latency = cell["smoke"]["latency"]["1"]
        latency["samples"] = [2 * s for s in latency["samples"]]
        for phases in cell["smoke"]["startup"]:
            phases["model_load"] += 0.04

    old = edited(tmp_path, SCHEMA2, before, "old")
    new = edited(tmp_path, SCHEMA2, slower, "new")
    for path in (old, new):
        data = json.loads(path.read_text())
        onnx_only(data)
        path.write_text(json.dumps(data))
    code, out = compare(str(old), str(new))
    assert code == 1
    why = out.splitlines()[out.splitlines().index("why:") + 1 :]
    line = next(i for i, text in enumerate(why) if text.startswith("+ onnx/cpu p50 latency b=1"))
    assert "model load" not in why[line]
    assert not any("start-up phases" in text for text in why[line + 1 : line + 4])
