"""`buildbench run`: build, measure and smoke-test the matrix; results after every cell."""

from __future__ import annotations

import math
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import click
from rich.console import Console
from tabulate import tabulate

from buildbench.analyze.interference import interference_warnings
from buildbench.cli.options import (
    endpoints,
    engine_options,
    matrix_options,
    model_options,
    model_requests,
    option,
    resolve_matrix,
    results_dir_option,
    slim_options,
)
from buildbench.cli.progress import TerminalProgress
from buildbench.engine.builders import BUILDERS
from buildbench.errors import Terminated, UsageError
from buildbench.measure.smoke.kinds.http.smoke import MAX_CONCURRENCY
from buildbench.record import CellRecord
from buildbench.run.engines import Outcome, execute
from buildbench.run.plan import RunPlan, RunRequest, SmokeRequest
from buildbench.run.shard import parse_shard, run_identity, slice_cells
from buildbench.status import Status


def summary_table(records: list[CellRecord], machines: list[str] | None = None) -> str:
    from buildbench.render.markdown import CELL_HEADERS, cell_columns  # loaded by the report

    with_machine = machines is not None and len(set(machines)) > 1
    rows = [
        [*([machines[i]] if with_machine and machines else []), *cell_columns(r)]
        for i, r in enumerate(records)
    ]
    headers = [*(["machine"] if with_machine else []), *CELL_HEADERS]
    return tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)


def _batch_sizes(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, ...]:
    try:
        sizes = tuple(dict.fromkeys(int(part) for part in value.split(",") if part.strip()))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise click.BadParameter(
            f"{value!r}: give positive integers separated by commas, e.g. 1,8,32"
        )
    return sizes


def _slo_p95(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """Milliseconds, a positive finite number; refused here, before any engine or build."""
    if value is None:
        return None
    try:
        found = float(value)
    except ValueError:
        found = math.nan
    if not (math.isfinite(found) and found > 0):
        raise UsageError(
            f"--slo-p95 {value!r} is not a positive number of milliseconds",
            tip="give the p95 latency a service must keep, e.g. --slo-p95 200",
        )
    return found


def _concurrency(value: str) -> tuple[int, ...]:
    """Increasing concurrency levels, as an [image.smoke.http] table's `concurrency`."""
    try:
        levels = tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError:
        levels = ()
    if (
        not levels
        or list(levels) != sorted(set(levels))
        or not 0 < levels[0] <= levels[-1] <= MAX_CONCURRENCY
    ):
        raise click.BadParameter(
            f"{value!r}: give increasing whole numbers from 1 to {MAX_CONCURRENCY}, e.g. 1,4,16"
        )
    return levels


@click.command()
@matrix_options
@engine_options
@results_dir_option
@option(
    "--builder",
    type=click.Choice(BUILDERS),
    default="classic",
    show_default=True,
    help="classic: the Docker SDK for Python; buildkit: the Docker CLI with BuildKit.",
)
@option(
    "--repeat",
    type=click.IntRange(1, 100),
    default=1,
    show_default=True,
    help="No-cache builds per cell (samples).",
)
@option(
    "--prefetch",
    is_flag=True,
    help="Download the built-in images' wheels before timing (recorded apart): the timed "
    "builds then measure image assembly, not the index's bandwidth.",
)
@option(
    "--keep-images/--no-keep-images",
    default=True,
    show_default=True,
    help="Keep the built images after measuring (--no-keep-images also removes BuildKit's "
    "cache records of the run).",
)
@option(
    "--read-images/--no-read-images",
    default=True,
    show_default=True,
    help="Read each image once (docker save): compressed size, what is inside, what is wasted.",
)
@option(
    "--smoke/--no-smoke",
    default=True,
    show_default=True,
    help="Run the containerized inference smoke test in every image.",
)
@option(
    "--batch-sizes",
    default="1,8,32",
    show_default=True,
    callback=_batch_sizes,
    help="Comma-separated batch sizes for the smoke test's latencies.",
)
@option(
    "--latency-runs",
    type=click.IntRange(1, 100_000),
    default=30,
    show_default=True,
    help="Timed inference runs per batch size, at least (after warm-up) ...",
)
@option(
    "--latency-seconds",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="... and for at least this many seconds.",
)
@option(
    "--cold-starts",
    type=click.IntRange(1, 100),
    default=3,
    show_default=True,
    help="Fresh containers whose start-up is timed (cold start median and spread).",
)
@option(
    "--gpus",
    type=click.Choice(["auto", "all", "none"]),
    default="auto",
    show_default=True,
    help="Request GPUs for smoke containers (auto: when the engine has an NVIDIA runtime).",
)
@option(
    "--smoke-timeout",
    type=click.FloatRange(min=1),
    default=300.0,
    show_default=True,
    help="Seconds before a smoke container is killed: a model smoke test's, from its last "
    "progress (a slow machine's long run goes on; a hang does not).",
)
@option(
    "--smoke-memory",
    type=click.IntRange(min=256),
    default=6144,
    show_default=True,
    help="Memory limit of a smoke container, in MiB.",
)
@option(
    "--registry",
    metavar="HOST[:PORT]|local",
    help="Push every image to this registry, record what it stores and the push and pull "
    "times; `local`: Debian's reference registry, started on 127.0.0.1 for the run.",
)
@option(
    "--cold-pull",
    is_flag=True,
    help="With --registry: also pull each image with nothing local, the base image set aside "
    "meanwhile (needs an engine where nothing else uses the base).",
)
@option(
    "--machine",
    metavar="NAME",
    help="This machine's name in reports and history [default: the engine's host name] "
    "(CI runners' host names change from run to run).",
)
@model_options
@option(
    "--ort-settings",
    default="",
    metavar="LIST",
    help="ONNX Runtime settings to time beside the default (all, online): any of disabled, "
    "basic, extended, all, offline (optimised once, saved, then loaded), providers (every "
    "other execution provider order, where a cell has several), comma-separated.",
)
@option(
    "--threads",
    default="",
    metavar="LIST",
    callback=lambda ctx, param, value: _batch_sizes(ctx, param, value) if value else (),
    help="Intra-op thread counts to time beside the default, for both frameworks, e.g. 1,2.",
)
@option(
    "--slo-p95",
    metavar="MS",
    callback=_slo_p95,
    help="Also put every HTTP service under open-loop load (a fixed arrival rate, latency from "
    "each request's scheduled time) and sweep for the highest rate whose p95 stays within MS.",
)
@option(
    "--serve-concurrency",
    default="1,4,16",
    show_default=True,
    metavar="LIST",
    callback=lambda ctx, param, value: _concurrency(value),
    help="--server: the concurrency levels each server is loaded at, comma-separated.",
)
@option(
    "--serve-seconds",
    type=click.FloatRange(min=0.1, max=600),
    default=10.0,
    show_default=True,
    help="--server: seconds of load per concurrency level, after its warm-up.",
)
@option(
    "--torch-forms",
    default="",
    metavar="LIST",
    help="PyTorch's forms to time side by side in the PyTorch cells, each's start-up in fresh "
    "containers: any of eager (the model's code and state dict), torchscript, export, "
    "comma-separated. The headline is eager where the image runs the model's code.",
)
@option(
    "--shard",
    metavar="K/N",
    callback=lambda ctx, param, value: None if value is None else parse_shard(value),
    help="Run slice K of N of the cells (a CI job matrix: one slice per job); the slices "
    "depend on the cells alone, and `report` merges them into one run.",
)
@option(
    "--shard-run",
    metavar="ID",
    help="--shard: the identity the slices of one run share [default: the GitHub Actions run, "
    "else a fingerprint of the run's cells].",
)
@slim_options
@option("--no-preflight", is_flag=True, help="Skip the disk and index checks before building.")
@option("-v", "--verbose", is_flag=True, help="Stream the full build logs.")
@option("-q", "--quiet", is_flag=True, help="Print only the summary table.")
def run(
    engines: tuple[str, ...],
    contexts: tuple[str, ...],
    results_dir: Path,
    builder: str,
    repeat: int,
    prefetch: bool,
    keep_images: bool,
    read_images: bool,
    smoke: bool,
    batch_sizes: tuple[int, ...],
    latency_runs: int,
    latency_seconds: float,
    cold_starts: int,
    gpus: str,
    smoke_timeout: float,
    smoke_memory: int,
    registry: str | None,
    cold_pull: bool,
    machine: str | None,
    models: tuple[str, ...],
    inputs: tuple[str, ...],
    ort_settings: str,
    threads: tuple[int, ...],
    slo_p95: float | None,
    serve_concurrency: tuple[int, ...],
    serve_seconds: float,
    torch_forms: str,
    shard: tuple[int, int] | None,
    shard_run: str | None,
    slim: bool,
    slim_exclude: tuple[str, ...],
    no_preflight: bool,
    verbose: bool,
    quiet: bool,
    **matrix: Any,
) -> None:
    """Build every cell with no cache, time it, size it, smoke-test it, and write results.

    With several --engine/--context, each engine runs the matrix at the same time, writes its
    own results file, and one report merges them.

    Example: buildbench run --cuda both --repeat 3
    """
    if cold_pull and not registry:
        raise click.UsageError("--cold-pull needs --registry")
    if (slim or slim_exclude) and not smoke:
        raise UsageError("--slim needs the smoke test", tip="drop --no-smoke")
    if (models or inputs) and not smoke:  # the model would be silently ignored
        given = "--model" if models else "--input"
        raise UsageError(
            f"{given} needs the smoke test: --no-smoke runs no model",
            tip=f"drop --no-smoke to test the model, or drop {given} to only build and measure",
        )
    if slo_p95 is not None and not smoke:
        raise UsageError(
            "--slo-p95 needs the smoke test: --no-smoke measures no service",
            tip="drop --no-smoke, or drop --slo-p95",
        )
    if shard_run and not shard:
        raise UsageError("--shard-run needs --shard", tip="add --shard K/N, or drop --shard-run")
    resolved = resolve_matrix(**matrix)
    cells, not_built, sliced = resolved.cells, dict(resolved.not_built), None
    if shard:
        sliced = slice_cells(shard, run_identity(shard_run, cells, machine), cells, not_built)
        click.echo(f"{sliced.describe()} (run {sliced.shard.run})", err=True)
        if sliced.empty:  # more slices than cells: a job matrix's spare job, not a failure
            click.echo("nothing to run in this slice: no results written", err=True)
            return
        cells, not_built = sliced.cells, sliced.not_built
    plan = RunPlan(
        cells=cells,
        base_image=resolved.base_image,
        results_dir=results_dir.resolve(),
        pip=resolved.pip,
        builder="buildkit" if builder == "buildkit" else "classic",
        repeat=repeat,
        keep_images=keep_images,
        read_images=read_images,
        prefetch=prefetch,
        preflight=not no_preflight,
        cold_pull=cold_pull,
        machine=machine,
        slim=slim or bool(slim_exclude),
        slim_exclude=slim_exclude,
        not_built=not_built,
        shard=sliced.shard if sliced else None,
    )
    smoke_request = None
    if smoke:
        smoke_request = SmokeRequest(
            batch_sizes=batch_sizes,
            latency_runs=latency_runs,
            latency_seconds=latency_seconds,
            cold_starts=cold_starts,
            gpus="all" if gpus == "all" else "none" if gpus == "none" else "auto",
            timeout_seconds=smoke_timeout,
            memory_mib=smoke_memory,
            models=model_requests(models, inputs, resolved.source),
            ort_settings=ort_settings,
            threads=threads,
            slo_p95_ms=slo_p95,
            serve_concurrency=serve_concurrency,
            serve_seconds=serve_seconds,
            torch_forms=torch_forms,
        )
    signal.signal(signal.SIGTERM, _terminate)
    screen = TerminalProgress(Console(stderr=True, highlight=False), verbose=verbose, quiet=quiet)
    request = RunRequest(plan, smoke_request, registry)
    outcome = execute(request, endpoints(engines, contexts), screen)
    _print_outcome(outcome)


def _print_outcome(outcome: Outcome) -> None:
    """The summary table, busy machines, where results went; exit 1 when a cell failed."""
    records = [r for run in outcome.runs for r in run.records]
    machines = [run.info.machine for run in outcome.runs for _ in run.records]
    click.echo(summary_table(records, machines))
    for record in records:  # a busy machine, named where people look first
        for line in interference_warnings(record):
            click.secho(f"{record.key}: {line}", fg="yellow")
    for path in outcome.results:
        click.echo(f"\nresults: {path}")
    if outcome.report:
        click.echo(f"report:  {outcome.report}")
    if outcome.error is not None:
        raise outcome.error
    failed = [r.key for r in records if r.status != Status.OK]
    if failed:
        click.secho(f"failed cells: {', '.join(failed)}", fg="red", err=True)
        sys.exit(1)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated()
