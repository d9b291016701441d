"""The user's own models through the smoke test, as a new user runs them: the installed console
script in a fresh directory, real architectures built from `transformers` configs (nothing
downloaded), both CPU images built once for all of them.

One run carries three models: a small BERT (`module:callable`: two int64 inputs, two outputs),
a small ResNet (`module:callable`), and an ONNX file with external data (written 0600, as onnx
leaves it) and a fixed batch of 2. Short latency windows keep it to a few minutes here.
"""

from __future__ import annotations

import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT, Ran, buildbench, remove_runs
from tests.unit.test_modelspec import tensor_sequence_output

pytestmark = pytest.mark.integration

FACTORIES = ROOT / "examples" / "models" / "factories.py"


def onnx_with_external_data(folder: Path) -> Path:
    """The small ResNet exported with a static batch of 2, its weights in a file beside it."""
    import sys
    import warnings

    import onnx
    import torch

    sys.path.insert(0, str(folder))
    try:
        from usermodels import resnet  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(folder))
    module, example = resnet()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module, example, dynamo=True, input_names=["pixels"])
    assert program is not None
    program.save(str(folder / "plain.onnx"))
    path = folder / "cnn.onnx"
    onnx.save_model(
        onnx.load(str(folder / "plain.onnx")),
        str(path),
        save_as_external_data=True,
        location="cnn.onnx.data",
    )
    (folder / "plain.onnx").unlink()
    (folder / "cnn.onnx.data").chmod(0o600)  # no reader but its owner, here
    return path


@pytest.fixture(scope="module")
def models_run(
    base_image: str, engine: object, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Ran]:
    cwd = tmp_path_factory.mktemp("user")
    shutil.copyfile(FACTORIES, cwd / "usermodels.py")
    onnx_file = onnx_with_external_data(cwd)
    assert stat.S_IMODE((cwd / "cnn.onnx.data").stat().st_mode) == 0o600
    ran = buildbench(
        "run",
        "--cuda",
        "cpu",
        "--model",
        "usermodels:bert",
        "--model",
        "usermodels:resnet",
        "--model",
        onnx_file.name,
        "--batch-sizes",
        "1,4",
        "--latency-seconds",
        "0.2",
        "--latency-runs",
        "5",
        "--cold-starts",
        "2",
        "--ort-settings",
        "disabled,offline",
        "--threads",
        "1",
        "--no-read-images",
        cwd=cwd,
        timeout=1200,
    )
    assert ran.results, f"no results:\n{ran.process.stdout}\n{ran.process.stderr[-3000:]}"
    yield ran
    remove_runs(engine, cwd / "results")  # type: ignore[arg-type]


def smokes(ran: Ran, cell: str) -> dict[str, dict]:
    """Each model's smoke result in a cell, its header and its model detail in one, by the
    model's source."""
    smoke = ran.cells()[cell]["smoke"]
    found = [{**s, **s["detail"]} for s in [smoke, *smoke["detail"]["more_models"]]]
    return {s["model"]["source"]: s for s in found}


def test_every_model_runs_in_both_images(models_run: Ran) -> None:
    assert models_run.process.returncode == 0, models_run.process.stderr[-3000:]
    for cell in ("pytorch/cpu", "onnx/cpu"):
        assert models_run.cells()[cell]["status"] == "ok"
        assert set(smokes(models_run, cell)) == {
            "usermodels:bert",
            "usermodels:resnet",
            "cnn.onnx",
        }


def test_every_models_parity_is_recorded_and_labelled_in_the_report(models_run: Ran) -> None:
    """Each model's parity summary in results.json (not only the first one's), and a row per
    model, named, in the report's smoke table."""
    for cell in ("pytorch/cpu", "onnx/cpu"):
        for source, smoke in smokes(models_run, cell).items():
            if smoke["not_applicable"]:
                assert smoke["parity_summary"] is None, source
            else:
                assert smoke["parity_summary"]["ok"] is True, source
    report = next(models_run.cwd.glob("results/*/report.md")).read_text()
    table = report.split("## Smoke tests")[1].split("\n\n")[1].splitlines()
    assert [c.strip() for c in table[0].split("|")[1:5]] == ["cell", "model", "smoke", "parity"]
    rows = {tuple(c.strip() for c in line.split("|")[1:3]): line for line in table[2:]}
    for cell in ("pytorch/cpu", "onnx/cpu"):
        for source in ("usermodels:bert", "usermodels:resnet", "cnn.onnx"):
            assert (cell, f"`{source}`") in rows, (cell, source, table)
    assert "| ok, max abs diff" in rows[("onnx/cpu", "`cnn.onnx`")]
    assert "not applicable" in rows[("pytorch/cpu", "`cnn.onnx`")]


def test_a_bert_has_parity_for_both_outputs_and_its_inputs_recorded(models_run: Ran) -> None:
    for cell in ("pytorch/cpu", "onnx/cpu"):
        bert = smokes(models_run, cell)["usermodels:bert"]
        assert bert["status"] == "ok", bert["message"]
        model = bert["model"]
        assert [(t["name"], t["dtype"]) for t in model["inputs"]] == [
            ("input_ids", "int64"),
            ("attention_mask", "int64"),
        ]
        assert model["opset"] and model["producer"].startswith("pytorch")
        assert len(model["sha256"]) == 64
        for batch in ("1", "4"):
            outputs = bert["outputs"][batch]
            assert set(outputs) == {"last_hidden_state", "pooler_output"}
            assert all(o["ok"] and not o["exact"] for o in outputs.values())
        assert set(bert["latency"]) == {"1", "4"}


def test_runtime_settings_are_timed_in_the_same_container(models_run: Ran) -> None:
    onnx_bert = smokes(models_run, "onnx/cpu")["usermodels:bert"]
    settings = {s["label"]: s for s in onnx_bert["settings"]}
    assert set(settings) == {"all", "disabled", "all offline", "all threads=1"}
    online, offline = settings["all"], settings["all offline"]
    assert online["nodes_after"] < online["nodes_before"]
    assert offline["nodes_after"] == online["nodes_after"]
    assert settings["disabled"]["nodes_after"] == settings["disabled"]["nodes_before"]
    assert all(s["load_seconds"] > 0 and set(s["latency"]) == {"1", "4"} for s in settings.values())
    torch_bert = smokes(models_run, "pytorch/cpu")["usermodels:bert"]
    # Its module imports transformers, which the image lacks: the headline is the export.
    assert [s["label"] for s in torch_bert["settings"]] == ["export", "export threads=1"]
    assert torch_bert["settings"][1]["threads"] == 1


def test_an_onnx_file_with_external_data_and_a_fixed_batch(models_run: Ran) -> None:
    onnx_cnn = smokes(models_run, "onnx/cpu")["cnn.onnx"]
    assert onnx_cnn["status"] == "ok", onnx_cnn["message"]
    assert onnx_cnn["model"]["fixed_batch"] == 2
    assert set(onnx_cnn["latency"]) == {"2"}  # its own batch, whatever --batch-sizes says
    assert all(o["ok"] for o in onnx_cnn["outputs"]["2"].values())
    # The PyTorch cell has no form of an ONNX file: not applicable, never a failure.
    torch_cnn = smokes(models_run, "pytorch/cpu")["cnn.onnx"]
    assert torch_cnn["status"] == "ok"
    assert torch_cnn["not_applicable"] == "an ONNX model has no PyTorch form"
    report = next(models_run.cwd.glob("results/*/report.md")).read_text()
    assert "## Models" in report and "Fixed batch 2" in report
    assert "pytorch: not applicable (an ONNX model has no PyTorch form)" in report


def test_a_factory_runs_in_both_images_with_a_dynamic_batch(models_run: Ran) -> None:
    for cell in ("pytorch/cpu", "onnx/cpu"):
        cnn = smokes(models_run, cell)["usermodels:resnet"]
        assert cnn["status"] == "ok", cnn["message"]
        assert cnn["model"]["inputs"][0]["shape"] == ["batch", 3, 64, 64]
        assert set(cnn["latency"]) == {"1", "4"}
        assert len(cnn["cold_start_seconds"]) == 2


@pytest.mark.parametrize(
    ("args", "first_line"),
    [
        (["--model", "missing.onnx"], "ERROR: --model missing.onnx: no such file"),
        (
            ["--model", "nosuchpackage.models:make"],
            "ERROR: --model nosuchpackage.models:make: module nosuchpackage.models does not import",
        ),
        (
            ["--model", "usermodels:bert", "--input", "pixels=1x3x64x64"],
            "ERROR: --input pixels: no model has an input of that name",
        ),
    ],
)
def test_a_bad_model_is_refused_before_any_build(
    args: list[str], first_line: str, tmp_path: Path
) -> None:
    shutil.copyfile(FACTORIES, tmp_path / "usermodels.py")
    ran = buildbench("run", "--cuda", "cpu", *args, cwd=tmp_path, timeout=300)
    lines = ran.process.stderr.splitlines()
    assert ran.process.returncode == 2, ran.process.stderr
    assert lines[0].startswith(first_line), lines
    assert lines[1].startswith("TIP: ")
    assert not (tmp_path / "results").exists()  # refused before the run began


@pytest.mark.parametrize(
    ("args", "first_line"),
    [
        (["--model", "seq.onnx"], "ERROR: --model seq.onnx: output 0 is a sequence of ndarray"),
        (
            ["--model", "usermodels:bert", "--input", "input_ids=:float32"],
            "ERROR: --input input_ids: dtype float32 given, but usermodels:bert declares int64",
        ),
    ],
)
def test_a_model_refused_when_its_references_are_made_leaves_no_run(
    args: list[str], first_line: str, base_image: str, tmp_path: Path
) -> None:
    """Models that load but cannot be prepared (an output with no stored form, an input's
    dtype other than the declared one): refused before the run begins, so no run folder
    that `report` would call interrupted and `history` would count."""
    shutil.copyfile(FACTORIES, tmp_path / "usermodels.py")
    tensor_sequence_output(tmp_path / "seq.onnx")
    ran = buildbench("run", "--cuda", "cpu", *args, cwd=tmp_path, timeout=300)
    lines = ran.process.stderr.splitlines()
    assert ran.process.returncode == 2, ran.process.stderr
    assert lines[0] == first_line, lines
    assert lines[1].startswith("TIP: ")
    assert not (tmp_path / "results").exists()
    history = buildbench("history", cwd=tmp_path, timeout=60)  # nothing to count
    assert history.process.returncode == 2
    assert history.process.stderr.startswith("ERROR: no results file at results")
