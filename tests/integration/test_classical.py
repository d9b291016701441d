"""Classical models as a new user runs them: the installed console script in a fresh directory,
real scikit-learn classifiers exported as the course shows (skl2onnx, ZipMap on), in the ONNX
Runtime image with parity per output. One run, two models: a RandomForest on string labels
(an .onnx file) and a factory returning a fitted LogisticRegression (int64 labels, converted
here). The PyTorch cell runs neither: it is not built, and says why."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.conftest import Ran, buildbench, remove_runs
from tests.unit.test_classical import FACTORY, forest_with_string_labels

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def classical_run(
    base_image: str, engine: object, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Ran]:
    cwd = tmp_path_factory.mktemp("user")
    forest_with_string_labels(cwd / "forest.onnx")
    (cwd / "classifiers.py").write_text(FACTORY)
    ran = buildbench(
        "run",
        "--cuda",
        "cpu",
        "--model",
        "forest.onnx",
        "--model",
        "classifiers:make",
        "--batch-sizes",
        "1,8",
        "--latency-seconds",
        "0.2",
        "--latency-runs",
        "5",
        "--cold-starts",
        "1",
        "--no-read-images",
        cwd=cwd,
        timeout=900,
    )
    assert ran.results, f"no results:\n{ran.process.stdout}\n{ran.process.stderr[-3000:]}"
    yield ran
    remove_runs(engine, cwd / "results")  # type: ignore[arg-type]


def smokes(ran: Ran) -> dict[str, dict]:
    smoke = ran.cells()["onnx/cpu"]["smoke"]
    found = [{**s, **s["detail"]} for s in [smoke, *smoke["detail"]["more_models"]]]
    return {s["model"]["source"]: s for s in found}


def test_both_classifiers_run_in_the_onnx_cell_with_parity_per_output(
    classical_run: Ran,
) -> None:
    assert classical_run.process.returncode == 0, classical_run.process.stderr[-3000:]
    assert set(classical_run.cells()) == {"onnx/cpu"}
    assert classical_run.cells()["onnx/cpu"]["status"] == "ok"
    found = smokes(classical_run)
    assert set(found) == {"forest.onnx", "classifiers:make"}
    for source, smoke in found.items():
        assert smoke["status"] == "ok" and not smoke["not_applicable"], (source, smoke["message"])
        assert smoke["parity_summary"]["ok"] is True, source
        for batch in ("1", "8"):
            outputs = smoke["outputs"][batch]
            assert set(outputs) == {"output_label", "output_probability"}, source
            label, scores = outputs["output_label"], outputs["output_probability"]
            assert label["ok"] and label["exact"] and label["count"] == int(batch)
            assert scores["ok"] and not scores["exact"] and scores["count"] == 3 * int(batch)
        assert set(smoke["latency"]) == {"1", "8"}


def test_the_models_outputs_and_converter_are_recorded(classical_run: Ran) -> None:
    found = smokes(classical_run)
    forest, logistic = found["forest.onnx"]["model"], found["classifiers:make"]["model"]
    assert [(t["name"], t["dtype"]) for t in forest["outputs"]] == [
        ("output_label", "string"),
        ("output_probability", "seq(map(string, float32))"),
    ]
    assert [t["dtype"] for t in logistic["outputs"]] == ["int64", "seq(map(int64, float32))"]
    assert logistic["kind"] == "factory" and logistic["producer"].startswith("skl2onnx")


def test_the_pytorch_cell_is_not_built_and_says_why(classical_run: Ran) -> None:
    not_built = classical_run.data()["run"]["options"]["not_built"]
    assert set(not_built) == {"pytorch/cpu"}
    assert "an ONNX model has no PyTorch form" in not_built["pytorch/cpu"]
    assert "a scikit-learn estimator has no PyTorch form" in not_built["pytorch/cpu"]
    report = next(classical_run.cwd.glob("results/*/report.md")).read_text()
    assert "pytorch: not applicable (a scikit-learn estimator has no PyTorch form" in report
