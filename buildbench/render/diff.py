"""`buildbench diff`'s output: what differs between two images (or each cell two results files
share), as aligned text, Markdown, a JSON document or CSV rows.

The JSON document is a contract: `format` names its version, and keys are only ever added.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from tabulate import tabulate

from buildbench.analyze.sizediff import Inventory, ItemChange, SizeDiff
from buildbench.render import fmt
from buildbench.render.markdown import markdown_table
from buildbench.render.sizewords import cause, change_json, instruction, parts, signed_size

FORMATS = ("text", "markdown", "json", "csv")
JSON_FORMAT = "buildbench-diff/1"
HEADERS = ["bytes", "change", "name", "old", "new", "written by"]
CSV_COLUMNS = [
    "diff",
    "kind",
    "name",
    "change",
    "old_version",
    "new_version",
    "old_bytes",
    "new_bytes",
    "delta_bytes",
    "step",
    "instruction",
]


@dataclass(frozen=True)
class Diff:
    """One diff to show: two images, or one cell of two results files."""

    title: str  # the cell, or "A -> B"
    sizes: SizeDiff


def _sections(diff: SizeDiff) -> list[tuple[str, list[ItemChange]]]:
    found = [
        ("Python distributions", diff.distributions),
        ("Debian packages", diff.packages),
        ("Layers (matched by instruction)", diff.layers),
    ]
    if diff.files is not None:
        found.append(("Files", diff.files))
    found.append(("Waste findings", diff.findings))
    return found


def _side(inventory: Inventory) -> str:
    compressed = inventory.compressed_bytes
    packed = f", compressed {fmt.size(compressed)}" if compressed is not None else ""
    return f"{inventory.label} ({fmt.size(inventory.size_bytes)}{packed})"


def _head(diff: SizeDiff) -> list[str]:
    factor = diff.after.size_bytes / diff.before.size_bytes if diff.before.size_bytes else None
    lines = [
        f"before: {_side(diff.before)}",
        f"after:  {_side(diff.after)}",
        f"size: {parts(diff)} (x{fmt.ratio(factor)})",
    ]
    if diff.compressed_delta is not None:
        lines.append(f"compressed: {signed_size(diff.compressed_delta)}")
    lines.append(f"largest cause: {cause(diff)}")
    return lines


def _by(change: ItemChange) -> str:
    if change.instruction is None:
        return ""
    step = f"step {change.step} " if change.step is not None else ""
    return step + instruction(change.instruction)


def _table_rows(changes: Sequence[ItemChange], top: int) -> list[list[str]]:
    rows = [
        [
            signed_size(c.delta),
            c.change,
            instruction(c.name) if c.kind == "layer" else c.name,
            c.old_version or ("-" if c.old_bytes == 0 else fmt.size(c.old_bytes)),
            c.new_version or ("-" if c.new_bytes == 0 else fmt.size(c.new_bytes)),
            _by(c),
        ]
        for c in changes[:top]
    ]
    rest = changes[top:]
    if rest:
        total = sum(c.delta for c in rest)
        rows.append([signed_size(total), f"{len(rest)} more", "", "", "", ""])
    return rows


def render_diffs(diffs: Sequence[Diff], format_: str = "text", top: int = 15) -> str:
    """`diffs` in one of FORMATS; tables show the `top` largest changes of each kind."""
    if format_ == "json":
        return json.dumps(document(diffs, top), indent=2) + "\n"
    if format_ == "csv":
        buffer = io.StringIO()
        frame = pd.DataFrame(_csv_rows(diffs, top), columns=CSV_COLUMNS)
        frame["step"] = frame["step"].astype("Int64")  # a number, blank where unknown
        frame.to_csv(buffer, index=False)
        return buffer.getvalue()
    markdown = format_ == "markdown"
    blocks = []
    for found in diffs:
        lines = [f"## buildbench diff: {found.title}" if markdown else f"diff: {found.title}"]
        lines.append("")
        lines += [f"- {line}" if markdown else line for line in _head(found.sizes)]
        for name, changes in _sections(found.sizes):
            if not changes:
                continue
            rows = _table_rows(changes, top)
            if markdown:
                table = markdown_table(rows, HEADERS)
                lines += ["", f"### {name}", "", table]
            else:
                table = tabulate(rows, headers=HEADERS, tablefmt="simple", disable_numparse=True)
                lines += ["", f"{name}:", table]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def _side_json(inventory: Inventory) -> dict[str, Any]:
    return {
        "label": inventory.label,
        "size_bytes": inventory.size_bytes,
        "compressed_size_bytes": inventory.compressed_bytes,
        "base_image_id": inventory.base_image_id,
    }


def diff_json(diff: SizeDiff, top: int) -> dict[str, Any]:
    """One diff as JSON: every changed distribution, package, layer and finding, the `top`
    largest file changes (and the rest's count and bytes)."""
    files = diff.files or []
    rest = files[top:]
    return {
        "before": _side_json(diff.before),
        "after": _side_json(diff.after),
        "delta_bytes": diff.delta,
        "compressed_delta_bytes": diff.compressed_delta,
        "cause": cause(diff),
        "parts": [
            {
                "name": p.name,
                "old_bytes": p.old_bytes,
                "new_bytes": p.new_bytes,
                "delta_bytes": p.delta,
            }
            for p in diff.parts
        ],
        "distributions": [change_json(c) for c in diff.distributions],
        "packages": [change_json(c) for c in diff.packages],
        "layers": [change_json(c) for c in diff.layers],
        "files": None if diff.files is None else [change_json(c) for c in files[:top]],
        "files_more": {"count": len(rest), "delta_bytes": sum(c.delta for c in rest)},
        "findings": [change_json(c) for c in diff.findings],
    }


def document(diffs: Sequence[Diff], top: int) -> dict[str, Any]:
    return {
        "format": JSON_FORMAT,
        "grew_bytes": max((d.sizes.delta for d in diffs), default=0),
        "diffs": [{"title": d.title, **diff_json(d.sizes, top)} for d in diffs],
    }


def _csv_rows(diffs: Sequence[Diff], top: int) -> list[dict[str, Any]]:
    rows = []
    for found in diffs:
        for _, changes in _sections(found.sizes):
            shown = changes[:top] if changes and changes[0].kind == "file" else changes
            for change in shown:
                row = change_json(change)
                row.pop("words")
                rows.append({"diff": found.title, **row})
    return rows
