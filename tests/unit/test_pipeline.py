"""A run end to end against the fake engine: preflight, builds, measuring, the smoke test's
volume, the lock, and results on disk after every cell, whatever stops the run."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from buildbench.analyze.derived import build_summary
from buildbench.analyze.timeline import phase_totals
from buildbench.engine.api import ContainerOutcome, ContainerSpec
from buildbench.engine.classic import ClassicBuilder
from buildbench.errors import (
    BuildFailed,
    EngineUnavailable,
    ImageNotFound,
    PreflightFailed,
    UsageError,
)
from buildbench.labels import LABEL_CELL, LABEL_LOCK, LABEL_RUN, masked_build_args, smoke_volume
from buildbench.measure.smoke import cpuload, program
from buildbench.measure.smoke.kinds.model.smoke import InferenceSmoke
from buildbench.measure.smoke.options import SmokeOptions
from buildbench.record import (
    SCHEMA_VERSION,
    CellRecord,
    ImageFacts,
    Measurement,
    Shipping,
    SmokeResult,
)
from buildbench.render.markdown import render_markdown
from buildbench.results import load_results
from buildbench.run.matrix import Cell, MatrixOptions, builtin_matrix
from buildbench.run.pipeline import PreparedRun
from buildbench.run.plan import RunPlan
from buildbench.run.prepare import prepare
from buildbench.run.progress import RunHeader
from buildbench.run.spare import SpareWork
from buildbench.run.stages import Builds, Failure, apply, new_record
from buildbench.status import ExitReason, Status
from tests.fakes import PROBE_ANSWER, FakeEngine, classic_stream, default_outcome

BASE = "base:1"
ARTIFACTS = b"the smoke test's files, as a tar"


def image(n: int) -> str:
    return "sha256:" + f"{n:x}" * 64


class Recorder:
    """Progress that checks, at the end of each cell, what is already on disk, and what the
    engine holds while the run goes."""

    def __init__(self) -> None:
        self.run: PreparedRun | None = None
        self.header: RunHeader | None = None
        self.saved_counts: list[int] = []
        self.phases: list[str] = []
        self.estimates: dict[tuple[str, str], float | None] = {}
        self.logs: list[str] = []
        self.locks: list[list[dict[str, str]]] = []

    def run_started(self, header: RunHeader) -> None:
        self.header = header

    def cell_started(self, cell: Cell, index: int, total: int) -> None:
        assert self.run is not None
        engine = self.run.engine
        assert isinstance(engine, FakeEngine)
        self.locks.append([dict(c.labels) for c in engine.held_now()])

    def phase(
        self,
        cell: Cell,
        text: str,
        done: int | None = None,
        total: int | None = None,
        estimate: float | None = None,
    ) -> None:
        self.phases.append(text)
        self.estimates[(cell.key, text)] = estimate

    def build_log(self, cell: Cell, line: str) -> None:
        self.logs.append(line)

    def cell_finished(self, record: CellRecord) -> None:
        assert self.run is not None
        self.saved_counts.append(len(load_results(self.run.run_dir).records))


def _engine(scripts: list[Any] | None = None) -> FakeEngine:
    engine = FakeEngine(scripts=scripts or [])
    engine.add_image(BASE, size=50, tags=(BASE,))
    return engine


def _plan(results_dir: Path, **options: Any) -> RunPlan:
    cells = builtin_matrix(MatrixOptions(frameworks=("onnx",), base_image=BASE))
    return RunPlan(cells=cells, base_image=BASE, results_dir=results_dir, **options)


@contextmanager
def _prepared(engine: FakeEngine, plan: RunPlan) -> Iterator[PreparedRun]:
    with prepare(
        engine, plan, ClassicBuilder(engine), make_payload=lambda payload: ARTIFACTS
    ) as run:
        yield run


def _run(
    engine: FakeEngine, plan: RunPlan, progress: Recorder | None = None
) -> tuple[PreparedRun, list[CellRecord]]:
    progress = progress or Recorder()
    with _prepared(engine, plan) as run:
        progress.run = run
        return run, run.run_all(progress)


def test_a_failed_build_is_recorded_and_the_next_cell_still_runs(tmp_path: Path) -> None:
    failure = BuildFailed(
        "The command '/bin/sh -c pip install' returned a non-zero code: 1",
        ["ERROR: No matching distribution found for onnxruntime-gpu"],
    )
    engine = _engine([failure, classic_stream(image(2))])
    progress = Recorder()
    _, (cpu, cuda) = _run(engine, _plan(tmp_path), progress)
    assert cpu.status == Status.BUILD_FAILED
    assert cpu.error == failure.args[0]
    assert cpu.log_tail == ["ERROR: No matching distribution found for onnxruntime-gpu"]
    assert cpu.image is None and cpu.image_id is None
    assert cuda.status == Status.OK
    assert cuda.image is not None
    assert cuda.image.size_bytes == 300 and cuda.image.bytes_over_base == 250
    assert cuda.image.framework_version == "9.9" and cuda.image.python_version == "3.11.2"
    assert cuda.image.compressed_size_source == "estimate" and cuda.contents is not None
    assert progress.saved_counts == [1, 2]  # results on disk after every cell
    assert "Successfully installed thing" in progress.logs
    assert "building (sample 1 of 1)" in progress.phases


def test_repeat_keeps_every_sample_and_only_the_last_image(tmp_path: Path) -> None:
    engine = _engine([classic_stream(image(n)) for n in range(1, 7)])
    _, (cpu, _) = _run(engine, _plan(tmp_path, repeat=3, keep_images=False))
    assert len(cpu.build.seconds) == 3 and len(cpu.build.first_output_seconds) == 3
    assert [len(step.seconds) for step in cpu.build.steps] == [3] * 5
    assert cpu.image_id == image(3)
    assert engine.removed[:2] == [image(1), image(2)]  # each sample's image goes before the next
    assert image(3) in engine.removed  # --no-keep-images, after measuring
    assert image(3) not in engine.images and image(6) not in engine.images
    assert build_summary(cpu).n == 3


def test_every_sample_times_packing_its_context_as_docker_build_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`time docker build` includes packing and sending the context: so does every sample
    (packed again for each), and the record keeps how long that part took, and its size."""
    from buildbench.run import context

    real_add_bytes = context._add_bytes

    def slow_add_bytes(*args: Any) -> None:  # a large context takes a while to pack
        time.sleep(0.2)
        real_add_bytes(*args)

    monkeypatch.setattr(context, "_add_bytes", slow_add_bytes)
    engine = _engine([classic_stream(image(n)) for n in range(1, 5)])
    run, (cpu, _) = _run(engine, _plan(tmp_path, repeat=2))
    packing = 0.2 * 2  # the Dockerfile and pip.conf: two entries added slowly
    assert len(cpu.build.seconds) == 2 and all(s >= packing for s in cpu.build.seconds)
    assert cpu.build.context_seconds is not None and len(cpu.build.context_seconds) == 2
    pairs = zip(cpu.build.context_seconds, cpu.build.seconds, strict=True)
    assert all(packing <= packed <= seconds for packed, seconds in pairs)
    assert cpu.build.context_bytes is not None and cpu.build.context_bytes > 0
    assert "build-inputs/pip.conf" in engine.builds[1]["names"]  # the second sample's, whole
    saved = load_results(run.run_dir).records[0].build
    assert saved.context_seconds == cpu.build.context_seconds


def test_the_results_file_follows_every_stage_and_its_csv_every_cell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from buildbench.render import tables
    from buildbench.run import pipeline

    written: list[str] = []
    for module, name in ((pipeline, "write_results"), (tables, "write_cells_csv")):
        real = getattr(module, name)
        monkeypatch.setattr(
            module, name, lambda *a, real=real, name=name: (written.append(name), real(*a))[1]
        )
    engine = _engine([classic_stream(image(1)), classic_stream(image(2))])
    run, _ = _run(engine, _plan(tmp_path))
    # the folder, then per cell its build, its image and its end; the run's end
    assert written.count("write_results") == 1 + 2 * 3 + 1
    assert written.count("write_cells_csv") == 2 + 1
    assert written[-1] == "write_cells_csv"  # the CSV is the run's last word too
    assert len((run.run_dir / "results.csv").read_text().splitlines()) == 1 + 2


def test_spare_work_runs_beside_the_preflight_and_never_beside_a_build(tmp_path: Path) -> None:
    engine = _engine([classic_stream(image(1)), classic_stream(image(2))])
    began = threading.Event()
    building: list[bool] = []  # True while the fake engine streams a build
    steps_seen: list[tuple[str, threading.Thread, bool]] = []

    def step(name: str) -> Any:
        def run() -> None:
            began.set()
            threading.Event().wait(0.02)
            steps_seen.append((name, threading.current_thread(), bool(building and building[-1])))

        return run

    def probe(image: str, spec: ContainerSpec) -> ContainerOutcome:
        assert began.wait(5)  # the engine's answer awaited while the spare work goes on
        return default_outcome(image, spec)

    engine.run_result = probe
    build = engine.build

    def tracked_build(*args: Any, **kwargs: Any) -> Any:
        building.append(True)
        yield from build(*args, **kwargs)
        building.append(False)

    engine.build = tracked_build  # type: ignore[method-assign]
    progress = Recorder()
    steps = [step("pandas"), step("matplotlib"), step("font")]
    with prepare(engine, _plan(tmp_path), ClassicBuilder(engine), spare=steps) as run:
        progress.run = run
        run.run_all(progress)
    assert [name for name, _, _ in steps_seen] == ["pandas", "matplotlib", "font"]
    assert steps_seen[0][1] is not threading.current_thread()  # the first beside the preflight
    assert not any(during_build for _, _, during_build in steps_seen)


def test_no_spare_work_goes_on_once_the_checks_are_done(tmp_path: Path) -> None:
    """Base pushes, downloads and model preparation come next, and their seconds count."""
    engine = _engine([classic_stream(image(1)), classic_stream(image(2))])
    began = threading.Event()

    def slow() -> None:
        began.set()
        threading.Event().wait(0.3)

    def probe(image: str, spec: ContainerSpec) -> ContainerOutcome:
        assert began.wait(5)
        return default_outcome(image, spec)

    engine.run_result = probe
    with prepare(engine, _plan(tmp_path), ClassicBuilder(engine), spare=[slow] * 4) as run:
        alive = [t.name for t in threading.enumerate() if t.name == "buildbench-spare"]
        assert alive == [] and run.spare is not None and run.spare.left() > 0


def test_results_file_holds_the_run_the_engine_and_the_build_args(tmp_path: Path) -> None:
    engine = _engine([classic_stream(image(1)), classic_stream(image(2))])
    run, _ = _run(engine, _plan(tmp_path))
    data = json.loads((run.run_dir / "results.json").read_text())
    assert data["schema_version"] == SCHEMA_VERSION == 7
    assert data["run"]["run_id"] == run.info.run_id and data["run"]["base_image"] == BASE
    assert data["run"]["base_image_id"] == BASE  # the fake's id for it
    assert data["run"]["exit_reason"] == "completed" and data["run"]["finished_at"]
    engine_facts = data["run"]["engine"]
    assert engine_facts["endpoint"] == engine.endpoint and engine_facts["name"] == "fake-engine"
    assert engine_facts["cpu_model"] == PROBE_ANSWER["cpu_model"]  # read inside a container
    assert (engine_facts["cpus"], engine_facts["server_version"]) == (4, "20.10.24")
    assert data["results"][1]["build_args"] == {"CUDA": "true", "BASE_IMAGE": BASE}
    assert data["results"][0]["build"]["stats"]["stddev"] is None
    assert data["results"][0]["build"]["mode"] == "network"
    assert data["results"][0]["image"]["size_bytes"] == 300
    labels = engine.builds[0]["labels"]
    assert labels == {LABEL_RUN: run.info.run_id, LABEL_CELL: "onnx/cpu"}
    assert engine.builds[0]["tag"] == f"buildbench/onnx:cpu-{run.info.run_id}".lower()
    assert (run.run_dir / "results.csv").read_text().startswith("run_id,machine,engine,name,")
    assert load_results(run.run_dir).info == run.info  # what was written reads back


def test_preflight_probes_the_engine_and_its_reach_of_the_index(tmp_path: Path) -> None:
    engine = _engine([classic_stream(image(1)), classic_stream(image(2))])
    _run(engine, _plan(tmp_path))
    # side by side: in either order
    index, probe = sorted((spec for _, spec in engine.runs[:2]), key=lambda s: not s.network)
    assert probe.command[:2] == ["python3", "-c"] and probe.network is False
    assert index.network is True  # the build network: the default bridge, as builds use
    assert index.command[-1] == "https://pypi.org/simple/"


def test_a_full_disk_stops_the_run_before_anything_is_built(tmp_path: Path) -> None:
    def full(image: str, spec: ContainerSpec) -> ContainerOutcome:
        found = default_outcome(image, spec)
        if "cpu_model" in found.stdout:
            answer = {**PROBE_ANSWER, "free_bytes": 1_000_000}
            return replace(found, stdout=json.dumps(answer) + "\n")
        return found

    engine = _engine()
    engine.run_result = full
    with (
        pytest.raises(PreflightFailed, match=r"the engine has 1\.00 MB free"),
        _prepared(engine, _plan(tmp_path)),
    ):
        pass
    assert engine.builds == [] and list(tmp_path.iterdir()) == []
    assert engine.holds and engine.held_now() == []  # the lock, held beside the probe, is let go
    with _prepared(engine, _plan(tmp_path, preflight=False)):  # --no-preflight: it goes on
        pass


def test_the_probe_the_index_check_and_the_lock_start_side_by_side(tmp_path: Path) -> None:
    """Three containers of their own, each a second or more on a busy engine: the probe and
    the index check are answered only once both were asked and the lock is held."""
    engine = _engine([classic_stream(image(1)), classic_stream(image(2))])
    both_asked, locked = threading.Barrier(2, timeout=5), threading.Event()

    def side_by_side(image: str, spec: ContainerSpec) -> ContainerOutcome:
        if not locked.is_set():  # the preflight's two (the cells' own containers come later)
            both_asked.wait()
            assert locked.wait(5), "the lock waited for the probe"
        return default_outcome(image, spec)

    engine.run_result = side_by_side
    hold = engine.hold

    @contextmanager
    def signalling_hold(image: str, labels: dict[str, str]) -> Iterator[None]:
        with hold(image, labels):
            locked.set()
            yield

    engine.hold = signalling_hold  # type: ignore[method-assign]
    run, (cpu, _) = _run(engine, _plan(tmp_path))
    assert cpu.status == Status.OK and run.info.engine.cpu_model == PROBE_ANSWER["cpu_model"]
    assert engine.holds[0][1][LABEL_RUN] == run.info.run_id and engine.held_now() == []


def test_an_unreachable_index_stops_the_run(tmp_path: Path) -> None:
    def blocked(image: str, spec: ContainerSpec) -> ContainerOutcome:
        if spec.network:
            return ContainerOutcome(1, "https://pypi.org/simple/: URLError: timed out\n", "")
        return default_outcome(image, spec)

    engine = _engine()
    engine.run_result = blocked
    with (
        pytest.raises(PreflightFailed, match=r"cannot reach the pip index: https://pypi\.org"),
        _prepared(engine, _plan(tmp_path)),
    ):
        pass
    assert engine.builds == []


def test_an_interrupt_records_the_cell_and_keeps_the_file_valid(tmp_path: Path) -> None:
    engine = _engine([classic_stream(image(1)), KeyboardInterrupt()])
    progress = Recorder()
    with pytest.raises(KeyboardInterrupt):
        _run(engine, _plan(tmp_path), progress)
    assert progress.run is not None
    found = load_results(progress.run.run_dir)
    assert [r.status for r in found.records] == [Status.OK, Status.INTERRUPTED]
    assert found.info.exit_reason == ExitReason.INTERRUPTED and found.info.finished_at
    assert engine.held_now() == []  # the lock went with the run


def test_a_lost_engine_stops_the_run_and_says_so(tmp_path: Path) -> None:
    engine = _engine([EngineUnavailable("no Docker engine answers"), classic_stream(image(2))])
    progress = Recorder()
    with pytest.raises(EngineUnavailable):
        _run(engine, _plan(tmp_path), progress)
    assert progress.run is not None
    found = load_results(progress.run.run_dir)
    assert [(r.status, r.error) for r in found.records] == [
        (Status.ENGINE_LOST, "no Docker engine answers")
    ]
    assert found.info.exit_reason == ExitReason.ENGINE_LOST


def test_a_measuring_failure_is_the_cells_and_the_next_cell_still_runs(tmp_path: Path) -> None:
    engine = _engine([classic_stream(image(1)), classic_stream(image(2))])
    engine.archives[image(1)] = b"not a docker save archive"
    _, (cpu, cuda) = _run(engine, _plan(tmp_path))
    assert cpu.status == Status.MEASURE_FAILED and cpu.image is None
    assert cpu.error is not None and cpu.error.startswith("ReadError: ")
    assert cuda.status == Status.OK


def test_an_unexpected_error_is_the_cells_and_the_next_cell_still_runs(tmp_path: Path) -> None:
    engine = _engine([RuntimeError("surprise"), classic_stream(image(2))])
    _, (cpu, cuda) = _run(engine, _plan(tmp_path))
    assert (cpu.status, cpu.error) == (Status.ERROR, "RuntimeError: surprise")
    assert cuda.status == Status.OK


def test_a_missing_base_image_stops_before_anything_is_built(tmp_path: Path) -> None:
    engine = _engine()
    engine.images.clear()
    with (
        pytest.raises(ImageNotFound, match="base image base:1"),
        _prepared(engine, _plan(tmp_path)),
    ):
        pass
    assert engine.calls == [("pull", BASE)]  # it tried a pull first
    assert list(tmp_path.iterdir()) == []


def test_a_missing_base_image_is_pulled_before_any_timing(tmp_path: Path) -> None:
    engine = FakeEngine(scripts=[classic_stream(image(1)), classic_stream(image(2))])
    engine.pullable.add(BASE)
    run, records = _run(engine, _plan(tmp_path))
    assert engine.calls[0] == ("pull", BASE)
    assert [r.status for r in records] == [Status.OK, Status.OK]
    assert run.info.base_image_id == engine.images[BASE].id


def test_an_unwritable_results_dir_is_a_user_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with (
        pytest.raises(UsageError, match="cannot write results"),
        _prepared(_engine(), _plan(blocker)),
    ):
        pass


def test_the_run_holds_its_lock_while_it_runs(tmp_path: Path) -> None:
    engine = _engine([classic_stream(image(1)), classic_stream(image(2))])
    progress = Recorder()
    run, _ = _run(engine, _plan(tmp_path), progress)
    lock = {LABEL_RUN: run.info.run_id, LABEL_LOCK: "1"}
    assert progress.locks == [[lock], [lock]]
    assert engine.holds == [(BASE, lock)]  # a container of the base image
    assert engine.held_now() == []


def _with_smoke(image: str, spec: ContainerSpec) -> ContainerOutcome:
    """The fake's usual answers; the smoke program reports a healthy CPU image."""
    if "/buildbench/program.py" not in spec.command:
        return default_outcome(image, spec)
    found = {
        "python_version": "3.11.2",
        "framework_version": "1.32.0",
        "cuda_build": False,  # a CPU onnxruntime, whatever the cell claims
        "gpu_used": False,
        "parity": {"1": {"max_abs_diff": 1e-7, "max_rel_diff": 1e-6, "ok": True}},
        "latency": {"1": {"samples": [0.01, 0.012, 0.011], "seconds": 2.0, "warmup": 3}},
        "network": {"interfaces": ["lo"], "connection_failed": True, "error": "gaierror"},
    }
    return ContainerOutcome(0, program.RESULT_PREFIX + json.dumps(found) + "\n", "", seconds=2)


def test_the_smoke_test_gets_its_files_in_a_volume_that_goes_with_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(InferenceSmoke, "check", lambda self: None)  # no torch needed here
    engine = _engine([classic_stream(image(1)), classic_stream(image(2))])
    engine.run_result = _with_smoke
    volumes_during: list[dict[str, dict[str, str]]] = []

    class Watching(Recorder):
        def cell_started(self, cell: Cell, index: int, total: int) -> None:
            volumes_during.append(dict(engine.volumes))

    progress = Watching()
    run, (cpu, cuda) = _run(engine, _plan(tmp_path, smoke=SmokeOptions(cold_starts=1)), progress)
    volume = smoke_volume(run.info.run_id)
    # Filled when the first cell needs it, through a container of that cell's image: a config
    # whose Dockerfiles name their base in FROM alone gets its smoke test as well.
    assert volumes_during == [{}, {volume: {LABEL_RUN: run.info.run_id}}]
    assert engine.filled == {volume: ARTIFACTS}
    assert ("fill_volume", volume, image(1)) in engine.calls
    smoke_specs = [spec for _, spec in engine.runs if "/buildbench/program.py" in spec.command]
    assert len(smoke_specs) == 2
    assert all(spec.volumes[0].volume == volume for spec in smoke_specs)
    assert all(spec.volumes[0].read_only for spec in smoke_specs)
    assert [spec.labels[LABEL_CELL] for spec in smoke_specs] == ["onnx/cpu", "onnx/cuda"]
    assert engine.volumes == {}  # removed when the run ends
    assert cpu.status == Status.OK and cpu.smoke is not None and cpu.smoke.kind == "model"
    assert cuda.status == Status.INVALID_VARIANT  # its onnxruntime is no CUDA build
    assert "measuring the image" in progress.phases


@pytest.mark.parametrize(
    ("smoke", "waits"),
    [(SmokeOptions(timeout_seconds=30), 30), (SmokeOptions(), 120), (None, 120)],
)
def test_the_version_probe_waits_no_longer_than_the_smoke_tests_containers(
    tmp_path: Path, smoke: SmokeOptions | None, waits: float
) -> None:
    """An image whose python hangs costs the run --smoke-timeout at the probe, not 2 minutes."""
    engine = _engine([classic_stream(image(1)), classic_stream(image(2))])
    _run(engine, _plan(tmp_path, smoke=smoke, read_images=False))
    probes = [
        s for ran, s in engine.runs if ran != BASE and "python_version" in " ".join(s.command)
    ]
    assert len(probes) == 2 and {spec.timeout_seconds for spec in probes} == {waits}


def test_a_model_refused_while_its_files_are_made_leaves_no_run_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused for the user's input before any cell: nothing measured, so no run folder that
    `report` would call interrupted and `history` would count."""
    monkeypatch.setattr(InferenceSmoke, "check", lambda self: None)  # no torch needed here
    engine = _engine()

    def refuse(payload: object) -> bytes:
        raise UsageError("--model m.onnx: output 0 is uint16", tip="outputs are one of ...")

    plan = _plan(tmp_path, smoke=SmokeOptions(cold_starts=1))
    with (
        pytest.raises(UsageError, match="output 0 is uint16"),
        prepare(engine, plan, ClassicBuilder(engine), make_payload=refuse),
    ):
        pass
    assert list(tmp_path.iterdir()) == []
    assert engine.held_now() == [] and engine.volumes == {}


def test_without_a_smoke_test_there_is_no_volume(tmp_path: Path) -> None:
    engine = _engine([classic_stream(image(1)), classic_stream(image(2))])
    _run(engine, _plan(tmp_path))
    assert [call for call in engine.calls if "volume" in call[0]] == []


def test_credentials_never_reach_the_results() -> None:
    assert masked_build_args(
        {
            "PIP_INDEX_URL": "https://user:s3cret@mirror.example/simple",
            "HF_TOKEN": "abc",
            "CUDA": "true",
        }
    ) == {"PIP_INDEX_URL": "https://***@mirror.example/simple", "HF_TOKEN": "***", "CUDA": "true"}
    cell = Cell("mine", "cpu", Path(__file__), Path("."), build_args={"API_KEY": "k", "CUDA": ""})
    assert new_record(cell, "classic").build_args == {"API_KEY": "***", "CUDA": ""}


# ---------------------------------------------------------------------------------------------
# apply: the one place a record changes


def _record() -> CellRecord:
    return CellRecord("onnx", "cpu", "onnx", "d", {}, "h")


def test_the_first_failure_is_the_one_that_counts() -> None:
    record = _record()
    apply(record, Failure(Status.MEASURE_FAILED, "first", ("a",)))
    apply(record, Failure(Status.SMOKE_FAILED, "second"))
    assert (record.status, record.error, record.log_tail) == (
        Status.MEASURE_FAILED,
        "first",
        ["a"],
    )


def test_warnings_are_kept_once_each() -> None:
    record = _record()
    builds = Builds(record.build, "img", ("unused CUDA",))
    apply(record, builds)
    apply(record, builds)
    apply(record, Measurement(ImageFacts(100, 2), None, ("unused CUDA", "probe failed")))
    assert record.warnings == ["unused CUDA", "probe failed"]
    assert record.image_id == "img" and record.image == ImageFacts(100, 2)


def test_a_failed_smoke_test_fails_the_cell() -> None:
    record = _record()
    apply(record, SmokeResult(Status.SMOKE_TIMEOUT, "no result within 300 s", "model"))
    assert (record.status, record.error) == (Status.SMOKE_TIMEOUT, "no result within 300 s")
    assert record.smoke is not None


def test_the_registrys_size_replaces_the_estimate() -> None:
    record = _record()
    apply(
        record,
        Measurement(
            ImageFacts(1000, 3, compressed_size_bytes=400, compressed_size_source="estimate")
        ),
    )
    shipping = Shipping("localhost:5000", "localhost:5000/buildbench/onnx:cpu-r", 3.0, 390, 7)
    apply(record, shipping)
    assert record.registry == shipping
    assert record.image is not None
    assert (record.image.compressed_size_bytes, record.image.compressed_size_source) == (
        390,
        "registry",
    )


def test_the_timeline_has_every_phase_back_to_back_adding_up_to_the_wall_time(
    tmp_path: Path,
) -> None:
    engine = _engine([classic_stream(image(1)), classic_stream(image(2))])
    run, _ = _run(engine, _plan(tmp_path, repeat=2))
    phases, wall = run.info.timeline, run.info.wall_seconds
    assert wall is not None and phases[0].name == "preflight" and phases[0].start == 0.0
    for before, after in itertools.pairwise(phases):
        assert after.start == pytest.approx(before.start + before.seconds, abs=0.002)
    assert sum(p.seconds for p in phases) == pytest.approx(wall, abs=0.001 * len(phases))
    builds = [(p.cell, p.detail) for p in phases if p.name == "build"]
    assert builds[:2] == [("onnx/cpu", "sample 1 of 2"), ("onnx/cpu", "sample 2 of 2")]
    names = {p.name for p in phases}
    assert {"preflight", "build", "measure", "clean-up"} <= names
    saved = json.loads((run.run_dir / "results.json").read_text())["run"]
    assert saved["wall_seconds"] == wall and len(saved["timeline"]) == len(phases)


def test_the_live_view_gets_the_previous_runs_time_for_the_same_phase(tmp_path: Path) -> None:
    before, _ = _run(_engine([classic_stream(image(1)), classic_stream(image(2))]), _plan(tmp_path))
    second = Recorder()
    engine = _engine([classic_stream(image(3)), classic_stream(image(4))])
    _run(engine, _plan(tmp_path), second)
    phases = before.info.timeline
    took = next(p.seconds for p in phases if (p.name, p.cell) == ("build", "onnx/cpu"))
    assert second.estimates[("onnx/cpu", "building (sample 1 of 1)")] == took


def test_the_report_says_where_the_time_went(tmp_path: Path) -> None:
    engine = _engine([classic_stream(image(1)), classic_stream(image(2))])
    run, _ = _run(engine, _plan(tmp_path))
    saved = load_results(run.run_dir)
    text = render_markdown([saved], "not drawn")
    section = text.split("## Where the time went", 1)[1].split("\n## ", 1)[0]
    assert f"`{run.info.run_id}` on " in section
    rows = [line.split("|")[1].strip() for line in section.splitlines() if line.startswith("| ")]
    assert rows[:3] == ["phase", "preflight", "build"]
    assert {"onnx/cpu", "onnx/cuda", "clean-up"} <= set(rows)
    totals = phase_totals(saved.info)
    assert sum(t.seconds for t in totals) == pytest.approx(saved.info.wall_seconds, abs=0.01)


@pytest.mark.parametrize("read_images", [False, True])
def test_spare_work_goes_on_beside_the_version_probe_unless_the_image_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, read_images: bool
) -> None:
    """The version probe is an engine wait nothing times, unless the image is read beside it:
    that read is timed, so nothing spare runs then."""
    monkeypatch.setattr(cpuload, "QUIET_SECONDS", 0.0)  # the build's windows take no step
    engine = _engine([classic_stream(image(1))])
    built, stepped = threading.Event(), threading.Event()
    seen: list[tuple[threading.Thread, bool]] = []  # (where, after the build)

    def step() -> None:
        seen.append((threading.current_thread(), built.is_set()))
        stepped.set()

    build = engine.build

    def tracked_build(*args: Any, **kwargs: Any) -> Any:
        yield from build(*args, **kwargs)
        built.set()

    def probe(ref: str, spec: ContainerSpec) -> ContainerOutcome:
        if ref != BASE and not read_images:  # the built image's version probe
            assert stepped.wait(5)  # the spare step ran by the time the probe answers
        return default_outcome(ref, spec)

    engine.build = tracked_build  # type: ignore[method-assign]
    engine.run_result = probe
    cells = builtin_matrix(MatrixOptions(frameworks=("onnx",), variants=("cpu",), base_image=BASE))
    plan = RunPlan(cells, BASE, tmp_path, read_images=read_images)
    progress = Recorder()
    with _prepared(engine, plan) as run:
        run.spare, progress.run = SpareWork([step]), run
        run.run_all(progress)
    if read_images:
        assert seen == [] and run.spare.left() == 1
    else:  # in its thread, after the build, before the probe's answer
        assert [after_build for _, after_build in seen] == [True]
        assert seen[0][0] is not threading.current_thread()
