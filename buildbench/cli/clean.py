"""`buildbench clean`: remove what buildbench left in the engine, run by run."""

from __future__ import annotations

from pathlib import Path

import click

from buildbench.cli.options import engine_options, one_engine, option, results_dir_option
from buildbench.errors import UsageError
from buildbench.render import fmt
from buildbench.run.cleanup import CleanResult, Journal, Leftover, clean, runs_in


def _describe(item: Leftover) -> str:
    return f"{item.kind} {item.short_id} {item.description} (run {item.run_id or '?'})"


def _count(items: list[Leftover]) -> str:
    kinds = ("container", "volume", "image", "cache")
    counts = [(kind, sum(1 for item in items if item.kind == kind)) for kind in kinds]
    return ", ".join(f"{n} {kind}{'s' * (n != 1)}" for kind, n in counts if n) or "nothing"


def report(result: CleanResult, dry_run: bool) -> None:
    verb = "would remove" if dry_run else "removed"
    for item in result.removed:
        click.echo(f"{verb} {_describe(item)}")
    for item, reason in result.kept:
        click.echo(f"kept {_describe(item)}: {reason}")
    if not result.removed and not result.kept:
        click.echo("nothing to clean")
        return
    click.echo(f"{verb} {_count(result.removed)}; kept {len(result.kept)}")


@click.command(name="clean")
@results_dir_option
@engine_options
@option("--run-id", help="Only what this run created.")
@option(
    "--all",
    "all_runs",
    is_flag=True,
    help="Every run's leftovers in the engine, "
    "other people's too [default: only the runs whose results are in --results-dir].",
)
@option("--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
@option(
    "--build-cache",
    is_flag=True,
    help="Also prune the engine's whole BuildKit build cache (engine-wide; a run's own records "
    "are removed without it).",
)
def clean_command(
    results_dir: Path,
    engines: tuple[str, ...],
    contexts: tuple[str, ...],
    run_id: str | None,
    all_runs: bool,
    dry_run: bool,
    build_cache: bool,
) -> None:
    """Remove the containers, volumes, images and BuildKit cache records buildbench runs left.

    By default only runs whose results are in --results-dir; a run still going keeps
    everything. Base images and other images are never touched.

    Example: buildbench clean --dry-run
    """
    if all_runs and run_id is not None:
        raise UsageError("--all and --run-id ask for different things", tip="give one of them")
    engine = one_engine(engines, contexts)
    runs = runs_in(results_dir)
    if run_id is not None:
        runs = {run_id: runs.get(run_id) or Journal(results_dir / run_id)}
    report(clean(engine, runs=None if all_runs else runs, dry_run=dry_run), dry_run)
    if build_cache and not dry_run:
        freed = engine.prune_cache_records([r.id for r in engine.build_cache()])
        click.echo(f"pruned the build cache: {fmt.size(freed)} reclaimed")
