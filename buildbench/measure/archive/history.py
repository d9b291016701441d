"""Each layer's instruction, from the image config's history."""

from __future__ import annotations

import re
from typing import Any

_NOP_PREFIX = "/bin/sh -c #(nop) "
# Classic builder RUN: "/bin/sh -c cmd", with "|2 A=1 B=2 " in front when build args are set.
_SHELL_PREFIX = re.compile(r"^(?:\|\d+ (?:\S+=\S* )*)?/bin/sh -c ")
_BUILDKIT_SHELL = "RUN /bin/sh -c "


def layer_instructions(history: list[dict[str, Any]]) -> list[str | None]:
    """The instruction of each layer: history entries marked `empty_layer` made none."""
    return [_instruction(entry) for entry in history if not entry.get("empty_layer")]


def _instruction(entry: dict[str, Any]) -> str | None:
    text = str(entry.get("created_by") or "").strip()
    if text.startswith(_NOP_PREFIX):
        return text[len(_NOP_PREFIX) :].strip()
    if match := _SHELL_PREFIX.match(text):
        return "RUN " + text[match.end() :]
    text = text.removesuffix("# buildkit").rstrip()
    if text.startswith(_BUILDKIT_SHELL):
        return "RUN " + text[len(_BUILDKIT_SHELL) :]
    return text or entry.get("comment") or None
