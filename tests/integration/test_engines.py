"""Engines that do not share this machine's files: a second dockerd in its own mount and network
namespaces, as a remote engine (ssh://, tcp://, docker:dind) is. Its builds get their wheels
from --prefetch (it has no route out); its smoke test gets the model through the Engine API."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from buildbench.engine.dockersdk import DockerEngine
from buildbench.engine.endpoint import from_url
from tests.integration.conftest import (
    buildbench,
    engine_of_its_own,
    remove_runs,
    start,
    wait_for_lines,
)

pytestmark = pytest.mark.integration
ONNX_CPU = ["--framework", "onnx", "--cuda", "cpu", "--prefetch", "--batch-sizes", "1"]


@pytest.fixture
def results_cleanup(engine: DockerEngine, second_engine: str, tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    remove_runs(engine, tmp_path / "results")
    other = DockerEngine(from_url(second_engine))
    remove_runs(other, tmp_path / "results")
    other.close()


def test_a_cell_with_the_onnx_smoke_test_passes_on_an_engine_that_cannot_see_our_files(
    second_engine: str, results_cleanup: Path
):
    ran = buildbench("run", "--engine", second_engine, *ONNX_CPU, cwd=results_cleanup)
    assert ran.process.returncode == 0, ran.process.stderr[-3000:]
    cell = ran.cells()["onnx/cpu"]
    assert cell["status"] == "ok" and cell["smoke"]["status"] == "ok"
    assert cell["smoke"]["detail"]["parity_summary"]["ok"] is True
    assert cell["build"]["mode"] == "prefetch" and cell["build"]["download"] is not None
    # The context (its wheels too) streamed to the remote engine as it was packed, timed.
    build = cell["build"]
    assert 0 < build["context_seconds"][0] < build["seconds"][0] and build["context_bytes"] > 0
    engine = ran.data()["run"]["engine"]
    assert engine["endpoint"] == second_engine and engine["server_version"]
    assert engine["cpus"] and engine["memory_bytes"] and engine["cpu_model"]


def test_two_engines_run_at_once_into_two_results_files_and_one_report(
    second_engine: str, results_cleanup: Path
):
    ran = buildbench(
        "run",
        "--engine",
        "unix:///var/run/docker.sock",
        "--engine",
        second_engine,
        *ONNX_CPU,
        cwd=results_cleanup,
    )
    assert ran.process.returncode == 0, ran.process.stderr[-3000:]
    assert len(ran.results) == 2
    group = ran.results[0].parent.parent
    assert {path.parent.parent for path in ran.results} == {group}
    endpoints = {ran.data(i)["run"]["engine"]["endpoint"] for i in range(2)}
    assert endpoints == {"unix:///var/run/docker.sock", second_engine}
    report = (group / "report.md").read_text()
    assert "2 runs merged" in report
    assert all(ran.cells(i)["onnx/cpu"]["status"] == "ok" for i in range(2))


@pytest.fixture
def doomed_engine(base_image: str) -> Iterator[str]:
    """An engine of its own, for a test that stops it."""
    with engine_of_its_own("buildbench-doomed", base_image) as own:
        yield own.address


def test_an_engine_that_goes_away_stops_only_its_own_run(
    doomed_engine: str, second_engine: str, results_cleanup: Path
):
    process = start(
        "run",
        "--engine",
        second_engine,
        "--engine",
        doomed_engine,
        *ONNX_CPU,
        cwd=results_cleanup,
    )
    wait_for_lines(process, ["vm-2   onnx/cpu | Step 8/"])  # the doomed engine runs pip
    pid = int(Path("/run/buildbench-doomed.pid").read_text())
    os.kill(pid, signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=900)
    assert process.returncode == 3, stderr[-3000:]
    assert "went away" in stderr
    runs = [
        json.loads(p.read_text()) for p in sorted(results_cleanup.glob("results/**/results.json"))
    ]
    by_engine = {run["run"]["engine"]["endpoint"]: run for run in runs}
    assert by_engine[second_engine]["results"][0]["status"] == "ok"
    lost = by_engine[doomed_engine]
    assert lost["results"][0]["status"] == "engine_lost"
    assert lost["run"]["exit_reason"] == "engine_lost" and lost["run"]["finished_at"]
    assert "onnx" in stdout  # the summary of what was measured


def test_ctrl_c_stops_every_engine_and_each_keeps_what_it_measured(
    second_engine: str, results_cleanup: Path
):
    process = start(
        "run",
        "--engine",
        "unix:///var/run/docker.sock",
        "--engine",
        second_engine,
        *ONNX_CPU,
        cwd=results_cleanup,
    )
    wait_for_lines(process, ["vm-1   onnx/cpu | Step 8/", "vm-2   onnx/cpu | Step 8/"])
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 130, stderr[-3000:]
    runs = [
        json.loads(p.read_text()) for p in sorted(results_cleanup.glob("results/**/results.json"))
    ]
    assert len(runs) == 2
    for run in runs:
        assert run["run"]["exit_reason"] == "interrupted"
        assert [cell["status"] for cell in run["results"]] == ["interrupted"]
    assert (next(results_cleanup.glob("results/*")) / "report.md").is_file()
