"""The smoke test's model on the host: --model and --input parsed, models read and cached, the
files that travel, the in-container program's parity and graph reading, and every user mistake
refused with one line and exit 2 before anything is built."""

from __future__ import annotations

import io
import json
import math
import os
import re
import stat
import tarfile
from array import array
from dataclasses import replace
from pathlib import Path

import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from buildbench.cli import cli
from buildbench.errors import UsageError
from buildbench.measure.smoke import artifacts, modelcache, modelforms, modelinputs, program
from buildbench.measure.smoke.kinds.model.smoke import load_models, runtime_settings
from buildbench.measure.smoke.modelspec import InputOverride, parse_input, parse_spec
from buildbench.measure.smoke.options import ModelRequest
from buildbench.record import ModelInfo, TensorInfo

# ---------------------------------------------------------------------------------------------
# Small real models, written here


def tiny_onnx(path: Path, batch: int | str = "batch", external: bool = False) -> Path:
    """ids (int64, batch x 4) and x (float32, batch x 4) in; y = x @ W + ids and the mask
    ids > 0 (bool) out: two inputs, two outputs of different dtypes."""
    import numpy

    weights = numpy_helper.from_array(
        numpy.arange(16, dtype=numpy.float32).reshape(4, 4) / 16, name="W"
    )
    zero = numpy_helper.from_array(numpy.array(0, dtype=numpy.int64), name="zero")
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["xw"]),
        helper.make_node("Cast", ["ids"], ["idsf"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["xw", "idsf"], ["y"]),
        helper.make_node("Greater", ["ids", "zero"], ["mask"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [
            helper.make_tensor_value_info("ids", TensorProto.INT64, [batch, 4]),
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 4]),
        ],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 4]),
            helper.make_tensor_value_info("mask", TensorProto.BOOL, [batch, 4]),
        ],
        [weights, zero],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if external:
        onnx.save_model(
            model,
            str(path),
            save_as_external_data=True,
            location=path.name + ".data",
            size_threshold=0,
        )
        os.chmod(path.parent / (path.name + ".data"), 0o600)  # as onnx may leave it
    else:
        onnx.save_model(model, str(path))
    return path


def uint16_output(path: Path) -> Path:
    """x (float32, batch x 4) in, x cast to uint16 out: a valid model that ONNX Runtime runs."""
    graph = helper.make_graph(
        [helper.make_node("Cast", ["x"], ["y"], to=TensorProto.UINT16)],
        "u16",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.UINT16, ["batch", 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save_model(model, str(path))
    return path


def tensor_sequence_output(path: Path) -> Path:
    """x (float32, batch x 2) in, the sequence [x, x] out: a valid model that ONNX Runtime
    runs, whose output the smoke test has no stored form for (neither a tensor nor maps)."""
    graph = helper.make_graph(
        [helper.make_node("SequenceConstruct", ["x", "x"], ["s"])],
        "seq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2])],
        [helper.make_tensor_sequence_value_info("s", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save_model(model, str(path))
    return path


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's own model cache (XDG_CACHE_HOME), and a fresh in-process memo."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    load_models.cache_clear()
    return tmp_path / "xdg" / "buildbench" / "models"


# ---------------------------------------------------------------------------------------------
# --model and --input


def test_input_overrides_take_any_part() -> None:
    assert parse_input("input_ids=1x128:int64:0-30521") == InputOverride(
        "input_ids", (1, 128), "int64", 0.0, 30521.0
    )
    assert parse_input("x=4x3x224x224") == InputOverride("x", (4, 3, 224, 224))
    assert parse_input("mask=:bool") == InputOverride("mask", None, "bool")
    assert parse_input("x=:-1-1") == InputOverride("x", None, None, -1.0, 1.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("input_ids", "--input input_ids: not NAME=DIMS[:DTYPE][:LOW-HIGH]"),
        ("x=1x2:complex64", "--input x=1x2:complex64: unknown dtype complex64"),
        ("x=1x2:float32:5-1", "--input x=1x2:float32:5-1: LOW is above HIGH"),
        ("x=1xa", "--input x=1xa: not NAME=DIMS[:DTYPE][:LOW-HIGH]"),
    ],
)
def test_a_malformed_input_override_is_a_usage_error(text: str, message: str) -> None:
    with pytest.raises(UsageError) as raised:
        parse_input(text)
    assert raised.value.message == message
    assert raised.value.tip


def test_a_spec_is_a_file_by_its_suffix_or_a_factory(tmp_path: Path) -> None:
    onnx_file = tiny_onnx(tmp_path / "m.onnx")
    (tmp_path / "m.pt2").write_bytes(b"")
    (tmp_path / "m.pt").write_bytes(b"")
    assert parse_spec(str(onnx_file)).kind == "onnx"
    assert parse_spec("m.pt2", base=tmp_path).path == tmp_path / "m.pt2"
    assert parse_spec(str(tmp_path / "m.pt")).kind == "torchscript"
    factory = parse_spec("pkg.models:make")
    assert (factory.kind, factory.module, factory.callable) == ("factory", "pkg.models", "make")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("missing.onnx", "--model missing.onnx: no such file"),
        ("not a model", "--model not a model: neither a file nor module:callable"),
        ("factory.py", "--model factory.py: a Python file is not a model"),
    ],
)
def test_a_spec_that_is_no_model_is_a_usage_error(
    spec: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "factory.py").write_text("def make(): ...\n")
    with pytest.raises(UsageError) as raised:
        parse_spec(spec)
    assert raised.value.message == message


# ---------------------------------------------------------------------------------------------
# Inputs from the model


def info(*inputs: TensorInfo, fixed: int | None = None) -> ModelInfo:
    return ModelInfo("m", "onnx", "0" * 64, 1, list(inputs), fixed_batch=fixed)


def test_inputs_come_from_the_model_with_the_symbolic_first_axis_as_batch() -> None:
    plans = modelinputs.plan_inputs(
        info(TensorInfo("ids", "int64", ["batch", 16]), TensorInfo("x", "float16", ["batch", 3]))
    )
    assert [(p.name, p.dtype, p.shape, p.batched) for p in plans] == [
        ("ids", "int64", [1, 16], True),
        ("x", "float16", [1, 3], True),
    ]
    assert plans[0].at(8) == [8, 16]
    assert (plans[0].low, plans[0].high) == (0, 1)  # a valid index and a valid mask
    assert math.isnan(plans[1].low)  # floats: normal(0, 1)


def test_an_override_sets_shape_dtype_and_range() -> None:
    model = info(TensorInfo("ids", "int64", ["batch", "sequence"]))
    (plan,) = modelinputs.plan_inputs(model, [parse_input("ids=1x128:int64:0-30521")])
    assert (plan.shape, plan.dtype, plan.low, plan.high) == ([1, 128], "int64", 0, 30521)
    # A TorchScript file declares no dtype: the one given is the one generated.
    script = replace(info(TensorInfo("ids", "float32", None)), kind="torchscript")
    (plan,) = modelinputs.plan_inputs(script, [parse_input("ids=1x128:int32:0-30521")])
    assert (plan.shape, plan.dtype) == ([1, 128], "int32")


def test_a_dtype_other_than_the_declared_one_names_both(tmp_path: Path) -> None:
    """ONNX Runtime refuses any dtype but the declared one: said as such, not as a model that
    does not run on the host."""
    path = tiny_onnx(tmp_path / "m.onnx")
    with pytest.raises(UsageError) as raised:
        modelcache.load(parse_spec(str(path)), [parse_input("ids=:float32")])
    assert raised.value.message == f"--input ids: dtype float32 given, but {path} declares int64"
    assert raised.value.tip == (
        "leave the dtype out (the model's own is used), or give --input ids=DIMS:int64"
    )


@pytest.mark.parametrize(
    ("tensor", "override", "message"),
    [
        (
            TensorInfo("ids", "int64", ["batch", "sequence"]),
            None,
            "--model m: input ids: dimension sequence is symbolic",
        ),
        (
            TensorInfo("ids", "int64", ["batch", 16]),
            "ids=1x32",
            "--input ids: dimension 1 is 16 in the model, not 32",
        ),
        (
            TensorInfo("ids", "int64", ["batch", 16]),
            "ids=16",
            "--input ids: 1 dimensions, the model's has 2 (batchx16)",
        ),
        (
            TensorInfo("x", "float32", None),
            None,
            "--model m: input x: the model does not say its shape",
        ),
        (
            TensorInfo("s", "string", [1]),
            None,
            "--model m: input s is string: the smoke test generates "
            "float32, float16, float64, int64, int32, bool",
        ),
    ],
)
def test_an_input_the_model_leaves_open_or_contradicts_is_a_usage_error(
    tensor: TensorInfo, override: str | None, message: str
) -> None:
    overrides = [parse_input(override)] if override else []
    with pytest.raises(UsageError) as raised:
        modelinputs.plan_inputs(info(tensor), overrides)
    assert raised.value.message == message


def test_a_fixed_batch_model_is_timed_at_its_own_batch(tmp_path: Path) -> None:
    prepared = modelcache.load(parse_spec(str(tiny_onnx(tmp_path / "m.onnx", batch=2))))
    assert prepared.info.fixed_batch == 2
    assert prepared.batches((1, 8, 32)) == [2]
    assert all(p.batched and p.shape[0] == 2 for p in prepared.inputs)


# ---------------------------------------------------------------------------------------------
# Reading, caching and shipping a model


def test_an_onnx_model_with_external_data_travels_whole_and_readable(
    tmp_path: Path, cache: Path
) -> None:
    path = tiny_onnx(tmp_path / "m.onnx", external=True)
    prepared = modelcache.load(parse_spec(str(path)), frameworks=("onnx",))
    model = prepared.info
    assert (model.kind, model.opset, model.nodes) == ("onnx", 17, 4)
    assert [(t.name, t.dtype, t.shape) for t in model.outputs] == [
        ("y", "float32", ["batch", 4]),
        ("mask", "bool", ["batch", 4]),
    ]
    assert model.not_applicable == {"pytorch": "an ONNX model has no PyTorch form"}
    assert model.size_bytes == path.stat().st_size + (tmp_path / "m.onnx.data").stat().st_size
    archive = io.BytesIO(artifacts.prepare_artifacts((1, 3), [prepared]))
    with tarfile.open(fileobj=archive) as tar:
        members = {m.name: m for m in tar.getmembers()}
        meta = json.loads(tar.extractfile("meta.json").read())  # type: ignore[union-attr]
    assert {"program.py", "meta.json", "model/m.onnx", "model/m.onnx.data"} <= set(members)
    assert {"data/1/input-0.bin", "data/3/reference-1.bin"} <= set(members)
    assert all(stat.S_IMODE(m.mode) == (0o755 if m.isdir() else 0o644) for m in members.values())
    assert meta["outputs"] == ["y", "mask"]
    assert meta["batches"][1]["references"] == [
        {"shape": [3, 4], "dtype": "float32"},
        {"shape": [3, 4], "dtype": "bool"},
    ]
    assert list(cache.iterdir()), "prepared under XDG_CACHE_HOME"


def test_a_second_load_prepares_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = parse_spec(str(tiny_onnx(tmp_path / "m.onnx")))
    first = modelcache.load(spec)
    data = modelinputs.prepare_data(first, (1,))

    def refuse(*args: object) -> None:
        raise AssertionError("prepared again")

    monkeypatch.setattr(modelcache, "_prepare_forms", refuse)
    monkeypatch.setattr(modelinputs, "_reference_runner", refuse)
    again = modelcache.load(spec)
    assert again.info == first.info
    assert modelinputs.prepare_data(again, (1,)) == data


def test_a_file_that_is_not_an_onnx_model_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "bad.onnx").write_bytes(b"not a protobuf at all")
    with pytest.raises(UsageError, match=r"^--model .*bad.onnx: not a valid ONNX model"):
        modelcache.load(parse_spec(str(tmp_path / "bad.onnx")))


def test_missing_external_data_is_a_usage_error(tmp_path: Path) -> None:
    path = tiny_onnx(tmp_path / "m.onnx", external=True)
    (tmp_path / "m.onnx.data").unlink()
    with pytest.raises(UsageError, match=r"its external data m\.onnx\.data is not beside it"):
        modelcache.load(parse_spec(str(path)))


def test_a_factory_gets_both_forms_with_a_dynamic_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tinyfactory.py").write_text(
        "import torch\n"
        "class Two(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.linear = torch.nn.Linear(4, 3)\n"
        "    def forward(self, x, ids):\n"
        "        return {'scores': self.linear(x), 'top': ids.argmax(dim=1)}\n"
        "def make():\n"
        "    torch.manual_seed(0)\n"
        "    return Two(), (torch.randn(1, 4), torch.randint(0, 5, (1, 6)))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    prepared = modelcache.load(parse_spec("tinyfactory:make"))
    model = prepared.info
    assert (prepared.torch_format, prepared.onnx) == ("pt2", "model.onnx")
    assert [(t.name, t.dtype) for t in model.inputs] == [("x", "float32"), ("ids", "int64")]
    assert [(t.name, t.dtype) for t in model.outputs] == [("scores", "float32"), ("top", "int64")]
    assert model.fixed_batch is None and not model.not_applicable
    assert [p.batched for p in prepared.inputs] == [True, True]


# ---------------------------------------------------------------------------------------------
# The program's comparisons and graph reading


def test_float_parity_has_a_tolerance_and_integers_none() -> None:
    floats = program.parity([1.0, 2.0005], array("f", [1.0, 2.0]), rtol=1e-3, atol=1e-4)
    assert floats["ok"] and not floats["exact"] and 0 < floats["ratio"] < 1
    ints = program.parity([3, 4], array("q", [3, 5]), rtol=1e-3, atol=1e-4, exact=True)
    assert (ints["ok"], ints["mismatches"], ints["max_abs_diff"]) == (False, 1, 1.0)
    nan = program.parity([math.nan, 1.0], [math.nan, math.nan], rtol=1e-3, atol=1e-4)
    assert (nan["mismatches"], nan["max_abs_diff"]) == (1, math.inf)  # NaN on one side only
    assert program.parity([math.nan], [math.nan], rtol=1e-3, atol=1e-4)["ok"]


@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_parity_is_the_same_in_either_images_array_library(library: str) -> None:
    """torch in the PyTorch image, numpy beside onnxruntime: one vectorised comparison."""
    xp = __import__(library)
    got = xp.asarray([1.0, 2.0005, 3.0, math.nan], dtype=xp.float64)
    want = xp.asarray([1.0, 2.0, 3.1, math.nan], dtype=xp.float64)
    found = program.parity(got, want, rtol=1e-3, atol=1e-4, xp=xp)
    assert (found["ok"], found["mismatches"], found["count"]) == (False, 1, 4)
    assert found["max_abs_diff"] == pytest.approx(0.1)


class NumpyArrays:
    """What compare_outputs needs of a framework: its arrays, its reference reader, and no
    accuracy policy (fp32 parity)."""

    import numpy as xp

    accuracy = None

    def reference(self, path: str, dtype: str) -> object:
        return self.xp.fromfile(path, dtype=dtype).astype("float64")


def test_every_output_is_compared_and_the_worst_named(tmp_path: Path) -> None:
    import numpy

    numpy.asarray([1.0, 2.0], dtype="float32").tofile(tmp_path / "reference-0.bin")
    numpy.asarray([True, False]).tofile(tmp_path / "reference-1.bin")
    batch = {"references": [{"shape": [2], "dtype": "float32"}, {"shape": [2], "dtype": "bool"}]}
    meta = {"outputs": ["y", "mask"], "rtol": 1e-3, "atol": 1e-4}
    got = [([2], numpy.asarray([1.0, 2.0001])), ([2], numpy.asarray([1.0, 1.0]))]
    found = program.compare_outputs(NumpyArrays(), got, batch, meta, str(tmp_path))
    assert found["y"]["ok"] and not found["mask"]["ok"]
    name, summary = program.worst(found)
    assert (name, summary["ok"]) == ("mask", False)
    shaped = program.compare_outputs(
        NumpyArrays(), [([1, 2], numpy.asarray([1.0, 2.0]))], batch, meta, str(tmp_path)
    )
    assert shaped["y"]["note"] == "shape [1, 2], reference [2]"
    assert shaped["mask"]["note"] == "missing"


def test_the_node_count_is_read_off_the_wire_format(tmp_path: Path) -> None:
    path = tiny_onnx(tmp_path / "m.onnx")
    assert program.count_nodes(str(path)) == len(onnx.load(str(path)).graph.node) == 4
    (tmp_path / "junk.onnx").write_bytes(b"\xff\xff\xff")
    assert program.count_nodes(str(tmp_path / "junk.onnx")) is None


def test_runtime_settings_are_the_default_unless_asked() -> None:
    assert runtime_settings() == [program.DEFAULT_SETTING]
    found = runtime_settings(["disabled", "offline", "all"], [1])
    assert [(s["level"], s["offline"], s["threads"]) for s in found] == [
        ("all", False, None),
        ("disabled", False, None),
        ("all", True, None),
        ("all", False, 1),
    ]


# ---------------------------------------------------------------------------------------------
# Every mistake through the command line: exit 2, one line, before any engine is asked


def run_cli(*args: str, cwd: Path) -> tuple[int, list[str]]:
    os.chdir(cwd)
    result = CliRunner().invoke(
        cli,
        ["run", "--cuda", "cpu", *args],
        prog_name="buildbench",
        env={"DOCKER_HOST": "unix:///nonexistent.sock"},  # never reached
    )
    return result.exit_code, result.output.strip().splitlines()


@pytest.mark.parametrize(
    ("args", "first_line"),
    [
        (["--model", "missing.onnx"], "ERROR: --model missing.onnx: no such file"),
        (["--model", "bad.onnx"], "ERROR: --model bad.onnx: not a valid ONNX model"),
        (
            ["--model", "nosuchmodule:make"],
            "ERROR: --model nosuchmodule:make: module nosuchmodule does not import",
        ),
        (["--model", "okfactory:nope"], "ERROR: --model okfactory:nope: okfactory has no callable"),
        (
            ["--model", "m.onnx", "--input", "pixels=1x4"],
            "ERROR: --input pixels: no model has an input of that name",
        ),
        (
            ["--model", "m.onnx", "--framework", "pytorch"],
            "ERROR: --model m.onnx: the selected frameworks cannot run it",
        ),
        (["--ort-settings", "fastest"], "ERROR: --ort-settings fastest: not a setting"),
        (
            ["--model", "m.onnx", "--input", "ids=:float32"],
            "ERROR: --input ids: dtype float32 given, but m.onnx declares int64",
        ),
        # Refused when its references are made, before the run (and its folder) begins.
        (["--model", "seq.onnx"], "ERROR: --model seq.onnx: output 0 is a sequence of ndarray"),
    ],
)
def test_a_bad_model_is_refused_in_one_line_before_any_engine(
    args: list[str], first_line: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = Path.cwd()
    tiny_onnx(tmp_path / "m.onnx")
    tensor_sequence_output(tmp_path / "seq.onnx")
    (tmp_path / "bad.onnx").write_bytes(b"garbage")
    (tmp_path / "okfactory.py").write_text("def make():\n    return None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        code, lines = run_cli(*args, cwd=tmp_path)
    finally:
        os.chdir(here)
    assert code == 2, lines
    assert lines[0].startswith(first_line), lines
    assert lines[1].startswith("TIP: ")


def test_a_config_names_its_models_relative_to_itself(tmp_path: Path) -> None:
    from buildbench.run.config import load_models as config_models

    (tmp_path / "sub").mkdir()
    config = tmp_path / "sub" / "buildbench.toml"
    config.write_text(
        '[[model]]\npath = "m.onnx"\ninputs = ["x=1x4"]\n\n[[model]]\nmodule = "pkg.mod:make"\n'
    )
    found = config_models(config)
    assert found == (
        ModelRequest("m.onnx", ("x=1x4",), base=str(tmp_path / "sub")),
        ModelRequest("pkg.mod:make", (), base=str(tmp_path / "sub")),
    )
    config.write_text('[[model]]\npath = "m.onnx"\nmodule = "a:b"\n')
    with pytest.raises(UsageError, match=r"\[\[model\]\] #1: needs path or module"):
        config_models(config)


def test_a_torchscript_file_runs_in_pytorch_only_and_takes_its_shapes_from_input(
    tmp_path: Path,
) -> None:
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated
        traced = torch.jit.trace(torch.nn.Linear(4, 2).eval(), (torch.randn(1, 4),))
    traced.save(str(tmp_path / "m.ts"))
    spec = parse_spec(str(tmp_path / "m.ts"))
    with pytest.raises(UsageError) as raised:
        modelcache.load(spec)
    assert raised.value.message == (  # which model, among several, and what to pass
        f"--model {spec.text}: input input: the model does not say its shape "
        "(a TorchScript file declares none)"
    )
    assert raised.value.tip == "give it with --input input=DIMS, e.g. --input input=1x3x224x224"
    prepared = modelcache.load(spec, [parse_input("input=1x4")])
    assert prepared.torch_format == "torchscript" and prepared.onnx is None
    assert "TorchScript file is not exported to ONNX" in prepared.info.not_applicable["onnx"]
    (plan,) = prepared.inputs
    assert (plan.name, plan.shape, plan.batched) == ("input", [1, 4], True)
    meta = artifacts.model_meta(prepared, modelinputs.prepare_data(prepared, (3,)))
    assert meta["outputs"] == ["output_0"]  # numbered as its references are


def test_provider_orders_are_the_other_orders_of_a_cells_providers() -> None:
    cuda, cpu = "CUDAExecutionProvider", "CPUExecutionProvider"
    assert program.provider_orders([cuda, cpu]) == [[cpu, cuda]]
    assert program.provider_orders([cpu]) == []  # one provider: no order to choose
    assert runtime_settings(["providers"])[1] == {**program.DEFAULT_SETTING, "providers": "each"}
    assert program.OnnxModel.label({**program.DEFAULT_SETTING, "providers": [cpu, cuda]}) == (
        "all CPU>CUDA"
    )


GPT2_FACTORY = """
import torch
from transformers import GPT2Config, GPT2Model

def make(use_cache=None):
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=64, n_positions=16, n_embd=16, n_layer=1, n_head=2, bos_token_id=0,
        eos_token_id=0, **({} if use_cache is None else {"use_cache": use_cache}),
    )
    return GPT2Model(config).eval(), (torch.randint(0, 64, (2, 8)),)

def without_cache():
    return make(use_cache=False)
"""


def test_a_gpt2_that_returns_its_cache_is_refused_naming_the_output_and_use_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real transformers GPT-2 (random weights from a small config) returns its key-value
    cache, no tensor: the refusal names that output and the setting that drops it, not the
    tracer's dump of the tensors."""
    (tmp_path / "gptfactory.py").write_text(GPT2_FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(UsageError) as raised:
        modelcache.load(parse_spec("gptfactory:make"), frameworks=("pytorch",))
    message = raised.value.message
    assert re.fullmatch(r"--model gptfactory:make: output \w+ is a \w*Cache, not a tensor", message)
    assert "tensor(" not in message
    assert raised.value.tip is not None and "use_cache=False" in raised.value.tip
    # With the hint taken, the same model prepares.
    prepared = modelcache.load(parse_spec("gptfactory:without_cache"), frameworks=("pytorch",))
    assert [t.name for t in prepared.info.outputs] == ["last_hidden_state"]


def test_a_factory_that_does_not_export_to_onnx_leaves_onnx_not_applicable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "noonnx.py").write_text(
        "import torch\ndef make():\n    return torch.nn.Linear(3, 2).eval(), (torch.randn(2, 3),)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))

    def refuse(*args: object) -> None:
        raise RuntimeError("no ONNX symbolic for aten::made_up")

    monkeypatch.setattr(modelforms, "export_onnx", refuse)
    prepared = modelcache.load(parse_spec("noonnx:make"))
    assert prepared.onnx is None and prepared.torch_format == "pt2"
    assert prepared.info.not_applicable == {
        "onnx": "the ONNX export failed: RuntimeError: no ONNX symbolic for aten::made_up"
    }
    with pytest.raises(UsageError, match="the selected frameworks cannot run it"):
        modelcache.load(parse_spec("noonnx:make"), frameworks=("onnx",))
