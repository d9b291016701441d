"""The classic builder, through the Docker SDK: one no-cache build, timing the whole build and
each instruction from the `Step N/M` stream as it arrives.

The classic builder commits an image per step. After a successful multi-stage build, the
results of the stages before the last stay as untagged images; after a failed or interrupted
one, so do the images of its finished steps. Both are removed here; every id is also reported
to `on_created` as it streams, so a run killed mid-build can still be cleaned up later.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable

from buildbench.engine.api import Engine, LineSink
from buildbench.engine.builders import (
    BuildContext,
    BuilderName,
    BuildRequest,
    BuildSample,
    CreatedSink,
)
from buildbench.engine.upload import ContextUpload
from buildbench.engine.wait import poll_until
from buildbench.errors import BuildFailed

log = logging.getLogger("buildbench")

_STEP = re.compile(r"^Step (\d+)/\d+ : (.*)$")
_LAYER_ID = re.compile(r"^ ---> ([0-9a-f]{12,64})$")
_UNCONSUMED = re.compile(r"\[Warning\] One or more build-args \[(.*)\] were not consumed")
# How long the engine may take to let go of a cancelled build's images after the disconnect.
_STEP_CONTAINER_GRACE = 120.0


class _StepClock:
    """Turns the build stream into per-instruction durations, from host receive times."""

    def __init__(self, started: float, on_created: CreatedSink) -> None:
        self.started = started
        self.on_created = on_created
        self.first_output: float | None = None
        self.steps: list[tuple[int, str, float]] = []
        self._open: tuple[int, str, float] | None = None
        self.stage_images: list[str] = []  # the result of every stage but the last
        self._last_layer: str | None = None
        self._in_from = False
        self.layers: list[str] = []  # every image the build committed, in order
        self.parent: str | None = None  # the image the step now running builds on
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
        elif layer := _LAYER_ID.match(text):
            self.parent = layer.group(1)
            if self._in_from:  # the id printed after FROM is the base: never ours to remove
                return
            self._last_layer = layer.group(1)
            self.layers.append(self._last_layer)
            self.on_created("image", self._last_layer)
        elif unconsumed := _UNCONSUMED.search(text):
            self.warnings.append(
                f"build-args never consumed by the Dockerfile: {unconsumed.group(1)}"
            )

    @property
    def copying(self) -> bool:
        """Whether the step that was running copies files in (COPY, ADD): the engine may go on
        with it after a cancel and commit its image later, without a parent."""
        opened = self._open
        return opened is not None and opened[1].upper().startswith(("COPY ", "ADD "))

    def close(self, now: float) -> None:
        if self._open:
            index, instruction, since = self._open
            self.steps.append((index, instruction, now - since))
            self._open = None


class ClassicBuilder:
    name: BuilderName = "classic"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def build(
        self,
        context: BuildContext,
        request: BuildRequest,
        on_log: LineSink,
        on_created: CreatedSink,
    ) -> BuildSample:
        dangling = set(self.engine.dangling_images())  # before timing: see _remove_late_copy
        started = time.perf_counter()
        clock = _StepClock(started, on_created)
        upload = ContextUpload(context, started)  # packed as the request body goes out
        image_id, finished = None, 0.0
        try:
            # Read the stream to its end even after the image id: the engine tags it after.
            events = self.engine.build(
                upload.chunks(),
                dockerfile=request.dockerfile,
                tag=request.tag,
                buildargs=request.buildargs,
                labels=request.labels,
            )
            for event in events:
                now = time.perf_counter()
                if event.kind == "image":
                    image_id, finished = event.text, now
                    clock.close(now)
                    continue
                clock.line(event.text, now)
                on_log(event.text)
        except BaseException:
            self._remove_leftovers(clock, dangling)
            raise
        if image_id is None:  # a stream that ends without an image id is a failed build
            self._remove_leftovers(clock, dangling)
            raise BuildFailed("the engine finished the build without an image id", [])
        remove_untagged(self.engine, clock.stage_images, keep=image_id)
        return BuildSample(
            image_id=image_id,
            seconds=finished - started,
            first_output_seconds=clock.first_output,
            context_seconds=upload.seconds,
            context_bytes=upload.bytes,
            steps=clock.steps,
            warnings=clock.warnings,
        )

    def _remove_leftovers(self, clock: _StepClock, dangling_before: set[str]) -> None:
        """The images of a failed or interrupted build's finished steps. A cancelled step's
        container holds its parent image until the engine has removed it, and the engine may
        have been creating one as the build stopped, whose id we never saw: wait until no
        container runs on the build's images, or the removal fails quietly and they stay."""
        deadline = time.monotonic() + _STEP_CONTAINER_GRACE
        parent = self.engine.image(clock.parent) if clock.copying and clock.parent else None
        left: list[str] = []

        def removed() -> bool:
            """Whether the build's images are gone; tried once no container holds them, and
            in any case when the time is up."""
            nonlocal left
            busy = self.engine.containers_using(clock.layers[0])  # of its descendants too
            if busy and time.monotonic() < deadline:
                return False
            # A step the engine finished after the cancel committed an image we never saw:
            # it is a child of the last one we did.
            chain = [*clock.layers, *self._descendants(clock.layers[-1:])]
            remove_untagged(self.engine, reversed(chain))
            left = [layer for layer in chain if self.engine.image(layer) is not None]
            return not left

        if clock.layers:
            poll_until(removed, deadline=deadline)
        if parent is not None:
            self._remove_late_copy(parent.layers, deadline, dangling_before)
        if left:
            log.warning("the engine kept %d image(s) of the cancelled build", len(left))

    def _remove_late_copy(self, below: tuple[str, ...], deadline: float, before: set[str]) -> None:
        """A cancelled COPY or ADD goes on in the engine and commits its image when it is done,
        with no parent recorded: a new untagged image one layer above `below`. Wait for it."""

        def landed_and_removed() -> bool:
            for image in set(self.engine.dangling_images()) - before:
                info = self.engine.image(image)
                if info and len(info.layers) == len(below) + 1 and info.layers[:-1] == below:
                    self.engine.remove_image(info.id)
                    return True
            return False

        poll_until(landed_and_removed, deadline=deadline)

    def _descendants(self, images: list[str]) -> list[str]:
        found: list[str] = []
        while images:
            images = [child for image in images for child in self.engine.image_children(image)]
            found += images
        return found


def remove_untagged(engine: Engine, refs: Iterable[str], keep: str | None = None) -> None:
    """Remove images (and their untagged parents) that no tag names; never `keep`."""
    for ref in refs:
        info = engine.image(ref)
        if info is not None and not info.tags and info.id != keep:
            engine.remove_image(info.id)
