"""`--framework aotinductor`: the torch.export form compiled here into an AOTInductor package
(cached with the model, with what the compile took), loaded in PyTorch's image; where it cannot
be made (no compiler, another torch in the image, no CUDA package, no export) the cell says why,
before any build where the host decides it. The compile itself (tens of seconds) is the
integration test's (tests/integration/test_aotinductor.py): here Inductor's entry points are
replaced by ones that record their calls."""

from __future__ import annotations

import io
import json
import tarfile
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from click.testing import CliRunner

from buildbench.cli import cli
from buildbench.errors import UsageError
from buildbench.measure.runtimes import DEFAULT_NAMES, NAMES, aotinductor, runtime
from buildbench.measure.smoke import artifacts, modelcache, program
from buildbench.measure.smoke.kinds.model.smoke import EXEC_TMP, InferenceSmoke, load_models
from buildbench.measure.smoke.modelspec import parse_input, parse_spec
from buildbench.measure.smoke.options import SmokeOptions
from buildbench.measure.smoke.program.runtimes.aotinductor import AotiModel
from buildbench.run.matrix import MatrixOptions, builtin_matrix, missing_variants
from tests.unit.test_modelspec import tiny_onnx

AOTI = ("aotinductor",)
FACTORY = """import torch
class Small(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 3)
    def forward(self, x):
        return self.linear(x).relu()
def make():
    torch.manual_seed(0)
    return Small(), (torch.randn(1, 4),)
"""


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    load_models.cache_clear()


@pytest.fixture
def compiles(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Inductor's compile replaced: the program it was given, saved as the "package"."""
    calls: list[Any] = []

    def compile_(program: Any, package_path: str) -> str:
        calls.append(program)
        torch.export.save(program, package_path)
        return package_path

    monkeypatch.setattr(torch._inductor, "aoti_compile_and_package", compile_)
    return calls


@pytest.fixture
def factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "smallmodel.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "smallmodel:make"


def _cli(*args: str, cwd: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    monkeypatch.chdir(cwd)
    env = {"DOCKER_HOST": "unix:///nonexistent.sock"}
    result = CliRunner().invoke(cli, list(args), prog_name="buildbench", env=env)
    return result.exit_code, result.output


def test_a_cpu_runtime_in_pytorch_s_image_with_the_torch_that_compiles() -> None:
    assert "aotinductor" in NAMES and "aotinductor" not in DEFAULT_NAMES
    (cell,) = builtin_matrix(MatrixOptions(frameworks=AOTI))
    assert (cell.key, cell.dockerfile.name) == ("aotinductor/cpu", "pytorch.dockerfile")
    host = torch.__version__.split("+")[0]
    assert cell.build_args["TORCH_VERSION"] == host  # the newest would be another torch
    assert cell.requirements == (f"torch=={host}",)
    pinned = builtin_matrix(MatrixOptions(frameworks=AOTI, torch_version=torch.__version__))
    assert pinned[0].build_args["TORCH_VERSION"] == torch.__version__
    why = missing_variants(MatrixOptions(frameworks=AOTI))["aotinductor/cuda"]
    assert why == f"not applicable: {aotinductor.NO_CUDA}"
    assert program.RUNTIMES["aotinductor"].form == runtime("aotinductor").form


def test_no_compiler_here_is_refused_before_any_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CXX", "no-such-c++")
    code, out = _cli(
        "run", "--framework", "aotinductor", "--cuda", "cpu", cwd=tmp_path, monkeypatch=monkeypatch
    )
    assert code == 2
    error, tip = out.splitlines()
    assert error == (
        "ERROR: the selection leaves no cell to build (aotinductor/cpu: not applicable: no C++ "
        "compiler on this host (no-such-c++ not found): AOTInductor compiles the model here "
        "(install g++, or name a compiler in $CXX))"
    )
    assert tip.startswith("TIP: valid cells: ")
    assert not (tmp_path / "results").exists()
    code, out = _cli("list", "--framework", "all", cwd=tmp_path, monkeypatch=monkeypatch)
    assert code == 0 and "\nnot built: aotinductor/cpu: not applicable: no C++ compiler" in out


def test_another_torch_in_the_image_is_refused_before_any_build() -> None:
    skewed = MatrixOptions(frameworks=AOTI, variants=("cpu",), torch_version="2.0.1")
    assert builtin_matrix(skewed) == []
    why = missing_variants(skewed)["aotinductor/cpu"]
    assert why.startswith("not applicable: torch version skew: the image would install torch ")
    assert f"--torch-version {torch.__version__.split('+')[0]}" in why
    same = MatrixOptions(frameworks=AOTI, variants=("cpu",), torch_version=torch.__version__)
    assert missing_variants(same) == {} and len(builtin_matrix(same)) == 1


def test_the_package_is_compiled_once_and_travels_with_its_facts(
    factory: str, compiles: list[Any]
) -> None:
    prepared = modelcache.load(parse_spec(factory), frameworks=AOTI)
    package, marker = prepared.forms["aotinductor"]
    assert package.startswith("model.aoti-") and package.endswith(".pt2")
    facts = json.loads((prepared.directory / marker).read_text())
    assert facts["torch"] == torch.__version__ and facts["batch"] == "dynamic"
    assert facts["seconds"] >= 0 and facts["reason"] is None and facts["isa"]
    (program_,) = compiles
    assert isinstance(program_, torch.export.ExportedProgram)  # the shared export form
    load_models.cache_clear()
    again = modelcache.load(parse_spec(factory), frameworks=AOTI)
    assert again.forms["aotinductor"] == [package, marker] and len(compiles) == 1  # cached
    with tarfile.open(fileobj=io.BytesIO(artifacts.prepare_artifacts((1, 2), [prepared]))) as tar:
        names = tar.getnames()
        meta = json.loads(tar.extractfile("meta.json").read())  # type: ignore[union-attr]
    assert meta["aotinductor"] == f"model/{package}" and meta["aotinductor_files"][1] == marker
    assert {f"model/{package}", f"model/{marker}", "program/runtimes/aotinductor.py"} <= set(names)


def test_a_compile_that_fails_leaves_the_cell_not_applicable_with_the_reason(
    factory: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fails(program: Any, package_path: str) -> str:
        raise RuntimeError("C++ compile error\ndetails")

    monkeypatch.setattr(torch._inductor, "aoti_compile_and_package", fails)
    found = modelcache.load(parse_spec(factory), frameworks=("pytorch", *AOTI))
    assert found.info.not_applicable["aotinductor"] == (
        "AOTInductor's compile failed: RuntimeError: C++ compile error"
    )
    with pytest.raises(UsageError, match=r"aotinductor: AOTInductor's compile failed"):
        load_models.cache_clear()
        modelcache.load(parse_spec(factory), frameworks=AOTI)


def test_a_model_without_a_torch_export_program_says_why(
    tmp_path: Path, compiles: list[Any]
) -> None:
    onnx_model = parse_spec(str(tiny_onnx(tmp_path / "m.onnx")))
    found = modelcache.load(onnx_model, frameworks=("onnx", *AOTI))
    assert found.info.not_applicable["aotinductor"] == "an ONNX model has no PyTorch form"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated
        scripted = torch.jit.trace(torch.nn.Linear(4, 2).eval(), torch.randn(1, 4))
    scripted.save(str(tmp_path / "m.ts"))
    shape = [parse_input("input=1x4")]
    with pytest.raises(UsageError, match=r"aotinductor: AOTInductor compiles a torch.export"):
        modelcache.load(parse_spec(str(tmp_path / "m.ts")), shape, frameworks=AOTI)
    assert compiles == []


def test_its_container_gets_an_exec_tmpdir_and_the_others_keep_theirs(factory: str) -> None:
    options = SmokeOptions(memory_bytes=2**30)
    ctx = SimpleNamespace(options=options, gpus=False, volume="v", labels={})
    aoti = InferenceSmoke("aotinductor", "cpu", (1,)).spec(ctx)  # type: ignore[arg-type]
    assert aoti.tmpfs == {"/tmp": "size=256m", EXEC_TMP: f"size={2**30},exec"}
    assert aoti.environment["TMPDIR"] == EXEC_TMP and aoti.read_only and not aoti.network
    plain = InferenceSmoke("pytorch", "cpu", (1,)).spec(ctx)  # type: ignore[arg-type]
    assert plain.tmpfs == {"/tmp": "size=256m"} and "TMPDIR" not in plain.environment


def test_the_program_loads_the_package_and_says_what_compiled_it(
    factory: str, compiles: list[Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The program's runtime on the host's torch, its loader given the exported program back
    (the real package is the integration test's): threads, the note, the version check."""
    prepared = modelcache.load(parse_spec(factory), frameworks=AOTI)
    volume = tmp_path / "volume"
    with tarfile.open(fileobj=io.BytesIO(artifacts.prepare_artifacts((1, 3), [prepared]))) as tar:
        tar.extractall(volume, filter="data")
    meta = json.loads((volume / "meta.json").read_text())
    loaded: list[str] = []

    def load(path: str) -> Any:
        loaded.append(path)
        return torch.export.load(path).module()

    monkeypatch.setattr(torch._inductor, "aoti_load_package", load)
    model = AotiModel(AotiModel.framework(meta), str(volume), meta, want_gpu=True)
    settings = model.settings([{"threads": None, "form": "eager"}, {"threads": 1}])
    assert settings == [{"threads": None}, {"threads": 1}]
    first = model.open(settings[0])
    assert first["note"].startswith("AOTInductor package compiled on the host in ")
    assert f"(torch {torch.__version__}, " in first["note"] and "dynamic batch" in first["note"]
    assert model.open(settings[1]) == {"threads": 1} and len(loaded) == 1
    xs = model.inputs(str(volume / "data" / "3"), meta["batches"][1], meta)
    ((shape, values),) = model.outputs(model.run(xs))
    assert shape == [3, 3] and values.dtype == torch.float64
    assert model.info["cuda_build"] is False and model.info["gpu_used"] is False
    meta_file = volume / "model" / meta["aotinductor_files"][1]
    compiled = json.loads(meta_file.read_text())
    public = torch.__version__.split("+")[0]
    meta_file.write_text(json.dumps({**compiled, "torch": f"{public}+cu126"}))  # another build
    AotiModel(torch, str(volume), meta, want_gpu=False)
    meta_file.write_text(json.dumps({**compiled, "torch": "2.0.1"}))
    with pytest.raises(RuntimeError, match=r"compiled with torch 2.0.1 and the image has "):
        AotiModel(torch, str(volume), meta, want_gpu=False)
