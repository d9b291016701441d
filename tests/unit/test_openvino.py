"""`--framework openvino`: OpenVINO's CPU plugin on the model's ONNX form, its "cuda" cell
not applicable with the reason; `--framework all`; an unknown runtime refused before a build."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, save_model

from buildbench.cli import cli
from buildbench.errors import UsageError
from buildbench.measure.runtimes import DEFAULT_NAMES, NAMES, runtime
from buildbench.measure.smoke import artifacts, modelcache, program
from buildbench.measure.smoke.kinds.model.smoke import load_models
from buildbench.measure.smoke.modelspec import parse_spec
from buildbench.run.matrix import MatrixOptions, builtin_matrix, missing_variants
from tests.unit.test_modelspec import tiny_onnx

NO_CUDA = "openvino/cuda: not applicable: OpenVINO has no CUDA build: its GPU plugin is for Intel"


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    load_models.cache_clear()


def _cli(*args: str, cwd: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    """The command with no engine to reach: what it says must come before any build."""
    monkeypatch.chdir(cwd)
    env = {"DOCKER_HOST": "unix:///nonexistent.sock"}
    result = CliRunner().invoke(cli, list(args), prog_name="buildbench", env=env)
    return result.exit_code, result.output


def classifier(path: Path) -> Path:
    """A model with an `ai.onnx.ml` operator (as skl2onnx writes them), which OpenVINO lacks."""
    graph = helper.make_graph(
        [helper.make_node("Normalizer", ["x"], ["y"], domain="ai.onnx.ml", norm="MAX")],
        "ml",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    save_model(model, str(path))
    return path


def test_openvino_is_a_cpu_runtime_outside_the_default_run() -> None:
    assert "openvino" in NAMES and "openvino" not in DEFAULT_NAMES
    cells = builtin_matrix(MatrixOptions(frameworks=("openvino",)))
    assert [(c.key, c.dockerfile.name) for c in cells] == [("openvino/cpu", "openvino.dockerfile")]
    assert cells[0].requirements == ("openvino",)
    (key, why), *_ = missing_variants(MatrixOptions(frameworks=("openvino", "onnx"))).items()
    assert f"{key}: {why}".startswith(NO_CUDA)
    assert missing_variants(MatrixOptions(frameworks=("openvino",), variants=("cpu",))) == {}


def test_list_shows_the_cuda_cell_not_applicable_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out = _cli("list", "--framework", "openvino", cwd=tmp_path, monkeypatch=monkeypatch)
    assert code == 0, out
    assert "openvino/cpu" in out and "openvino.dockerfile" in out
    assert f"\nnot built: {NO_CUDA}" in out
    code, out = _cli(
        "list", "--framework", "openvino", "--format", "json", cwd=tmp_path, monkeypatch=monkeypatch
    )
    document = json.loads(out)
    assert [c["cell"] for c in document["cells"]] == ["openvino/cpu"]
    assert "Intel GPUs" in document["not_built"]["openvino/cuda"]


def test_asking_only_for_its_cuda_cell_is_refused_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out = _cli(
        "run", "--framework", "openvino", "--cuda", "cuda", cwd=tmp_path, monkeypatch=monkeypatch
    )
    assert code == 2
    error, tip = out.splitlines()
    assert error.startswith("ERROR: the selection leaves no cell to build (" + NO_CUDA)
    assert tip.startswith("TIP: valid cells: ") and "openvino/cpu" in tip


def test_framework_all_selects_every_runtime_and_the_default_stays_two(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out = _cli(
        "list", "--format", "json", "--framework", "all", cwd=tmp_path, monkeypatch=monkeypatch
    )
    assert code == 0, out
    document = json.loads(out)
    every = [f"{r}/{v}" for r in NAMES for v in ("cpu", "cuda") if v in runtime(r).variants]
    assert [c["cell"] for c in document["cells"]] == every
    assert list(document["not_built"]) == ["openvino/cuda", "aotinductor/cuda"]
    code, out = _cli("list", "--format", "json", cwd=tmp_path, monkeypatch=monkeypatch)
    cells = [c["cell"] for c in json.loads(out)["cells"]]
    assert cells == ["pytorch/cpu", "pytorch/cuda", "onnx/cpu", "onnx/cuda"]


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("tensorrt", '--framework "tensorrt" is not a runtime buildbench has'),
        (
            "openvno",
            '--framework "openvno" is not a runtime buildbench has (did you mean "openvino"?)',
        ),
    ],
)
def test_an_unknown_runtime_is_one_line_and_a_tip_before_any_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, said: str
) -> None:
    code, out = _cli(
        "run", "--framework", "onnx", "--framework", name, cwd=tmp_path, monkeypatch=monkeypatch
    )
    assert code == 2
    assert out.splitlines() == [
        f"ERROR: {said}",
        f"TIP: --framework takes {', '.join(NAMES)}, or all for every one",
    ]
    assert not (tmp_path / "results").exists()


def test_it_loads_the_shared_onnx_form_in_its_volume(tmp_path: Path) -> None:
    spec = parse_spec(str(tiny_onnx(tmp_path / "m.onnx")))
    prepared = modelcache.load(spec, frameworks=("openvino",))
    assert "openvino" not in prepared.info.not_applicable and prepared.forms == {}
    with tarfile.open(fileobj=io.BytesIO(artifacts.prepare_artifacts((1,), [prepared]))) as tar:
        names = tar.getnames()
        meta = json.loads(tar.extractfile("meta.json").read())  # type: ignore[union-attr]
    assert program.RUNTIMES["openvino"].form == runtime("openvino").form == "onnx"
    assert meta["onnx"] in names and "program/runtimes/openvino.py" in names


def test_a_model_with_ai_onnx_ml_operators_is_not_applicable_with_them_named(
    tmp_path: Path,
) -> None:
    spec = parse_spec(str(classifier(tmp_path / "c.onnx")))
    prepared = modelcache.load(spec, frameworks=("onnx", "openvino"))
    why = prepared.info.not_applicable["openvino"]
    assert why == "OpenVINO has no ai.onnx.ml operators (the model uses ai.onnx.ml: Normalizer)"
    assert "onnx" not in prepared.info.not_applicable  # ONNX Runtime has them
    with pytest.raises(UsageError, match=r"cannot run it .*ai\.onnx\.ml"):
        modelcache.load(spec, frameworks=("openvino",))


def test_a_config_s_built_in_openvino_image_says_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "buildbench.toml").write_text('[[image]]\nbuiltin = "openvino"\n')
    code, out = _cli("list", "--framework", "all", cwd=tmp_path, monkeypatch=monkeypatch)
    assert code == 0, out
    assert "openvino/cpu" in out and f"\nnot built: {NO_CUDA}" in out
