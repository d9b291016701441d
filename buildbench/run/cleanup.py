"""What a run leaves in the engine, and `buildbench clean`, which removes it.

Everything buildbench builds, runs or fills carries the label `buildbench.run-id`, so the label
finds it, and nothing else. What cannot carry a label (the untagged images of a classic build's
steps, BuildKit's cache records) is written to the run's journal the moment it exists, so a run
killed mid-build can still be cleaned up from its results folder. A run that is still going
holds a lock container (`buildbench.lock`): `clean` keeps everything of such a run, so that on a
shared CI engine it never breaks a concurrent `buildbench run`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from buildbench.engine.api import Engine
from buildbench.labels import LABEL_LOCK, LABEL_RUN, SMOKE_VOLUME_PREFIX
from buildbench.results import RESULTS_JSON

JOURNAL = "engine-objects.jsonl"
Kind = Literal["container", "volume", "image", "cache"]
_ORDER: tuple[Kind, ...] = ("container", "volume", "image", "cache")  # users before what they use


class Journal:
    """Append-only: one JSON line per engine object a run created that carries no label."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / JOURNAL

    def add(self, kind: str, object_id: str) -> None:
        with self.path.open("a") as handle:
            handle.write(json.dumps({"kind": kind, "id": object_id}) + "\n")

    def entries(self) -> list[tuple[str, str]]:
        if not self.path.is_file():
            return []
        found = []
        for line in self.path.read_text().splitlines():
            try:
                entry = json.loads(line)
                found.append((str(entry["kind"]), str(entry["id"])))
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by a crash: the rest still counts
        return found


@dataclass(frozen=True)
class Leftover:
    kind: Kind
    id: str
    run_id: str
    description: str  # a container's state, an image's tags, a record's size
    in_use: str | None = None  # why it must stay: its run is going, a container uses it

    @property
    def short_id(self) -> str:
        return self.id.removeprefix("sha256:")[:12]


@dataclass
class CleanResult:
    removed: list[Leftover] = field(default_factory=list)  # or would be, in a dry run
    kept: list[tuple[Leftover, str]] = field(default_factory=list)  # with the reason


def runs_in(results_dir: Path) -> dict[str, Journal]:
    """The runs whose results live in `results_dir` (one folder each), with their journals."""
    found: dict[str, Journal] = {}
    if not results_dir.is_dir():
        return found
    for results in sorted(results_dir.glob(f"*/**/{RESULTS_JSON}")):
        try:
            run_id = json.loads(results.read_text())["run"]["run_id"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        found[str(run_id)] = Journal(results.parent)
    return found


def live_runs(engine: Engine) -> set[str]:
    """Run ids whose lock container is running: those runs are still going."""
    return {
        c.labels.get(LABEL_RUN, "")
        for c in engine.containers_labelled(LABEL_LOCK)
        if c.running and c.labels.get(LABEL_RUN)
    }


def find_leftovers(engine: Engine, runs: dict[str, Journal] | None = None) -> list[Leftover]:
    """What the given runs left (every run's, with None): containers, volumes, images, cache
    records, in an order that lets each go (a container before the image it uses)."""
    going = live_runs(engine)
    wanted = (lambda run: True) if runs is None else (lambda run: run in runs)
    found: list[Leftover] = []
    containers = [
        c for c in engine.containers_labelled(LABEL_RUN) if wanted(c.labels.get(LABEL_RUN, ""))
    ]
    busy_images = {c.image_id for c in containers if c.running}
    for c in containers:
        run = c.labels.get(LABEL_RUN, "")
        reason = _going(run, going) or ("running" if c.running else None)
        if LABEL_LOCK not in c.labels:  # a lock goes by itself, with its run
            found.append(Leftover("container", c.id, run, c.state, reason))
    for name in engine.volumes_labelled(LABEL_RUN):
        run = _run_of_volume(name)
        if wanted(run):
            found.append(Leftover("volume", name, run, "smoke-test files", _going(run, going)))
    seen: set[str] = set()
    for image_id in engine.images_labelled(LABEL_RUN):
        info = engine.image(image_id)
        run = info.labels.get(LABEL_RUN, "") if info else ""
        if info is not None and wanted(run):  # None: gone since the listing
            seen.add(info.id)
            reason = _going(run, going) or (
                "used by a running container" if info.id in busy_images else None
            )
            found.append(
                Leftover("image", info.id, run, " ".join(info.tags) or "<untagged>", reason)
            )
    found += _journalled(engine, runs or {}, going, seen)
    return sorted(found, key=lambda item: _ORDER.index(item.kind))


def _going(run: str, going: set[str]) -> str | None:
    return "its run is still going" if run in going else None


def _run_of_volume(name: str) -> str:
    return name.removeprefix(SMOKE_VOLUME_PREFIX)


def _journalled(
    engine: Engine, runs: dict[str, Journal], going: set[str], seen: set[str]
) -> list[Leftover]:
    """Untagged step images and cache records the runs' journals name, where they still exist."""
    found: list[Leftover] = []
    cache = {record.id: record for record in engine.build_cache()} if runs else {}
    for run, journal in runs.items():
        for kind, object_id in reversed(journal.entries()):  # children before parents
            if kind == "image":
                info = engine.image(object_id)
                if info is not None and not info.tags and info.id not in seen:
                    seen.add(info.id)
                    found.append(
                        Leftover("image", info.id, run, "<untagged step>", _going(run, going))
                    )
            elif kind == "cache" and object_id in cache:
                size = f"build cache, {cache[object_id].size_bytes} bytes"
                found.append(Leftover("cache", object_id, run, size, _going(run, going)))
    return found


def _remove(engine: Engine, item: Leftover) -> bool:
    if item.kind == "container":
        return engine.remove_container(item.id)
    if item.kind == "volume":
        return engine.remove_volume(item.id)
    if item.kind == "cache":
        engine.prune_cache_records([item.id])
        return item.id not in {record.id for record in engine.build_cache()}
    # False can also mean it went already, as the untagged parent of an image removed before.
    return engine.remove_image(item.id) or engine.image(item.id) is None


def clean(
    engine: Engine, *, runs: dict[str, Journal] | None = None, dry_run: bool = False
) -> CleanResult:
    """Remove what the given runs left (every run's, with None); keep what is in use."""
    result = CleanResult()
    for item in find_leftovers(engine, runs):
        if item.in_use:
            result.kept.append((item, item.in_use))
        elif dry_run or _remove(engine, item):
            result.removed.append(item)
        else:
            result.kept.append((item, "the engine refused to remove it"))
    return result
