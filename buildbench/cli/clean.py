"""`buildbench clean`: remove every container and image buildbench created, by label."""

from __future__ import annotations

import click

from buildbench import fmt
from buildbench.cleanup import CleanResult, Leftover, clean
from buildbench.cli.options import connect, option


def _describe(item: Leftover) -> str:
    return f"{item.kind} {item.short_id} {item.description} (run {item.run_id or '?'})"


def _count(items: list[Leftover]) -> str:
    containers = sum(1 for item in items if item.kind == "container")
    images = len(items) - containers
    return f"{containers} container{'s' * (containers != 1)}, {images} image{'s' * (images != 1)}"


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
@option("--run-id", help="Only what this run created [default: every run's].")
@option("--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
@option(
    "--build-cache",
    is_flag=True,
    help="Also prune the engine's BuildKit build cache: BuildKit records every build in it,"
    " --no-cache too. Engine-wide: it is not labelled per run.",
)
def clean_command(run_id: str | None, dry_run: bool, build_cache: bool) -> None:
    """Remove the images and containers buildbench created (label buildbench.run-id).

    Keeps what a run still in progress uses. Base images and other images are never touched.

    Example: buildbench clean --dry-run
    """
    engine = connect()
    report(clean(engine, run_id=run_id, dry_run=dry_run), dry_run)
    if build_cache and not dry_run:
        click.echo(f"pruned the build cache: {fmt.size(engine.prune_build_cache())} reclaimed")
