"""The build context: the cell's files (minus .dockerignore), and the builder stage's inputs in
build-inputs/ (pip.conf, CA bundle, wheels) for the built-in images only."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from buildbench.errors import UsageError
from buildbench.run.context import CellContext, build_context, wheels_for
from buildbench.run.matrix import Cell, MatrixOptions, builtin_matrix
from buildbench.run.pipconfig import PipInputs

TORCH_CPU = "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"
SYMPY = "sympy-1.13.0-py3-none-any.whl"


@pytest.fixture
def wheels(tmp_path: Path) -> Path:
    folder = tmp_path / "wheels"
    folder.mkdir()
    for name in (TORCH_CPU, SYMPY):
        (folder / name).write_bytes(b"wheel")
    return folder


def _packed(context: CellContext) -> io.BytesIO:
    """The context as a build sends it."""
    out = io.BytesIO()
    context.pack(out)
    out.seek(0)
    return out


def _names(cell: Cell, pip: PipInputs, prefetched: list[Path] | None = None) -> list[str]:
    context = build_context(cell, pip, prefetched or [])
    with tarfile.open(fileobj=_packed(context)) as tar:
        names = tar.getnames()
    assert context.dockerfile in names
    return names


def _pip_conf(cell: Cell, pip: PipInputs, prefetched: list[Path] | None = None) -> str:
    context = build_context(cell, pip, prefetched or [])
    with tarfile.open(fileobj=_packed(context)) as tar:
        return tar.extractfile("build-inputs/pip.conf").read().decode()  # type: ignore[union-attr]


def test_cpu_cells_get_local_cpu_wheels_cuda_cells_do_not(wheels: Path) -> None:
    cpu, cuda = builtin_matrix(MatrixOptions(frameworks=("pytorch",)))
    pip = PipInputs(find_links=(wheels,))
    cpu_names, cuda_names = _names(cpu, pip), _names(cuda, pip)
    assert f"build-inputs/wheels/{TORCH_CPU}" in cpu_names
    assert not any("+cpu" in n for n in cuda_names)
    assert f"build-inputs/wheels/{SYMPY}" in cuda_names
    assert [w.name for w in wheels_for(cuda, pip.wheels())] == [SYMPY]


def test_pip_conf_names_only_what_was_given(tmp_path: Path, wheels: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    pip = PipInputs(ca_bundle=ca, find_links=(wheels,), index_url="https://mirror/simple")
    conf = pip.pip_conf(wheels=True)
    assert "cert = /build-inputs/ca.pem" in conf
    assert "find-links = /build-inputs/wheels" in conf
    assert "index-url = https://mirror/simple" in conf
    assert "extra-index-url" not in conf and "no-index" not in conf
    assert PipInputs().pip_conf(wheels=False).strip().endswith("[global]")


def test_pip_conf_carries_urls_extra_indexes_and_trusted_hosts() -> None:
    pip = PipInputs(
        extra_index_urls=("https://a/simple", "https://b/simple"),
        find_links_urls=("https://wheels.example/",),
        trusted_hosts=("a", "b"),
    )
    conf = pip.pip_conf(wheels=False)
    assert "find-links = https://wheels.example/" in conf
    assert "extra-index-url = https://a/simple https://b/simple" in conf
    assert "trusted-host = a b" in conf
    assert "find-links = /build-inputs/wheels https://wheels.example/" in pip.pip_conf(True)


def test_prefetched_wheels_travel_in_the_context_and_pip_needs_no_index(
    tmp_path: Path, wheels: Path
) -> None:
    cell = builtin_matrix(MatrixOptions(frameworks=("onnx",), variants=("cpu",)))[0]
    fetched = tmp_path / "onnxruntime-1.32.0-cp311-cp311-manylinux_2_28_x86_64.whl"
    fetched.write_bytes(b"wheel")
    pip = PipInputs(index_url="https://mirror/simple")
    assert f"build-inputs/wheels/{fetched.name}" in _names(cell, pip, [fetched])
    conf = _pip_conf(cell, pip, [fetched])
    assert "no-index = true" in conf and "index-url" not in conf
    assert "find-links = /build-inputs/wheels" in conf
    assert "no-index" not in _pip_conf(cell, pip)  # without --prefetch: the index


def test_the_ca_bundle_goes_only_into_build_inputs(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("pem")
    cell = builtin_matrix(MatrixOptions(frameworks=("onnx",)))[0]
    names = _names(cell, PipInputs(ca_bundle=ca))
    assert [n for n in names if "ca" in Path(n).name and n.endswith(".pem")] == [
        "build-inputs/ca.pem"
    ]


def test_the_checked_in_pip_conf_is_replaced_by_buildbenchs() -> None:
    cell = builtin_matrix(MatrixOptions(frameworks=("onnx",)))[0]
    assert (cell.context / "build-inputs" / "pip.conf").is_file()
    pip = PipInputs(index_url="https://mirror/simple")
    assert [n for n in _names(cell, pip) if n.endswith("pip.conf")] == ["build-inputs/pip.conf"]
    conf = _pip_conf(cell, pip)
    assert conf.startswith("# written by buildbench for this build only\n")
    assert "index-url = https://mirror/simple" in conf


@pytest.mark.parametrize(
    ("pip", "message"),
    [
        (PipInputs(ca_bundle=Path("/nonexistent.pem")), "CA bundle /nonexistent.pem"),
        (PipInputs(find_links=(Path("/nonexistent"),)), "find-links /nonexistent"),
    ],
)
def test_missing_pip_inputs_are_user_errors(pip: PipInputs, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        pip.validate()


def test_dockerignore_is_honoured_for_user_contexts(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM base\n")
    (tmp_path / ".dockerignore").write_text(".env\nsecrets/\n")
    (tmp_path / ".env").write_text("TOKEN=1")
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "key").write_text("k")
    (tmp_path / "app.py").write_text("print(1)")
    names = _names(Cell("mine", "cpu", tmp_path / "Dockerfile", tmp_path), PipInputs())
    assert "./app.py" in names
    assert not any(".env" in n or "secrets" in n for n in names)
    assert not any(n.startswith("build-inputs") for n in names)  # a user's own image: none


def test_a_dockerfile_outside_its_context_travels_with_it(tmp_path: Path) -> None:
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "app.dockerfile").write_text("FROM base\n")
    (tmp_path / "src").mkdir()
    cell = Cell("mine", "cpu", tmp_path / "docker" / "app.dockerfile", tmp_path / "src")
    context = build_context(cell, PipInputs())
    with tarfile.open(fileobj=_packed(context)) as tar:
        found = tar.extractfile(context.dockerfile)
        assert found is not None and found.read() == b"FROM base\n"


def test_a_context_that_is_not_a_directory_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM base\n")
    cell = Cell("mine", "cpu", tmp_path / "Dockerfile", tmp_path / "missing")
    with pytest.raises(UsageError, match="is not a directory"):
        build_context(cell, PipInputs())


def test_a_file_that_cannot_be_read_is_a_usage_error_naming_the_context(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "Dockerfile").write_text("FROM base\n")
    (tmp_path / "secret.bin").write_bytes(b"x")
    cell = Cell("mine", "cpu", tmp_path / "Dockerfile", tmp_path)
    context = build_context(cell, PipInputs())  # checked now, packed later by each build
    real_open = tarfile.bltn_open  # type: ignore[attr-defined]

    def refusing(name: str, *args: object, **kwargs: object) -> object:
        if str(name).endswith("secret.bin"):  # as for another user's file, without root
            raise PermissionError(13, "Permission denied", name)
        return real_open(name, *args, **kwargs)

    monkeypatch.setattr(tarfile, "bltn_open", refusing)
    with pytest.raises(UsageError, match=f"cannot pack the build context {tmp_path}.*secret"):
        context.pack(io.BytesIO())


def test_a_symlinked_ca_bundle_travels_as_the_file(tmp_path: Path) -> None:
    real = tmp_path / "real.pem"
    real.write_text("-----BEGIN CERTIFICATE-----\n")
    link = tmp_path / "cert.pem"
    link.symlink_to(real)
    cell = builtin_matrix(MatrixOptions(frameworks=("onnx",)))[0]
    context = build_context(cell, PipInputs(ca_bundle=link))
    with tarfile.open(fileobj=_packed(context)) as tar:
        member = tar.getmember("build-inputs/ca.pem")
        assert member.isfile()
        assert tar.extractfile(member).read() == real.read_bytes()  # type: ignore[union-attr]


def test_onnx_cells_do_not_carry_torch_wheels(wheels: Path) -> None:
    onnx_cpu = builtin_matrix(MatrixOptions(frameworks=("onnx",)))[0]
    names = _names(onnx_cpu, PipInputs(find_links=(wheels,)))
    assert not any(n.startswith("build-inputs/wheels/torch") for n in names)
    assert f"build-inputs/wheels/{SYMPY}" in names
