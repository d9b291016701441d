"""MLServer, BentoML and Ray Serve on the server seam: each a registered module with its
Dockerfile, run locked down with what it needs writable, its answer read in its own encoding
and proven against the host's reference outputs (a 200 with a wrong number fails), and the
in-image code they share (bbserve's base64 tensors, MLServer's settings) against the host's."""

from __future__ import annotations

import base64
import json
import warnings
from pathlib import Path
from typing import Any

import numpy
import pytest

from buildbench.errors import UsageError
from buildbench.measure.servers import NAMES, server, server_names
from buildbench.measure.servers.base import Tensor
from buildbench.measure.servers.encodings import BASE64_TENSORS, KSERVE_V2_JSON
from buildbench.measure.servers.smoke import ServeSmoke
from buildbench.measure.smoke.kinds.model.smoke import load_models
from buildbench.measure.smoke.options import ModelRequest
from buildbench.record import Served
from buildbench.run.matrix import dockerfiles_dir
from buildbench.status import Status
from tests.unit.test_modelspec import tiny_onnx
from tests.unit.test_servers import _run
from tests.unit.test_serving_binary import bbserve

SERVE = dockerfiles_dir() / "serve"
# name -> (the request it is sent, its encoding)
MORE = {
    "mlserver": ("POST /v2/models/model/infer on port 8080", "KServe v2, JSON values"),
    "bentoml": ("POST /predict on port 3000", "JSON, tensors as base64"),
    "rayserve": ("POST /predict on port 8000", "JSON, tensors as base64"),
}


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    load_models.cache_clear()


def _smoke(name: str, tmp_path: Path) -> ServeSmoke:
    model = ModelRequest(str(tiny_onnx(tmp_path / "m.onnx")))
    return ServeSmoke(server(name), models=(model,), concurrency=(1,), seconds=1.0)


def _answer(smoke: ServeSmoke, change: float = 0.0) -> bytes:
    """What the server answers in its encoding: the host's reference outputs, y shifted."""
    folder, described = smoke.data
    found = {}
    for i, (name, ref) in enumerate(zip(smoke.outputs(), described["references"], strict=True)):
        value = numpy.fromfile(folder / f"reference-{i}.bin", dtype=ref["dtype"])
        value = value.reshape(ref["shape"])
        found[name] = value + numpy.float32(change) if name == "y" else value
    if smoke.server.encoding is KSERVE_V2_JSON:  # as MLServer's NumpyCodec writes it
        kinds = {"float32": "FP32", "bool": "BOOL"}  # the tiny model's outputs
        outputs = [
            {
                "name": n,
                "shape": list(v.shape),
                "datatype": kinds[str(v.dtype)],
                "data": v.ravel().tolist(),
            }
            for n, v in found.items()
        ]
        return json.dumps({"model_name": "model", "outputs": outputs}).encode()
    return json.dumps(bbserve().to_base64(list(found), list(found.values()))).encode()


def test_they_are_registered_and_all_takes_them() -> None:
    assert set(MORE) <= set(NAMES) and set(MORE) <= set(server_names(("all",)))
    for name in MORE:
        found = server(name)
        assert found.dockerfile == f"serve-{name}.dockerfile" and found.form == "onnx"
        # each runs locked down here (tests/integration), but BentoML, saying why
        assert (found.unavailable is None) == (name != "bentoml"), found.unavailable


@pytest.mark.parametrize("name", sorted(MORE))
def test_each_runs_locked_down_and_its_answer_is_proven_in_its_encoding(
    name: str, tmp_path: Path
) -> None:
    smoke = _smoke(name, tmp_path)
    result, engine = _run(smoke, _answer(smoke))
    assert result.status == Status.OK, result.message
    # As its image starts it, then (where it batches) again with its batching on.
    services = [service for _, service in engine.served]
    assert len(services) == (1 if smoke.server.batching is None else 2)
    assert "BUILDBENCH_MAX_BATCH" not in services[0].environment
    assert all(s.environment.get("BUILDBENCH_MAX_BATCH") == "8" for s in services[1:])
    for service in services:
        assert not service.network and service.read_only and service.user == "10001:10001"
        assert service.tmpfs == dict(smoke.server.tmpfs) and "/tmp" in service.tmpfs
        assert service.pids_limit == smoke.server.pids_limit and service.memory_bytes
        assert service.environment["BUILDBENCH_MODEL"] == "/buildbench/model/m.onnx"
    served = result.of(Served)
    assert served is not None and served.answers is not None
    request, encoding = MORE[name]
    assert served.request == request and served.answers.encoding == encoding
    assert served.answers.outputs["mask"].exact and served.answers.outputs["y"].count == 4
    wrong, _ = _run(smoke, _answer(smoke, change=0.5))
    assert wrong.status == Status.SMOKE_FAILED
    assert wrong.message.startswith("the answer differs from the reference: y (max abs diff 0.5")


def test_kserve_v2_json_answers_keep_their_datatype() -> None:
    answer = {
        "outputs": [
            {"name": "y", "shape": [1, 2], "datatype": "FP32", "data": [0.5, 1.5]},
            {"name": "top", "shape": [1], "datatype": "INT64", "data": [3]},
            {"name": "mask", "shape": [2], "datatype": "BOOL", "data": [True, False]},
        ]
    }
    got = KSERVE_V2_JSON.decode(json.dumps(answer).encode(), ["y", "top", "mask"])
    assert [str(v.dtype) for v in got.values()] == ["float32", "int64", "bool"]
    with pytest.raises(ValueError, match="cannot be read"):
        bad = {"outputs": [{"name": "y", "shape": [3], "datatype": "FP32", "data": [1, 2]}]}
        KSERVE_V2_JSON.decode(json.dumps(bad).encode(), ["y"])


def test_bbserve_reads_the_hosts_base64_tensors_and_answers_what_the_host_reads() -> None:
    x = numpy.arange(6, dtype=numpy.float32).reshape(2, 3)
    ids = numpy.array([[7, 1]], dtype=numpy.int64)
    sent = BASE64_TENSORS.request(
        [Tensor("x", "float32", (2, 3), x.tobytes()), Tensor("ids", "int64", (1, 2), ids.tobytes())]
    )
    given = bbserve().from_base64(json.loads(sent.body)["inputs"])
    assert (given["x"] == x).all() and given["ids"].dtype == numpy.int64
    body = json.dumps(bbserve().to_base64(["y", "top"], [x.T, ids[:, 0]])).encode()
    found = BASE64_TENSORS.decode(body, ["y", "top"])
    assert (found["y"] == x.T).all() and found["top"].tolist() == [7]  # x.T: made C-ordered
    assert base64.b64decode(json.loads(body)["outputs"]["y"]["data"]) == x.T.copy().tobytes()


def test_mlserver_serves_one_model_on_loopback_without_metrics_or_worker_pool() -> None:
    settings = json.loads((SERVE / "mlserver" / "settings.json").read_text())
    model: dict[str, Any] = json.loads((SERVE / "mlserver" / "model-settings.json").read_text())
    assert settings["host"] == "127.0.0.1" and settings["http_port"] == server("mlserver").port
    assert settings["metrics_endpoint"] is None and settings["metrics_dir"].startswith("/tmp/")
    assert settings["parallel_workers"] == 0  # a pool shares tensors through /dev/shm
    assert server("mlserver").path == f"/v2/models/{model['name']}/infer"
    assert model["implementation"] == "runtime.OnnxModel"
    assert "class OnnxModel(MLModel)" in (SERVE / "mlserver" / "runtime.py").read_text()


@pytest.mark.parametrize("name", sorted(MORE))
def test_each_refuses_a_model_without_an_onnx_form_before_any_build(
    name: str, tmp_path: Path
) -> None:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated
        torch.jit.trace(torch.nn.Linear(4, 2).eval(), (torch.randn(1, 4),)).save(
            str(tmp_path / "m.ts")
        )
    model = ModelRequest(str(tmp_path / "m.ts"), ("input=1x4",))
    with pytest.raises(UsageError) as raised:
        ServeSmoke(server(name), models=(model,), frameworks=("pytorch",)).check()
    assert raised.value.message.startswith(f"--server {name} cannot serve {tmp_path}/m.ts: ")
    if server(name).unavailable:  # BentoML: it cannot start here, whatever the model's forms
        assert raised.value.message.endswith(server(name).unavailable or "")
        assert raised.value.tip == f"drop --server {name}"
    else:
        assert raised.value.tip.startswith("it serves an ONNX form (")
        assert raised.value.tip.endswith(f"or drop --server {name}")
