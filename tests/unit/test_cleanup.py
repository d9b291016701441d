"""`buildbench clean`: what it finds by label, what it removes, and what it keeps."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from click.testing import CliRunner

from buildbench.cleanup import clean, find_leftovers
from buildbench.cli import clean as clean_cli
from buildbench.cli import cli
from buildbench.engine import ContainerInfo, ImageInfo
from buildbench.pipeline import LABEL_RUN
from tests.fakes import FakeEngine

IMAGE_A = "sha256:" + "a" * 64
IMAGE_B = "sha256:" + "b" * 64
IMAGE_C = "sha256:" + "c" * 64
BASE = "sha256:" + "f" * 64


def _matches(labels: dict[str, str], label: str) -> bool:
    key, _, value = label.partition("=")
    return key in labels and (not value or labels[key] == value)


@dataclass
class LabelledEngine(FakeEngine):
    """The shared fake, plus containers and label filters."""

    containers: dict[str, ContainerInfo] = field(default_factory=dict)
    refuse: set[str] = field(default_factory=set)  # ids the engine will not remove

    def labelled_image(self, image_id: str, run: str, tags: tuple[str, ...] = ()) -> None:
        self.images[image_id] = ImageInfo(image_id, 100, (), tags, {LABEL_RUN: run})

    def container(self, cid: str, image_id: str, state: str) -> None:
        labels = dict(self.images[image_id].labels)  # containers inherit their image's labels
        self.containers[cid] = ContainerInfo(cid, image_id, state, labels)

    def images_labelled(self, label: str) -> list[str]:
        return [i for i, info in self.images.items() if _matches(dict(info.labels), label)]

    def containers_labelled(self, label: str) -> list[ContainerInfo]:
        return [c for c in self.containers.values() if _matches(dict(c.labels), label)]

    def remove_container(self, ref: str) -> bool:
        self.removed.append(ref)
        return self.containers.pop(ref, None) is not None

    def remove_image(self, ref: str) -> bool:
        if ref in self.refuse or any(c.image_id == ref for c in self.containers.values()):
            self.removed.append(ref)
            return False
        return super().remove_image(ref)


@pytest.fixture
def engine() -> LabelledEngine:
    """Run r1 finished (an image, a stopped container); run r2 is still smoke-testing."""
    fake = LabelledEngine()
    fake.add_image(BASE, tags=("buildbench/python:3.11-bookworm",))
    fake.labelled_image(IMAGE_A, "r1", ("buildbench/onnx:cpu-r1",))
    fake.labelled_image(IMAGE_B, "r2", ("buildbench/onnx:cuda-r2",))
    fake.labelled_image(IMAGE_C, "r1")
    fake.container("1" * 64, IMAGE_A, "exited")
    fake.container("2" * 64, IMAGE_B, "running")
    return fake


def test_finds_containers_first_then_images_by_label(engine: LabelledEngine) -> None:
    found = find_leftovers(engine)
    assert [(item.kind, item.short_id, item.run_id, item.running) for item in found] == [
        ("container", "111111111111", "r1", False),
        ("container", "222222222222", "r2", True),
        ("image", "aaaaaaaaaaaa", "r1", False),
        ("image", "bbbbbbbbbbbb", "r2", True),  # a running container uses it
        ("image", "cccccccccccc", "r1", False),
    ]
    assert found[-1].description == "<untagged>"


def test_clean_removes_what_no_running_container_uses(engine: LabelledEngine) -> None:
    result = clean(engine)
    assert [item.short_id for item in result.removed] == [
        "111111111111",
        "aaaaaaaaaaaa",
        "cccccccccccc",
    ]
    assert [(item.short_id, reason.split(":")[0]) for item, reason in result.kept] == [
        ("222222222222", "in use by a running container"),
        ("bbbbbbbbbbbb", "in use by a running container"),
    ]
    assert set(engine.images) == {BASE, "buildbench/python:3.11-bookworm", IMAGE_B}
    assert list(engine.containers) == ["2" * 64]


def test_clean_one_run_only(engine: LabelledEngine) -> None:
    result = clean(engine, run_id="r1")
    assert {item.run_id for item in result.removed} == {"r1"} and not result.kept
    assert IMAGE_B in engine.images


def test_dry_run_removes_nothing(engine: LabelledEngine) -> None:
    result = clean(engine, dry_run=True)
    assert len(result.removed) == 3 and len(result.kept) == 2
    assert engine.removed == []


def test_an_image_that_went_with_the_one_before_counts_as_removed(
    engine: LabelledEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def remove_with_untagged_parent(ref: str) -> bool:
        if ref == IMAGE_A:
            engine.images.pop(IMAGE_C)  # as `docker rmi` prunes an untagged parent
        return FakeEngine.remove_image(engine, ref)

    monkeypatch.setattr(engine, "remove_image", remove_with_untagged_parent)
    result = clean(engine, run_id="r1")
    assert [item.short_id for item in result.removed][-2:] == ["aaaaaaaaaaaa", "cccccccccccc"]
    assert not result.kept


def test_an_image_gone_since_the_listing_is_not_listed(engine: LabelledEngine) -> None:
    engine.images_labelled = lambda label: ["sha256:gone"]  # type: ignore[method-assign]
    assert [item.kind for item in find_leftovers(engine)] == ["container", "container"]


def test_a_refused_image_is_kept_with_a_reason(engine: LabelledEngine) -> None:
    engine.refuse.add(IMAGE_C)
    result = clean(engine, run_id="r1")
    assert [(item.short_id, reason) for item, reason in result.kept] == [
        ("cccccccccccc", "the engine refused to remove it")
    ]


def _cli(engine: LabelledEngine, monkeypatch: pytest.MonkeyPatch, *args: str):
    monkeypatch.setattr(clean_cli, "connect", lambda: engine)
    return CliRunner().invoke(cli, ["clean", *args])


def test_cli_dry_run_output(engine: LabelledEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    result = _cli(engine, monkeypatch, "--dry-run")
    assert result.exit_code == 0
    assert result.output == (
        "would remove container 111111111111 exited (run r1)\n"
        "would remove image aaaaaaaaaaaa buildbench/onnx:cpu-r1 (run r1)\n"
        "would remove image cccccccccccc <untagged> (run r1)\n"
        "kept container 222222222222 running (run r2): "
        "in use by a running container: its run is still going\n"
        "kept image bbbbbbbbbbbb buildbench/onnx:cuda-r2 (run r2): "
        "in use by a running container: its run is still going\n"
        "would remove 1 container, 2 images; kept 2\n"
    )
    assert engine.removed == []


def test_cli_clean_one_run(engine: LabelledEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    result = _cli(engine, monkeypatch, "--run-id", "r2")
    assert result.exit_code == 0
    assert result.output.splitlines()[-1] == "removed 0 containers, 0 images; kept 2"
    monkeypatch.setenv("BUILDBENCH_RUN_ID", "nothing-here")
    assert _cli(engine, monkeypatch).output == "nothing to clean\n"


def test_cli_prunes_the_build_cache_only_when_asked(
    engine: LabelledEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "build-cache" not in _cli(engine, monkeypatch).output
    assert "build-cache" not in engine.removed
    result = _cli(engine, monkeypatch, "--build-cache")
    assert result.exit_code == 0
    assert result.output.splitlines()[-1] == "pruned the build cache: 12.00 MB reclaimed"
    assert "build-cache" in engine.removed
