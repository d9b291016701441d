"""PyTorch's forms as its settings axis (`--torch-forms`): the host ships a factory's eager code
and state dict and its TorchScript beside the export; the program loads each form and falls
back from eager, saying why, only where buildbench chose it; each other form's start-up is timed
in its own fresh containers; the report puts the forms side by side."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from buildbench.cli import cli
from buildbench.engine.api import ContainerSpec
from buildbench.errors import UsageError
from buildbench.measure.smoke import artifacts, modelcache, program
from buildbench.measure.smoke.kinds.model.config import ModelConfig
from buildbench.measure.smoke.kinds.model.smoke import load_models, runtime_settings
from buildbench.measure.smoke.modelspec import parse_spec
from buildbench.measure.smoke.options import SmokeOptions
from buildbench.record import ModelDetail, RuntimeSetting, Startup, model_of
from buildbench.render.torchforms import forms_table
from buildbench.run.matrix import Cell
from buildbench.status import Status
from tests.fakes import FakeEngine
from tests.unit.test_smoke import _context, _kind, outcome, report

# Two inputs taken by name (a dict of example inputs), two outputs: the eager form must call
# the module as the factory's example does.
FACTORY = """import torch
class Two(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 3)
    def forward(self, x, ids):
        return {'scores': self.linear(x), 'top': ids.argmax(dim=1)}
def make():
    return Two(), {'x': torch.randn(1, 4), 'ids': torch.randint(0, 5, (1, 6))}
"""
PYTORCH = Cell(
    "pytorch", "cpu", Path("d"), Path("."), framework="pytorch", smoke=ModelConfig("pytorch")
)
ONNX = Cell("onnx", "cpu", Path("d"), Path("."), framework="onnx", smoke=ModelConfig("onnx"))


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    load_models.cache_clear()


@pytest.fixture
def volume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A factory's model unpacked as the engine's volume holds it."""
    (tmp_path / "twofactory.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    prepared = modelcache.load(parse_spec("twofactory:make"), frameworks=["pytorch"])
    assert {"eager", "torchscript"} <= set(prepared.forms)
    found = tmp_path / "volume"
    with tarfile.open(fileobj=io.BytesIO(artifacts.prepare_artifacts((1, 2), [prepared]))) as tar:
        tar.extractall(found, filter="data")
    return found


def run_program(volume: Path, settings: list[dict[str, Any]], mode: str = "full") -> dict:
    ran = subprocess.run(
        [
            sys.executable,
            str(volume / "program.py"),
            "--framework=pytorch",
            f"--mode={mode}",
            f"--artifacts={volume}",
            "--warmup=1",
            "--min-runs=2",
            "--min-seconds=0",
            f"--settings={json.dumps(settings)}",
        ],
        capture_output=True,
        text=True,
        cwd=volume.parent,
        check=False,
    )
    (line,) = [s for s in ran.stdout.splitlines() if s.startswith(program.RESULT_PREFIX)]
    return json.loads(line.removeprefix(program.RESULT_PREFIX))


def test_each_form_loads_in_the_program_with_parity_and_eager_is_the_headline(
    volume: Path,
) -> None:
    found = run_program(
        volume,
        [program.DEFAULT_SETTING, {"form": "torchscript"}, {"form": "export"}],
    )
    assert "error" not in found, found.get("error")
    forms = [(s["setting"]["form"], s["label"]) for s in found["settings"]]
    assert forms == [("eager", "eager"), ("torchscript", "torchscript"), ("export", "export")]
    for setting in found["settings"]:
        assert setting.get("error") is None and setting["parity"]["ok"], setting
        assert setting["latency"]["2"]["samples"]


def test_the_headline_falls_back_from_eager_saying_why_but_a_named_form_does_not(
    volume: Path,
) -> None:
    code = volume / "model" / "eager.py"
    code.write_text("import module_the_image_lacks\n" + code.read_text())
    found = run_program(volume, [program.DEFAULT_SETTING, {"form": "eager"}])
    headline, named = found["settings"]
    assert headline["setting"]["form"] == "export" and headline["parity"]["ok"]
    assert "eager: the model's module does not import here (ModuleNotFoundError" in headline["note"]
    assert named["setting"]["form"] == "eager" and "module_the_image_lacks" in named["error"]
    alone = run_program(volume, [{"form": "eager"}], mode="startup")  # a form's own start-up
    assert "module_the_image_lacks" in alone["error"]


def test_a_model_without_a_form_says_so_in_that_setting(volume: Path) -> None:
    meta = json.loads((volume / "meta.json").read_text())
    (volume / "meta.json").write_text(json.dumps({**meta, "torchscript": None}))
    found = run_program(volume, [program.DEFAULT_SETTING, {"form": "torchscript"}])
    assert "no torchscript form of this model" in found["settings"][1]["error"]


def test_forms_go_to_the_pytorch_cells_only_and_an_unknown_one_is_refused() -> None:
    pytorch = _kind(PYTORCH, torch_forms=("eager", "export"))
    assert [s.get("form") for s in pytorch.settings_axis()] == [None, "eager", "export"]
    assert _kind(ONNX, torch_forms=("eager", "export")).settings_axis() == [program.DEFAULT_SETTING]
    with pytest.raises(UsageError, match="--torch-forms onnx: not a PyTorch form"):
        runtime_settings(forms=["onnx"])


def test_an_unknown_form_is_one_line_before_any_engine(tmp_path: Path) -> None:
    os.chdir(tmp_path)
    result = CliRunner().invoke(
        cli,
        ["run", "--cuda", "cpu", "--torch-forms", "eager,jit"],
        prog_name="buildbench",
        env={"DOCKER_HOST": "unix:///nonexistent.sock"},  # never reached
    )
    assert result.exit_code == 2
    assert result.output.splitlines()[0] == "ERROR: --torch-forms jit: not a PyTorch form"


def _setting(form: str, **kw: Any) -> dict[str, Any]:
    return {
        "label": form,
        "setting": {"threads": None, "form": form},
        "latency": {"1": {"samples": [0.01], "seconds": 0.1, "warmup": 1}},
        "parity": {"max_abs_diff": 0.0, "max_rel_diff": 0.0, "ok": True},
        **kw,
    }


@pytest.mark.parametrize("cold_starts", [1, 2])  # one: the default of quick runs too
def test_each_other_form_starts_in_its_own_fresh_containers(cold_starts: int) -> None:
    def result(image: str, spec: ContainerSpec) -> Any:
        if "--mode=full" in spec.command:
            forms = ("eager", "eager", "torchscript", "export")  # the headline, then as named
            found = report(settings=[_setting(form) for form in forms])
            return outcome(found)
        return outcome({**report(), "parity": {}, "latency": {}, "import_seconds": 3.0})

    engine = FakeEngine(run_result=result)
    forms = ("eager", "torchscript", "export")
    options = SmokeOptions(cold_starts=cold_starts, torch_forms=forms)
    smoke = _kind(PYTORCH, cold_starts=cold_starts, torch_forms=forms).run(
        _context(engine, options)
    )
    assert smoke.status == Status.OK, smoke.message
    commands = [spec.command for _, spec in engine.runs]
    assert len(commands) == 3 * cold_starts  # the headline's cold starts, then each other form's
    asked = [
        json.loads(a.removeprefix("--settings="))
        for c in commands[cold_starts:]
        for a in c
        if a.startswith("--settings=")
    ]
    assert [s[0]["form"] for s in asked] == ["torchscript"] * cold_starts + ["export"] * cold_starts
    assert all("--mode=startup" in c for c in commands[1:])
    settings = model_of(smoke).settings
    assert [s.setting["form"] for s in settings] == ["eager", "torchscript", "export"]
    assert [len(s.startup) for s in settings] == [cold_starts] * 3
    assert settings[1].startup[0].framework_import == 3.0


def test_the_report_puts_the_forms_side_by_side() -> None:
    def timed(form: str, seconds: float) -> RuntimeSetting:
        return RuntimeSetting(
            label=form,
            setting={"threads": None, "form": form},
            startup=[Startup(0.5, seconds, 0.25, 0.25)],
        )

    smoke = ModelDetail(settings=[timed("eager", 2.0), timed("export", 5.0)])
    table = forms_table([("pytorch-cpu", smoke)])
    lines = table.splitlines()
    assert any("eager (headline)" in line and "| 3.0 s " in line for line in lines), table
    assert any("| export " in line and "| 6.0 s " in line for line in lines), table
    assert forms_table([("pytorch-cpu", ModelDetail(settings=[timed("eager", 2.0)]))]) == ""
