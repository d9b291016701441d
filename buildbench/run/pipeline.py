"""A run end to end: matrix -> build -> measure -> (smoke) -> record, results after every cell."""

from __future__ import annotations

import datetime as dt
import logging
import os
import platform
import re
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal, Protocol

from buildbench import __version__
from buildbench import record as status
from buildbench.build import BuildSample, build_once, remove_stage_images
from buildbench.buildkit import build_once_buildkit, find_buildkit_cli
from buildbench.context import PipInputs, build_context
from buildbench.engine import Engine, ImageInfo
from buildbench.errors import (
    BuildFailed,
    EngineUnavailable,
    ImageNotFound,
    Terminated,
    UsageError,
)
from buildbench.hostinfo import cpu_model, git_commit, memory_bytes
from buildbench.matrix import Cell
from buildbench.measure import measure_image
from buildbench.record import CellRecord, RunInfo, Step
from buildbench.results import write_results
from buildbench.smoke.artifacts import check_model_stack, prepare_artifacts
from buildbench.smoke.runner import SmokeOptions, smoke_cell, uses_model

log = logging.getLogger("buildbench")

LABEL_RUN = "buildbench.run-id"
LABEL_CELL = "buildbench.cell"
_SECRET_ARG_WORDS = ("TOKEN", "PASSWORD", "SECRET", "KEY")
_URL_CREDENTIALS = re.compile(r"(\w+://)[^/@\s]+@")


class Progress(Protocol):
    def cell_started(self, cell: Cell, index: int, total: int) -> None: ...
    def build_log(self, cell: Cell, line: str) -> None: ...
    def cell_finished(self, record: CellRecord) -> None: ...


@dataclass
class RunConfig:
    cells: list[Cell]
    base_image: str
    results_dir: Path
    pip: PipInputs = field(default_factory=PipInputs)
    repeat: int = 1
    keep_images: bool = True
    compressed_size: bool = True
    smoke: SmokeOptions | None = None
    builder: Literal["classic", "buildkit"] = "classic"


def new_run_id() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(2)


def recorded_build_args(args: dict[str, str]) -> dict[str, str]:
    """Build-args as written to results: credentials in URLs and secret-looking values masked."""
    return {
        name: "***"
        if any(word in name.upper() for word in _SECRET_ARG_WORDS)
        else _URL_CREDENTIALS.sub(r"\1***@", value)
        for name, value in args.items()
    }


def prepare_results_dir(results_dir: Path, run_id: str) -> Path:
    run_dir = results_dir / run_id
    try:
        run_dir.mkdir(parents=True, exist_ok=False)
        probe = run_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UsageError(
            f"cannot write results to {results_dir}: {exc.strerror}",
            tip="pick a writable directory with --results-dir",
        ) from None
    return run_dir


def ensure_base_image(engine: Engine, ref: str) -> ImageInfo:
    """The base image, pulled first if it is missing (before any timing starts)."""
    info = engine.image(ref)
    if info is None:
        log.info("base image %s is not local: pulling it (not part of any build time)", ref)
        try:
            engine.pull(ref)
        except Exception as exc:  # any pull failure means the same to the user
            raise ImageNotFound(
                f"base image {ref} is not in the engine and pulling it failed ({exc})",
                tip="pull it yourself, pass --base-image, or make one with `buildbench base`",
            ) from None
        info = engine.image(ref)
        if info is None:
            raise ImageNotFound(f"base image {ref} is still missing after a pull")
    return info


def run_info(engine: Engine, config: RunConfig, run_id: str, base_id: str | None) -> RunInfo:
    engine_info = engine.info()
    return RunInfo(
        run_id=run_id,
        started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        host=platform.node(),
        cpu=cpu_model(),
        cpu_count=os.cpu_count() or 0,
        memory_bytes=memory_bytes(),
        engine_version=engine_info.server_version,
        engine_api_version=engine_info.api_version,
        engine_os=engine_info.os,
        storage_driver=engine_info.storage_driver,
        builder=config.builder,
        buildbench_version=__version__,
        git_commit=git_commit(Path(__file__).resolve().parent.parent),
        base_image=config.base_image,
        base_image_id=base_id,
        options={
            "repeat": config.repeat,
            "keep_images": config.keep_images,
            "smoke": asdict(config.smoke) if config.smoke else None,
        },
    )


def _steps(samples: list[BuildSample]) -> list[Step]:
    steps = [Step(index, text, []) for index, text, _ in samples[0].steps]
    for sample in samples:
        for step, (_, _, seconds) in zip(steps, sample.steps, strict=False):
            step.seconds.append(round(seconds, 3))
    return steps


def new_record(cell: Cell, builder: str) -> CellRecord:
    return CellRecord(
        name=cell.name,
        variant=cell.variant,
        framework=cell.framework,
        status=status.OK,
        dockerfile=str(cell.dockerfile),
        build_args=recorded_build_args(cell.build_args),
        config_hash=cell.config_hash(),
        builder=builder,
    )


class Runner:
    """Runs every cell, recording each one; a failed cell never stops the others."""

    def __init__(self, engine: Engine, config: RunConfig, progress: Progress) -> None:
        self.engine = engine
        self.config = config
        self.progress = progress
        self.records: list[CellRecord] = []

    def start(self) -> tuple[RunInfo, Path]:
        """Check what a run needs before building anything, then create its results folder."""
        for cell in self.config.cells:
            cell.dockerfile_text()
        self.config.pip.validate()
        if self.config.builder == "buildkit":
            find_buildkit_cli()  # a UsageError now, not in the first cell
        needs_model = bool(self.config.smoke) and any(map(uses_model, self.config.cells))
        if needs_model:
            check_model_stack()
        # Every BASE_IMAGE a cell builds on is local before the first build: no pull is timed.
        self.bases = {
            ref: ensure_base_image(self.engine, ref)
            for ref in dict.fromkeys(c.build_args.get("BASE_IMAGE", "") for c in self.config.cells)
            if ref
        }
        base = self.bases.get(self.config.base_image)
        base_id = base.id if base else None
        run_id = new_run_id()
        run_dir = prepare_results_dir(self.config.results_dir, run_id)
        self.run = run_info(self.engine, self.config, run_id, base_id)
        self.run_dir = run_dir
        self.save()
        self.artifacts = run_dir / "smoke-artifacts"
        if needs_model and self.config.smoke:
            log.info("preparing the smoke-test model (ResNet-18, ONNX export, references)")
            prepare_artifacts(self.artifacts, self.config.smoke.batch_sizes)
        return self.run, run_dir

    def save(self) -> None:
        write_results(self.run_dir, self.run, self.records)

    def run_all(self) -> list[CellRecord]:
        total = len(self.config.cells)
        try:
            for index, cell in enumerate(self.config.cells, 1):
                self.progress.cell_started(cell, index, total)
                record = new_record(cell, self.config.builder)
                self.records.append(record)
                try:
                    self.run_cell(cell, record)
                except EngineUnavailable as exc:
                    record.status, record.error = status.ENGINE_LOST, exc.message
                    self.run.exit_reason = status.ENGINE_LOST
                    raise
                except (KeyboardInterrupt, Terminated):
                    record.status, record.error = status.INTERRUPTED, "interrupted"
                    self.run.exit_reason = status.INTERRUPTED
                    raise
                except Exception as exc:  # recorded on its cell; the other cells still run
                    log.exception("%s: unexpected error", cell.key)
                    record.status, record.error = status.ERROR, f"{type(exc).__name__}: {exc}"
                finally:
                    self.save()
                    self.progress.cell_finished(record)
            self.run.exit_reason = "completed"
        finally:
            self.run.finished_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            self.save()
        return self.records

    def build(self, cell: Cell, context: BinaryIO, dockerfile: str, tag: str) -> BuildSample:
        """One timed no-cache build with the configured builder."""
        arguments = {
            "dockerfile": dockerfile,
            "tag": tag,
            "buildargs": cell.build_args,
            "labels": self.labels(cell),
            "on_log": lambda line: self.progress.build_log(cell, line),
        }
        if self.config.builder == "buildkit":
            return build_once_buildkit(context, **arguments)
        return build_once(self.engine, context, **arguments)

    def labels(self, cell: Cell) -> dict[str, str]:
        return {LABEL_RUN: self.run.run_id, LABEL_CELL: cell.key}

    def run_cell(self, cell: Cell, record: CellRecord) -> None:
        tag = f"buildbench/{cell.name}:{cell.variant}-{self.run.run_id}".lower()
        record.image_tag = tag
        context, dockerfile = build_context(cell, self.config.pip)
        record.context_bytes = context.seek(0, os.SEEK_END)
        samples: list[BuildSample] = []
        try:
            for _ in range(self.config.repeat):
                if samples:  # the previous sample's image: identical content, not kept
                    self.engine.remove_image(samples[-1].image_id)
                sample = self.build(cell, context, dockerfile, tag)
                samples.append(sample)
                remove_stage_images(self.engine, sample)
                record.build_seconds.append(round(sample.seconds, 3))
                if sample.first_output_seconds is not None:
                    record.first_output_seconds.append(round(sample.first_output_seconds, 3))
        except BuildFailed as exc:
            record.status, record.error, record.log_tail = (
                status.BUILD_FAILED,
                str(exc),
                exc.log_tail,
            )
            return
        finally:
            context.close()
        final = samples[-1]
        record.image_id = final.image_id
        record.steps = _steps(samples)
        record.warnings.extend(dict.fromkeys(final.warnings))
        try:
            self.measure(cell, record)
            if record.status == status.OK and self.config.smoke:
                smoke_cell(
                    self.engine,
                    cell,
                    record,
                    options=self.config.smoke,
                    artifacts=self.artifacts,
                    labels=self.labels(cell),
                )
        finally:
            if not self.config.keep_images:
                self.engine.remove_image(final.image_id)

    def measure(self, cell: Cell, record: CellRecord) -> None:
        assert record.image_id
        base = self.bases.get(cell.build_args.get("BASE_IMAGE", ""))
        try:
            measured, warnings = measure_image(
                self.engine,
                record.image_id,
                base_size_bytes=base.size_bytes if base else None,
                framework=cell.framework,
                compressed=self.config.compressed_size,
            )
        except EngineUnavailable:
            raise
        except Exception as exc:  # recorded on the cell; the other cells still run
            record.status, record.error = status.MEASURE_FAILED, f"{type(exc).__name__}: {exc}"
            return
        record.image_size_bytes = measured.size_bytes
        record.layers = measured.layers
        record.base_image_id = base.id if base else None
        record.bytes_over_base = measured.bytes_over_base
        record.compressed_size_bytes = measured.compressed_size_bytes
        record.python_version = measured.python_version
        record.framework_version = measured.framework_version
        record.warnings.extend(warnings)
