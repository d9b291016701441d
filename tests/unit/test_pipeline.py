import json
from pathlib import Path

import pytest

from buildbench import record as status
from buildbench.errors import BuildFailed, ImageNotFound, UsageError
from buildbench.matrix import MatrixOptions, builtin_matrix
from buildbench.pipeline import RunConfig, Runner, recorded_build_args
from buildbench.results import load_results
from tests.fakes import FakeEngine, classic_stream

BASE = "base:1"


def image(n: int) -> str:
    return "sha256:" + f"{n:x}" * 64


class Recorder:
    """Progress that checks, at the end of each cell, what is already on disk."""

    def __init__(self) -> None:
        self.saved_counts: list[int] = []
        self.runner: Runner | None = None

    def cell_started(self, cell, index, total) -> None: ...
    def build_log(self, cell, line) -> None: ...

    def cell_finished(self, record) -> None:
        assert self.runner is not None
        _, records = load_results(self.runner.run_dir)
        self.saved_counts.append(len(records))


def _runner(tmp_path: Path, scripts, **config) -> tuple[Runner, FakeEngine, Recorder]:
    engine = FakeEngine(scripts=scripts)
    engine.add_image(BASE, size=50, tags=(BASE,))
    cells = builtin_matrix(MatrixOptions(frameworks=("onnx",), base_image=BASE))
    progress = Recorder()
    runner = Runner(
        engine, RunConfig(cells=cells, base_image=BASE, results_dir=tmp_path, **config), progress
    )
    progress.runner = runner
    return runner, engine, progress


def test_a_failed_build_is_recorded_and_the_next_cell_still_runs(tmp_path: Path):
    failure = BuildFailed(
        "The command '/bin/sh -c pip install' returned a non-zero code: 1",
        ["ERROR: No matching distribution found for onnxruntime-gpu"],
    )
    runner, _, progress = _runner(tmp_path, [failure, classic_stream(image(2))])
    runner.start()
    cpu, cuda = runner.run_all()
    assert cpu.status == status.BUILD_FAILED
    assert cpu.log_tail == ["ERROR: No matching distribution found for onnxruntime-gpu"]
    assert cuda.status == status.OK
    assert cuda.image_size_bytes == 300 and cuda.bytes_over_base == 250
    assert cuda.framework_version == "9.9" and cuda.python_version == "3.11.2"
    assert progress.saved_counts == [1, 2]  # results on disk after every cell


def test_repeat_keeps_every_sample_and_only_the_last_image(tmp_path: Path):
    scripts = [classic_stream(image(n)) for n in range(1, 7)]
    runner, engine, _ = _runner(tmp_path, scripts, repeat=3, keep_images=False)
    runner.start()
    cpu, _ = runner.run_all()
    assert len(cpu.build_seconds) == 3
    assert [len(step.seconds) for step in cpu.steps] == [3] * 5
    assert cpu.image_id == image(3)
    assert image(1) in engine.removed and image(2) in engine.removed
    assert image(3) in engine.removed  # --no-keep-images, after measuring


def test_results_file_holds_the_run_and_the_build_args(tmp_path: Path):
    runner, engine, _ = _runner(tmp_path, [classic_stream(image(1)), classic_stream(image(2))])
    run, run_dir = runner.start()
    runner.run_all()
    data = json.loads((run_dir / "results.json").read_text())
    assert data["schema_version"] == 1
    assert data["run"]["run_id"] == run.run_id and data["run"]["base_image"] == BASE
    assert data["results"][1]["build_args"] == {"CUDA": "true", "BASE_IMAGE": BASE}
    assert data["results"][0]["build_stats"]["stddev"] is None
    assert engine.builds[0]["labels"]["buildbench.run-id"] == run.run_id
    assert (run_dir / "results.csv").read_text().startswith("run_id,host,name")


def test_an_interrupt_records_the_cell_and_keeps_the_file_valid(tmp_path: Path):
    runner, _, _ = _runner(tmp_path, [classic_stream(image(1)), KeyboardInterrupt()])
    runner.start()
    with pytest.raises(KeyboardInterrupt):
        runner.run_all()
    _, records = load_results(runner.run_dir)
    assert [r.status for r in records] == [status.OK, status.INTERRUPTED]


def test_a_missing_base_image_stops_before_anything_is_built(tmp_path: Path):
    runner, engine, _ = _runner(tmp_path, [])
    engine.images.clear()
    with pytest.raises(ImageNotFound, match="base image base:1"):
        runner.start()
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_results_dir_is_a_user_error(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    runner, _, _ = _runner(blocker, [])
    with pytest.raises(UsageError, match="cannot write results"):
        runner.start()


def test_credentials_never_reach_the_results():
    assert recorded_build_args(
        {
            "PIP_INDEX_URL": "https://user:s3cret@mirror.example/simple",
            "HF_TOKEN": "abc",
            "CUDA": "true",
        }
    ) == {"PIP_INDEX_URL": "https://***@mirror.example/simple", "HF_TOKEN": "***", "CUDA": "true"}
