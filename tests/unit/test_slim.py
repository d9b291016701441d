"""The slim candidate: its files read out of the image's own layers, its config, and the verdict
of the smoke test run on it."""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import replace
from typing import Any

from buildbench.engine.api import ContainerOutcome, ContainerSpec
from buildbench.labels import LABEL_RUN
from buildbench.measure.slim import (
    UNPROVEN,
    Slimmer,
    candidate_tag,
    config_changes,
)
from buildbench.measure.smoke.kinds.model.smoke import InferenceSmoke
from buildbench.measure.smoke.options import SmokeOptions
from buildbench.measure.trace import PREFIX
from buildbench.record import ImageFacts, SmokeResult
from buildbench.render.slim import slim_section
from buildbench.results import RunResults, load_results
from buildbench.status import Status
from tests.fakes import FakeEngine, classic_stream, docker_save
from tests.unit.test_pipeline import _engine, _plan, _run, _with_smoke, image
from tests.unit.test_report import CURRENT
from tests.unit.test_trace import BASE, TOP

CONFIG = {
    "Env": ["PATH=/usr/bin", 'GREETING=say "hi" for $5'],
    "User": "1000:1000",
    "WorkingDir": "/site/pkg",
    "Entrypoint": ["python"],
    "Cmd": ["-m", "pkg"],
    "Labels": {"org.example": "yes"},
}
TRACED = ["/lib/libc.so", "/lib/libold.so", "/site/pkg/__init__.py"]


def engine_with_image(image: str = "img") -> FakeEngine:
    engine = FakeEngine()
    engine.add_image(image, size=20_000)
    engine.archives[image] = docker_save([BASE, TOP], config=CONFIG)
    engine.run_result = lambda _, spec: ContainerOutcome(
        0, "", PREFIX + json.dumps({"paths": TRACED}) + "\n"
    )
    return engine


def ok(image: str = "") -> SmokeResult:
    return SmokeResult(Status.OK, "ok", "model")


def slim(engine: FakeEngine, smoke: Any = ok, **options: Any) -> Any:
    with Slimmer(engine, "img", {LABEL_RUN: "r1"}, "r1") as slimmer:
        slimmer.smoke_engine().run("img", ContainerSpec(["python", "x.py"]))
        found = slimmer.candidate(
            ok(),
            smoke,
            tag="buildbench/onnx:cpu-r1-slim",
            cuda_without_gpu=options.pop("cuda_without_gpu", False),
            keep=options.pop("keep", False),
            **options,
        )
    return found


def members(engine: FakeEngine) -> dict[str, tarfile.TarInfo]:
    _, _, data = engine.imported[0]
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar.getmembers()}


def file_text(engine: FakeEngine, path: str) -> bytes:
    _, _, data = engine.imported[0]
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        handle = tar.extractfile(path)
        assert handle is not None
        return handle.read()


def test_the_candidate_holds_the_traced_files_with_their_modes_owners_and_links() -> None:
    engine = engine_with_image()
    found = slim(engine)
    got = members(engine)
    assert got["lib"].issym() and got["lib"].linkname == "usr/lib"
    assert got["usr/lib"].isdir() and got["usr/lib"].mode == 0o750  # as its layer wrote it
    assert got["usr/lib/libc.so"].mode == 0o755 and got["usr/lib/libc.so"].uid == 1000
    assert file_text(engine, "usr/lib/libold.so") == b"new!"  # the top layer's copy
    assert "usr/lib/libgone.so" not in got and not any(".wh." in n for n in got)
    assert "usr/share/doc/big.txt" not in got and "site/unused/a.so" not in got
    names = list(got)
    assert names.index("usr") < names.index("usr/lib") < names.index("usr/lib/libc.so")
    assert found.candidate.status == "proven" and found.candidate.files == len(
        [m for m in got.values() if not m.isdir()]
    )
    assert engine.removed == [found.candidate.image_id]  # not kept: removed again
    assert found.trace.touched_bytes < found.trace.image_bytes


def test_the_candidate_gets_the_originals_config_and_the_runs_labels() -> None:
    changes = config_changes({"config": CONFIG}, {LABEL_RUN: "r1"})
    assert 'ENV GREETING="say \\"hi\\" for \\$5"' in changes
    assert "USER 1000:1000" in changes and "WORKDIR /site/pkg" in changes
    assert 'ENTRYPOINT ["python"]' in changes and 'CMD ["-m", "pkg"]' in changes
    assert f'LABEL "{LABEL_RUN}"="r1"' in changes and 'LABEL "org.example"="yes"' in changes
    engine = engine_with_image()
    slim(engine)
    ref, imported_changes, _ = engine.imported[0]
    assert ref == "buildbench/onnx:cpu-r1-slim" and 'CMD ["-m", "pkg"]' in imported_changes


def test_a_candidate_whose_smoke_test_fails_is_recorded_as_failed_with_the_error() -> None:
    engine = engine_with_image()

    def broken(image: str) -> SmokeResult:
        tail = ["ImportError: libc.so: cannot open shared object file: No such file"]
        return SmokeResult(
            Status.SMOKE_FAILED, "the smoke program did not run", "model", output_tail=tail
        )

    found = slim(engine, broken, exclude=["*/libc.so"])
    candidate = found.candidate
    assert candidate.status == "failed" and "cannot open shared object" in candidate.message
    assert candidate.excluded == ["*/libc.so"] and "usr/lib/libc.so" not in members(engine)


def test_a_cuda_candidate_without_a_gpu_is_unproven_and_a_kept_one_stays() -> None:
    engine = engine_with_image()
    found = slim(engine, cuda_without_gpu=True, keep=True)
    assert (found.candidate.status, found.candidate.message) == ("unproven", UNPROVEN)
    assert engine.removed == [] and found.candidate.kept


def test_a_trace_that_found_nothing_builds_no_candidate() -> None:
    engine = engine_with_image()
    engine.run_result = lambda _, spec: ContainerOutcome(0, "", "")
    found = slim(engine)
    assert found.candidate is None and engine.imported == []
    assert found.trace.note is not None and "trace found nothing" in found.trace.note
    assert engine.volumes == {}  # the tracer's volume went with the step


def test_a_candidate_that_cannot_be_built_is_its_own_failure() -> None:
    engine = engine_with_image()

    def refuse(tarball: Any, ref: str, changes: list[str]) -> str:
        raise RuntimeError("no space left on device")

    engine.import_image = refuse  # type: ignore[method-assign]
    found = slim(engine)
    assert found.candidate.status == "failed"
    assert found.candidate.message == (
        "the candidate could not be built: RuntimeError: no space left on device"
    )


def test_the_candidates_tag_is_the_cells_with_slim() -> None:
    assert candidate_tag("buildbench/onnx:cpu-r1") == "buildbench/onnx:cpu-r1-slim"
    assert candidate_tag("onnx") == "onnx:slim"


def test_the_report_shows_the_floor_and_what_was_never_touched() -> None:
    run = load_results(CURRENT)
    record = run.records[0]
    engine = engine_with_image()
    found = slim(engine)
    record.trace, record.slim = found.trace, found.candidate
    record.image = ImageFacts(size_bytes=20_000, layers=2)
    text = slim_section([RunResults(run.info, [record])])
    assert "inference touched" in text and "proven" in text
    assert "/usr/share" in text and "unused 2.0" in text


def test_a_run_with_slim_files_the_trace_and_the_candidate_on_each_cell(
    tmp_path: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(InferenceSmoke, "check", lambda self: None)  # no torch needed here
    engine = _engine([classic_stream(image(1)), classic_stream(image(2))])
    for n in (1, 2):
        engine.archives[image(n)] = docker_save([BASE, TOP], config=CONFIG)

    def traced(image_ref: str, spec: ContainerSpec) -> ContainerOutcome:
        found = _with_smoke(image_ref, spec)
        if "PYTHONPATH" not in spec.environment:
            return found
        return replace(found, stderr=PREFIX + json.dumps({"paths": TRACED}) + "\n")

    engine.run_result = traced
    read: list[str] = []
    archive = engine.image_archive
    monkeypatch.setattr(engine, "image_archive", lambda ref: read.append(ref) or archive(ref))
    plan = _plan(tmp_path, smoke=SmokeOptions(cold_starts=1), slim=True, keep_images=False)
    run, (cpu, cuda) = _run(engine, plan)
    # The original read once by the measure phase (the slim step reuses it), once for its
    # files; the candidate once, for its compressed size.
    assert read.count(image(1)) == 2 and read.count(cpu.slim.image_id if cpu.slim else "") == 1
    assert cpu.trace is not None and cpu.slim is not None and cpu.slim.status == "proven"
    assert cpu.slim.tag == f"buildbench/onnx:cpu-{run.info.run_id}-slim".lower()
    assert (run.run_dir / "traces" / "onnx-cpu.json").is_file()
    assert cpu.status == Status.OK and engine.image(cpu.slim.tag) is None  # removed
    # Its smoke test failed (no CUDA build): nothing to prove against, no candidate.
    assert cuda.slim is None and cuda.trace is not None and "did not pass" in str(cuda.trace.note)
    assert any(p.name == "slim" for p in run.info.timeline)
    assert engine.volumes == {}
    reread = load_results(run.run_dir).records[0]
    assert reread.trace == cpu.trace and reread.slim == cpu.slim
    saved = json.loads((run.run_dir / "results.json").read_text())["results"][0]
    candidate = saved["slim"]["smoke"]["detail"]  # its figures, derived as the cell's are
    assert candidate["parity_summary"] == saved["smoke"]["detail"]["parity_summary"]
    assert candidate["latency"]["1"]["quantiles"]["n"] == len(candidate["latency"]["1"]["samples"])
