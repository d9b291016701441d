"""What differs between two images' contents: Python distributions, Debian packages, layers
(matched by instruction) and files, with versions old -> new and bytes, largest first.

Both sides are an `Inventory`: read from an image on the engine (measure/inventory.py: every
layer, so the parts add up to the whole image) or taken from a results record (its attribution
over the base image, so the parts add up to the bytes over the base, the base's own change
beside them). Either way the `parts` of a `SizeDiff` add up exactly to the change of the
image's size: nothing is left unexplained, what no owner claims is "other".
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from buildbench.errors import UsageError
from buildbench.record import CellRecord
from buildbench.results import RunResults

ItemKind = Literal["distribution", "package", "layer", "file", "finding"]
Change = Literal["added", "removed", "upgraded", "downgraded", "changed", "same"]

# Classic builder COPY/ADD layers carry their source's content hash: it changes with the files.
_CONTENT_HASH = re.compile(r"\b(dir|file|multi):[0-9a-f]{16,}")
# buildbench's own labels carry the run id: the same step in every run.
_RUN_LABEL = re.compile(r"(buildbench\.run-id=)\S+")
_LAYER_MAKERS = ("RUN", "COPY", "ADD")


@dataclass(frozen=True)
class Owned:
    """A distribution, package, layer or file of one image and its bytes there. `layer`: the
    index of the layer that wrote it (its RECORD, dpkg list or the file itself), if known."""

    name: str
    bytes: int
    version: str = ""
    layer: int | None = None


@dataclass(frozen=True)
class Inventory:
    """One image as a diff reads it. `distributions`, `packages` and `other_bytes` add up to
    `scope_bytes`: the whole image (`base_bytes` 0) or its bytes over the base image."""

    label: str
    size_bytes: int
    scope_bytes: int
    distributions: list[Owned]
    packages: list[Owned]
    other_bytes: int
    layers: list[Owned]  # name: the layer's instruction; bytes: its size
    compressed_bytes: int | None = None
    # Every final file (its path, bytes and layer): only for an image read here; None from a
    # record, which keeps no file list.
    files: list[Owned] | None = None
    findings: dict[str, int] = field(default_factory=dict)  # waste finding kind -> bytes
    # Dockerfile steps (index, instruction) when known: to name the step behind a layer.
    steps: list[tuple[int, str]] = field(default_factory=list)
    base_image_id: str | None = None
    python_version: str | None = None
    framework_version: str | None = None
    read: bool = True  # its contents are known (else only its size)

    @property
    def base_bytes(self) -> int:
        return self.size_bytes - self.scope_bytes


@dataclass(frozen=True)
class ItemChange:
    kind: ItemKind
    name: str
    old_bytes: int
    new_bytes: int
    old_version: str = ""
    new_version: str = ""
    # What wrote it (the new side's, else the old side's): the Dockerfile step (its number and
    # instruction) where that is known, else the layer's instruction as the image's history has it.
    instruction: str | None = None
    step: int | None = None

    @property
    def delta(self) -> int:
        return self.new_bytes - self.old_bytes

    @property
    def change(self) -> Change:
        if self.old_bytes == 0 and self.new_bytes > 0:
            return "added"
        if self.new_bytes == 0 and self.old_bytes > 0:
            return "removed"
        if self.old_version != self.new_version:
            return (
                "upgraded"
                if _version_key(self.new_version) > _version_key(self.old_version)
                else "downgraded"
            )
        return "same" if self.delta == 0 else "changed"


@dataclass(frozen=True)
class Part:
    """One term of the sum the change is: base image, distributions, packages, other."""

    name: str
    old_bytes: int
    new_bytes: int

    @property
    def delta(self) -> int:
        return self.new_bytes - self.old_bytes


@dataclass(frozen=True)
class SizeDiff:
    before: Inventory
    after: Inventory
    parts: list[Part]  # their deltas add up to `delta`
    distributions: list[ItemChange]  # changed ones only, largest |delta| first
    packages: list[ItemChange]
    layers: list[ItemChange]
    files: list[ItemChange] | None  # None: a side's files are not known (a record)
    findings: list[ItemChange]

    @property
    def delta(self) -> int:
        return self.after.size_bytes - self.before.size_bytes

    @property
    def compressed_delta(self) -> int | None:
        old, new = self.before.compressed_bytes, self.after.compressed_bytes
        return None if old is None or new is None else new - old

    def items(self) -> list[ItemChange]:
        """Every owner's change (distributions and packages), largest |delta| first."""
        return _largest_first([*self.distributions, *self.packages])

    def largest_cause(self) -> ItemChange | None:
        """The change that explains most of the total, in its direction: an owner's when one
        moved, else a layer's."""
        for candidates in (self.items(), self.layers, self.files or []):
            found = [c for c in candidates if c.delta and (c.delta > 0) == (self.delta > 0)]
            if found:
                return found[0]
        return None


# ---------------------------------------------------------------------------------------------
# Inventories from results records


def record_inventory(record: CellRecord, label: str | None = None) -> Inventory | None:
    """A cell's image as its record saw it (None: not measured). Without contents (the image
    was not read, or had no known base) the whole image is one part."""
    image, contents = record.image, record.contents
    if image is None:
        return None
    if contents is None:
        return Inventory(
            label=label or record.key,
            size_bytes=image.size_bytes,
            scope_bytes=0,
            distributions=[],
            packages=[],
            other_bytes=0,
            layers=[],
            compressed_bytes=image.compressed_size_bytes,
            steps=[(step.index, step.instruction) for step in record.build.steps],
            base_image_id=image.base_image_id,
            python_version=image.python_version,
            framework_version=image.framework_version,
            read=False,
        )
    found = contents.attribution
    return Inventory(
        label=label or record.key,
        size_bytes=image.size_bytes,
        scope_bytes=found.bytes_over_base,
        distributions=[Owned(d.name, d.bytes, d.version, d.layer) for d in found.distributions],
        packages=[Owned(p.name, p.bytes, p.version, p.layer) for p in found.packages],
        other_bytes=found.other_bytes,
        layers=[
            Owned(layer.instruction or "", layer.size_bytes, layer=layer.index)
            for layer in found.layers
        ],
        compressed_bytes=image.compressed_size_bytes,
        findings=_findings(record),
        steps=[(step.index, step.instruction) for step in record.build.steps],
        base_image_id=image.base_image_id,
        python_version=image.python_version,
        framework_version=image.framework_version,
    )


def _findings(record: CellRecord) -> dict[str, int]:
    totals: Counter[str] = Counter()
    for finding in record.contents.findings if record.contents else []:
        totals[str(finding.kind)] += finding.bytes
    return dict(totals)


# ---------------------------------------------------------------------------------------------
# The diff


def diff_inventories(before: Inventory, after: Inventory) -> SizeDiff:
    parts = [
        Part("Python distributions", _sum(before.distributions), _sum(after.distributions)),
        Part("Debian packages", _sum(before.packages), _sum(after.packages)),
        Part("other", before.other_bytes, after.other_bytes),
    ]
    if before.base_bytes or after.base_bytes:
        base = "base image" if before.read and after.read else "base image, or all (not read)"
        parts.insert(0, Part(base, before.base_bytes, after.base_bytes))
    files = None
    if before.files is not None and after.files is not None:
        files = _owned_changes("file", before, after, before.files, after.files, str)
    return SizeDiff(
        before=before,
        after=after,
        parts=parts,
        distributions=_owned_changes(
            "distribution", before, after, before.distributions, after.distributions, _pep503
        ),
        packages=_owned_changes("package", before, after, before.packages, after.packages, str),
        layers=_layer_changes(before, after),
        files=files,
        findings=_changes("finding", _as_owned(before.findings), _as_owned(after.findings)),
    )


def _sum(items: Iterable[Owned]) -> int:
    return sum(item.bytes for item in items)


def _as_owned(sizes: dict[str, int]) -> list[Owned]:
    return [Owned(name, size) for name, size in sizes.items()]


def _pep503(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _owned_changes(
    kind: ItemKind,
    before: Inventory,
    after: Inventory,
    old: list[Owned],
    new: list[Owned],
    key: Callable[[str], str],
) -> list[ItemChange]:
    """Changes of owners, each with the layer (and step) that wrote the newer copy."""
    layers = {o.name: o.layer for o in old} | {o.name: o.layer for o in new}
    found = []
    for change in _changes(kind, old, new, key):
        side = after if change.new_bytes else before
        instruction, step = _where(side, layers.get(change.name))
        found.append(replace(change, instruction=instruction, step=step))
    return found


def _changes(
    kind: ItemKind, old: list[Owned], new: list[Owned], key: Callable[[str], str] = str
) -> list[ItemChange]:
    olds = {key(o.name): o for o in old}
    news = {key(o.name): o for o in new}
    found = []
    for name in dict.fromkeys([*olds, *news]):
        a, b = olds.get(name), news.get(name)
        change = ItemChange(
            kind,
            (b or a).name,  # type: ignore[union-attr]
            a.bytes if a else 0,
            b.bytes if b else 0,
            a.version if a else "",
            b.version if b else "",
        )
        if change.change != "same":
            found.append(change)
    return _largest_first(found)


def _largest_first(changes: Sequence[ItemChange]) -> list[ItemChange]:
    return sorted(changes, key=lambda c: (-abs(c.delta), c.name))


def _where(side: Inventory, layer: int | None) -> tuple[str | None, int | None]:
    """What made layer `layer` of `side`: its Dockerfile step (the step's own text) where it
    is known, else the layer's instruction."""
    if layer is None:
        return None, None
    found = next((o for o in side.layers if o.layer == layer), None)
    if found is None:
        return None, None
    return _instruction(side, found)


def _instruction(side: Inventory, layer: Owned) -> tuple[str | None, int | None]:
    step = step_of_layer(side, layer)
    text = dict(side.steps).get(step) if step is not None else None
    return text or layer.name or None, step


def _layer_changes(before: Inventory, after: Inventory) -> list[ItemChange]:
    """Layers matched by instruction (the n-th layer with the same instruction to the n-th),
    not by position: a step added above shifts every index, not what the others hold."""
    old = {key: layer for key, layer in keyed(before.layers)}
    new = {key: layer for key, layer in keyed(after.layers)}
    found = []
    for key in dict.fromkeys([*new, *old]):
        a, b = old.get(key), new.get(key)
        shown = b or a
        assert shown is not None
        instruction, step = _instruction(after if b else before, shown)
        change = ItemChange(
            "layer",
            shown.name,
            a.bytes if a else 0,
            b.bytes if b else 0,
            instruction=instruction if step is not None else None,
            step=step,
        )
        if a is None or b is None or change.delta:
            found.append(change)
    return _largest_first(found)


def keyed(items: Sequence[Owned]) -> list[tuple[tuple[str, int], Owned]]:
    """Items by normalized instruction and occurrence: the n-th alike matches the n-th."""
    seen: Counter[str] = Counter()
    found = []
    for item in items:
        text = normalized(item.name)
        found.append(((text, seen[text]), item))
        seen[text] += 1
    return found


def normalized(instruction: str) -> str:
    """An instruction as two builds of the same Dockerfile both write it: content hashes and
    buildbench's run labels left out, whitespace collapsed."""
    text = _CONTENT_HASH.sub(r"\1:…", instruction)
    text = _RUN_LABEL.sub(r"\1…", text)
    return " ".join(text.split())


def step_of_layer(side: Inventory, layer: Owned) -> int | None:
    """The Dockerfile step that made a layer: the RUN step with the same command, or for a
    COPY/ADD layer (the classic builder names its source by hash) the final stage's COPY/ADD
    step at the same position among them."""
    if not side.steps or layer.layer is None:
        return None
    text = normalized(layer.name)
    final = _final_stage(side.steps)
    if text.startswith("RUN "):
        matches = [index for index, step in final if normalized(step) == text]
        return matches[0] if len(matches) == 1 else None
    verb = text.split(" ", 1)[0]
    if verb not in ("COPY", "ADD"):
        return None
    copies_steps = [
        index for index, step in final if step.split(" ", 1)[0].upper() in ("COPY", "ADD")
    ]
    layers = [o for o in side.layers if normalized(o.name).split(" ", 1)[0] in ("COPY", "ADD")]
    # Only the image's own layers above the base: the base's COPY layers are not this file's.
    own = [o for o in layers if o.layer is not None and o.layer >= _first_own_layer(side)]
    position = next((i for i, o in enumerate(own) if o.layer == layer.layer), None)
    if position is None or len(own) != len(copies_steps):
        return None
    return copies_steps[position]


def _first_own_layer(side: Inventory) -> int:
    """The index of the first layer above the base: a record's layers are those only; an image
    read whole starts with its base's (those the final stage's steps did not make)."""
    made = sum(
        1 for _, step in _final_stage(side.steps) if step.split(" ", 1)[0].upper() in _LAYER_MAKERS
    )
    indexes = [o.layer for o in side.layers if o.layer is not None]
    if not indexes:
        return 0
    return max(min(indexes), max(indexes) + 1 - made)


def _final_stage(steps: Sequence[tuple[int, str]]) -> list[tuple[int, str]]:
    starts = [i for i, (_, text) in enumerate(steps) if text.split(" ", 1)[0].upper() == "FROM"]
    return list(steps[starts[-1] + 1 :] if starts else steps)


# ---------------------------------------------------------------------------------------------
# Versions


def _version_key(version: str) -> tuple[tuple[int, object], ...]:
    """Enough of a version order to tell an upgrade from a downgrade (Debian's and PEP 440's
    agree on dotted numbers; anything else compares as text)."""
    parts = re.split(r"[.+~:-]", version)
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts)


# ---------------------------------------------------------------------------------------------
# Two results files


def diff_results(
    before: RunResults, after: RunResults, cells: Sequence[str] = ()
) -> list[tuple[str, SizeDiff]]:
    """Each cell both runs measured (or only `cells`), in the newer run's order. A UsageError
    when they share none."""
    old = {record.key: record for record in before.records}
    found = []
    for record in after.records:
        if (cells and record.key not in cells) or record.key not in old:
            continue
        a = record_inventory(old[record.key], f"{before.info.run_id} {record.key}")
        b = record_inventory(record, f"{after.info.run_id} {record.key}")
        if a is not None and b is not None:
            found.append((record.key, diff_inventories(a, b)))
    if not found:
        wanted = f" among {', '.join(cells)}" if cells else ""
        raise UsageError(
            f"the two runs have no measured cell in common{wanted} "
            f"({_keys(before)} vs {_keys(after)})",
            tip="diff runs of the same matrix, or give two images",
        )
    return found


def _keys(run: RunResults) -> str:
    return ", ".join(record.key for record in run.records) or "no cells"
