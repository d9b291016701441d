import tarfile
from pathlib import Path

import pytest

from buildbench.context import PipInputs, build_context
from buildbench.errors import UsageError
from buildbench.matrix import MatrixOptions, builtin_matrix


@pytest.fixture
def wheels(tmp_path: Path) -> Path:
    folder = tmp_path / "wheels"
    folder.mkdir()
    for name in (
        "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl",
        "sympy-1.13.0-py3-none-any.whl",
    ):
        (folder / name).write_bytes(b"wheel")
    return folder


def _names(cell, pip) -> list[str]:
    context, dockerfile = build_context(cell, pip)
    with context, tarfile.open(fileobj=context) as tar:
        names = tar.getnames()
    assert dockerfile in names
    return names


def test_cpu_cells_get_local_cpu_wheels_cuda_cells_do_not(wheels: Path):
    cpu, cuda = builtin_matrix(MatrixOptions(frameworks=("pytorch",)))
    pip = PipInputs(find_links=wheels)
    cpu_names, cuda_names = _names(cpu, pip), _names(cuda, pip)
    assert "build-inputs/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl" in cpu_names
    assert not any("+cpu" in n for n in cuda_names)
    assert "build-inputs/wheels/sympy-1.13.0-py3-none-any.whl" in cuda_names


def test_pip_conf_names_only_what_was_given(tmp_path: Path, wheels: Path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    conf = PipInputs(ca_bundle=ca, find_links=wheels, index_url="https://mirror/simple").pip_conf()
    assert "cert = /build-inputs/ca.pem" in conf
    assert "find-links = /build-inputs/wheels" in conf
    assert "index-url = https://mirror/simple" in conf
    assert "extra-index-url" not in conf
    assert PipInputs().pip_conf().strip().endswith("[global]")


def test_the_ca_bundle_goes_only_into_build_inputs(tmp_path: Path):
    ca = tmp_path / "ca.pem"
    ca.write_text("pem")
    cell = builtin_matrix(MatrixOptions(frameworks=("onnx",)))[0]
    names = _names(cell, PipInputs(ca_bundle=ca))
    assert [n for n in names if "ca" in Path(n).name and n.endswith(".pem")] == [
        "build-inputs/ca.pem"
    ]


@pytest.mark.parametrize(
    ("pip", "message"),
    [
        (PipInputs(ca_bundle=Path("/nonexistent.pem")), "CA bundle /nonexistent.pem"),
        (PipInputs(find_links=Path("/nonexistent")), "--pip-find-links /nonexistent"),
    ],
)
def test_missing_pip_inputs_are_user_errors(pip: PipInputs, message: str):
    with pytest.raises(UsageError, match=message):
        pip.validate()


def test_dockerignore_is_honoured_for_user_contexts(tmp_path: Path):
    from buildbench.matrix import Cell

    (tmp_path / "Dockerfile").write_text("FROM base\n")
    (tmp_path / ".dockerignore").write_text(".env\nsecrets/\n")
    (tmp_path / ".env").write_text("TOKEN=1")
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "key").write_text("k")
    (tmp_path / "app.py").write_text("print(1)")
    names = _names(Cell("mine", "cpu", tmp_path / "Dockerfile", tmp_path), PipInputs())
    assert "./app.py" in names
    assert not any(".env" in n or "secrets" in n for n in names)


def test_a_symlinked_ca_bundle_travels_as_the_file(tmp_path: Path):
    real = tmp_path / "real.pem"
    real.write_text("-----BEGIN CERTIFICATE-----\n")
    link = tmp_path / "cert.pem"
    link.symlink_to(real)
    cell = builtin_matrix(MatrixOptions(frameworks=("onnx",)))[0]
    context, _ = build_context(cell, PipInputs(ca_bundle=link))
    with context, tarfile.open(fileobj=context) as tar:
        member = tar.getmember("build-inputs/ca.pem")
        assert member.isfile()
        assert tar.extractfile(member).read() == real.read_bytes()  # type: ignore[union-attr]


def test_onnx_cells_do_not_carry_torch_wheels(wheels: Path):
    onnx_cpu = builtin_matrix(MatrixOptions(frameworks=("onnx",)))[0]
    names = _names(onnx_cpu, PipInputs(find_links=wheels))
    assert not any(n.startswith("build-inputs/wheels/torch") for n in names)
    assert "build-inputs/wheels/sympy-1.13.0-py3-none-any.whl" in names
