"""`buildbench run`: build, measure and smoke-test the matrix; results after every cell."""

from __future__ import annotations

import re
import signal
import sys
from pathlib import Path

import click
from tabulate import tabulate

from buildbench import fmt
from buildbench import record as status
from buildbench.cli.options import (
    config_option,
    connect,
    cuda_option,
    default_ca_bundle,
    only_option,
    option,
)
from buildbench.config import load_matrix
from buildbench.context import PipInputs
from buildbench.errors import Terminated
from buildbench.matrix import (
    DEFAULT_BASE_IMAGE,
    DEFAULT_TORCH_CPU_INDEX,
    FRAMEWORKS,
    Cell,
    MatrixOptions,
    variants_for,
)
from buildbench.pipeline import RunConfig, Runner
from buildbench.record import CellRecord, summarize
from buildbench.report import CELL_HEADERS, SMOKE_HEADERS, cell_columns, write_run_report
from buildbench.smoke.runner import SmokeOptions

# A new instruction: classic "Step 3/9 : RUN ...", BuildKit "#7 [builder 3/5] RUN ...".
_STEP_START = re.compile(r"^(Step \d+/\d+ :|#\d+ \[[^\]]*\d+/\d+\])")


class TerminalProgress:
    """The live view: one line per build step (or the whole log with -v), nothing with -q."""

    def __init__(self, verbose: bool, quiet: bool) -> None:
        self.verbose, self.quiet = verbose, quiet

    def cell_started(self, cell: Cell, index: int, total: int) -> None:
        if not self.quiet:
            click.secho(f"[{index}/{total}] {cell.key}: building", bold=True, err=True)

    def build_log(self, cell: Cell, line: str) -> None:
        if self.verbose:
            click.echo(f"  {line}", err=True)
        elif not self.quiet and _STEP_START.match(line):
            click.echo(f"  {cell.key} | {line[:110]}", err=True)

    def cell_finished(self, record: CellRecord) -> None:
        if self.quiet:
            return
        stats = summarize(record.build_seconds)
        colour = "green" if record.status == status.OK else "red"
        click.secho(
            f"  {record.key}: {record.status}, {fmt.seconds(stats['median'])}, "
            f"{fmt.size(record.image_size_bytes)}",
            fg=colour,
            err=True,
        )
        for line in record.log_tail[-10:] if record.status == status.BUILD_FAILED else []:
            click.echo(f"    | {line}", err=True)


def summary_table(records: list[CellRecord]) -> str:
    with_smoke = any(r.smoke for r in records)
    rows = [cell_columns(r, with_smoke) for r in records]
    headers = [*CELL_HEADERS, *(SMOKE_HEADERS if with_smoke else [])]
    return tabulate(rows, headers=headers, tablefmt="simple")


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


@click.command()
@config_option
@only_option
@cuda_option
@option(
    "--builder",
    type=click.Choice(["classic", "buildkit"]),
    default="classic",
    show_default=True,
    help="classic: the Docker SDK for Python; buildkit: the Docker CLI with BuildKit.",
)
@option(
    "--framework",
    "frameworks",
    type=click.Choice(FRAMEWORKS),
    multiple=True,
    help="Framework to build (repeatable; default: all).",
)
@option(
    "--repeat",
    type=click.IntRange(1, 100),
    default=1,
    show_default=True,
    help="No-cache builds per cell (samples).",
)
@option(
    "--base-image",
    default=DEFAULT_BASE_IMAGE,
    show_default=True,
    help="BASE_IMAGE build-arg; pulled before timing if not local.",
)
@option(
    "--results-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default="results",
    show_default=True,
    help="Where <run-id>/results.json goes.",
)
@option(
    "--keep-images/--no-keep-images",
    default=True,
    show_default=True,
    help="Keep the built images after measuring.",
)
@option(
    "--compressed-size/--no-compressed-size",
    default=True,
    show_default=True,
    help="Measure the gzip'd layer size a registry stores (reads each image once).",
)
@option(
    "--ca-bundle",
    type=click.Path(dir_okay=False, path_type=Path),
    help="CA bundle for pip in the builder stage only [default: PIP_CERT, "
    "REQUESTS_CA_BUNDLE or SSL_CERT_FILE].",
)
@option("--pip-index-url", default="", help="pip index URL in the builder stage.")
@option("--pip-extra-index-url", default="", help="pip extra index URL in the builder stage.")
@option(
    "--pip-find-links",
    type=click.Path(file_okay=False, path_type=Path),
    help="A directory of wheels, sent to the builder stage only.",
)
@option(
    "--torch-cpu-index-url",
    default=DEFAULT_TORCH_CPU_INDEX,
    show_default=True,
    help="Index of CPU-only torch wheels for the CPU image; empty for none.",
)
@option("--torch-version", default="", help="torch version for both images [default: latest].")
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
    help="Seconds before a smoke container is killed.",
)
@option(
    "--smoke-runs",
    type=click.IntRange(1, 10000),
    default=10,
    show_default=True,
    help="Timed inference runs per batch size (after 2 warm-up runs).",
)
@option(
    "--smoke-memory",
    type=click.IntRange(min=256),
    default=6144,
    show_default=True,
    help="Memory limit of a smoke container, in MiB.",
)
@option("-v", "--verbose", is_flag=True, help="Stream the full build logs.")
@option("-q", "--quiet", is_flag=True, help="Print only the summary table.")
def run(
    config: Path | None,
    only: tuple[str, ...],
    cuda: str,
    builder: str,
    frameworks: tuple[str, ...],
    repeat: int,
    base_image: str,
    results_dir: Path,
    keep_images: bool,
    compressed_size: bool,
    ca_bundle: Path | None,
    pip_index_url: str,
    pip_extra_index_url: str,
    pip_find_links: Path | None,
    torch_cpu_index_url: str,
    torch_version: str,
    smoke: bool,
    batch_sizes: tuple[int, ...],
    gpus: str,
    smoke_timeout: float,
    smoke_runs: int,
    smoke_memory: int,
    verbose: bool,
    quiet: bool,
) -> None:
    """Build every cell with no cache, time it, size it, and write results.

    Example: buildbench run --cuda both --repeat 3
    """
    _, cells = load_matrix(
        MatrixOptions(
            frameworks=tuple(dict.fromkeys(frameworks)) or FRAMEWORKS,
            variants=variants_for(cuda),
            base_image=base_image,
            torch_version=torch_version,
            torch_cpu_index_url=torch_cpu_index_url,
        ),
        config=config,
        only=only,
    )
    run_config = RunConfig(
        cells=cells,
        builder=builder,  # type: ignore[arg-type]
        base_image=base_image,
        results_dir=results_dir,
        pip=PipInputs(
            ca_bundle=ca_bundle or default_ca_bundle(),
            index_url=pip_index_url,
            extra_index_url=pip_extra_index_url,
            find_links=pip_find_links,
        ),
        repeat=repeat,
        keep_images=keep_images,
        compressed_size=compressed_size,
        smoke=SmokeOptions(
            batch_sizes=batch_sizes,
            gpus=gpus,  # type: ignore[arg-type]
            timeout_seconds=smoke_timeout,
            runs=smoke_runs,
            memory_bytes=smoke_memory * 1024**2,
        )
        if smoke
        else None,
    )
    signal.signal(signal.SIGTERM, _terminate)
    runner = Runner(connect(), run_config, TerminalProgress(verbose, quiet))
    _, run_dir = runner.start()
    if not quiet:
        click.echo(f"run {runner.run.run_id}: results in {run_dir}", err=True)
    try:
        runner.run_all()
    finally:  # interrupted or not, what was measured is reported
        click.echo(summary_table(runner.records))
        click.echo(f"\nresults: {run_dir / 'results.json'}")
        click.echo(f"report:  {write_run_report(run_dir, runner.run, runner.records)}")
    failed = [r.key for r in runner.records if r.status != status.OK]
    if failed:
        click.secho(f"failed cells: {', '.join(failed)}", fg="red", err=True)
        sys.exit(1)


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()
