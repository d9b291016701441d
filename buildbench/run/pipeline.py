"""A run end to end: matrix -> build -> measure -> smoke -> (registry) -> record.

`prepare` checks everything a run needs before the first build and returns a `PreparedRun`;
its `run_all` runs every cell. Each stage of a cell returns a value (`Builds`, `Measurement`,
`SmokeResult`, `Shipping`, or a `Failure`) and `apply` files it on the cell's record: the one
place a record changes. The results file is rewritten after every stage that changed it, so
whatever happens later, nothing measured is lost.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import platform
import secrets
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Protocol

from buildbench import __version__
from buildbench.analyze.derived import results_document
from buildbench.analyze.interference import interference_warnings
from buildbench.engine.api import Engine, ImageInfo
from buildbench.engine.builders import Builder, BuilderName, BuildRequest, BuildSample
from buildbench.errors import BuildFailed, EngineUnavailable, Terminated, UsageError
from buildbench.labels import LABEL_LOCK, masked_build_args, run_labels, smoke_volume
from buildbench.measure.archive import ArchiveAnalysis
from buildbench.measure.image import measure_image
from buildbench.measure.shipping import cold_pulls, push_base, ship
from buildbench.measure.slim import Slimmed, Slimmer, candidate_tag, trace_file
from buildbench.measure.smoke import cpuload
from buildbench.measure.smoke.runner import (
    Payload,
    SmokeContext,
    SmokeKind,
    SmokeOptions,
    wants_gpus,
)
from buildbench.record import (
    BuildRecord,
    CellRecord,
    Download,
    EngineFacts,
    Measurement,
    RunInfo,
    Shipping,
    SmokeResult,
    Step,
)
from buildbench.render.tables import write_cells_csv
from buildbench.results import RunResults, newest_run, write_results
from buildbench.run import preflight
from buildbench.run.cleanup import Journal
from buildbench.run.context import build_context
from buildbench.run.hostinfo import cpu_model, git_commit, memory_bytes
from buildbench.run.matrix import Cell
from buildbench.run.pipconfig import PipInputs
from buildbench.run.prefetch import prefetch_wheels
from buildbench.run.smokes import idle_cells, smoke_kind
from buildbench.run.spare import SpareStep, SpareWork
from buildbench.run.timeline import Timeline, phase_seconds
from buildbench.status import ExitReason, Status

log = logging.getLogger("buildbench")


@dataclass(frozen=True)
class RunHeader:
    """What a run says when it starts: where its results go and what it was given."""

    run_id: str
    run_dir: Path
    engine: EngineFacts
    builder: str
    base_image: str
    pip: tuple[str, ...]
    not_built: Mapping[str, str] = field(default_factory=dict)  # cell key -> why not


class Progress(Protocol):
    """What a run tells whoever watches it (the terminal's live view, or nobody). Each method
    does nothing unless a watcher says otherwise."""

    def run_started(self, header: RunHeader) -> None:
        return None

    def cell_started(self, cell: Cell, index: int, total: int) -> None:
        return None

    def phase(
        self,
        cell: Cell,
        text: str,
        done: int | None = None,
        total: int | None = None,
        estimate: float | None = None,  # seconds the same phase took in the previous run
    ) -> None:
        return None

    def build_log(self, cell: Cell, line: str) -> None:
        return None

    def cell_finished(self, record: CellRecord) -> None:
        return None


class Silent(Progress):
    """Progress that shows nothing."""


@dataclass(frozen=True)
class RunPlan:
    """What the user asked for: the cells and how to build, measure and test them."""

    cells: list[Cell]
    base_image: str
    results_dir: Path
    pip: PipInputs = field(default_factory=PipInputs)
    builder: BuilderName = "classic"
    repeat: int = 1
    keep_images: bool = True
    read_images: bool = True  # one pass over `docker save`: compressed size, contents, waste
    smoke: SmokeOptions | None = None
    prefetch: bool = False
    preflight: bool = True
    machine: str | None = None  # a stable name for reports and history (CI runners' vary)
    registry: str | None = None  # HOST[:PORT]: push, size in, and pull back every image
    cold_pull: bool = False  # and pull each with nothing local, the base set aside meanwhile
    slim: bool = False  # trace the smoke test, build a slim image of it, smoke-test that too
    slim_exclude: tuple[str, ...] = ()  # globs (/paths) the slim image leaves out on purpose
    not_built: Mapping[str, str] = field(default_factory=dict)  # cell key -> why: see idle()

    def smoke_kinds(self) -> dict[str, SmokeKind]:
        """Each cell's smoke test, by cell key (none for cells without one, or --no-smoke)."""
        if self.smoke is None:
            return {}
        kinds = {cell.key: smoke_kind(cell, self.smoke) for cell in self.cells}
        return {key: kind for key, kind in kinds.items() if kind is not None}

    def idle(self) -> RunPlan:
        """The plan without the cells whose image no model of the run could use (run/smokes.py),
        each kept in `not_built` with its reason: decided once the models are checked, before
        anything is built."""
        idle = idle_cells(self.cells, self.smoke) if self.smoke else {}
        cells = [cell for cell in self.cells if cell.key not in idle]
        return replace(self, cells=cells, not_built={**self.not_built, **idle})

    def payloads(self) -> list[Payload]:
        """The files the smoke tests need, once each."""
        found = (kind.payload() for kind in self.smoke_kinds().values())
        return list({p.key: p for p in found if p is not None}.values())

    def options(self) -> dict[str, object]:
        return {
            "repeat": self.repeat,
            "keep_images": self.keep_images,
            "read_images": self.read_images,
            "prefetch": self.prefetch,
            "registry": self.registry,
            "cold_pull": self.cold_pull,
            "smoke": asdict(self.smoke) if self.smoke else None,
            "cells": [cell.key for cell in self.cells],
            **({"not_built": dict(self.not_built)} if self.not_built else {}),
        }


# ---------------------------------------------------------------------------------------------
# The values a cell's stages return


@dataclass(frozen=True)
class Builds:
    """Every build sample of a cell that finished, and the image the last one made."""

    record: BuildRecord
    image_id: str | None
    warnings: tuple[str, ...] = ()
    cache_records: tuple[str, ...] = ()  # BuildKit's records of the kept image


@dataclass(frozen=True)
class Failure:
    status: Status
    message: str
    log_tail: tuple[str, ...] = ()


Value = Builds | Measurement | SmokeResult | Shipping | Slimmed | Failure


def apply(record: CellRecord, value: Value) -> None:
    """File a stage's value on the cell's record: the one place a record changes."""
    match value:
        case Builds():
            record.build = value.record
            record.image_id = value.image_id
            record.warn(*value.warnings, *interference_warnings(record))
        case Measurement():
            record.image, record.contents = value.image, value.contents
            record.warn(*value.warnings)
        case SmokeResult():
            record.smoke = value
            record.warn(*interference_warnings(record))
            if value.status != Status.OK:
                record.fail(value.status, value.message)
        case Shipping():
            record.registry = value
            if record.image is not None:  # the registry's own figure replaces the estimate
                record.image = replace(
                    record.image,
                    compressed_size_bytes=value.stored_bytes,
                    compressed_size_source="registry",
                )
        case Slimmed():  # the candidate's failure is its own: the cell stays as measured
            record.trace, record.slim = value.trace, value.candidate
        case Failure():
            record.fail(value.status, value.message, list(value.log_tail))


def new_run_id() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(2)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def new_record(cell: Cell, builder: str) -> CellRecord:
    return CellRecord(
        name=cell.name,
        variant=cell.variant,
        framework=cell.framework,
        dockerfile=str(cell.dockerfile),
        build_args=masked_build_args(cell.build_args),
        config_hash=cell.config_hash(),
        builder=builder,
    )


def _steps(samples: list[BuildSample]) -> list[Step]:
    steps = [Step(index, text, []) for index, text, _ in samples[0].steps]
    for sample in samples:
        for step, (_, _, seconds) in zip(steps, sample.steps, strict=False):
            step.seconds.append(round(seconds, 3))
    return steps


# ---------------------------------------------------------------------------------------------
# A prepared run


@dataclass
class PreparedRun:
    """A run that passed its checks: results folder, engine facts, base images, the smoke
    test's volume and the lock. Made by `prepare`, which also releases it."""

    plan: RunPlan
    engine: Engine
    builder: Builder
    info: RunInfo
    run_dir: Path
    bases: dict[str, ImageInfo]
    journal: Journal
    gpus: bool
    kinds: dict[str, SmokeKind] = field(default_factory=dict)  # each cell's smoke test
    payloads: dict[str, bytes] = field(default_factory=dict)  # their files, by payload key
    volumes: dict[str, str] = field(default_factory=dict)  # those filled into the engine
    prefetched: dict[str, tuple[list[Path], Download]] = field(default_factory=dict)
    records: list[CellRecord] = field(default_factory=list)
    lock: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    timeline: Timeline = field(default_factory=Timeline)
    # The previous run's seconds per (cell, phase, detail): the live view's "last run".
    estimates: Mapping[tuple[str | None, str, str | None], float] = field(default_factory=dict)
    spare: SpareWork | None = None  # `prepare`'s work for later, never beside a timed build

    def save(self, *, table: bool = False) -> None:
        """The results file, after every stage; with `table`, its CSV view too (after every
        cell: the same figures, and a frame costs more than the file)."""
        write_results(self.run_dir, results_document(self.info, self.records))
        if table:
            write_cells_csv(self.run_dir, RunResults(self.info, self.records))

    def header(self) -> RunHeader:
        return RunHeader(
            run_id=self.info.run_id,
            run_dir=self.run_dir,
            engine=self.info.engine,
            builder=self.info.builder,
            base_image=self.info.base_image,
            pip=tuple(self.plan.pip.describe()),
            not_built=self.plan.not_built,
        )

    def labels(self, cell: Cell | None = None) -> dict[str, str]:
        return run_labels(self.info.run_id, cell.key if cell else None)

    def phase(
        self,
        progress: Progress,
        cell: Cell,
        name: str,
        text: str,
        detail: str | None = None,
        done: int | None = None,
        total: int | None = None,
    ) -> None:
        """The cell's next phase: on the timeline, and on the live view with last run's time."""
        self.timeline.enter(name, cell.key, detail)
        estimate = self.estimates.get((cell.key, name, detail))
        progress.phase(cell, text, done, total, estimate)

    def run_all(self, progress: Progress) -> list[CellRecord]:
        """Every cell in turn; a failed cell never stops the others. Ctrl-C, SIGTERM and a lost
        engine stop the run after recording the cell they hit."""
        total = len(self.plan.cells)
        progress.run_started(self.header())
        try:
            for index, cell in enumerate(self.plan.cells, 1):
                progress.cell_started(cell, index, total)
                record = new_record(cell, self.builder.name)
                self.records.append(record)
                try:
                    self.run_cell(cell, record, progress)
                except EngineUnavailable as exc:
                    apply(record, Failure(Status.ENGINE_LOST, exc.message))
                    self.info.exit_reason = ExitReason.ENGINE_LOST
                    raise
                except (KeyboardInterrupt, Terminated):
                    record.status, record.error = Status.INTERRUPTED, "interrupted"
                    self.info.exit_reason = ExitReason.INTERRUPTED
                    raise
                except Exception as exc:  # recorded on its cell; the other cells still run
                    log.debug("%s: unexpected error", cell.key, exc_info=True)
                    apply(record, Failure(Status.ERROR, f"{type(exc).__name__}: {exc}"))
                finally:
                    self.save(table=True)
                    progress.cell_finished(record)
            if self.plan.registry and self.plan.cold_pull:
                self.cold_pulls(progress)
            self.info.exit_reason = ExitReason.COMPLETED
        finally:
            self.info.wall_seconds = self.timeline.close()
            self.info.finished_at = _now()
            self.save(table=True)
        return self.records

    def payload_volume(self, payload: Payload | None, image: str) -> str | None:
        """The volume holding a payload's files, filled the first time a cell needs it
        (through a helper container of that cell's image: any image will do)."""
        if payload is None:
            return None
        if payload.key not in self.volumes:
            volume = smoke_volume(self.info.run_id, len(self.volumes))
            self.engine.create_volume(volume, self.labels())
            self.volumes[payload.key] = volume
            self.engine.fill_volume(volume, self.payloads[payload.key], image)
        return self.volumes[payload.key]

    def smoke(
        self, cell: Cell, image: str, progress: Progress, engine: Engine | None = None
    ) -> SmokeResult | None:
        kind = self.kinds.get(cell.key)
        if kind is None or self.plan.smoke is None:
            return None
        context = SmokeContext(
            engine=engine or self.engine,
            image=image,
            options=self.plan.smoke,
            labels=self.labels(cell),
            gpus=self.gpus,
            volume=self.payload_volume(kind.payload(), image),
            on_progress=lambda text: self.phase(
                progress, cell, "smoke", f"smoke test: {text}", detail=text
            ),
        )
        self.phase(progress, cell, "smoke", "smoke test: starting")
        return kind.run(context)

    def cold_pulls(self, progress: Progress) -> None:
        """Each shipped image pulled with nothing local; the run's lock goes first, as it is a
        container of the base image, which must be set aside meanwhile."""
        self.lock.close()
        self.timeline.enter("cold pulls")
        by_base: dict[str, list[CellRecord]] = {}
        for cell, record in zip(self.plan.cells, self.records, strict=False):
            if cell.base_image:
                by_base.setdefault(cell.base_image, []).append(record)
        for base, records in by_base.items():
            found = cold_pulls(
                self.engine,
                records,
                registry=self.plan.registry or "",
                run_id=self.info.run_id,
                base_ref=base,
                keep_images=self.plan.keep_images,
                on_progress=lambda text: log.info("%s", text),
            )
            for record, shipping in found:
                apply(record, shipping)
            self.save()

    def run_cell(self, cell: Cell, record: CellRecord, progress: Progress) -> None:
        record.image_tag = f"buildbench/{cell.name}:{cell.variant}-{self.info.run_id}".lower()
        builds = self.build(cell, record, progress)
        if builds.image_id is None:
            return
        try:
            self.phase(progress, cell, "measure", "measuring the image")
            base = self.bases.get(cell.base_image or "")
            analysed: list[ArchiveAnalysis] = []  # the image read once: --slim reuses it
            try:
                measured = measure_image(
                    self.engine,
                    builds.image_id,
                    base=base,
                    framework=cell.framework,
                    read_image=self.plan.read_images,
                    on_analysis=analysed.append if self.plan.slim else lambda _: None,
                    on_read=lambda done, all_: self.phase(
                        progress,
                        cell,
                        "measure",
                        "reading the image (compressed size, contents)",
                        "reading the image",
                        done,
                        all_,
                    ),
                )
            except EngineUnavailable:
                raise
            except Exception as exc:  # recorded on the cell; the other cells still run
                apply(record, Failure(Status.MEASURE_FAILED, f"{type(exc).__name__}: {exc}"))
                return
            apply(record, measured)
            self.save()
            if self.plan.slim and cell.key in self.kinds:
                self.slim(cell, record, builds.image_id, progress, *analysed[:1])
            elif (result := self.smoke(cell, builds.image_id, progress)) is not None:
                apply(record, result)
            if self.plan.registry and record.image_tag:
                try:
                    shipped = ship(
                        self.engine,
                        builds.image_id,
                        record.image_tag,
                        registry=self.plan.registry,
                        repository=f"buildbench/{cell.name}",
                        tag=f"{cell.variant}-{self.info.run_id}".lower(),
                        on_progress=lambda text: self.phase(
                            progress, cell, "shipping", text, detail=text
                        ),
                    )
                except EngineUnavailable:
                    raise
                except Exception as exc:  # recorded on the cell; the other cells still run
                    message = f"registry: {type(exc).__name__}: {exc}"
                    apply(record, Failure(Status.MEASURE_FAILED, message))
                else:
                    apply(record, shipped)
        finally:
            self.timeline.enter("clean-up", cell.key)
            if not self.plan.keep_images:
                # BuildKit's cache records go too (exactly those the cell's builds created),
                # so that a nightly job on a shared engine stays flat.
                self.engine.remove_image(builds.image_id)
                self.engine.prune_cache_records(list(builds.cache_records))

    def slim(
        self,
        cell: Cell,
        record: CellRecord,
        image: str,
        progress: Progress,
        analysis: ArchiveAnalysis | None = None,
    ) -> None:
        """--slim: the smoke test traced, then an image of what it touched, smoke-tested the
        same way (measure/slim.py); `analysis`: the measure phase's read of the image."""

        def phase(text: str) -> None:
            self.phase(progress, cell, "slim", f"slim: {text}", detail=text)

        labels = self.labels(cell)
        with Slimmer(self.engine, image, labels, self.info.run_id, phase, analysis) as slimmer:
            result = self.smoke(cell, image, progress, slimmer.smoke_engine())
            if result is not None:
                apply(record, result)
            self.save()
            found = slimmer.candidate(
                result,
                lambda candidate: self.smoke(cell, candidate, progress),
                tag=candidate_tag(record.image_tag or cell.key),
                cuda_without_gpu=cell.variant == "cuda" and not self.gpus,
                keep=self.plan.keep_images,
                exclude=self.plan.slim_exclude,
                trace_path=self.run_dir / trace_file(cell.key),
                trace_file=trace_file(cell.key),
            )
            apply(record, found)

    def build(self, cell: Cell, record: CellRecord, progress: Progress) -> Builds:
        """`repeat` no-cache builds; every finished sample is kept, whatever stops the next."""
        wheels, download = self.prefetched.get(cell.key, ([], None))
        context = build_context(cell, self.plan.pip, wheels)  # packed by each sample, timed
        request = BuildRequest(
            context.dockerfile,
            record.image_tag or "",
            cell.build_args,
            self.labels(cell),
            context.dockerfile_text,
        )
        packed: list[float] = []  # context_seconds, sample by sample
        builds = BuildRecord(
            context_seconds=packed,
            mode="prefetch" if self.plan.prefetch and cell.requirements else "network",
            download=download,
        )
        samples: list[BuildSample] = []
        image_id: str | None = None

        def on_log(line: str) -> None:
            progress.build_log(cell, line)

        # Others' load on the engine host, in quiet windows around each sample (untimed): the
        # host's own /proc/stat, so only where the engine runs on this machine. The run's spare
        # work pauses before anything is timed, and goes on inside the windows (its CPU time is
        # this process's own, not others').
        def quiet() -> float | None:
            deadline = time.monotonic() + cpuload.QUIET_SECONDS

            def meanwhile() -> None:
                if self.spare is not None:
                    self.spare.pause()
                    self.spare.until(deadline)

            if self.info.engine.local:
                return cpuload.quiet_share(meanwhile=meanwhile)
            meanwhile()
            return None

        try:
            others = quiet()
            for n in range(1, self.plan.repeat + 1):
                if samples:  # the previous sample's image: identical content, not kept
                    self.engine.remove_image(samples[-1].image_id)
                    self.engine.prune_cache_records(samples[-1].cache_records)
                    image_id = None
                detail = f"sample {n} of {self.plan.repeat}"
                self.phase(progress, cell, "build", f"building ({detail})", detail)
                sample = self.builder.build(context, request, on_log, self.journal.add)
                after = quiet()
                builds.cpu_others_share.append(cpuload.larger(others, after))
                others = after
                samples.append(sample)
                image_id = sample.image_id
                builds.seconds.append(round(sample.seconds, 3))
                if sample.first_output_seconds is not None:
                    builds.first_output_seconds.append(round(sample.first_output_seconds, 3))
                if sample.context_seconds is not None:
                    packed.append(round(sample.context_seconds, 3))
                builds.context_bytes = sample.context_bytes
        except BuildFailed as exc:
            apply(record, Failure(Status.BUILD_FAILED, str(exc), tuple(exc.log_tail)))
        finally:
            if samples:
                builds.steps = _steps(samples)
            warnings = tuple(dict.fromkeys(w for s in samples for w in s.warnings))
            cache = tuple(samples[-1].cache_records) if samples and image_id else ()
            result = Builds(builds, image_id, warnings, cache)
            apply(record, result)
            self.save()
        return result


# ---------------------------------------------------------------------------------------------
# Preparing a run


def engine_facts(engine: Engine, probe: preflight.EngineProbe | None, local: bool) -> EngineFacts:
    info = engine.info()
    return EngineFacts(
        endpoint=engine.endpoint,
        name=info.name,
        server_version=info.server_version,
        api_version=info.api_version,
        os=info.os,
        arch=info.arch,
        kernel=info.kernel,
        storage_driver=info.storage_driver,
        cpus=info.cpus,
        cpu_model=probe.cpu_model if probe else None,
        memory_bytes=info.memory_bytes,
        nvidia_runtime=info.has_nvidia_runtime,
        local=local,
    )


@dataclass(frozen=True)
class _Checked:
    """What the checks before the first build found: base images, the engine's probe."""

    bases: dict[str, ImageInfo]
    main_base: str | None
    probe: preflight.EngineProbe | None


def _check_inputs(plan: RunPlan, kinds: Mapping[str, SmokeKind]) -> None:
    """What the user gave, checked here before the engine is asked: one line and a tip."""
    for cell in plan.cells:
        cell.dockerfile_text()
    plan.pip.validate()
    for kind in kinds.values():
        kind.check()
    preflight.check_results_dir(plan.results_dir)


def _check(
    engine: Engine,
    plan: RunPlan,
    previous: RunResults | None,
    lock: contextlib.ExitStack,
    labels: Mapping[str, str],
) -> _Checked:
    """What the engine must have before any build (a failure is one line and a tip), and the
    run's lock held. The probe, the index check and the lock are containers of their own: they
    start side by side, each a second or more on a busy engine."""
    # Every BASE_IMAGE a cell builds on is local before the first build: no pull is timed.
    bases = {
        ref: preflight.ensure_base_image(engine, ref)
        for ref in dict.fromkeys(cell.base_image for cell in plan.cells)
        if ref
    }
    main_base = plan.base_image if plan.base_image in bases else next(iter(bases), None)
    urls = preflight.index_urls(plan.cells, plan.pip) if plan.preflight and main_base else []
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="buildbench-preflight") as pool:
        probing = pool.submit(preflight.probe_engine, engine, main_base) if main_base else None
        reaching = None
        if main_base and urls and not plan.prefetch:
            reaching = pool.submit(preflight.check_index, engine, main_base, urls, plan.pip)
        _hold_lock(engine, plan, main_base, lock, labels)
        probe = probing.result() if probing else None
        # Without a probe (an image without Python) the index is not asked: that answer is void.
        if plan.preflight and probe is not None:
            records = previous.records if previous else []
            sizes = {r.key: r.image.size_bytes for r in records if r.image}
            needed = preflight.needed_bytes(plan.cells, plan.keep_images, sizes)
            preflight.check_disk(probe, needed, plan.keep_images)
            if reaching is not None:
                reaching.result()
    return _Checked(bases, main_base, probe)


def _hold_lock(
    engine: Engine,
    plan: RunPlan,
    base: str | None,
    lock: contextlib.ExitStack,
    labels: Mapping[str, str],
) -> None:
    """The lock is a container of a base image: the run's own, or the default base if local."""
    lock_image = base or (plan.base_image if engine.image(plan.base_image) else None)
    if lock_image:
        lock.enter_context(engine.hold(lock_image, {**labels, LABEL_LOCK: "1"}))
    else:
        log.warning("no base image to hold this run's lock: `buildbench clean` may not see it")


def _run_info(
    engine: Engine,
    plan: RunPlan,
    builder: Builder,
    checked: _Checked,
    local: bool,
    started: str,
    run_id: str,
) -> RunInfo:
    bases = checked.bases
    return RunInfo(
        run_id=run_id,
        started_at=started,
        host=platform.node(),
        cpu=cpu_model(),
        cpu_count=os.cpu_count() or 0,
        memory_bytes=memory_bytes(),
        engine=engine_facts(engine, checked.probe, local),
        builder=builder.name,
        buildbench_version=__version__,
        git_commit=git_commit(Path(__file__).resolve().parents[2]),
        base_image=plan.base_image,
        base_image_id=bases[plan.base_image].id if plan.base_image in bases else None,
        options=plan.options(),
        pip=plan.pip.to_json(),
        label=plan.machine,
    )


def _before_first_cell(
    run: PreparedRun, checked: _Checked, make_payload: Callable[[Payload], bytes]
) -> None:
    """Base images pushed (a registry run), the smoke tests' files made, wheels prefetched."""
    plan, engine = run.plan, run.engine
    if plan.registry:
        run.timeline.enter("base push")
        log.info("pushing the base images to %s first", plan.registry)
        run.info.options["base_push_seconds"] = {
            ref: round(push_base(engine, plan.registry, run.info.run_id, ref, base), 3)
            for ref, base in checked.bases.items()
        }
    for payload in plan.payloads():
        run.timeline.enter("model preparation", detail=payload.describe)
        log.info("preparing %s", payload.describe)
        run.payloads[payload.key] = make_payload(payload)
    if plan.prefetch:
        run.timeline.enter("prefetch")
        run.prefetched = prefetch_wheels(plan.cells, plan.pip, checked.probe)


@contextlib.contextmanager
def prepare(
    engine: Engine,
    plan: RunPlan,
    builder: Builder,
    *,
    local: bool = True,
    make_payload: Callable[[Payload], bytes] = lambda payload: payload.make(),
    name: str | None = None,
    spare: Sequence[SpareStep] = (),
) -> Iterator[PreparedRun]:
    """Check what the run needs before building anything, create its results folder (named
    `name`, else the run id), hold its lock and make the smoke tests' files; release them all
    when the run is done. `spare`: steps of work for later (loading the report's libraries), done
    in a thread while the checks wait on the engine, then in the quiet windows (run/spare.py)."""
    started, timeline = _now(), Timeline()  # the run starts with its checks
    timeline.enter("preflight")
    kinds = plan.smoke_kinds()
    previous = newest_run(plan.results_dir)
    _check_inputs(plan, kinds)
    plan = plan.idle()
    kinds = {key: kind for key, kind in kinds.items() if key not in plan.not_built}
    in_background = SpareWork(spare).start() if spare else None
    run_id, lock = new_run_id(), contextlib.ExitStack()
    with lock:
        try:
            checked = _check(engine, plan, previous, lock, run_labels(run_id, None))
        finally:
            if in_background is not None:
                # What the checks left goes into the quiet windows: nothing spare runs beside
                # the base pushes, the downloads or the model preparation, whose seconds count.
                in_background.pause()
        info = _run_info(engine, plan, builder, checked, local, started, run_id)
        info.timeline = timeline.phases
        run_dir = plan.results_dir.resolve() / (name or info.run_id)
        run_dir.mkdir(parents=True)
        run = PreparedRun(
            plan=plan,
            engine=engine,
            builder=builder,
            info=info,
            run_dir=run_dir,
            bases=checked.bases,
            journal=Journal(run_dir),
            gpus=plan.smoke is not None and wants_gpus(engine.info(), plan.smoke.gpus),
            kinds=kinds,
            lock=lock,
            timeline=timeline,
            estimates=phase_seconds(previous.info.timeline) if previous else {},
            spare=in_background,
        )
        run.save()
        try:
            try:
                _before_first_cell(run, checked, make_payload)
            except (KeyboardInterrupt, Terminated):  # before the first cell: still on record
                run.info.exit_reason, run.info.finished_at = ExitReason.INTERRUPTED, _now()
                run.info.wall_seconds = timeline.close()
                run.save(table=True)
                raise
            except UsageError:  # refused for the user's input: nothing measured, no run to keep
                shutil.rmtree(run_dir, ignore_errors=True)
                raise
            yield run
        finally:
            for volume in run.volumes.values():
                engine.remove_volume(volume)
