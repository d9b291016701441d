"""The command kind's detail: the config's own command that ran in the image."""

from __future__ import annotations

from dataclasses import dataclass, field

from buildbench.record.smoke import SmokeDetail


@dataclass(frozen=True)
class CommandDetail(SmokeDetail):
    command: list[str] = field(default_factory=list)

    def identity(self) -> tuple[str, ...]:
        return tuple(self.command)
