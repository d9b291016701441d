"""A scripted in-memory Engine for unit tests of the logic around Docker."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from buildbench.engine import BuildEvent, ContainerOutcome, ContainerSpec, EngineInfo, ImageInfo


def classic_stream(image_id: str, stage_result: str = "aaaaaaaaaaaa") -> list[BuildEvent]:
    """What the classic builder prints for a two-stage Dockerfile."""
    lines = [
        "Step 1/5 : ARG BASE_IMAGE=python:3.11-slim",
        "Step 2/5 : FROM ${BASE_IMAGE} AS builder",
        " ---> 06f71f00d074",
        "Step 3/5 : RUN pip install thing",
        " ---> Running in 0123456789ab",
        "Successfully installed thing",
        " ---> " + stage_result,
        "Step 4/5 : FROM ${BASE_IMAGE}",
        " ---> 06f71f00d074",
        "Step 5/5 : COPY --from=builder /opt/venv /opt/venv",
        " ---> " + image_id[7:19],
    ]
    return [BuildEvent("log", line) for line in lines] + [BuildEvent("image", image_id)]


def _context_files(context: BinaryIO) -> tuple[list[str], dict[str, str]]:
    """Names in the build context, and the text of its config files and Dockerfiles."""
    if not context.read(1):
        return [], {}
    context.seek(0)
    with tarfile.open(fileobj=context) as tar:
        names = tar.getnames()
        files = {
            n: tar.extractfile(n).read().decode(errors="replace")  # type: ignore[union-attr]
            for n in names
            if n.endswith((".conf", ".dockerfile"))
        }
    return names, files


@dataclass
class FakeEngine:
    images: dict[str, ImageInfo] = field(default_factory=dict)
    builds: list[dict] = field(default_factory=list)
    # Each build pops the next script: a list of events, or an exception to raise.
    scripts: list[list[BuildEvent] | BaseException] = field(default_factory=list)
    runs: list[tuple[str, ContainerSpec]] = field(default_factory=list)
    run_result: Callable[[str, ContainerSpec], ContainerOutcome] | None = None
    removed: list[str] = field(default_factory=list)
    runtimes: tuple[str, ...] = ("runc",)

    def add_image(
        self, ref: str, size: int = 100, tags: tuple[str, ...] = (), layers: int = 1
    ) -> None:
        info = ImageInfo(ref, size, tuple(f"layer{i}" for i in range(layers)), tags)
        self.images[ref] = info
        for tag in tags:
            self.images[tag] = info

    def info(self) -> EngineInfo:
        return EngineInfo("20.10.24", "1.41", "linux/amd64", "6.1", "overlay2", self.runtimes)

    def image(self, ref: str) -> ImageInfo | None:
        return self.images.get(ref)

    def pull(self, ref: str) -> None:
        raise RuntimeError("no registry")

    def import_image(self, tarball: Path, ref: str, changes: list[str]) -> str:
        self.add_image(ref, tags=(ref,))
        return ref

    def build(
        self,
        context: BinaryIO,
        *,
        dockerfile: str,
        tag: str,
        buildargs: Mapping[str, str],
        labels: Mapping[str, str],
    ) -> Iterator[BuildEvent]:
        names, files = _context_files(context)
        self.builds.append(
            {
                "dockerfile": dockerfile,
                "tag": tag,
                "buildargs": dict(buildargs),
                "labels": dict(labels),
                "names": names,
                "files": files,
            }
        )
        script = self.scripts.pop(0)
        if isinstance(script, BaseException):
            raise script
        for event in script:
            if event.kind == "image":
                self.add_image(event.text, size=300, tags=(tag,), layers=3)
            yield event

    def remove_image(self, ref: str) -> bool:
        self.removed.append(ref)
        return self.images.pop(ref, None) is not None

    def images_labelled(self, label: str) -> list[str]:
        return []

    def prune_build_cache(self) -> int:
        self.removed.append("build-cache")
        return 12_000_000

    def image_archive(self, ref: str) -> Iterator[bytes]:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for name, data in (
                ("abc/layer.tar", b"x" * 5000),
                ("manifest.json", json.dumps([{"Layers": ["abc/layer.tar"]}]).encode()),
            ):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        yield buffer.getvalue()

    def run(self, image: str, spec: ContainerSpec) -> ContainerOutcome:
        self.runs.append((image, spec))
        if self.run_result:
            return self.run_result(image, spec)
        return ContainerOutcome(0, '{"python": "3.11.2", "framework": "9.9"}\n', "")
