"""A config's own smoke command: run in the image, it must exit 0 and print what is expected."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from buildbench.engine.api import ContainerOutcome, ContainerSpec
from buildbench.measure.smoke.runner import Payload, SmokeContext, killed, output_tail
from buildbench.record import SmokeResult
from buildbench.status import Status


@dataclass(frozen=True)
class CommandSmoke:
    command: tuple[str, ...]
    expect: str | None = None

    def check(self) -> None:
        return None

    def payload(self) -> Payload | None:
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
            "command": list(self.command),
            "seconds": round(outcome.seconds, 3),
            "output_tail": output_tail(outcome),
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
