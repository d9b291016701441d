"""A prepared run (run/prepare.py makes it) end to end: each cell built, measured, smoke-tested,
shipped through a registry, then the cold pulls.

Each stage of a cell returns a value and `apply` (run/stages.py) files it on the cell's record.
The results file is rewritten after every stage that changed it, so whatever happens later,
nothing measured is lost.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from buildbench.engine.api import Engine, ImageInfo
from buildbench.engine.builders import Builder, BuildRequest, BuildSample
from buildbench.errors import BuildFailed, EngineUnavailable, Terminated
from buildbench.labels import run_labels, smoke_volume
from buildbench.measure.archive import ArchiveAnalysis
from buildbench.measure.image import PROBE_TIMEOUT, measure_image
from buildbench.measure.shipping import cold_pulls, ship
from buildbench.measure.slim import Slimmer, candidate_tag, trace_file
from buildbench.measure.smoke import cpuload
from buildbench.measure.smoke.runner import Payload, SmokeContext, SmokeKind
from buildbench.record import BuildRecord, CellRecord, Download, RunInfo, SmokeResult, Step
from buildbench.results import RunResults, results_document, write_results
from buildbench.run.cleanup import Journal
from buildbench.run.context import build_context
from buildbench.run.matrix import Cell
from buildbench.run.plan import RunPlan
from buildbench.run.progress import Progress, RunHeader
from buildbench.run.spare import SpareWork
from buildbench.run.stages import Builds, Failure, apply, new_record
from buildbench.run.timeline import Timeline, now
from buildbench.status import ExitReason, Status

log = logging.getLogger("buildbench")


def _steps(samples: list[BuildSample]) -> list[Step]:
    steps = [Step(index, text, []) for index, text, _ in samples[0].steps]
    for sample in samples:
        for step, (_, _, seconds) in zip(steps, sample.steps, strict=False):
            step.seconds.append(round(seconds, 3))
    return steps


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
        # The statistics (numpy) load where the run waits anyway (`prepare`'s spare work), not
        # at start-up: the first save follows the checks.
        from buildbench.analyze.derived import FIGURES
        from buildbench.render.tables import write_cells_csv

        write_results(self.run_dir, results_document(self.info, self.records, FIGURES))
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
            self.info.finished_at = now()
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
        self.spare_off()  # the pulls are timed
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
            if not self.plan.read_images:  # the version probe alone: nothing timed
                self.spare_on()
            try:
                measured = measure_image(
                    self.engine,
                    builds.image_id,
                    base=base,
                    framework=cell.framework,
                    read_image=self.plan.read_images,
                    probe_timeout=self.probe_timeout(),
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
            if cell.key in self.kinds or self.plan.registry:
                self.spare_off()  # the smoke test and the registry's transfers are timed
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
                self.spare_on()
                self.engine.remove_image(builds.image_id)
                self.engine.prune_cache_records(list(builds.cache_records))

    def probe_timeout(self) -> float:
        """The version probe is a container in the image, as the smoke test's are: it waits no
        longer than they may go silent (`--smoke-timeout`), 2 minutes at most."""
        if self.plan.smoke is None:
            return PROBE_TIMEOUT
        return min(PROBE_TIMEOUT, self.plan.smoke.timeout_seconds)

    def spare_on(self) -> None:
        """Spare work in its thread from here, beside engine waits nothing times (the version
        probe of an image that is not read, the clean-up), until `spare_off` before the next
        timed phase (a build sample's quiet window, the smoke test, the registry) or the run's
        end (`prepare`)."""
        if self.spare is not None and self.spare.left():
            self.spare.start()

    def spare_off(self) -> None:
        """The spare thread ends its current step and stops: something timed comes next."""
        if self.spare is not None:
            self.spare.pause()

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
