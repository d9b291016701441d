"""The command kind's part of a config: `smoke = { command = [...], expect = "text" }`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from buildbench.measure.smoke.kinds.command.smoke import CommandSmoke
from buildbench.measure.smoke.table import Rule, Where, key, read_table

_COMMAND = Rule(
    lambda value: (
        bool(value)
        and isinstance(value, list)
        and all(isinstance(part, str) and part for part in value)
    ),
    '"command" must be a non-empty array of strings',
    'e.g. command = ["python", "-c", "import mylib"]',
    typed=True,
)


@dataclass(frozen=True)
class CommandTable:
    command: tuple[str, ...] | None = key(None, rule=_COMMAND)
    expect: str | None = None  # text the output must contain


def read(data: Any, at: Where) -> CommandSmoke:
    table = read_table(CommandTable, data, at)
    if table.command is None:
        raise _COMMAND.error(at, None)
    return CommandSmoke(table.command, table.expect)
