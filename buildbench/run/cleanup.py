"""Remove what buildbench left in the engine: the containers and images carrying its run label.

Everything buildbench builds or runs carries `buildbench.run-id` (containers inherit it from
their image), so the label finds it all, and nothing else. Running containers, and the images
they use, belong to a run that is still going: they are kept, so that `buildbench clean` on a
shared CI machine never breaks a concurrent `buildbench run`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from buildbench.engine import Engine
from buildbench.pipeline import LABEL_RUN


@dataclass(frozen=True)
class Leftover:
    kind: Literal["container", "image"]
    id: str
    run_id: str
    description: str  # a container's state, or an image's tags
    running: bool = False  # a running container, or an image one of them uses

    @property
    def short_id(self) -> str:
        return self.id.removeprefix("sha256:")[:12]


@dataclass
class CleanResult:
    removed: list[Leftover] = field(default_factory=list)  # or would be, in a dry run
    kept: list[tuple[Leftover, str]] = field(default_factory=list)  # with the reason


def find_leftovers(engine: Engine, run_id: str | None = None) -> list[Leftover]:
    """Containers first (an image cannot go while a container uses it), then images."""
    label = LABEL_RUN if run_id is None else f"{LABEL_RUN}={run_id}"
    containers = engine.containers_labelled(label)
    busy_images = {c.image_id for c in containers if c.running}
    found = [
        Leftover("container", c.id, c.labels.get(LABEL_RUN, ""), c.state, c.running)
        for c in containers
    ]
    for image_id in engine.images_labelled(label):
        info = engine.image(image_id)
        if info is not None:  # gone since the listing: another clean, or its run removed it
            tags = " ".join(info.tags) or "<untagged>"
            run = info.labels.get(LABEL_RUN, "")
            found.append(Leftover("image", info.id, run, tags, info.id in busy_images))
    return found


def _remove(engine: Engine, item: Leftover) -> bool:
    if item.kind == "container":
        return engine.remove_container(item.id)
    # False can also mean it went already, as the untagged parent of an image removed before.
    return engine.remove_image(item.id) or engine.image(item.id) is None


def clean(engine: Engine, *, run_id: str | None = None, dry_run: bool = False) -> CleanResult:
    """Remove every container and image of buildbench's (of one run with `run_id`)."""
    result = CleanResult()
    for item in find_leftovers(engine, run_id):
        if item.running:
            result.kept.append((item, "in use by a running container: its run is still going"))
        elif dry_run or _remove(engine, item):
            result.removed.append(item)
        else:
            result.kept.append((item, "the engine refused to remove it"))
    return result
