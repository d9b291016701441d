"""The binary encodings (KServe v2's binary tensors for Triton, raw bytes answered as .npz for
TorchServe) against what the servers' side does with them (dockerfiles/serve/common/bbserve.py,
the module every serving image shares): a request split back into its tensors, an answer read
back into its outputs, and an answer that cannot be read refused with the reason."""

from __future__ import annotations

import importlib.util
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy
import pytest

from buildbench.engine.dockerfile import declared_args
from buildbench.errors import UsageError
from buildbench.measure.servers import server
from buildbench.measure.servers.base import Tensor
from buildbench.measure.servers.binary import HEADER_LENGTH, KSERVE_V2_BINARY, RAW_NPZ
from buildbench.measure.servers.smoke import ServeSmoke
from buildbench.measure.smoke.kinds.model.smoke import load_models
from buildbench.measure.smoke.options import ModelRequest
from buildbench.run.config import load_matrix
from buildbench.run.matrix import MatrixOptions, dockerfiles_dir
from tests.unit.test_modelspec import tiny_onnx

# Two inputs (float32, int64) and two outputs: both forms, a dynamic batch.
TINY_FACTORY = """import torch
class Two(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 3)
    def forward(self, x, ids):
        return {'scores': self.linear(x), 'top': ids.argmax(dim=1)}
def make():
    torch.manual_seed(0)
    return Two(), (torch.randn(1, 4), torch.randint(0, 5, (1, 6)))
"""


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    load_models.cache_clear()


def _module(path: Path, name: str) -> ModuleType:
    """A file of a serving image, imported as a module."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bbserve() -> ModuleType:
    return _module(dockerfiles_dir() / "serve" / "common" / "bbserve.py", "bbserve")


def _load(path: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """A serving image's module, with bbserve importable as in the image."""
    monkeypatch.setitem(sys.modules, "bbserve", bbserve())
    return _module(path, name)


X = numpy.arange(2 * 3, dtype="float32").reshape(2, 3)
IDS = numpy.array([[7, 1], [2, 9]], dtype="int64")
INPUTS = [
    Tensor("x", "float32", (2, 3), X.tobytes()),
    Tensor("ids", "int64", (2, 2), IDS.tobytes()),
]
META = [
    {"name": "x", "dtype": "float32", "shape": [1, 3], "batched": True},
    {"name": "ids", "dtype": "int64", "shape": [1, 2], "batched": True},
]


def test_a_raw_request_splits_back_into_its_inputs_at_the_batch_it_holds() -> None:
    request = RAW_NPZ.request(INPUTS)
    assert request.headers == {"Content-Type": "application/octet-stream"}
    assert len(request.body) == X.nbytes + IDS.nbytes  # nothing but the tensors' bytes
    x, ids = bbserve().split_inputs(request.body, META)
    assert x.shape == (2, 3) and ids.dtype == numpy.int64
    assert (x == X).all() and (ids == IDS).all()
    with pytest.raises(ValueError, match="not the model's inputs at any batch"):
        bbserve().split_inputs(request.body[:-1], META)


def test_an_npz_answer_is_read_by_name_and_a_missing_output_or_garbage_refused() -> None:
    body = bbserve().npz(["scores", "top"], [X, IDS[:, 0]])
    found = RAW_NPZ.decode(body, ["top", "scores"])
    assert list(found) == ["top", "scores"] and (found["scores"] == X).all()
    with pytest.raises(ValueError, match="lacks output mask"):
        RAW_NPZ.decode(body, ["mask"])
    with pytest.raises(ValueError, match=r"not an \.npz"):
        RAW_NPZ.decode(b'{"error": "Prediction failed"}', ["scores"])


def test_kserve_binary_sends_a_json_header_then_the_raw_tensors() -> None:
    request = KSERVE_V2_BINARY.request(INPUTS)
    length = int(request.headers[HEADER_LENGTH])
    header = json.loads(request.body[:length])
    assert [(t["name"], t["datatype"], t["shape"]) for t in header["inputs"]] == [
        ("x", "FP32", [2, 3]),
        ("ids", "INT64", [2, 2]),
    ]
    assert [t["parameters"]["binary_data_size"] for t in header["inputs"]] == [24, 32]
    assert header["parameters"] == {"binary_data_output": True}
    assert request.body[length:] == X.tobytes() + IDS.tobytes()


def test_kserve_binary_answers_are_read_as_triton_sends_them() -> None:
    mask = numpy.array([True, False])
    header = {
        "model_name": "model",
        "outputs": [
            {
                "name": "y",
                "datatype": "FP32",
                "shape": [2, 3],
                "parameters": {"binary_data_size": X.nbytes},
            },
            {
                "name": "mask",
                "datatype": "BOOL",
                "shape": [2],
                "parameters": {"binary_data_size": mask.nbytes},
            },
            {"name": "n", "datatype": "INT64", "shape": [1], "data": [5]},  # as JSON
        ],
    }
    body = json.dumps(header).encode() + X.tobytes() + mask.tobytes()
    found = KSERVE_V2_BINARY.decode(body, ["y", "mask", "n"])
    assert (found["y"] == X).all() and found["mask"].tolist() == [True, False]
    assert found["n"].tolist() == [5] and found["n"].dtype == numpy.int64
    with pytest.raises(ValueError, match="does not start with a JSON header"):
        KSERVE_V2_BINARY.decode(b"Internal Server Error", ["y"])
    with pytest.raises(ValueError, match="lacks output z"):
        KSERVE_V2_BINARY.decode(body, ["z"])


def test_torchserve_serves_the_torch_form_and_refuses_a_model_without_one(tmp_path: Path) -> None:
    """TorchServe's cell ships the torch form (the payload's model, $BUILDBENCH_MODEL and
    serve.json name it) with a raw request; an ONNX file has none: refused, with the reason."""
    (tmp_path / "tinyfactory.py").write_text(TINY_FACTORY)
    sys.path.insert(0, str(tmp_path))
    try:
        model = ModelRequest("tinyfactory:make")
        smoke = ServeSmoke(server("torchserve"), models=(model,), concurrency=(1,), seconds=1.0)
        with tarfile.open(fileobj=io.BytesIO(smoke.payload().make())) as tar:
            names = set(tar.getnames())
            meta = json.loads(tar.extractfile("serve.json").read())  # type: ignore[union-attr]
            body = tar.extractfile("body").read()  # type: ignore[union-attr]
    finally:
        sys.path.remove(str(tmp_path))
    assert "model/model.pt2" in names and "model/model.onnx" not in names
    assert meta["model"] == "/buildbench/model/model.pt2"
    assert [(t["name"], t["batched"]) for t in meta["inputs"]] == [("x", True), ("ids", True)]
    x, ids = bbserve().split_inputs(body, meta["inputs"])  # as the handler reads it
    assert (x.shape, ids.shape, str(ids.dtype)) == ((1, 4), (1, 6), "int64")
    assert smoke.http.path == "/predictions/model" and smoke.http.port == 8080

    onnx = ModelRequest(str(tiny_onnx(tmp_path / "m.onnx")))
    with pytest.raises(UsageError) as raised:
        ServeSmoke(server("torchserve"), models=(onnx,)).check()
    assert raised.value.message.endswith(": an ONNX model has no PyTorch form")
    assert raised.value.tip.startswith("it serves a torch form (PATH.pt2, a TorchScript file")
    triton = ServeSmoke(server("triton"), models=(onnx,), concurrency=(1,), seconds=1.0)
    triton.check()  # an ONNX form: Triton serves it
    assert triton.http.headers[HEADER_LENGTH] and triton.http.path == "/v2/models/model/infer"


def test_torchserve_cells_take_the_runs_torch_as_the_pytorch_image_does(tmp_path: Path) -> None:
    """Without TORCH_VERSION pip would take PyPI's newest torch, a CUDA build, for the CPU
    image: TorchServe's cells get the run's torch version and CPU index; Triton's do not."""
    options = MatrixOptions(
        frameworks=(),
        servers=("torchserve", "triton"),
        variants=("cpu",),
        torch_version="2.13.0+cpu",
        torch_cpu_index_url="",
    )
    _, cells = load_matrix(options, directory=tmp_path)
    torchserve, triton = (c.build_args for c in cells)
    assert torchserve["TORCH_VERSION"] == "2.13.0+cpu" and torchserve["TORCH_CPU_INDEX_URL"] == ""
    assert "TORCH_VERSION" not in triton
    declared = declared_args((dockerfiles_dir() / "serve-torchserve.dockerfile").read_text())
    assert {"CUDA", "BASE_IMAGE", "TORCH_VERSION", "TORCH_CPU_INDEX_URL"} <= set(declared)


def test_requests_stack_into_one_batch_and_their_outputs_split_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    serve = bbserve()
    assert serve.batching() is None
    monkeypatch.setenv("BUILDBENCH_MAX_BATCH", "8")
    monkeypatch.setenv("BUILDBENCH_MAX_DELAY_MS", "5")
    assert serve.batching() == (8, 5.0)
    joined, rows = serve.stack([[X, IDS], [X[:1], IDS[:1]]])
    assert rows == [2, 1] and joined[0].shape == (3, 3) and joined[1].dtype == numpy.int64
    first, second = serve.unstack([joined[0] * 2, joined[1][:, 0]], rows)
    assert (first[0] == X * 2).all() and second[1].tolist() == [7]
    with pytest.raises(ValueError, match="has no batch of 3 rows"):
        serve.unstack([numpy.float32(1.0)], rows)
    calls: list[int] = []

    def run(arrays: list[Any]) -> list[Any]:
        calls.append(len(arrays[0]))
        return [arrays[0] * 2, numpy.float32(len(arrays[0]))]  # the second: no batch axis

    (alone,) = serve.run_batch(run, [[X, IDS]])  # a request alone: as the model answers it
    assert calls == [2] and (alone[0] == X * 2).all() and alone[1] == 2
    with pytest.raises(ValueError, match="has no batch of 3 rows"):
        serve.run_batch(run, [[X, IDS], [X[:1], IDS[:1]]])
    calls.clear()
    first, second = serve.run_batch(lambda a: run(a)[:1], [[X, IDS], [X[:1], IDS[:1]]])
    assert calls == [3] and (first[0] == X * 2).all() and (second[0] == X[:1] * 2).all()


class _TritonConfig:
    """The part of Triton's auto-complete ModelConfig model.py uses."""

    def __init__(self) -> None:
        self.config: dict[str, Any] = {"max_batch_size": 0, "input": [], "output": []}

    def add_input(self, found: dict[str, Any]) -> None:
        self.config["input"].append(found)

    def add_output(self, found: dict[str, Any]) -> None:
        self.config["output"].append(found)

    def set_max_batch_size(self, size: int) -> None:
        self.config["max_batch_size"] = size

    def set_dynamic_batching(self) -> None:
        self.config.setdefault("dynamic_batching", {})

    def as_dict(self) -> dict[str, Any]:
        return self.config


def _triton_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ModuleType:
    """serve/triton/model/1/model.py with a stand-in for the backend's utilities."""
    meta = {
        "inputs": META,
        "outputs": [{"name": "y", "dtype": "float32", "shape": [1, 3]}],
    }
    (tmp_path / "serve.json").write_text(json.dumps(meta))
    monkeypatch.setenv("BUILDBENCH_MODEL_META", str(tmp_path / "serve.json"))
    utils = ModuleType("triton_python_backend_utils")
    utils.Tensor = lambda name, value: (name, value)  # type: ignore[attr-defined]
    utils.InferenceResponse = lambda output_tensors: output_tensors  # type: ignore[attr-defined]
    utils.get_input_tensor_by_name = lambda request, name: SimpleNamespace(  # type: ignore[attr-defined]
        as_numpy=lambda: request[name]
    )
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", utils)
    path = dockerfiles_dir() / "serve" / "triton" / "model" / "1" / "model.py"
    return _load(path, "triton_model", monkeypatch)


def test_triton_declares_its_dynamic_batcher_and_runs_a_queue_as_one_batch(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    model = _triton_model(monkeypatch, tmp_path)
    off = model.TritonPythonModel.auto_complete_config(_TritonConfig()).as_dict()
    assert off["max_batch_size"] == 0 and "dynamic_batching" not in off
    assert [t["dims"] for t in off["input"]] == [[-1, 3], [-1, 2]]
    monkeypatch.setenv("BUILDBENCH_MAX_BATCH", "8")
    monkeypatch.setenv("BUILDBENCH_MAX_DELAY_MS", "5")
    on = model.TritonPythonModel.auto_complete_config(_TritonConfig()).as_dict()
    assert on["max_batch_size"] == 8
    assert on["dynamic_batching"] == {"max_queue_delay_microseconds": 5000}
    assert [t["dims"] for t in on["input"]] == [[3], [2]] and on["output"][0]["dims"] == [3]

    runs: list[int] = []

    def run(outputs: list[str], feeds: dict[str, Any]) -> list[Any]:
        runs.append(len(feeds["x"]))
        return [feeds["x"] + feeds["ids"][:, :1]]

    served = model.TritonPythonModel()
    served.session = SimpleNamespace(run=run)
    served.inputs, served.outputs = ["x", "ids"], ["y"]  # one output is enough here
    requests = [{"x": X[i : i + 1], "ids": IDS[i : i + 1]} for i in range(2)]
    answers = served.execute(requests)
    assert runs == [2]  # the batcher's two requests ran once
    assert [[(n, v.tolist()) for n, v in a] for a in answers] == [
        [("y", [[7.0, 8.0, 9.0]])],
        [("y", [[5.0, 6.0, 7.0]])],
    ]


def test_torchserve_runs_its_frontends_batch_as_one_call_and_answers_each_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch

    handler = _load(dockerfiles_dir() / "serve" / "torchserve" / "handler.py", "ts", monkeypatch)
    calls: list[int] = []

    def model(x: torch.Tensor, ids: torch.Tensor) -> dict[str, torch.Tensor]:
        calls.append(len(x))
        return {"y": x * 2, "top": ids.argmax(dim=1)}

    meta = {"inputs": META, "outputs": [{"name": "y"}, {"name": "top"}]}
    handler._loaded = (model, "cpu", meta)
    types: dict[int, str] = {}
    context = SimpleNamespace(set_response_content_type=types.__setitem__)
    rows = [{"body": bytearray(X[i : i + 1].tobytes() + IDS[i : i + 1].tobytes())} for i in (0, 1)]
    answers = handler.handle(rows, context)  # the frontend's batch of two
    assert calls == [2] and types == {0: "application/octet-stream", 1: "application/octet-stream"}
    for i, answer in enumerate(answers):
        found = RAW_NPZ.decode(answer, ["y", "top"])
        assert found["y"].tolist() == (X[i : i + 1] * 2).tolist()
        assert found["top"].tolist() == [IDS[i].argmax()]
    alone = RAW_NPZ.decode(handler.handle(rows[:1], context)[0], ["y", "top"])
    assert calls == [2, 1] and alone["top"].shape == (1,)


@pytest.mark.parametrize(("size", "delay"), [("8", "5"), ("4", "2.6")])
def test_torchserve_starts_with_its_batching_in_the_models_config(
    size: str, delay: str, tmp_path: Path
) -> None:
    """start.sh as the image runs it, with `torchserve` a stand-in that shows what it was given."""
    stand_in = '#!/bin/sh\necho "$@"\nwhile [ "$1" != --ts-config ]; do shift; done\ncat "$2"\n'
    (tmp_path / "torchserve").write_text(stand_in)
    (tmp_path / "torchserve").chmod(0o755)
    script = (dockerfiles_dir() / "serve" / "torchserve" / "start.sh").read_text()
    config = dockerfiles_dir() / "serve" / "torchserve" / "config.properties"
    script = script.replace("/opt/serve/config.properties", str(config))
    script = script.replace("/tmp/config.properties", str(tmp_path / "config.properties"))
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin"}
    off = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, check=True)
    assert f"--ts-config {config} " in off.stdout and "\nmodels=" not in off.stdout
    env |= {"BUILDBENCH_MAX_BATCH": size, "BUILDBENCH_MAX_DELAY_MS": delay}
    on = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, check=True)
    assert f"--ts-config {tmp_path / 'config.properties'} " in on.stdout
    assert "--models model=model" in on.stdout and "load_models=model" in on.stdout
    (line,) = [x for x in on.stdout.splitlines() if x.startswith("models=")]
    (version,) = json.loads(line.removeprefix("models="))["model"].values()
    assert version["batchSize"] == int(size) and version["maxBatchDelay"] == round(float(delay))
    assert (version["minWorkers"], version["maxWorkers"], version["marName"]) == (1, 1, "model")
