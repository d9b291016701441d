"""Two runs on one machine share the model cache (scripts/test runs two at once): the one that
finishes second uses the first's folder, and a runtime's form is made once."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from buildbench.measure.runtimes.base import made_once
from buildbench.measure.smoke import modelcache
from buildbench.measure.smoke.modelspec import parse_spec
from buildbench.measure.smoke.modelstack import import_stack
from tests.unit.test_modelspec import tiny_onnx


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))


def test_a_run_finishing_second_keeps_the_folder_another_run_made(tmp_path: Path) -> None:
    """Both found no cached folder and made the forms; the first moved its folder in and wrote
    a runtime's form there since: the second keeps that folder, its form included."""
    spec = parse_spec(str(tiny_onnx(tmp_path / "m.onnx")), tmp_path)
    torch, onnx = import_stack()
    directory = tmp_path / "xdg" / "folder"
    first = modelcache._prepare_forms(torch, onnx, spec, "key", directory)
    (directory / "model.int8.json").write_text("{}")  # the first run's own form, since
    second = modelcache._prepare_forms(torch, onnx, spec, "key", directory)
    assert second.directory == directory and second.onnx == first.onnx
    assert (directory / "model.int8.json").is_file()
    assert [p.name for p in directory.parent.iterdir()] == ["folder"]  # no work folder left


def test_a_broken_folder_without_its_description_is_made_again(tmp_path: Path) -> None:
    spec = parse_spec(str(tiny_onnx(tmp_path / "m.onnx")), tmp_path)
    torch, onnx = import_stack()
    directory = tmp_path / "xdg" / "folder"
    directory.mkdir(parents=True)
    (directory / "stale").write_text("")
    made = modelcache._prepare_forms(torch, onnx, spec, "key", directory)
    assert (directory / "model.json").is_file() and not (directory / "stale").exists()
    assert made.directory == directory


def test_a_form_is_made_once_while_two_runs_ask_for_it(tmp_path: Path) -> None:
    spec = parse_spec(str(tiny_onnx(tmp_path / "m.onnx")), tmp_path)
    model = modelcache.load(spec)
    marker = model.directory / "form.json"
    calls: list[int] = []

    def make() -> dict[str, object]:
        calls.append(1)
        time.sleep(0.3)  # the other run asks meanwhile
        return {"files": ["form.bin"], "reason": None}

    found: list[dict[str, list[str]]] = []

    def ask() -> None:
        found.append(made_once(model, "x", "x", marker, make).forms)

    runs = [threading.Thread(target=ask) for _ in range(2)]
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    assert calls == [1]
    assert found == [{"x": ["form.bin"]}] * 2
