"""A config's own smoke command: run in the image, it must exit 0 and print what is expected."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

from buildbench.engine.api import ContainerOutcome, ContainerSpec
from buildbench.measure.smoke.options import SmokeOptions
from buildbench.measure.smoke.runner import Idle, Payload, SmokeContext, killed, output_tail
from buildbench.record import CommandDetail, SmokeResult
from buildbench.status import Status


@dataclass(frozen=True)
class CommandSmoke:
    command: tuple[str, ...]
    expect: str | None = None

    # The config it is read from, and the smoke test of each cell: the same value.

    @property
    def framework(self) -> str | None:
        return None

    def describe(self) -> str:
        expect = f', expects "{self.expect}"' if self.expect is not None else ""
        return f"$ {shlex.join(self.command)}{expect}"

    def smoke(self, variant: str, options: SmokeOptions) -> CommandSmoke:
        return self

    def check(self) -> None:
        return None

    def payload(self) -> Payload | None:
        return None

    def idle(self) -> Idle | None:
        return None

    def run(self, ctx: SmokeContext) -> SmokeResult:
        spec = ContainerSpec(
            command=list(self.command),
            timeout_seconds=ctx.options.timeout_seconds,
            memory_bytes=ctx.options.memory_bytes,
            labels=ctx.labels,
        )
        ctx.on_progress("running the smoke command")
        return self.judge(ctx.engine.run(ctx.image, spec))

    def judge(self, outcome: ContainerOutcome) -> SmokeResult:
        base: dict[str, Any] = {
            "kind": "command",
            "seconds": round(outcome.seconds, 3),
            "output_tail": output_tail(outcome),
            "detail": CommandDetail(list(self.command)),
        }
        if stopped := killed(outcome):
            return SmokeResult(*stopped, **base)
        if outcome.exit_code != 0:
            return SmokeResult(
                Status.SMOKE_FAILED, f"the smoke command exited with {outcome.exit_code}", **base
            )
        if self.expect is not None and self.expect not in outcome.stdout + outcome.stderr:
            return SmokeResult(
                Status.SMOKE_FAILED, f"the smoke command's output lacks {self.expect!r}", **base
            )
        return SmokeResult(Status.OK, "ok", **base)
