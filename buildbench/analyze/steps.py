"""A build's steps against another build's, matched by instruction (not number): a step
added above shifts every number, not what the others do. A step whose instruction changed in
place (same number, unmatched on both sides) is one change, old instruction -> new."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from buildbench.analyze.sizediff import Owned, keyed
from buildbench.record import Step


@dataclass(frozen=True)
class StepChange:
    instruction: str
    old_seconds: float | None  # None: no such step in the old build
    new_seconds: float | None
    old_index: int | None = None
    new_index: int | None = None
    old_instruction: str | None = None  # where the step at this number was another

    @property
    def delta(self) -> float:
        return (self.new_seconds or 0.0) - (self.old_seconds or 0.0)


def step_changes(before: Sequence[Step], after: Sequence[Step]) -> list[StepChange]:
    """Build steps matched by instruction, with their median time each side, the largest
    change first."""
    old, new = _by_key(before), _by_key(after)
    found = []
    for key in dict.fromkeys([*new, *old]):
        a, b = old.get(key), new.get(key)
        found.append(
            StepChange(
                (b or a).instruction,  # type: ignore[union-attr]
                _median(a.seconds) if a else None,
                _median(b.seconds) if b else None,
                a.index if a else None,
                b.index if b else None,
            )
        )
    return sorted(_paired(found), key=lambda c: -abs(c.delta))


def _by_key(steps: Sequence[Step]) -> dict[tuple[str, int], Step]:
    by_index = {step.index: step for step in steps}
    owned = [Owned(step.instruction, 0, layer=step.index) for step in steps]
    return {key: by_index[item.layer] for key, item in keyed(owned) if item.layer is not None}


def _paired(changes: list[StepChange]) -> list[StepChange]:
    """A removed and an added step at the same number: one step whose instruction changed."""
    added = {c.new_index: c for c in changes if c.old_index is None}
    removed = {c.old_index: c for c in changes if c.new_index is None}
    both = added.keys() & removed.keys()
    found = [c for c in changes if c.new_index not in both and c.old_index not in both]
    for index in sorted(i for i in both if i is not None):
        was, now = removed[index], added[index]
        found.append(
            StepChange(
                now.instruction, was.old_seconds, now.new_seconds, index, index, was.instruction
            )
        )
    return found


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None
