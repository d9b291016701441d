"""A run on one engine, or on several at the same time, each writing its own results file,
then one report of them all.

With several engines (`--engine A --engine B`), each runs its matrix in a process of its own:
a failing or vanishing engine stops only its own run, and Ctrl-C or SIGTERM reach every run
through the parent, which forwards one SIGTERM to each; every run records the cell it was on
as interrupted and keeps what it measured. Their progress comes back through a queue and is
drawn as one live view.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
import multiprocessing
import os
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from buildbench.engine import factory
from buildbench.engine.endpoint import Endpoint
from buildbench.errors import BuildbenchError, EngineUnavailable, Terminated
from buildbench.measure.smoke.runner import Payload
from buildbench.record import CellRecord
from buildbench.render import charts
from buildbench.results import RESULTS_JSON, RunResults, load_results
from buildbench.run.matrix import Cell
from buildbench.run.plan import RunPlan, RunRequest
from buildbench.run.prepare import new_run_id, prepare
from buildbench.run.progress import Progress, RunHeader
from buildbench.run.registry import run_registry
from buildbench.run.spare import SpareStep

log = logging.getLogger("buildbench")


class Screen(Protocol):
    """What draws the progress of one or more engines' runs (the CLI's TerminalProgress)."""

    def view(self, label: str = "") -> Progress: ...
    def __enter__(self) -> Any: ...
    def __exit__(self, *exc: object) -> None: ...


@dataclass
class Outcome:
    runs: list[RunResults] = field(default_factory=list)
    results: list[Path] = field(default_factory=list)
    report: Path | None = None
    # What stopped the run(s) early, to raise once everything is saved and reported.
    error: BaseException | None = None


def execute(request: RunRequest, endpoints: list[Endpoint], screen: Screen) -> Outcome:
    """The command line's request run: its plan checked (the models: before any engine is asked),
    then run on every engine, through the registry it names for as long as the run goes."""
    plan = request.checked()
    with run_registry(request.registry) as address:
        return run_on_engines(endpoints, replace(plan, registry=address), screen)


def run_on_engines(endpoints: list[Endpoint], plan: RunPlan, screen: Screen) -> Outcome:
    if len(endpoints) == 1:
        return _run_here(endpoints[0], plan, screen)
    return _run_in_parallel(endpoints, plan, screen)


def run_one(
    endpoint: Endpoint,
    plan: RunPlan,
    progress: Progress,
    *,
    name: str | None = None,
    payloads: Mapping[str, Path] | None = None,
    spare: Sequence[SpareStep] = (),
) -> tuple[RunResults, BaseException | None]:
    """One engine's whole run; what it measured, and what stopped it early (not raised: the
    caller reports first). Errors before the first build (bad options, no engine) raise.
    `spare`: work done while the run waits anyway (see `prepare`)."""
    stopped: BaseException | None = None
    with factory.engine_at(endpoint) as engine:
        builder = factory.choose_builder(plan.builder, engine, endpoint)
        with prepare(
            engine,
            plan,
            builder,
            local=endpoint.local,
            make_payload=_reader(payloads),
            name=name,
            spare=spare,
        ) as run:
            try:
                run.run_all(progress)
            except (KeyboardInterrupt, Terminated, EngineUnavailable) as exc:
                stopped = exc
        return RunResults(run.info, run.records), stopped


def _report_steps() -> list[SpareStep]:
    """What writing the report loads, in steps for a run's spare time: the statistics (numpy),
    its own modules, then matplotlib and its font. None of it is imported before: a run starts
    without them."""
    modules = ("numpy", "buildbench.render.report", *charts.MODULES)
    return [*(functools.partial(importlib.import_module, name) for name in modules), charts.preload]


def _run_here(endpoint: Endpoint, plan: RunPlan, screen: Screen) -> Outcome:
    outcome = Outcome()
    with screen:
        # The report is written here, after the run: its libraries load while the run waits.
        # (With several engines, the report's process waits while others build: it loads none.)
        result, outcome.error = run_one(endpoint, plan, screen.view(), spare=_report_steps())
    from buildbench.render.report import REPORT_MD, write_report  # loaded while the run waited

    run_dir = plan.results_dir / result.info.run_id
    outcome.runs = [result]
    outcome.results = [run_dir / RESULTS_JSON]
    outcome.report = write_report(run_dir / REPORT_MD, [result])
    return outcome


# ---------------------------------------------------------------------------------------------
# Several engines at once


@dataclass(frozen=True)
class _Job:
    endpoint: Endpoint
    label: str
    plan: RunPlan
    payloads: Mapping[str, Path]


class _QueueProgress:
    """A child's Progress: every call travels to the parent, which draws it."""

    def __init__(self, queue: Any, label: str) -> None:
        self.queue, self.label = queue, label

    def _send(self, method: str, *args: object) -> None:
        self.queue.put((self.label, method, args))

    def run_started(self, header: RunHeader) -> None:
        self._send("run_started", header)

    def cell_started(self, cell: Cell, index: int, total: int) -> None:
        self._send("cell_started", cell, index, total)

    def phase(
        self,
        cell: Cell,
        text: str,
        done: int | None = None,
        total: int | None = None,
        estimate: float | None = None,
    ) -> None:
        self._send("phase", cell, text, done, total, estimate)

    def build_log(self, cell: Cell, line: str) -> None:
        self._send("build_log", cell, line)

    def cell_finished(self, record: CellRecord) -> None:
        self._send("cell_finished", record)


def _child(job: _Job, queue: Any) -> int:
    """One engine's run in its own process. Ctrl-C is the parent's to pass on (as SIGTERM, once),
    so that a second signal cannot cut short the saving of what was measured."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def terminate(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated()

    signal.signal(signal.SIGTERM, terminate)
    try:
        _, error = run_one(
            job.endpoint,
            job.plan,
            _QueueProgress(queue, job.label),
            name=job.label,
            payloads=job.payloads,
        )
    except BuildbenchError as exc:
        queue.put((job.label, "error", (f"{exc.message}", exc.tip)))
        return exc.exit_code
    except (KeyboardInterrupt, Terminated):  # before its first cell; its results say so
        return 130
    if isinstance(error, EngineUnavailable):
        return error.exit_code
    return 130 if error is not None else 0


def labels_for(endpoints: list[Endpoint]) -> list[str]:
    """Each engine's host name, made unique (two engines on one machine: host-1, host-2). Every
    engine must answer now, before any run starts."""
    names = []
    for endpoint in endpoints:
        with factory.engine_at(endpoint) as engine:
            names.append(engine.info().name or "engine")
    return [
        f"{name}-{names[: i + 1].count(name)}" if names.count(name) > 1 else name
        for i, name in enumerate(names)
    ]


def _reader(made: Mapping[str, Path] | None) -> Callable[[Payload], bytes]:
    """Payloads from files made beforehand where there are, else made now."""
    if not made:
        return lambda payload: payload.make()
    return lambda payload: made[payload.key].read_bytes()


@contextlib.contextmanager
def _shared_payloads(plan: RunPlan) -> Iterator[dict[str, Path]]:
    """The smoke tests' files (the model: an export, references), made once for every engine."""
    with tempfile.TemporaryDirectory(prefix="buildbench-smoke-") as tmp:
        made = {}
        for n, payload in enumerate(plan.payloads()):
            made[payload.key] = path = Path(tmp) / f"payload-{n}.tar"
            path.write_bytes(payload.make())
        yield made


def _run_in_parallel(endpoints: list[Endpoint], plan: RunPlan, screen: Screen) -> Outcome:
    from buildbench.render.report import REPORT_MD, write_report

    labels = labels_for(endpoints)
    group = plan.results_dir / new_run_id()
    child_plan = replace(plan, results_dir=group)
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    outcome = Outcome()
    with _shared_payloads(plan) as payloads, screen:
        views = {label: screen.view(label) for label in labels}
        jobs = [
            _Job(e, label, replace(child_plan, machine=_machine(plan.machine, label)), payloads)
            for e, label in zip(endpoints, labels, strict=True)
        ]
        processes = [context.Process(target=_child_main, args=(job, queue)) for job in jobs]
        drawer = threading.Thread(target=_draw, args=(queue, views), daemon=True)
        drawer.start()
        for process in processes:
            process.start()
        try:
            for process in processes:
                process.join()
        except (KeyboardInterrupt, Terminated) as exc:
            outcome.error = exc
            for process in processes:
                if process.is_alive() and process.pid:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(process.pid, signal.SIGTERM)
            for process in processes:
                process.join()
        queue.put(None)
        drawer.join()
    codes = dict(zip(labels, (p.exitcode for p in processes), strict=True))
    for label in labels:
        path = group / label / RESULTS_JSON
        if path.is_file():
            outcome.runs.append(load_results(path))
            outcome.results.append(path)
    if outcome.runs:
        outcome.report = write_report(group / REPORT_MD, outcome.runs)
    if outcome.error is None:
        lost = [label for label, code in codes.items() if code == EngineUnavailable.exit_code]
        if lost:
            outcome.error = EngineUnavailable(f"engine {', '.join(lost)} went away during its run")
    return outcome


def _machine(given: str | None, label: str) -> str | None:
    """--machine with several engines: one name each."""
    return f"{given}-{label}" if given else None


def _child_main(job: _Job, queue: Any) -> None:
    raise SystemExit(_child(job, queue))


def _draw(queue: Any, views: dict[str, Progress]) -> None:
    for label, method, args in iter(queue.get, None):
        if method == "error":
            message, tip = args
            log.error("%s: %s%s", label, message, f" ({tip})" if tip else "")
            continue
        getattr(views[label], method)(*args)
