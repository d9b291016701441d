"""`buildbench base`: it never takes the name of an existing image unless told to, and the root
filesystem reaches the engine through the API (an upload), never as a path on this machine."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from buildbench.cli import base as base_cli
from buildbench.cli import cli
from buildbench.engine import baseimage
from buildbench.errors import UsageError
from tests.fakes import FakeEngine

SLIM = "python:3.11-slim"
SLIM_ID = "sha256:" + "5" * 64
ROOTFS = b"a root filesystem"


def _fake_run(ran: list[list[str]]):
    def run(command: list[str]) -> None:
        """Record the command; `tar -cf FILE` leaves a tarball, as the real one does."""
        ran.append(command)
        if command[0] == "tar":
            tarball = Path(command[command.index("-cf") + 1])
            with tarfile.open(tarball, "w") as tar:
                info = tarfile.TarInfo("etc/os-release")
                info.size = len(ROOTFS)
                tar.addfile(info, io.BytesIO(ROOTFS))

    return run


@pytest.fixture
def commands(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The commands make_base_image runs, none for real (no root, debootstrap or tar needed)."""
    ran: list[list[str]] = []
    monkeypatch.setattr(baseimage, "_check_host", lambda: "debootstrap")
    monkeypatch.setattr(baseimage, "_run", _fake_run(ran))
    return ran


@pytest.fixture
def engine() -> FakeEngine:
    """An engine that has a real python:3.11-slim."""
    engine = FakeEngine()
    engine.add_image(SLIM_ID, tags=(SLIM,))
    return engine


def test_an_existing_image_is_not_replaced(engine: FakeEngine, commands: list) -> None:
    with pytest.raises(UsageError) as error:
        baseimage.make_base_image(engine, tag=SLIM)
    assert error.value.message == f"image {SLIM} exists; pass --force to replace it"
    assert (
        error.value.tip
        == f"{SLIM} is {SLIM_ID[:19]}: to keep it, name the new base with --tag NAME"
    )
    assert commands == []  # refused before debootstrap
    assert engine.images[SLIM].id == SLIM_ID
    assert engine.imported == []


def test_force_replaces_an_existing_image(engine: FakeEngine, commands: list) -> None:
    assert baseimage.make_base_image(engine, tag=SLIM, force=True) == SLIM
    assert [command[0] for command in commands] == ["debootstrap", "tar"]
    assert engine.images[SLIM].id == SLIM  # what FakeEngine.import_image gives it


def test_a_new_name_needs_no_force(commands: list) -> None:
    engine = FakeEngine()
    assert baseimage.make_base_image(engine, tag=SLIM) == SLIM
    assert [command[0] for command in commands] == ["debootstrap", "tar"]


def test_the_root_filesystem_is_uploaded_with_the_image_settings(commands: list) -> None:
    engine = FakeEngine()
    baseimage.make_base_image(engine, tag=SLIM)
    ((ref, changes, upload),) = engine.imported
    assert ref == SLIM
    with tarfile.open(fileobj=io.BytesIO(upload)) as tar:
        assert tar.extractfile("etc/os-release").read() == ROOTFS  # type: ignore[union-attr]
    assert changes == baseimage.image_changes(trusts_extra_ca=False)
    assert not any("PIP_CERT" in change for change in changes)


def test_a_ca_bundle_is_trusted_system_wide(commands: list, tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    scratch = tmp_path / "scratch"  # where debootstrap would have made root/
    trusted = scratch / "root/usr/local/share/ca-certificates"
    trusted.mkdir(parents=True)
    engine = FakeEngine()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(baseimage.tempfile, "TemporaryDirectory", _fixed_dir(scratch))
        baseimage.make_base_image(engine, tag=SLIM, ca_bundle=bundle)
    assert [command[0] for command in commands] == ["debootstrap", "chroot", "tar"]
    assert (trusted / "buildbench-extra.crt").read_text() == bundle.read_text()
    ((_, changes, _),) = engine.imported
    assert f"ENV PIP_CERT={baseimage.SYSTEM_BUNDLE}" in changes


def _fixed_dir(path: Path) -> type:
    """A TemporaryDirectory that is always `path` (and leaves it for the test to read)."""

    class Fixed:
        def __init__(self, *args: object, **kwargs: object) -> None: ...

        def __enter__(self) -> str:
            return str(path)

        def __exit__(self, *exc: object) -> None: ...

    return Fixed


def _cli(engine: FakeEngine, monkeypatch: pytest.MonkeyPatch, *args: str) -> Result:
    monkeypatch.setattr(base_cli, "one_engine", lambda engines, contexts: engine)
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
