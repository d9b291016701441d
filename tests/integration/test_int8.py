"""`--framework onnx-int8` as a new user runs it: the installed console script in a fresh
directory, models nobody here wrote (a small BERT: dynamic quantisation; a small ResNet:
static, calibrated), in the ONNX Runtime image, each with an accuracy figure."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.integration.conftest import ROOT, Ran, buildbench, remove_runs

pytestmark = pytest.mark.integration

FACTORIES = ROOT / "examples" / "models" / "factories.py"


@pytest.fixture(scope="module")
def int8_run(
    base_image: str, engine: object, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Ran]:
    cwd = tmp_path_factory.mktemp("user")
    shutil.copyfile(FACTORIES, cwd / "usermodels.py")
    ran = buildbench(
        "run",
        "--framework",
        "onnx-int8",
        "--cuda",
        "cpu",
        "--model",
        "usermodels:bert",
        "--model",
        "usermodels:resnet",
        "--batch-sizes",
        "1,4",
        "--latency-seconds",
        "0.2",
        "--latency-runs",
        "5",
        "--cold-starts",
        "1",
        "--no-read-images",
        cwd=cwd,
        timeout=1200,
    )
    assert ran.results, f"no results:\n{ran.process.stdout}\n{ran.process.stderr[-3000:]}"
    yield ran
    remove_runs(engine, cwd / "results")  # type: ignore[arg-type]


def test_the_int8_cell_runs_both_models_with_an_accuracy_figure(int8_run: Ran) -> None:
    assert int8_run.process.returncode == 0, int8_run.process.stderr[-3000:]
    cells = int8_run.cells()
    assert set(cells) == {"onnx-int8/cpu"}
    cell = cells["onnx-int8/cpu"]
    assert cell["status"] == "ok" and cell["framework"] == "onnx-int8"
    assert cell["dockerfile"].endswith("onnx.dockerfile")
    smoke = cell["smoke"]  # its header, and the model kind's detail
    models = [{**s, **s["detail"]} for s in [smoke, *smoke["detail"]["more_models"]]]
    found = {s["model"]["source"]: s for s in models}
    assert set(found) == {"usermodels:bert", "usermodels:resnet"}
    for source, one in found.items():
        assert one["status"] == "ok" and not one["not_applicable"], (source, one["message"])
        assert one["providers"] == ["CPUExecutionProvider"]
        for batch in ("1", "4"):
            outputs = one["outputs"][batch].values()
            assert all(o["ok"] and o["note"].startswith("accuracy: ") for o in outputs)
            assert any(o["max_abs_diff"] > 1e-4 for o in outputs), source  # quantised
    pooled = found["usermodels:bert"]["outputs"]["4"]["pooler_output"]["note"]
    assert pooled.endswith("of 4"), pooled  # a row of scores per item: top-1 agreement
    report = next(int8_run.cwd.glob("results/*/report.md")).read_text()
    assert "| accuracy: " in report and "An int8 form (onnx-int8)" in report


def test_the_first_table_and_its_chart_show_the_int8_cell(int8_run: Ran) -> None:
    report_md = next(int8_run.cwd.glob("results/*/report.md"))
    first = report_md.read_text().split("## Runtimes against PyTorch\n\n")[1].split("\n## ")[0]
    (row,) = [line for line in first.splitlines() if line.startswith("| cpu ")]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[:2] == ["cpu", "onnx-int8"], row
    assert all(cells) and "-" not in cells, row  # every figure, or a word for why not
    assert cells[-1].startswith("ok, accuracy ") and "within tolerance" in cells[-1], row
    assert "This run has no PyTorch cell to hold the others against." in first
    chart = report_md.with_name("report-size-cold-start.png")
    assert chart.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert f"![Image size against cold start]({chart.name})" in first
