"""`buildbench clean` on the real engine: run by run, from the results folder, keeping what a run
still going holds, and finding the untagged step images of a run killed mid-build. On an engine
of this file's own (DOCKER_HOST), whose every object is checked while the other tests run."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from buildbench.labels import LABEL_RUN
from tests.integration.conftest import (
    OwnEngine,
    buildbench,
    left_behind,
    objects,
    start,
    wait_for_lines,
)

pytestmark = pytest.mark.integration

STEPS = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN echo one > /one
RUN echo two > /two
RUN sleep 600
"""


def _config(folder: Path, base_image: str, dockerfile: str) -> None:
    (folder / "steps.dockerfile").write_text(dockerfile)
    (folder / "buildbench.toml").write_text(
        '[[image]]\nname = "steps"\ndockerfile = "steps.dockerfile"\n'
        f'variants = {{ cpu = "" }}\nbuild_args = {{ BASE_IMAGE = "{base_image}" }}\n'
    )


def test_clean_finds_the_step_images_of_a_run_killed_mid_build(
    own_engine: OwnEngine, base_image: str, tmp_path: Path
):
    """SIGKILL leaves no chance to clean up: the run's journal names the untagged step images
    (they carry no label), and `buildbench clean` in the same folder removes them."""
    client, env = own_engine.client, own_engine.env
    _config(tmp_path, base_image, STEPS)
    before = objects(client)
    process = start("run", cwd=tmp_path, env=env)
    wait_for_lines(process, [": RUN sleep 600"])
    time.sleep(2)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    journal = next(tmp_path.glob("results/*/engine-objects.jsonl")).read_text()
    assert len(journal.splitlines()) >= 2  # the two finished RUN steps
    for _ in range(60):  # the engine cancels the build once it sees the connection drop
        if not left_behind(before, objects(client)).get("containers"):
            break
        time.sleep(1)
    assert left_behind(before, objects(client))["images"]  # what SIGKILL left
    dry = buildbench("clean", "--dry-run", cwd=tmp_path, env=env)
    assert dry.process.returncode == 0 and "would remove image" in dry.process.stdout
    done = buildbench("clean", cwd=tmp_path, env=env)
    assert done.process.returncode == 0, done.process.stderr
    assert "<untagged step>" in done.process.stdout
    assert left_behind(before, objects(client)) == {}


def test_clean_keeps_what_a_run_still_going_holds(
    own_engine: OwnEngine, base_image: str, tmp_path: Path
):
    engine, env = own_engine.engine, own_engine.env
    _config(tmp_path, base_image, STEPS.replace("RUN sleep 600\n", "RUN sleep 20\n"))
    process = start("run", "--no-smoke", cwd=tmp_path, env=env)
    wait_for_lines(process, [": RUN sleep 20"])
    run_id = json.loads(next(tmp_path.glob("results/*/results.json")).read_text())["run"]["run_id"]
    cleaning = buildbench("clean", cwd=tmp_path, env=env)  # the run is going: its lock is held
    assert cleaning.process.returncode == 0
    assert f"(run {run_id}): its run is still going" in cleaning.process.stdout
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-2000:]
    done = buildbench("clean", cwd=tmp_path, env=env)  # now it is over
    assert "removed image" in done.process.stdout
    assert engine.images_labelled(f"{LABEL_RUN}={run_id}") == []


def test_clean_touches_only_the_runs_of_its_results_folder(
    own_engine: OwnEngine, base_image: str, tmp_path: Path
):
    engine, env = own_engine.engine, own_engine.env
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    for folder in (mine, theirs):
        folder.mkdir()
        _config(folder, base_image, STEPS.replace("RUN sleep 600\n", ""))
        assert buildbench("run", "--no-smoke", cwd=folder, env=env).process.returncode == 0
    run_of = {
        folder: json.loads(next(folder.glob("results/*/results.json")).read_text())["run"]["run_id"]
        for folder in (mine, theirs)
    }
    assert buildbench("clean", cwd=mine, env=env).process.returncode == 0
    assert engine.images_labelled(f"{LABEL_RUN}={run_of[mine]}") == []
    assert engine.images_labelled(f"{LABEL_RUN}={run_of[theirs]}") != []
    everything = buildbench("clean", "--all", "--dry-run", cwd=mine, env=env)
    assert run_of[theirs] in everything.process.stdout
    assert buildbench("clean", cwd=theirs, env=env).process.returncode == 0
    assert engine.images_labelled(f"{LABEL_RUN}={run_of[theirs]}") == []
