"""Preparing a run: everything it needs is checked before the first build (one line and a tip
for a user's mistake), then its results folder, engine facts, base images, lock and the smoke
tests' files; `prepare` hands over a `PreparedRun` (run/pipeline.py) and releases it all after.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import platform
import secrets
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from buildbench import __version__
from buildbench.engine.api import Engine, ImageInfo
from buildbench.engine.builders import Builder
from buildbench.errors import Terminated, UsageError
from buildbench.labels import LABEL_LOCK, run_labels
from buildbench.measure.shipping import push_base
from buildbench.measure.smoke.options import wants_gpus
from buildbench.measure.smoke.runner import Payload, SmokeKind
from buildbench.record import EngineFacts, RunInfo
from buildbench.results import RunResults, newest_run
from buildbench.run import preflight
from buildbench.run.cleanup import Journal
from buildbench.run.hostinfo import cpu_model, git_commit, memory_bytes
from buildbench.run.pipeline import PreparedRun
from buildbench.run.plan import RunPlan
from buildbench.run.prefetch import prefetch_wheels
from buildbench.run.spare import SpareStep, SpareWork
from buildbench.run.timeline import Timeline, now, phase_seconds
from buildbench.status import ExitReason

log = logging.getLogger("buildbench")


def new_run_id() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(2)


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
        shard=plan.shard,
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
    in a thread while the checks wait on the engine, then in the quiet windows and beside engine
    waits nothing times (run/spare.py, run/pipeline.py's `spare_on`)."""
    started, timeline = now(), Timeline()  # the run starts with its checks
    timeline.enter("preflight")
    kinds = plan.smoke_kinds()
    previous = newest_run(plan.results_dir)
    _check_inputs(plan, kinds)
    plan = plan.idle()
    kinds = {key: kind for key, kind in kinds.items() if key not in plan.not_built}
    in_background = SpareWork(spare).start() if spare else None
    run_id, lock = new_run_id(), contextlib.ExitStack()
    try:
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
                    run.info.exit_reason, run.info.finished_at = ExitReason.INTERRUPTED, now()
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
    finally:
        if in_background is not None:
            # Where the run left it on (beside the clean-up: run/pipeline.py) it goes on beside
            # the release too; it stops before the report is drawn (two threads must not draw
            # with matplotlib at once).
            in_background.pause()
