"""The runtime seam: one registry on the host names the runtimes the CLI, a config and the
matrix offer, the in-container program names the same ones, and the program travels as a
folder that runs as it does in its volume."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from buildbench.cli import cli
from buildbench.errors import UsageError
from buildbench.measure.runtimes import DEFAULT_NAMES, NAMES, RUNTIMES
from buildbench.measure.runtimes.base import lacking_domains
from buildbench.measure.runtimes.onnx import OnnxRuntime
from buildbench.measure.smoke import artifacts, modelcache, program
from buildbench.measure.smoke.kinds.model.smoke import load_models
from buildbench.measure.smoke.modelspec import parse_spec
from buildbench.measure.smoke.options import SmokeOptions
from buildbench.run.matrix import MatrixOptions, builtin_matrix
from tests.unit.test_modelspec import tiny_onnx


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    load_models.cache_clear()


def test_host_and_program_name_the_same_runtimes() -> None:
    assert list(NAMES) == list(program.RUNTIMES)
    assert set(DEFAULT_NAMES) == {"pytorch", "onnx"}  # the course's run
    assert SmokeOptions().frameworks == DEFAULT_NAMES  # not imported there: see options.py
    for found in RUNTIMES:
        assert (Path(artifacts.__file__).parents[3] / "dockerfiles" / found.dockerfile).is_file()
        assert found.missing_variant is None or len(found.variants) == 1


def test_the_matrix_and_the_cli_read_the_registry() -> None:
    cells = builtin_matrix(MatrixOptions(frameworks=NAMES))
    assert [(c.name, c.variant) for c in cells] == [
        (r.name, v) for r in RUNTIMES for v in ("cpu", "cuda") if v in r.variants
    ]
    assert {c.dockerfile.name for c in cells} == {r.dockerfile for r in RUNTIMES}
    listed = CliRunner().invoke(cli, ["run", "--framework", "nope"])
    assert listed.exit_code == 2
    assert (
        listed.output.splitlines()[-1]
        == f"TIP: --framework takes {', '.join(NAMES)}, or all for every one"
    )


def test_the_program_runs_from_its_volume_as_a_folder(tmp_path: Path) -> None:
    """Unpacked as the engine's volume holds it: `python program.py` beside `program/`, run
    from elsewhere, in a Python that has the runtime (here the host's onnxruntime)."""
    prepared = modelcache.load(parse_spec(str(tiny_onnx(tmp_path / "m.onnx"))), frameworks=["onnx"])
    volume = tmp_path / "volume"
    with tarfile.open(fileobj=io.BytesIO(artifacts.prepare_artifacts((1, 2), [prepared]))) as tar:
        names = tar.getnames()
        tar.extractall(volume, filter="data")
    assert {"program.py", "program/cli.py", "program/runtimes/onnx.py"} <= set(names)
    assert "program/cpuload.py" in names  # the timing loops import it beside them
    command = [sys.executable, str(volume / "program.py"), "--framework=onnx"]
    ran = subprocess.run(
        [*command, f"--artifacts={volume}", "--warmup=1", "--min-runs=2", "--min-seconds=0"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    (line,) = [s for s in ran.stdout.splitlines() if s.startswith(program.RESULT_PREFIX)]
    found = json.loads(line.removeprefix(program.RESULT_PREFIX))
    assert found["parity"]["1"]["ok"] and found["parity"]["2"]["ok"]
    assert found["providers"] == ["CPUExecutionProvider"]
    assert len(found["latency"]["2"]["samples"]) == 2


def test_each_runtime_says_whether_it_can_run_a_model_and_why_not(tmp_path: Path) -> None:
    """Runtime.unable: an ONNX model has no torch form, so PyTorch says so and ONNX Runtime
    runs it; the reasons reach the model's cells (not_applicable)."""
    prepared = modelcache.load(parse_spec(str(tiny_onnx(tmp_path / "m.onnx"))), frameworks=NAMES)
    by_name = {r.name: r.unable(prepared) for r in RUNTIMES}
    assert by_name["pytorch"] == "an ONNX model has no PyTorch form"
    assert by_name["onnx"] is None
    assert prepared.operators == {"": ["Add", "Cast", "Greater", "MatMul"]}
    assert lacking_domains(prepared, [""]) is None
    assert prepared.info.not_applicable["pytorch"] == by_name["pytorch"]


def test_a_model_no_selected_runtime_can_run_is_refused_with_each_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A runtime's own reason (an operator it lacks, say) is asked of it by the model's load:
    refused before any build when no selected runtime runs the model, else its cell's reason."""
    monkeypatch.setattr(OnnxRuntime, "unable", lambda self, model: "it lacks an operator")
    path = str(tiny_onnx(tmp_path / "m.onnx"))
    with pytest.raises(UsageError, match=r"onnx: it lacks an operator") as refused:
        modelcache.load(parse_spec(path), frameworks=["onnx", "pytorch"])
    assert "pytorch: an ONNX model has no PyTorch form" in str(refused.value)
    found = modelcache.load(parse_spec(path), frameworks=["onnx", "onnx-int8"])
    assert found.info.not_applicable["onnx"] == "it lacks an operator"
    assert "onnx-int8" not in found.info.not_applicable  # quantised: it runs
