"""`buildbench base`: it never takes the name of an existing image unless told to."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from buildbench import base
from buildbench.cli import base as base_cli
from buildbench.cli import cli
from buildbench.errors import UsageError
from tests.fakes import FakeEngine

SLIM = "python:3.11-slim"
SLIM_ID = "sha256:" + "5" * 64


@pytest.fixture
def commands(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The commands make_base_image runs, none for real (no root, debootstrap or tar needed)."""
    ran: list[list[str]] = []
    monkeypatch.setattr(base, "_check_host", lambda: "debootstrap")
    monkeypatch.setattr(base, "_run", ran.append)
    return ran


@pytest.fixture
def engine() -> FakeEngine:
    """An engine that has a real python:3.11-slim."""
    engine = FakeEngine()
    engine.add_image(SLIM_ID, tags=(SLIM,))
    return engine


def test_an_existing_image_is_not_replaced(engine: FakeEngine, commands: list) -> None:
    with pytest.raises(UsageError) as error:
        base.make_base_image(engine, tag=SLIM)
    assert error.value.message == f"image {SLIM} exists; pass --force to replace it"
    assert (
        error.value.tip
        == f"{SLIM} is {SLIM_ID[:19]}: to keep it, name the new base with --tag NAME"
    )
    assert commands == []  # refused before debootstrap
    assert engine.images[SLIM].id == SLIM_ID


def test_force_replaces_an_existing_image(engine: FakeEngine, commands: list) -> None:
    assert base.make_base_image(engine, tag=SLIM, force=True) == SLIM
    assert [command[0] for command in commands] == ["debootstrap", "tar"]
    assert engine.images[SLIM].id == SLIM  # what FakeEngine.import_image gives it


def test_a_new_name_needs_no_force(commands: list) -> None:
    engine = FakeEngine()
    assert base.make_base_image(engine, tag=SLIM) == SLIM
    assert [command[0] for command in commands] == ["debootstrap", "tar"]


def _cli(engine: FakeEngine, monkeypatch: pytest.MonkeyPatch, *args: str):
    monkeypatch.setattr(base_cli, "connect", lambda: engine)
    return CliRunner().invoke(cli, ["base", *args])


def test_cli_refuses_an_existing_tag(
    engine: FakeEngine, commands: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _cli(engine, monkeypatch, "--tag", SLIM)
    assert (result.exit_code, result.stdout) == (2, "")
    assert (
        result.stderr.splitlines()[0] == f"ERROR: image {SLIM} exists; pass --force to replace it"
    )
    assert commands == []


def test_cli_force_replaces_it(
    engine: FakeEngine, commands: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _cli(engine, monkeypatch, "--tag", SLIM, "--force")
    assert (result.exit_code, result.stdout) == (0, f"{SLIM} {SLIM}\n")
    assert len(commands) == 2
