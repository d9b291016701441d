"""The command line: a thin layer that parses options, calls the library and prints."""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from buildbench import __version__
from buildbench.errors import BuildbenchError, Terminated

EXIT_INTERRUPTED = 130


class _Group(click.Group):
    """Turns expected errors into one `ERROR:` line (plus a `TIP:`) and a documented exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BuildbenchError as exc:
            click.secho(f"ERROR: {exc.message}", fg="red", err=True)
            if exc.tip:
                click.echo(f"TIP: {exc.tip}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.secho("ERROR: interrupted", fg="red", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except Terminated:
            click.secho("ERROR: terminated", fg="red", err=True)
            ctx.exit(Terminated.exit_code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="buildbench")
def cli() -> None:
    """Build, size, time and smoke-test PyTorch vs ONNX Runtime inference images.

    Example: buildbench run --cuda both
    """
    # buildbench's own messages only: the exporters' loggers chatter at INFO.
    logger = logging.getLogger("buildbench")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def _register() -> None:
    from buildbench.cli import base, clean, compare, history, report, run
    from buildbench.cli import list as list_

    cli.add_command(run.run)
    cli.add_command(list_.list_matrix)
    cli.add_command(clean.clean_command)
    cli.add_command(base.base)
    cli.add_command(report.report)
    cli.add_command(compare.compare_command)
    cli.add_command(history.history_command)


_register()


def main() -> None:
    cli(prog_name="buildbench")
