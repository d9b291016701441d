import io

import pytest

from buildbench.build import build_once, remove_stage_images
from buildbench.engine import BuildEvent
from buildbench.errors import BuildFailed
from tests.fakes import FakeEngine, classic_stream

IMAGE = "sha256:" + "b" * 64


def _build(engine: FakeEngine):
    logs: list[str] = []
    sample = build_once(
        engine,
        io.BytesIO(),
        dockerfile="Dockerfile",
        tag="t:1",
        buildargs={"CUDA": ""},
        labels={},
        on_log=logs.append,
    )
    return sample, logs


def test_build_once_times_every_instruction_and_finds_the_stage_result():
    engine = FakeEngine(scripts=[classic_stream(IMAGE)])
    sample, logs = _build(engine)
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
    assert sample.stage_images == ["aaaaaaaaaaaa"]
    assert sample.first_output_seconds is not None
    assert "Successfully installed thing" in logs


def test_unconsumed_build_args_become_a_warning():
    events = [
        BuildEvent("log", "Step 1/1 : FROM base"),
        BuildEvent("log", "[Warning] One or more build-args [CUDA] were not consumed"),
        BuildEvent("image", IMAGE),
    ]
    sample, _ = _build(FakeEngine(scripts=[events]))
    assert sample.warnings == ["build-args never consumed by the Dockerfile: CUDA"]


def test_a_stream_without_an_image_id_is_a_failed_build():
    with pytest.raises(BuildFailed, match="without an image id"):
        _build(FakeEngine(scripts=[[BuildEvent("log", "Step 1/1 : FROM base")]]))


def test_only_untagged_stage_images_are_removed():
    engine = FakeEngine(scripts=[classic_stream(IMAGE)])
    sample, _ = _build(engine)
    engine.add_image("aaaaaaaaaaaa")
    engine.add_image("cccccccccccc", tags=("someone/else:tag",))
    sample.stage_images.append("cccccccccccc")
    remove_stage_images(engine, sample)
    assert engine.removed == ["aaaaaaaaaaaa"]


def test_a_failed_build_removes_the_images_of_its_finished_steps():
    events = [*classic_stream(IMAGE)[:7], BuildFailed("boom", [])]

    def failing(*args, **kwargs):
        for event in events:
            if isinstance(event, BaseException):
                raise event
            yield event

    engine = FakeEngine()
    engine.add_image("06f71f00d074")  # a base pinned by digest has no tag: still not ours
    engine.add_image("aaaaaaaaaaaa")
    engine.build = failing  # type: ignore[method-assign]
    with pytest.raises(BuildFailed):
        _build(engine)
    assert engine.removed == ["aaaaaaaaaaaa"]
