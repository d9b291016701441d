"""A size change in words: "+27 MB: sympy 1.13.3 added by step 9 `RUN pip install ...`".

Shared by `buildbench diff` and the explanations of `compare` and `history`."""

from __future__ import annotations

from typing import Any

from buildbench.analyze.sizediff import ItemChange, SizeDiff, normalized
from buildbench.render import fmt

INSTRUCTION_WIDTH = 60  # an instruction quoted in a line is cut to this


def signed_size(n: float | None) -> str:
    """+27.00 MB, -1 KB, 0 B."""
    if n is None:
        return "-"
    return ("+" if n > 0 else "") + fmt.size(n)


def instruction(text: str) -> str:
    """An instruction quoted, cut to one line; content hashes (COPY dir:<sha>) left out."""
    return f"`{fmt.one_line(normalized(text), INSTRUCTION_WIDTH)}`"


def what(change: ItemChange) -> str:
    """The item and how it changed: `sympy 1.13.3 added`, `numpy 1.26.4 -> 2.1.0`."""
    if change.kind == "layer":
        verb = {"added": "added", "removed": "removed"}.get(change.change)
        verb = verb or ("grew" if change.delta > 0 else "shrank")
        return f"layer {instruction(change.name)} {verb}"
    if change.kind == "finding":
        return f"waste '{change.name}' {'grew' if change.delta > 0 else 'shrank'}"
    name = change.name
    if change.change == "added":
        return f"{name} {change.new_version} added".replace("  ", " ")
    if change.change == "removed":
        return f"{name} {change.old_version} removed".replace("  ", " ")
    if change.change in ("upgraded", "downgraded"):
        return f"{name} {change.old_version} -> {change.new_version}"
    version = change.new_version
    return f"{name} {version} changed" if version else f"{name} changed"


def where(change: ItemChange) -> str:
    """What wrote it: ` by step 9 `RUN ...``, ` by `RUN ...`` or nothing."""
    if change.kind == "layer":
        return f" (step {change.step})" if change.step is not None else ""
    if change.instruction is None:
        return ""
    step = f"step {change.step} " if change.step is not None else "layer "
    return f" by {step}{instruction(change.instruction)}"


def change_words(change: ItemChange) -> str:
    return f"{signed_size(change.delta)}: {what(change)}{where(change)}"


def cause(diff: SizeDiff) -> str:
    """The largest cause of a size change in words; the base image's own change when that is
    larger than any item's."""
    if not (diff.before.read and diff.after.read):
        return f"{signed_size(diff.delta)}: contents not recorded (the image was not read)"
    base = next((part for part in diff.parts if part.name.startswith("base image")), None)
    found = diff.largest_cause()
    base_moved = base is not None and base.delta and (base.delta > 0) == (diff.delta > 0)
    if base is not None and base_moved and (found is None or abs(base.delta) > abs(found.delta)):
        old, new = diff.before.base_image_id, diff.after.base_image_id
        ids = f" ({_short(old)} -> {_short(new)})" if old != new else ""
        return f"{signed_size(base.delta)}: the base image{ids}"
    if found is None:
        return "no item changed: the same distributions, packages and layers"
    return change_words(found)


def parts(diff: SizeDiff) -> str:
    """`+27.10 MB = Python distributions +26.94 MB + Debian packages 0 B + other +160 KB`."""
    terms = " + ".join(f"{part.name} {signed_size(part.delta)}" for part in diff.parts)
    return f"{signed_size(diff.delta)} = {terms}"


def _short(image_id: str | None) -> str:
    return "?" if image_id is None else image_id.removeprefix("sha256:")[:12]


def change_json(change: ItemChange) -> dict[str, Any]:
    return {
        "kind": change.kind,
        "name": change.name,
        "change": change.change,
        "old_version": change.old_version or None,
        "new_version": change.new_version or None,
        "old_bytes": change.old_bytes,
        "new_bytes": change.new_bytes,
        "delta_bytes": change.delta,
        "step": change.step,
        "instruction": change.instruction,
        "words": f"{signed_size(change.delta)}: {what(change)}",
    }
