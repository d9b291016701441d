"""`buildbench clean`: what it finds by label and in run journals, what it removes, and what it
keeps (everything of a run that is still going, anything a running container uses)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from buildbench.cli import clean as clean_cli
from buildbench.cli import cli
from buildbench.engine.api import CacheRecord
from buildbench.labels import LABEL_LOCK, run_labels, smoke_volume
from buildbench.run.cleanup import Journal, clean, find_leftovers, live_runs, runs_in
from tests.fakes import FakeEngine

IMAGE_A = "sha256:" + "a" * 64
IMAGE_B = "sha256:" + "b" * 64
IMAGE_C = "sha256:" + "c" * 64
STEP = "sha256:" + "d" * 64  # an untagged step image: no label, only the journal knows it
BASE = "sha256:" + "f" * 64
GOING = "its run is still going"


@pytest.fixture
def engine() -> FakeEngine:
    """Run r1 finished (an image, an untagged one, a stopped container, its smoke volume);
    run r2 is still smoke-testing: its lock container runs, and so does its smoke container."""
    fake = FakeEngine()
    fake.add_image(BASE, tags=("buildbench/python:3.11-bookworm",))
    fake.add_image(IMAGE_A, tags=("buildbench/onnx:cpu-r1",), labels=run_labels("r1"))
    fake.add_image(IMAGE_B, tags=("buildbench/onnx:cuda-r2",), labels=run_labels("r2"))
    fake.add_image(IMAGE_C, labels=run_labels("r1"))
    fake.add_container("1" * 64, IMAGE_A, "exited")
    fake.add_container("2" * 64, IMAGE_B, "running")
    fake.add_container("9" * 64, BASE, "running", {**run_labels("r2"), LABEL_LOCK: "1"})
    fake.volumes[smoke_volume("r1")] = run_labels("r1")
    return fake


def _journal(tmp_path: Path, run: str, *entries: tuple[str, str]) -> Journal:
    journal = Journal(tmp_path / run)
    journal.path.parent.mkdir(parents=True, exist_ok=True)
    for kind, object_id in entries:
        journal.add(kind, object_id)
    return journal


def test_finds_containers_volumes_then_images_by_label(engine: FakeEngine) -> None:
    found = find_leftovers(engine)
    assert [(item.kind, item.short_id, item.run_id, item.in_use) for item in found] == [
        ("container", "111111111111", "r1", None),
        ("container", "222222222222", "r2", GOING),
        ("volume", "buildbench-s", "r1", None),
        ("image", "aaaaaaaaaaaa", "r1", None),
        ("image", "bbbbbbbbbbbb", "r2", GOING),
        ("image", "cccccccccccc", "r1", None),
    ]
    assert found[2].id == smoke_volume("r1")
    assert found[-1].description == "<untagged>"
    assert live_runs(engine) == {"r2"}  # the lock itself is never a leftover


def test_a_running_container_of_a_finished_run_keeps_itself_and_its_image(
    engine: FakeEngine,
) -> None:
    engine.containers.pop("9" * 64)  # r2's lock is gone: the run ended, its container runs on
    found = {item.short_id: item.in_use for item in find_leftovers(engine)}
    assert found["222222222222"] == "running"
    assert found["bbbbbbbbbbbb"] == "used by a running container"
    result = clean(engine)
    assert [(item.short_id, reason) for item, reason in result.kept] == [
        ("222222222222", "running"),
        ("bbbbbbbbbbbb", "used by a running container"),
    ]


def test_clean_removes_what_no_running_run_uses(engine: FakeEngine) -> None:
    result = clean(engine)
    assert [item.short_id for item in result.removed] == [
        "111111111111",
        "buildbench-s",
        "aaaaaaaaaaaa",
        "cccccccccccc",
    ]
    assert [(item.short_id, reason) for item, reason in result.kept] == [
        ("222222222222", GOING),
        ("bbbbbbbbbbbb", GOING),
    ]
    assert {info.id for info in engine.images.values()} == {BASE, IMAGE_B}
    assert set(engine.containers) == {"2" * 64, "9" * 64}
    assert engine.volumes == {}


def test_clean_one_run_only(engine: FakeEngine, tmp_path: Path) -> None:
    result = clean(engine, runs={"r1": _journal(tmp_path, "r1")})
    assert {item.run_id for item in result.removed} == {"r1"} and not result.kept
    assert IMAGE_B in engine.images and "2" * 64 in engine.containers


def test_journalled_step_images_and_cache_records_are_found_and_removed(
    engine: FakeEngine, tmp_path: Path
) -> None:
    engine.add_image(STEP)
    engine.add_image("sha256:" + "e" * 64, tags=("someone/else:1",))  # tagged since: not ours
    engine.cache = [CacheRecord("rec1", None, 2000, False), CacheRecord("other", None, 1, False)]
    journal = _journal(
        tmp_path,
        "r1",
        ("image", STEP),
        ("image", "sha256:" + "e" * 64),
        ("image", "sha256:gone"),
        ("cache", "rec1"),
        ("cache", "pruned-already"),
    )
    journal.path.write_text(journal.path.read_text() + '{"kind": "ima')  # cut short by a crash
    found = find_leftovers(engine, {"r1": journal})
    assert [(item.kind, item.short_id) for item in found][-2:] == [
        ("image", "dddddddddddd"),
        ("cache", "rec1"),
    ]
    assert found[-2].description == "<untagged step>"
    assert found[-1].description == "build cache, 2000 bytes"
    clean(engine, runs={"r1": journal})
    assert STEP not in engine.images
    assert [record.id for record in engine.cache] == ["other"]


def test_a_journalled_object_of_a_going_run_is_kept(engine: FakeEngine, tmp_path: Path) -> None:
    engine.cache = [CacheRecord("rec2", None, 10, False)]
    result = clean(engine, runs={"r2": _journal(tmp_path, "r2", ("cache", "rec2"))})
    assert ("rec2", GOING) in [(item.id, reason) for item, reason in result.kept]
    assert engine.cache == [CacheRecord("rec2", None, 10, False)]


def test_dry_run_removes_nothing(engine: FakeEngine) -> None:
    result = clean(engine, dry_run=True)
    assert len(result.removed) == 4 and len(result.kept) == 2
    assert [call for call in engine.calls if call[0].startswith(("remove", "prune"))] == []


def test_an_image_that_went_with_the_one_before_counts_as_removed(
    engine: FakeEngine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def remove_with_untagged_parent(ref: str) -> bool:
        if ref == IMAGE_A:
            engine.images.pop(IMAGE_C)  # as `docker rmi` prunes an untagged parent
        return FakeEngine.remove_image(engine, ref)  # False for IMAGE_C: gone already

    monkeypatch.setattr(engine, "remove_image", remove_with_untagged_parent)
    result = clean(engine, runs={"r1": _journal(tmp_path, "r1")})
    assert [item.short_id for item in result.removed][-2:] == ["aaaaaaaaaaaa", "cccccccccccc"]
    assert not result.kept


def test_an_image_gone_since_the_listing_is_not_listed(engine: FakeEngine) -> None:
    engine.images_labelled = lambda label: ["sha256:gone"]  # type: ignore[method-assign]
    assert [item.kind for item in find_leftovers(engine)] == ["container", "container", "volume"]


def test_a_refused_image_is_kept_with_a_reason(
    engine: FakeEngine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def refuse_c(ref: str) -> bool:
        return False if ref == IMAGE_C else FakeEngine.remove_image(engine, ref)

    monkeypatch.setattr(engine, "remove_image", refuse_c)
    result = clean(engine, runs={"r1": _journal(tmp_path, "r1")})
    assert [(item.short_id, reason) for item, reason in result.kept] == [
        ("cccccccccccc", "the engine refused to remove it")
    ]


def _results(results_dir: Path, run_id: str) -> None:
    folder = results_dir / run_id
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps({"run": {"run_id": run_id}}))


def test_runs_in_finds_every_run_folder_and_skips_what_is_not_results(tmp_path: Path) -> None:
    _results(tmp_path, "r1")
    _results(tmp_path / "group", "r3")  # a multi-engine run: one folder per engine
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "results.json").write_text("{not json")
    assert {run: journal.path.parent for run, journal in runs_in(tmp_path).items()} == {
        "r1": tmp_path / "r1",
        "r3": tmp_path / "group" / "r3",
    }
    assert runs_in(tmp_path / "nowhere") == {}


# ---------------------------------------------------------------------------------------------
# The command: scoped to the runs in --results-dir unless --all


@pytest.fixture
def results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """./results holds run r1's results (not r2's: another machine runs it)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BUILDBENCH_RUN_ID", raising=False)
    monkeypatch.delenv("BUILDBENCH_ALL", raising=False)
    _results(tmp_path / "results", "r1")
    return tmp_path / "results"


def _cli(engine: FakeEngine, monkeypatch: pytest.MonkeyPatch, *args: str) -> Result:
    monkeypatch.setattr(clean_cli, "one_engine", lambda engines, contexts: engine)
    return CliRunner().invoke(cli, ["clean", *args])


def test_cli_dry_run_output(
    engine: FakeEngine, results: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _cli(engine, monkeypatch, "--dry-run", "--all")
    assert result.exit_code == 0, result.output
    assert result.output == (
        "would remove container 111111111111 exited (run r1)\n"
        "would remove volume buildbench-s smoke-test files (run r1)\n"
        "would remove image aaaaaaaaaaaa buildbench/onnx:cpu-r1 (run r1)\n"
        "would remove image cccccccccccc <untagged> (run r1)\n"
        f"kept container 222222222222 running (run r2): {GOING}\n"
        f"kept image bbbbbbbbbbbb buildbench/onnx:cuda-r2 (run r2): {GOING}\n"
        "would remove 1 container, 1 volume, 2 images; kept 2\n"
    )
    assert engine.calls == []


def test_cli_cleans_only_the_runs_in_the_results_dir(
    engine: FakeEngine, results: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _cli(engine, monkeypatch)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "removed 1 container, 1 volume, 2 images; kept 0"
    assert IMAGE_B in engine.images  # r2's results are elsewhere: not ours to clean
    other = results.parent / "elsewhere"
    assert _cli(engine, monkeypatch, "--results-dir", str(other)).output == "nothing to clean\n"


def test_cli_clean_one_run(
    engine: FakeEngine, results: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _cli(engine, monkeypatch, "--run-id", "r2")
    assert result.exit_code == 0
    assert result.output.splitlines()[-1] == "removed nothing; kept 2"
    monkeypatch.setenv("BUILDBENCH_RUN_ID", "nothing-here")
    assert _cli(engine, monkeypatch).output == "nothing to clean\n"


def test_cli_prunes_the_build_cache_only_when_asked(
    engine: FakeEngine, results: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.cache = [
        CacheRecord("x", None, 8_000_000, False),
        CacheRecord("y", "x", 4_000_000, True),
    ]
    assert "build cache" not in _cli(engine, monkeypatch).output
    assert len(engine.cache) == 2
    result = _cli(engine, monkeypatch, "--build-cache")
    assert result.exit_code == 0
    assert result.output.splitlines()[-1] == "pruned the build cache: 12.00 MB reclaimed"
    assert ("prune_cache_records", ("x", "y")) in engine.calls
    assert _cli(engine, monkeypatch, "--build-cache", "--dry-run").output.count("pruned") == 0
