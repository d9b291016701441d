"""The classic builder: per-instruction times from the `Step N/M` stream, and what a build leaves
behind (stage images, a failed build's step images) removed, every id journalled first."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from buildbench.engine.api import BuildEvent
from buildbench.engine.builders import BuildRequest, BuildSample
from buildbench.engine.classic import ClassicBuilder, remove_untagged
from buildbench.engine.endpoint import Endpoint
from buildbench.engine.factory import choose_builder
from buildbench.errors import BuildFailed, UsageError
from tests.fakes import FakeEngine, TarContext, classic_stream

IMAGE = "sha256:" + "b" * 64
REQUEST = BuildRequest(dockerfile="Dockerfile", tag="t:1", buildargs={"CUDA": ""}, labels={})


def _build(
    engine: FakeEngine, context: TarContext | None = None
) -> tuple[BuildSample, list[str], list[tuple[str, str]]]:
    logs: list[str] = []
    created: list[tuple[str, str]] = []
    sample = ClassicBuilder(engine).build(
        context or TarContext(),
        REQUEST,
        logs.append,
        lambda kind, ref: created.append((kind, ref)),
    )
    return sample, logs, created


def test_build_times_every_instruction_and_removes_the_stage_result() -> None:
    engine = FakeEngine(scripts=[classic_stream(IMAGE)])
    engine.add_image("aaaaaaaaaaaa")  # the builder stage's result: untagged
    sample, logs, created = _build(engine)
    assert sample.image_id == IMAGE
    assert [(i, text.split()[0]) for i, text, _ in sample.steps] == [
        (1, "ARG"),
        (2, "FROM"),
        (3, "RUN"),
        (4, "FROM"),
        (5, "COPY"),
    ]
    assert all(seconds >= 0 for *_, seconds in sample.steps)
    assert sum(s for *_, s in sample.steps) <= sample.seconds
    assert engine.removed == ["aaaaaaaaaaaa"]  # the stage result; never the final image
    assert IMAGE in engine.images
    assert sample.first_output_seconds is not None
    assert sample.cache_records == []  # the classic builder keeps no build cache
    assert "Successfully installed thing" in logs
    # Every image the build committed is journalled as it streams (the base never is).
    assert created == [("image", "aaaaaaaaaaaa"), ("image", "bbbbbbbbbbbb")]


def test_packing_the_context_is_timed_as_docker_build_times_it() -> None:
    """The context is packed as it is sent, inside the timed build, anew for every sample;
    how long that took and its size are the sample's."""
    engine = FakeEngine(scripts=[classic_stream(IMAGE), classic_stream(IMAGE)])
    context = TarContext(pack_seconds=0.3)
    first, *_ = _build(engine, context)
    second, *_ = _build(engine, context)
    assert context.packed == 2
    for sample in (first, second):
        assert sample.context_seconds is not None and sample.context_seconds >= 0.3
        assert sample.seconds >= sample.context_seconds
        assert sample.context_bytes == len(context.data)
    assert engine.builds[0]["names"] == ["Dockerfile"]  # the whole tar reached the engine


def test_a_context_that_fails_to_pack_says_so_and_the_build_stops() -> None:
    engine = FakeEngine(scripts=[classic_stream(IMAGE)])
    unreadable = UsageError("cannot pack the build context ctx: [Errno 13] Permission denied")
    with pytest.raises(UsageError, match="cannot pack the build context"):
        _build(engine, TarContext(fail=unreadable))
    assert IMAGE not in engine.images  # the engine never got a whole context


def test_the_build_request_reaches_the_engine() -> None:
    engine = FakeEngine(scripts=[classic_stream(IMAGE)])
    ClassicBuilder(engine).build(
        TarContext(),
        BuildRequest("x.dockerfile", "buildbench/onnx:cpu-r", {"CUDA": "true"}, {"l": "1"}),
        lambda line: None,
        lambda kind, ref: None,
    )
    (build,) = engine.builds
    assert (build["dockerfile"], build["tag"]) == ("x.dockerfile", "buildbench/onnx:cpu-r")
    assert (build["buildargs"], build["labels"]) == ({"CUDA": "true"}, {"l": "1"})


def test_unconsumed_build_args_become_a_warning() -> None:
    events = [
        BuildEvent("log", "Step 1/1 : FROM base"),
        BuildEvent("log", "[Warning] One or more build-args [CUDA] were not consumed"),
        BuildEvent("image", IMAGE),
    ]
    sample, _, _ = _build(FakeEngine(scripts=[events]))
    assert sample.warnings == ["build-args never consumed by the Dockerfile: CUDA"]


def test_a_stream_without_an_image_id_is_a_failed_build() -> None:
    with pytest.raises(BuildFailed, match="without an image id"):
        _build(FakeEngine(scripts=[[BuildEvent("log", "Step 1/1 : FROM base")]]))


def test_only_untagged_stage_images_are_removed() -> None:
    engine = FakeEngine()
    engine.add_image(IMAGE, tags=("t:1",))
    engine.add_image("aaaaaaaaaaaa")
    engine.add_image("cccccccccccc", tags=("someone/else:tag",))
    engine.add_image("dddddddddddd")  # untagged, but the image to keep
    remove_untagged(
        engine, ["aaaaaaaaaaaa", "cccccccccccc", "dddddddddddd", "gone"], "dddddddddddd"
    )
    assert engine.removed == ["aaaaaaaaaaaa"]


def test_a_tagged_stage_result_is_not_removed_after_a_build() -> None:
    engine = FakeEngine(scripts=[classic_stream(IMAGE)])
    engine.add_image("aaaaaaaaaaaa", tags=("someone/else:tag",))
    _build(engine)
    assert engine.removed == []


def _failing(events: list[BuildEvent | BaseException]) -> Callable[..., Iterator[BuildEvent]]:
    def build(*args: object, **kwargs: object) -> Iterator[BuildEvent]:
        """An engine's build stream that breaks off with the first exception in `events`."""
        for event in events:
            if isinstance(event, BaseException):
                raise event
            yield event

    return build


def test_a_failed_build_removes_the_images_of_its_finished_steps() -> None:
    events: list[BuildEvent | BaseException] = [*classic_stream(IMAGE)[:7], BuildFailed("boom", [])]
    engine = FakeEngine()
    engine.add_image("06f71f00d074")  # a base pinned by digest has no tag: still not ours
    engine.add_image("aaaaaaaaaaaa")
    engine.build = _failing(events)  # type: ignore[method-assign]
    with pytest.raises(BuildFailed):
        _build(engine)
    assert engine.removed == ["aaaaaaaaaaaa"]
    # A step's container holds its parent: no container runs on the build's images first.
    assert engine.calls[0] == ("containers_using", "aaaaaaaaaaaa")


def test_the_cleanup_waits_until_the_engine_has_let_go_of_the_step_images(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events: list[BuildEvent | BaseException] = [*classic_stream(IMAGE)[:7], KeyboardInterrupt()]
    engine = FakeEngine()
    engine.add_image("aaaaaaaaaaaa")
    engine.build = _failing(events)  # type: ignore[method-assign]
    busy = [["cancelled-step"], ["cancelled-step"], []]
    monkeypatch.setattr(engine, "containers_using", lambda image: busy.pop(0))
    monkeypatch.setattr("buildbench.engine.classic.time.sleep", lambda seconds: None)
    with pytest.raises(KeyboardInterrupt):
        _build(engine)
    assert busy == [] and engine.removed == ["aaaaaaaaaaaa"]


def test_an_interrupted_build_cleans_up_and_passes_the_interrupt_on() -> None:
    events: list[BuildEvent | BaseException] = [*classic_stream(IMAGE)[:7], KeyboardInterrupt()]
    engine = FakeEngine()
    engine.add_image("aaaaaaaaaaaa")
    engine.build = _failing(events)  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        _build(engine)
    assert engine.removed == ["aaaaaaaaaaaa"]


def test_the_classic_builder_is_the_default_choice() -> None:
    engine = FakeEngine()
    builder = choose_builder("classic", engine, Endpoint("unix:///var/run/fake.sock"))
    assert isinstance(builder, ClassicBuilder) and builder.name == "classic"


def test_a_copy_the_engine_finishes_after_the_cancel_is_removed_when_it_lands(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A cancelled COPY goes on in the engine and commits an image with no parent: the new
    untagged image one layer above the step's parent goes too; older dangling images stay."""
    events: list[BuildEvent | BaseException] = [
        BuildEvent("log", "Step 1/3 : FROM base"),
        BuildEvent("log", " ---> 06f71f00d074"),
        BuildEvent("log", "Step 2/3 : COPY big/ /big/"),
        KeyboardInterrupt(),
    ]
    engine = FakeEngine()
    engine.add_image("06f71f00d074", layers=1)
    engine.add_image("someone-elses", layers=2)  # dangling before the build: not ours
    engine.build = _failing(events)  # type: ignore[method-assign]
    landed = iter([False, False, True])

    def dangling() -> list[str]:
        if next(landed, True) and "late-copy" not in engine.images:
            engine.add_image("late-copy", layers=2)
        return [ref for ref, info in engine.images.items() if ref == info.id and not info.tags]

    monkeypatch.setattr(engine, "dangling_images", dangling)
    monkeypatch.setattr("buildbench.engine.classic.time.sleep", lambda seconds: None)
    with pytest.raises(KeyboardInterrupt):
        _build(engine)
    assert engine.removed == ["late-copy"]
    assert "someone-elses" in engine.images
