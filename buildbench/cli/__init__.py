"""The command line: a thin layer that parses options, calls the library and prints."""

from __future__ import annotations

import gc
import importlib
import logging
import sys
import threading
from concurrent.futures import Future
from typing import Any

import click

from buildbench import __version__
from buildbench.errors import BuildbenchError, Terminated
from buildbench.run import pipconfig

EXIT_INTERRUPTED = 130
# The commands that read the host's pip settings: `pip config list` is a Python start-up of its
# own (a third of a second and more), so it runs while the command's modules import.
READS_PIP = frozenset({"run", "list"})


class _HostPip:
    """The host's pip settings, read in a thread from when the command is known."""

    def __init__(self) -> None:
        self._future: Future[dict[str, tuple[str, str]]] | None = None

    def start(self) -> None:
        future: Future[dict[str, tuple[str, str]]] = Future()  # this start's own answer

        def read() -> None:
            try:
                future.set_result(pipconfig.host_pip_config())
            except BaseException as exc:  # raised where the result is asked for, not here
                future.set_exception(exc)

        self._future = future
        threading.Thread(target=read, daemon=True, name="buildbench-pip").start()

    def result(self) -> dict[str, tuple[str, str]]:
        """What the thread read (it is waited for), or read now if none was started."""
        future, self._future = self._future, None
        return pipconfig.host_pip_config() if future is None else future.result()


host_pip = _HostPip()


class _Group(click.Group):
    """Turns expected errors into one `ERROR:` line (plus a `TIP:`) and a documented exit code.

    Commands are imported when they are used (as click's documentation shows for lazy
    groups): `buildbench run` does not pay for the statistics `compare` imports.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *COMMANDS])

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        asks_help = any(arg in ctx.help_option_names for arg in args[1:])
        if args and args[0] in READS_PIP and not asks_help:  # before the command's imports
            host_pip.start()
        return super().resolve_command(ctx, args)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS:
            module, name = COMMANDS[cmd_name]
            found = getattr(importlib.import_module(module), name)
            assert isinstance(found, click.Command)
            return found
        return super().get_command(ctx, cmd_name)

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


# name -> (module, attribute) of each command
COMMANDS = {
    "run": ("buildbench.cli.run", "run"),
    "list": ("buildbench.cli.list", "list_matrix"),
    "clean": ("buildbench.cli.clean", "clean_command"),
    "base": ("buildbench.cli.base", "base"),
    "report": ("buildbench.cli.report", "report"),
    "compare": ("buildbench.cli.compare", "compare_command"),
    "history": ("buildbench.cli.history", "history_command"),
    "diff": ("buildbench.cli.diff", "diff_command"),
}


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


def main() -> None:
    try:
        cli(prog_name="buildbench")
    finally:
        # What is left is the interpreter's teardown: its last collections walk every object
        # that pandas, numpy and matplotlib made (a quarter of a second after a run); frozen,
        # they are skipped. Files and containers are closed by then (context managers).
        gc.freeze()
