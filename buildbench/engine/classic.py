"""Build one cell with the classic builder, timing the whole build and each instruction."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import BinaryIO

from buildbench.engine import Engine
from buildbench.errors import BuildFailed

_STEP = re.compile(r"^Step (\d+)/\d+ : (.*)$")
_LAYER_ID = re.compile(r"^ ---> ([0-9a-f]{12,64})$")
_UNCONSUMED = re.compile(r"\[Warning\] One or more build-args \[(.*)\] were not consumed")

LogSink = Callable[[str], None]


@dataclass
class BuildSample:
    image_id: str
    seconds: float
    first_output_seconds: float | None
    steps: list[tuple[int, str, float]] = field(default_factory=list)
    # Results of the stages before the last: untagged images the classic builder leaves behind.
    stage_images: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class _StepClock:
    """Turns the build stream into per-instruction durations, from host receive times."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.first_output: float | None = None
        self.steps: list[tuple[int, str, float]] = []
        self._open: tuple[int, str, float] | None = None
        self.stage_images: list[str] = []
        self._last_layer: str | None = None
        self._in_from = False
        self.layers: list[str] = []  # every image the build committed, in order
        self.warnings: list[str] = []

    def line(self, text: str, now: float) -> None:
        if self.first_output is None:
            self.first_output = now - self.started
        if step := _STEP.match(text):
            self.close(now)
            instruction = step.group(2)
            self._in_from = instruction.upper().startswith("FROM ")
            if self._in_from:
                if self._last_layer:  # the result of the stage this FROM ends
                    self.stage_images.append(self._last_layer)
                self._last_layer = None
            self._open = (int(step.group(1)), instruction, now)
        elif (layer := _LAYER_ID.match(text)) and not self._in_from:
            # The id printed after FROM is the base image itself: never ours to remove.
            self._last_layer = layer.group(1)
            self.layers.append(self._last_layer)
        elif unconsumed := _UNCONSUMED.search(text):
            self.warnings.append(
                f"build-args never consumed by the Dockerfile: {unconsumed.group(1)}"
            )

    def close(self, now: float) -> None:
        if self._open:
            index, instruction, since = self._open
            self.steps.append((index, instruction, now - since))
            self._open = None


def build_once(
    engine: Engine,
    context: BinaryIO,
    *,
    dockerfile: str,
    tag: str,
    buildargs: Mapping[str, str],
    labels: Mapping[str, str],
    on_log: LogSink,
) -> BuildSample:
    """One no-cache build, timed from the request to the final image id. Raises BuildFailed."""
    context.seek(0)
    started = time.perf_counter()
    clock = _StepClock(started)
    image_id, finished = None, 0.0
    try:
        # Read the stream to its end even after the image id: the engine tags the image after it.
        for event in engine.build(
            context, dockerfile=dockerfile, tag=tag, buildargs=buildargs, labels=labels
        ):
            now = time.perf_counter()
            if event.kind == "image":
                image_id, finished = event.text, now
                clock.close(now)
                continue
            clock.line(event.text, now)
            on_log(event.text)
    except BaseException:
        # A failed or interrupted classic build leaves the images of its finished steps behind.
        _remove_untagged(engine, reversed(clock.layers))
        raise
    if image_id is None:  # a stream that ends without an image id is a failed build
        raise BuildFailed("the engine finished the build without an image id", [])
    return BuildSample(
        image_id=image_id,
        seconds=finished - started,
        first_output_seconds=clock.first_output,
        steps=clock.steps,
        stage_images=clock.stage_images,
        warnings=clock.warnings,
    )


def _remove_untagged(engine: Engine, refs: Iterable[str], keep: str | None = None) -> None:
    """Remove images (and their untagged parents) that no tag names; never `keep`."""
    for ref in refs:
        info = engine.image(ref)
        if info is not None and not info.tags and info.id != keep:
            engine.remove_image(info.id)


def remove_stage_images(engine: Engine, sample: BuildSample) -> None:
    """Remove the untagged builder-stage images (and their untagged parents) of one build."""
    _remove_untagged(engine, sample.stage_images, keep=sample.image_id)
