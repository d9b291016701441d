"""`--framework onnx-int8`: the model quantised here (dynamic, or static for a convolutional
network), cached with it, shipped as its own form and compared for accuracy, not fp32 parity."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from buildbench.cli import cli
from buildbench.errors import UsageError
from buildbench.measure.runtimes import DEFAULT_NAMES, onnx_int8
from buildbench.measure.smoke import artifacts, modelcache, program
from buildbench.measure.smoke.kinds.model.smoke import load_models
from buildbench.measure.smoke.modelspec import parse_spec
from buildbench.measure.smoke.program.parity import accuracy
from buildbench.measure.smoke.program.runtimes.onnx_int8 import INT8
from tests.unit.test_modelspec import tiny_onnx

INT8_ONLY = ("onnx-int8",)


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    load_models.cache_clear()


def tiny_cnn(path: Path, batch: int | str = "batch") -> Path:
    """A 3x3 convolution and a ReLU over batch x 2 x 8 x 8."""
    rng = numpy.random.default_rng(0)
    weights = numpy_helper.from_array(rng.standard_normal((4, 2, 3, 3)).astype("float32"), "W")
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c"], ["y"]),
        ],
        "cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 2, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 4, 8, 8])],
        [weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save_model(model, str(path))
    return path


def nothing_to_quantise(path: Path) -> Path:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save_model(model, str(path))
    return path


def quantised_ops(prepared: modelcache.PreparedModel) -> set[str]:
    (name, *_) = prepared.forms["onnx_int8"]
    return {n.op_type for n in onnx.load(str(prepared.directory / name)).graph.node}


def test_a_matmul_model_is_quantised_dynamically_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = parse_spec(str(tiny_onnx(tmp_path / "m.onnx")))
    prepared = modelcache.load(spec, frameworks=INT8_ONLY)
    assert "onnx-int8" not in prepared.info.not_applicable
    assert {"MatMulInteger", "DynamicQuantizeLinear"} <= quantised_ops(prepared)

    def refuse(*args: object) -> None:
        raise AssertionError("quantised again")

    monkeypatch.setattr(onnx_int8, "_quantise", refuse)
    assert modelcache.load(spec, frameworks=INT8_ONLY).forms == prepared.forms
    assert modelcache.load(spec).forms == {}  # the default run makes no int8 form


@pytest.mark.parametrize("batch", ["batch", 3])
def test_a_convolutional_network_is_quantised_statically(tmp_path: Path, batch: int | str) -> None:
    """Calibrated on generated inputs: one item each, or the model's own fixed batch."""
    spec = parse_spec(str(tiny_cnn(tmp_path / "c.onnx", batch)))
    prepared = modelcache.load(spec, frameworks=INT8_ONLY)
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= quantised_ops(prepared)
    (marker,) = prepared.directory.glob("int8-*.json")
    assert json.loads(marker.read_text())["method"] == "static"


def test_a_quantisation_that_changes_nothing_says_so(tmp_path: Path) -> None:
    spec = parse_spec(str(nothing_to_quantise(tmp_path / "r.onnx")))
    prepared = modelcache.load(spec, frameworks=("onnx", "onnx-int8"))
    assert "changed nothing" in prepared.info.not_applicable["onnx-int8"]
    assert prepared.forms == {}
    with pytest.raises(UsageError, match=r"cannot run it .*changed nothing"):
        modelcache.load(spec, frameworks=INT8_ONLY)


def test_accuracy_is_the_share_within_tolerance_and_top1_agreement() -> None:
    want = numpy.array([[0.0, 1.0, 0.5], [2.0, 0.1, 0.0]])
    close = want + 0.05  # within 5% of the largest magnitude (2.0) plus 5% of each
    found = accuracy(close.reshape(-1), want.reshape(-1), [2, 3], INT8, numpy)
    assert found["ok"] and found["mismatches"] == 0 and found["count"] == 6
    assert found["max_abs_diff"] == pytest.approx(0.05)
    assert found["note"] == "accuracy: 100.0% within tolerance, top-1 agrees on 2 of 2"
    off = want.copy()
    off[1] = [0.0, 0.1, 2.0]  # the second row's top-1 moves, two values far off
    found = accuracy(off.reshape(-1), want.reshape(-1), [2, 3], INT8, numpy)
    assert not found["ok"] and found["mismatches"] == 2
    assert found["note"] == "accuracy: 66.7% within tolerance, top-1 agrees on 1 of 2"


def test_the_program_runs_the_int8_form_and_reports_accuracy(tmp_path: Path) -> None:
    prepared = modelcache.load(
        parse_spec(str(tiny_onnx(tmp_path / "m.onnx"))), frameworks=INT8_ONLY
    )
    volume = tmp_path / "volume"
    with tarfile.open(fileobj=io.BytesIO(artifacts.prepare_artifacts((1, 3), [prepared]))) as tar:
        tar.extractall(volume, filter="data")
    meta = json.loads((volume / "meta.json").read_text())
    assert meta["onnx_int8"] == f"model/{prepared.forms['onnx_int8'][0]}"
    assert (volume / meta["onnx_int8"]).is_file()
    command = [sys.executable, str(volume / "program.py"), "--framework=onnx-int8"]
    ran = subprocess.run(
        [*command, f"--artifacts={volume}", "--warmup=1", "--min-runs=2", "--min-seconds=0"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    (line,) = [s for s in ran.stdout.splitlines() if s.startswith(program.RESULT_PREFIX)]
    found = json.loads(line.removeprefix(program.RESULT_PREFIX))
    y, mask = found["outputs"]["3"]["y"], found["outputs"]["3"]["mask"]
    assert y["ok"] and y["note"].startswith("accuracy: ")
    assert mask["exact"] and mask["ok"] and "note" not in mask  # integers stay exact
    assert 0 < y["max_abs_diff"] < 0.5  # quantised: not the fp32 reference's values


def test_the_default_run_stays_pytorch_and_onnx_and_int8_uses_the_onnx_image() -> None:
    assert DEFAULT_NAMES == ("pytorch", "onnx")
    listed = CliRunner().invoke(cli, ["list", "--framework", "onnx-int8", "--cuda", "cpu"])
    assert listed.exit_code == 0, listed.output
    assert "onnx-int8" in listed.output and "onnx.dockerfile" in listed.output
    default = CliRunner().invoke(cli, ["list", "--cuda", "cpu"])
    assert "onnx-int8" not in default.output
