"""The serving frameworks' seam (`--server`): one registry the CLI and the matrix read, the
cells it adds on the http kind, the request each server is sent, and its answer checked value
by value against the host's reference outputs; bad input refused before any build."""

from __future__ import annotations

import base64
import io
import json
import tarfile
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy
import pytest
from click.testing import CliRunner

from buildbench.cli import cli
from buildbench.engine.api import ContainerOutcome
from buildbench.engine.dockerfile import declared_args
from buildbench.errors import UsageError
from buildbench.measure.runtimes import NAMES as RUNTIME_NAMES
from buildbench.measure.servers import NAMES, SERVERS, server, server_names
from buildbench.measure.servers.base import ServerBatching, Tensor
from buildbench.measure.servers.encodings import BASE64_TENSORS, KSERVE_V2_JSON
from buildbench.measure.servers.smoke import ServeConfig, ServeSmoke
from buildbench.measure.smoke.kinds.http import loadgen
from buildbench.measure.smoke.kinds.model.smoke import load_models
from buildbench.measure.smoke.options import ModelRequest, SmokeOptions
from buildbench.measure.smoke.runner import MOUNT, SmokeContext
from buildbench.record import Batching, Served, make_converter, to_json
from buildbench.run.config import load_matrix
from buildbench.run.matrix import MatrixOptions, dockerfiles_dir
from buildbench.status import Status
from tests.fakes import FakeEngine
from tests.unit.test_modelspec import tiny_onnx

FASTAPI = server("fastapi")
# The baseline's image and encoding, as if it batched (Triton's are binary).
BATCHER = replace(FASTAPI, name="batcher", batching=ServerBatching())


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    load_models.cache_clear()


@pytest.fixture
def tiny(tmp_path: Path) -> ServeSmoke:
    """fastapi serving the tiny model (two inputs; a float and a boolean output)."""
    model = ModelRequest(str(tiny_onnx(tmp_path / "m.onnx")))
    return ServeSmoke(FASTAPI, models=(model,), concurrency=(1, 2), seconds=1.0)


def test_every_server_is_one_registered_module_with_its_dockerfile() -> None:
    assert NAMES[:2] == ("fastapi", "litserve")  # the baseline first
    assert not set(NAMES) & set(RUNTIME_NAMES)  # a cell's name says which it is
    for found in SERVERS:
        text = (dockerfiles_dir() / found.dockerfile).read_text()
        assert found.dockerfile == f"serve-{found.name}.dockerfile"
        assert {"CUDA", "BASE_IMAGE"} <= set(declared_args(text))
        assert found.ready.startswith("/") and found.path.startswith("/")
        assert "/tmp" in found.tmpfs and found.requirements("cpu")


def test_server_names_take_all_and_refuse_an_unknown_one() -> None:
    assert server_names(("all",)) == NAMES
    assert server_names(("fastapi", "fastapi")) == ("fastapi",)
    with pytest.raises(UsageError) as raised:
        server_names(("fastapi", "tgi"))
    assert raised.value.message == "--server tgi: no such server"
    assert raised.value.tip == f"servers: {', '.join(NAMES)}, or all"


def test_server_cells_join_the_matrix_on_the_http_kind(tmp_path: Path) -> None:
    _, cells = load_matrix(MatrixOptions(frameworks=(), servers=("fastapi",)), directory=tmp_path)
    assert [c.key for c in cells] == ["fastapi/cpu", "fastapi/cuda"]
    cpu, cuda = cells
    assert cpu.dockerfile.name == "serve-fastapi.dockerfile" and cpu.build_inputs
    assert (cpu.build_args["CUDA"], cuda.build_args["CUDA"]) == ("", "true")
    assert cpu.smoke == ServeConfig(FASTAPI, chosen=True)
    assert "onnxruntime" in cpu.requirements and "onnxruntime-gpu[cuda,cudnn]" in cuda.requirements
    _, both = load_matrix(
        MatrixOptions(frameworks=("onnx",), servers=("all",), variants=("cpu",)),
        directory=tmp_path,
    )
    assert [c.key for c in both] == ["onnx/cpu", *(f"{n}/cpu" for n in NAMES)]
    assert both[1].smoke == ServeConfig(FASTAPI, chosen=False)  # reached by `all` only


def test_the_cli_refuses_an_unknown_server_in_one_line_with_a_tip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    ran = CliRunner().invoke(cli, ["run", "--server", "tgi", "--cuda", "cpu"])
    listed = CliRunner().invoke(cli, ["list", "--server", "fastapi", "--cuda", "cpu"])
    bad = CliRunner().invoke(cli, ["run", "--server", "fastapi", "--serve-concurrency", "4,1"])
    assert ran.exit_code == 2 and "Traceback" not in ran.output
    assert "ERROR: --server tgi: no such server" in ran.output
    assert f"TIP: servers: {', '.join(NAMES)}, or all" in ran.output
    assert listed.exit_code == 0, listed.output
    assert "fastapi/cpu" in listed.output and "onnx/cpu" not in listed.output
    assert "serves the model with fastapi (JSON, tensors as base64)" in listed.output
    assert bad.exit_code == 2 and "give increasing whole numbers from 1 to 128" in bad.output


def test_a_named_server_that_cannot_serve_the_model_is_refused_before_any_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A TorchScript file has no ONNX form: `--server fastapi` refuses it; reached by `all`,
    the cell is not built, with the reason."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated
        torch.jit.trace(torch.nn.Linear(4, 2).eval(), (torch.randn(1, 4),)).save(
            str(tmp_path / "m.ts")
        )
    model = ModelRequest(str(tmp_path / "m.ts"), ("input=1x4",))
    with pytest.raises(UsageError) as raised:
        ServeSmoke(FASTAPI, models=(model,), frameworks=("pytorch",)).check()
    assert raised.value.message.startswith(f"--server fastapi cannot serve {tmp_path}/m.ts: ")
    assert "TorchScript file is not exported to ONNX" in raised.value.message
    assert raised.value.tip.startswith("it serves an ONNX form")
    reached = ServeSmoke(FASTAPI, chosen=False, models=(model,), frameworks=("pytorch",))
    reached.check()  # not refused: its cell is not applicable instead
    idle = reached.idle()
    assert idle is not None and idle.what == "fastapi cannot serve it"
    assert "TorchScript file is not exported to ONNX" in idle.reasons[str(tmp_path / "m.ts")]

    monkeypatch.chdir(tmp_path)
    given = ["--model", str(tmp_path / "m.ts"), "--input", "input=1x4"]
    engine = ["--engine", "unix:///nonexistent.sock"]
    ran = CliRunner().invoke(cli, ["run", "--server", "fastapi", "--cuda", "cpu", *given, *engine])
    assert not Path("results").exists()  # refused before any engine was asked
    assert ran.exit_code == 2, ran.output
    assert "ERROR: --server fastapi cannot serve" in ran.output and "TIP: " in ran.output


def test_a_classifier_with_string_labels_is_not_served_saying_why(tmp_path: Path) -> None:
    """skl2onnx's labels (a string tensor) and ZipMap (a sequence of maps) are no tensors a
    server's encoding carries: named by --server, refused; by `all`, not applicable."""
    from tests.unit.test_classical import forest_with_string_labels

    model = ModelRequest(str(forest_with_string_labels(tmp_path / "forest.onnx")))
    with pytest.raises(UsageError) as raised:
        ServeSmoke(FASTAPI, models=(model,), frameworks=("onnx",)).check()
    assert raised.value.message == (
        f"--server fastapi cannot serve {model.spec}: an output is a string tensor, which "
        "JSON, tensors as base64 does not carry"
    )
    idle = ServeSmoke(FASTAPI, chosen=False, models=(model,), frameworks=("onnx",)).idle()
    assert idle is not None and "a string tensor" in idle.reasons[model.spec]


def test_base64_tensors_round_trip_and_say_what_cannot_be_read() -> None:
    x = numpy.arange(6, dtype=numpy.float32).reshape(2, 3)
    request = BASE64_TENSORS.request([Tensor("x", "float32", (2, 3), x.tobytes())])
    sent = json.loads(request.body)["inputs"]["x"]
    assert (sent["dtype"], sent["shape"]) == ("float32", [2, 3])
    assert request.headers == {"Content-Type": "application/json"}
    answer = {"outputs": {"y": {**sent}}}
    (got,) = BASE64_TENSORS.decode(json.dumps(answer).encode(), ["y"]).values()
    assert got.dtype == numpy.float32 and (got == x).all()
    with pytest.raises(ValueError, match="lacks output z"):
        BASE64_TENSORS.decode(json.dumps(answer).encode(), ["z"])
    with pytest.raises(ValueError, match="not JSON"):
        BASE64_TENSORS.decode(b"<html>", ["y"])


def test_kserve_v2_json_sends_flat_values_and_reads_outputs_by_name() -> None:
    ids = numpy.array([[1, 2]], dtype=numpy.int64)
    sent = json.loads(KSERVE_V2_JSON.request([Tensor("ids", "int64", (1, 2), ids.tobytes())]).body)
    assert sent == {
        "inputs": [{"name": "ids", "shape": [1, 2], "datatype": "INT64", "data": [1, 2]}]
    }
    answer = {"outputs": [{"name": "y", "shape": [1, 2], "datatype": "FP32", "data": [0.5, 1.5]}]}
    got = KSERVE_V2_JSON.decode(json.dumps(answer).encode(), ["y"])
    assert got["y"].tolist() == [[0.5, 1.5]]


def _answer(smoke: ServeSmoke, change: dict[str, Any] | None = None) -> bytes:
    """What a server answers: the host's own reference outputs, some changed."""
    folder, described = smoke.data
    outputs = {}
    for i, (name, ref) in enumerate(zip(smoke.outputs(), described["references"], strict=True)):
        value = numpy.fromfile(folder / f"reference-{i}.bin", dtype=ref["dtype"])
        value = (change or {}).get(name, lambda v: v)(value.reshape(ref["shape"]))
        outputs[name] = {
            "dtype": str(value.dtype),
            "shape": list(value.shape),
            "data": base64.b64encode(value.tobytes()).decode(),
        }
    return json.dumps({"outputs": outputs}).encode()


def _run(
    smoke: ServeSmoke, answer: bytes, first: dict[str, Any] | None = None
) -> tuple[Any, FakeEngine]:
    if first is None:
        first = {"ok": True, "status": 200, "epoch": 2.1, "seconds": 0.1}
        first |= {"answer_bytes": len(answer), "answer": base64.b64encode(answer).decode()}
    report = {
        "ready": {"ready": True, "epoch": 2.0, "attempts": 3},
        "first_response": first,
        "levels": [],
    }
    stdout = loadgen.RESULT_PREFIX + json.dumps(report) + "\n"
    engine = FakeEngine(run_result=lambda image, spec: ContainerOutcome(0, stdout, ""))
    engine.add_image("serve:1", user="10001:10001")
    ctx = SmokeContext(engine, "serve:1", SmokeOptions(), {"l": "1"}, gpus=False, volume="vol")
    return smoke.run(ctx), engine


def test_a_server_is_run_locked_down_with_the_model_mounted_and_its_answer_proven(
    tiny: ServeSmoke,
) -> None:
    result, engine = _run(tiny, _answer(tiny))
    assert result.status == Status.OK, result.message
    ((image, service),) = engine.served
    assert image == "serve:1" and service.user == "10001:10001" and service.command == []
    assert not service.network and service.read_only and service.tmpfs == FASTAPI.tmpfs
    ((mount),) = service.volumes
    assert (mount.volume, mount.target, mount.read_only) == ("vol", MOUNT, True)
    assert service.environment["BUILDBENCH_MODEL"] == "/buildbench/model/m.onnx"
    served = result.of(Served)
    assert served is not None and served.answers is not None
    answers = served.answers
    assert (answers.server, answers.encoding) == ("fastapi", "JSON, tensors as base64")
    assert answers.request_bytes == len(tiny.http.body or b"") > 0 and answers.ok
    assert list(answers.outputs) == ["y", "mask"]
    assert answers.outputs["mask"].exact and answers.outputs["y"].count == 4
    assert served.request == "POST /predict on port 8000"
    # results.json keeps it, and reads it back
    again = make_converter().structure(to_json(served), Served)
    assert again.answers == answers


def test_a_200_with_wrong_numbers_fails_naming_the_output(tiny: ServeSmoke) -> None:
    result, _ = _run(tiny, _answer(tiny, {"y": lambda v: v + 0.5}))
    assert result.status == Status.SMOKE_FAILED
    assert (
        result.message
        == "the answer differs from the reference: y (max abs diff 0.5, 4 of 4 values)"
    )
    flipped, _ = _run(tiny, _answer(tiny, {"mask": lambda v: ~v}))
    assert flipped.status == Status.SMOKE_FAILED and ": mask (" in flipped.message
    shaped, _ = _run(tiny, _answer(tiny, {"y": lambda v: v.reshape(-1)}))
    assert (
        shaped.message == "the answer differs from the reference: y (shape [4], reference [1, 4])"
    )
    refused, _ = _run(tiny, b"", first={"ok": False, "status": 500, "kind": "status"})
    assert refused.status == Status.SMOKE_FAILED and refused.message.startswith("POST /predict")
    answers = refused.of(Served).answers  # type: ignore[union-attr]
    assert answers is not None and answers.note == "no good answer"  # in the serving table
    garbled, _ = _run(tiny, b'{"result": 1}')
    assert garbled.status == Status.SMOKE_FAILED
    assert garbled.message == 'the answer cannot be decoded: the answer has no "outputs" object'


def test_the_payload_holds_the_model_the_request_and_the_load_generator(tiny: ServeSmoke) -> None:
    payload = tiny.payload()
    with tarfile.open(fileobj=io.BytesIO(payload.make())) as tar:
        members = {m.name: m for m in tar.getmembers()}
        spec = json.loads(tar.extractfile("spec.json").read())  # type: ignore[union-attr]
        meta = json.loads(tar.extractfile("serve.json").read())  # type: ignore[union-attr]
        body = tar.extractfile("body").read()  # type: ignore[union-attr]
    assert set(members) == {
        "model",
        "model/m.onnx",
        "loadgen.py",
        "spec.json",
        "body",
        "serve.json",
    }
    assert all(m.mode & 0o444 == 0o444 for m in members.values())  # read by a non-root user
    assert spec["keep_answer"] and spec["method"] == "POST" and spec["concurrency"] == [1, 2]
    assert body == tiny.http.body and set(json.loads(body)["inputs"]) == {"ids", "x"}
    assert meta["model"] == "/buildbench/model/m.onnx"
    assert [o["name"] for o in meta["outputs"]] == ["y", "mask"]
    assert payload.key == tiny.payload().key  # the same files: the same volume


def test_a_server_that_batches_runs_again_with_its_batching_on(tiny: ServeSmoke) -> None:
    """A server that batches: a second container of the same image, its batching on through
    the environment, measured and proven alike; the setting recorded."""
    batching = replace(tiny, server=BATCHER)
    result, engine = _run(batching, _answer(batching))
    assert result.status == Status.OK, result.message
    (_, off), (image, on) = engine.served
    assert image == "serve:1" and on.command == off.command == []
    assert "BUILDBENCH_MAX_BATCH" not in off.environment
    assert on.environment["BUILDBENCH_MAX_BATCH"] == "8"
    assert on.environment["BUILDBENCH_MAX_DELAY_MS"] == "5"
    assert not on.network and on.read_only and on.volumes == off.volumes
    served = result.of(Served)
    assert served is not None and served.batched is not None
    assert served.batching == Batching(False, "batcher")
    assert served.batched.batching == Batching(True, "batcher", 8, 5.0)
    assert served.batched.answers is not None and served.batched.answers.ok
    assert served.batched.batched is None
    assert make_converter().structure(to_json(served), Served) == served


def test_a_server_without_batching_or_a_model_of_fixed_batch_runs_once_saying_why(
    tiny: ServeSmoke, tmp_path: Path
) -> None:
    result, engine = _run(tiny, _answer(tiny))
    assert result.status == Status.OK and len(engine.served) == 1
    served = result.of(Served)
    assert served is not None and served.batched is None and served.batching is not None
    assert served.batching.unavailable == FASTAPI.no_batching
    assert "FastAPI has no server-side batching" in FASTAPI.no_batching
    fixed = ServeSmoke(
        BATCHER,
        models=(ModelRequest(str(tiny_onnx(tmp_path / "f.onnx", batch=1))),),
        concurrency=(1,),
        seconds=1.0,
    )
    result, engine = _run(fixed, _answer(fixed))
    assert result.status == Status.OK and len(engine.served) == 1
    found = result.of(Served)
    assert found is not None and found.batching is not None
    assert found.batching.unavailable == "the model's batch is fixed at 1: requests cannot stack"


def test_a_server_that_fails_with_its_batching_on_fails_its_cell_saying_so(
    tiny: ServeSmoke,
) -> None:
    batching = replace(tiny, server=BATCHER)
    answer = _answer(batching)
    good = {"ok": True, "status": 200, "epoch": 2.1, "seconds": 0.1}
    good |= {"answer_bytes": len(answer), "answer": base64.b64encode(answer).decode()}
    bad = {"ok": False, "status": 500, "kind": "status", "body_start": "stack error"}
    engine = FakeEngine(
        run_result=lambda image, spec: ContainerOutcome(
            0,
            loadgen.RESULT_PREFIX
            + json.dumps(
                {
                    "ready": {"ready": True, "epoch": 2.0},
                    "first_response": good if len(engine.served) == 1 else bad,
                    "levels": [],
                }
            )
            + "\n",
            "",
        )
    )
    engine.add_image("serve:1", user="10001:10001")
    ctx = SmokeContext(engine, "serve:1", SmokeOptions(), {"l": "1"}, gpus=False, volume="vol")
    result = batching.run(ctx)
    assert result.status == Status.SMOKE_FAILED
    assert result.message == (
        "with batching on (max batch 8, max delay 5 ms): POST /predict answered status 500, "
        "not 200: 'stack error'"
    )
    served = result.of(Served)
    assert served is not None and served.answers is not None and served.answers.ok
    assert served.batched is not None and served.batched.answers is not None
    assert served.batched.answers.note == "no good answer"


def test_a_batcher_that_reshapes_one_value_rows_is_not_applicable_to_them(
    tiny: ServeSmoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Triton's batcher answers a [batch] output as [batch, 1]: not the model's shape."""
    strict = replace(tiny, server=replace(BATCHER, batches_scalar_rows=False))
    assert strict.unbatchable() is None  # every input and output has a dim past the batch
    meta = strict.meta()
    meta["outputs"][1]["shape"] = [1]
    monkeypatch.setattr(ServeSmoke, "meta", lambda self: meta)
    assert strict.unbatchable() == (
        "mask is one value a row: batcher's batching would answer it with another shape "
        "([batch, 1])"
    )
    assert replace(tiny, server=BATCHER).unbatchable() is None
