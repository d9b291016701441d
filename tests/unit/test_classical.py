"""Classical models as skl2onnx makes them: string and integer labels compared exactly,
ZipMap's sequence of maps key by key with the scores within tolerance, the ai.onnx.ml
operators named for the runtimes that lack them, a factory's fitted estimator converted here,
and every mistake refused in one line before anything is built."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import numpy
import pytest

from buildbench.errors import UsageError
from buildbench.measure.runtimes.base import lacking_domains
from buildbench.measure.smoke import artifacts, modelcache, modelinputs, program
from buildbench.measure.smoke.kinds.model.smoke import load_models
from buildbench.measure.smoke.modeloutputs import store_reference
from buildbench.measure.smoke.modelspec import parse_spec
from buildbench.measure.smoke.program.parity import compare_maps, compare_strings
from buildbench.measure.smoke.program.runtimes.onnx_int8 import INT8
from buildbench.measure.smoke.sklearnforms import NO_TORCH_FORM
from tests.unit.test_modelspec import NumpyArrays, run_cli, uint16_output

FACTORY = """
import numpy
from sklearn.linear_model import LogisticRegression


def make():
    rng = numpy.random.default_rng(0)
    x = rng.standard_normal((60, 4)).astype(numpy.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(numpy.int64) + (x[:, 2] > 1)
    return LogisticRegression(max_iter=200).fit(x, y), x[:1]
"""


def iris_like() -> tuple[Any, Any]:
    """Three classes from four features, made here: no data set to download."""
    rng = numpy.random.default_rng(0)
    x = rng.standard_normal((90, 4)).astype(numpy.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(numpy.int64) + (x[:, 2] > 0.8)
    return x, y


def forest_with_string_labels(path: Path) -> Path:
    """A RandomForest on string labels, exported as the course shows: outputs tensor(string)
    and seq(map(string, tensor(float))) (ZipMap)."""
    from skl2onnx import to_onnx
    from sklearn.ensemble import RandomForestClassifier

    x, y = iris_like()
    labels = numpy.array(["setosa", "versicolor", "virginica"])[y]
    forest = RandomForestClassifier(n_estimators=4, max_depth=3, random_state=0).fit(x, labels)
    path.write_bytes(to_onnx(forest, x[:1]).SerializeToString())
    return path


def logistic_with_int_labels(path: Path) -> Path:
    """LogisticRegression on int64 labels: tensor(int64) and seq(map(int64, tensor(float)))."""
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    x, y = iris_like()
    model = LogisticRegression(max_iter=200).fit(x, y)
    path.write_bytes(to_onnx(model, x[:1]).SerializeToString())
    return path


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    load_models.cache_clear()


# ---------------------------------------------------------------------------------------------
# The program's comparisons


def test_strings_are_compared_exactly() -> None:
    same = compare_strings(["a", "b"], ["a", "b"])
    assert (same["ok"], same["exact"], same["count"], same["ratio"]) == (True, True, 2, 0.0)
    other = compare_strings(["a", "c", "d"], ["a", "b", "b"])
    assert (other["ok"], other["mismatches"], other["ratio"]) == (False, 2, math.inf)
    assert other["note"] == "2 of 3 differ, e.g. 'c' for 'b'"
    assert compare_strings(numpy.zeros(2), ["a", "b"])["note"] == "not strings"


def test_maps_are_compared_key_by_key_with_the_scores_within_tolerance() -> None:
    meta = {"rtol": 1e-3, "atol": 1e-4}
    want = [[[0, 0.25], [1, 0.75]], [[0, 0.5], [1, 0.5]]]
    close = compare_maps(NumpyArrays(), [{1: 0.75001, 0: 0.25}, {0: 0.5, 1: 0.5}], want, meta)
    assert (close["ok"], close["exact"], close["count"]) == (True, False, 4)
    far = compare_maps(NumpyArrays(), [{0: 0.3, 1: 0.7}, {0: 0.5, 1: 0.5}], want, meta)
    assert (far["ok"], far["mismatches"]) == (False, 2)
    assert far["max_abs_diff"] == pytest.approx(0.05)
    keys = compare_maps(NumpyArrays(), [{0: 0.25, 2: 0.75}, {0: 0.5, 1: 0.5}], want, meta)
    assert (keys["ok"], keys["note"]) == (False, "item 0: keys [0, 2], reference [0, 1]")
    strings = compare_maps(NumpyArrays(), [{"0": 0.25, "1": 0.75}, {0: 0.5, 1: 0.5}], want, meta)
    assert not strings["ok"]  # "0" is not 0: keys are labels, compared exactly
    assert compare_maps(NumpyArrays(), numpy.zeros(2), want, meta)["note"] == "not maps"


def test_a_lossy_forms_maps_are_an_accuracy_figure_with_top_1_per_item() -> None:
    class Int8Arrays(NumpyArrays):
        accuracy = INT8

    want = [[[0, 0.2], [1, 0.8]], [[0, 0.6], [1, 0.4]]]
    got = [{0: 0.21, 1: 0.79}, {0: 0.45, 1: 0.55}]  # the second item's top-1 flips
    found = compare_maps(Int8Arrays(), got, want, {"rtol": 1e-3, "atol": 1e-4})
    assert found["note"] == "accuracy: 50.0% within tolerance, top-1 agrees on 1 of 2"
    assert not found["ok"]


def test_every_kind_of_output_is_compared_by_name_from_its_stored_reference(
    tmp_path: Path,
) -> None:
    refs = [
        store_reference(tmp_path, 0, numpy.array(["x", "y"], dtype=object), "m.onnx"),
        store_reference(tmp_path, 1, [{"x": 0.25, "y": 0.75}, {"x": 1.0, "y": 0.0}], "m.onnx"),
        store_reference(tmp_path, 2, numpy.array([7, 2**40], dtype=numpy.uint64), "m.onnx"),
    ]
    assert refs == [
        {"shape": [2], "dtype": "string"},
        {"shape": [2], "dtype": "map", "keys": "string"},
        {"shape": [2], "dtype": "uint64"},
    ]
    meta = {"outputs": ["label", "scores", "big"], "rtol": 1e-3, "atol": 1e-4}
    got = [
        ([2], ["x", "z"]),
        ([2], [{"x": 0.25, "y": 0.75}, {"x": 1.0, "y": 0.0}]),
        ([2], numpy.array([7, 2**40], dtype="float64")),
    ]
    found = program.compare_outputs(NumpyArrays(), got, {"references": refs}, meta, str(tmp_path))
    assert [found[n]["ok"] for n in meta["outputs"]] == [False, True, True]
    assert program.worst(found)[0] == "label"


@pytest.mark.parametrize(
    ("out", "said"),
    [
        ([numpy.zeros(2), numpy.zeros(2)], "output 0 is a sequence of ndarray"),
        ([{"a": "b"}], "output 0 is a sequence of maps to other values than numbers"),
        ([{(1, 2): 0.5}], "output 0 is a sequence of maps keyed by other than integers"),
        (numpy.array([b"x", 3], dtype=object), "output 0 is an array of int, str"),
        (numpy.zeros(2, dtype=numpy.complex64), "output 0 is complex64"),
    ],
)
def test_an_output_nothing_compares_is_refused_saying_what_it_is(
    tmp_path: Path, out: Any, said: str
) -> None:
    with pytest.raises(UsageError, match=said) as refused:
        store_reference(tmp_path, 0, out, "m.onnx")
    assert "ZipMap" in (refused.value.tip or "")


# ---------------------------------------------------------------------------------------------
# skl2onnx models through --model


def test_a_skl2onnx_classifier_runs_in_the_program_with_parity_per_output(
    tmp_path: Path,
) -> None:
    """String labels and ZipMap's maps, in the program as it runs in its volume (here in the
    host's Python, with its onnxruntime); PyTorch cannot run it and says why."""
    path = forest_with_string_labels(tmp_path / "forest.onnx")
    prepared = modelcache.load(parse_spec(str(path)), frameworks=["onnx", "pytorch"])
    outputs = [(t.name, t.dtype, t.shape) for t in prepared.info.outputs]
    assert outputs == [
        ("output_label", "string", ["?"]),
        ("output_probability", "seq(map(string, float32))", None),
    ]
    assert lacking_domains(prepared, [""]) == "ai.onnx.ml: TreeEnsembleClassifier, ZipMap"
    assert prepared.info.not_applicable == {"pytorch": "an ONNX model has no PyTorch form"}
    found = run_program(tmp_path, prepared, (1, 3))
    assert found.get("error") is None, found
    for batch in ("1", "3"):
        label, scores = (found["outputs"][batch][n] for n in ("output_label", "output_probability"))
        assert label["ok"] and label["exact"] and label["count"] == int(batch)
        assert scores["ok"] and not scores["exact"] and scores["count"] == 3 * int(batch)


def run_program(tmp_path: Path, prepared: Any, batch_sizes: tuple[int, ...]) -> dict[str, Any]:
    volume = tmp_path / "volume"
    tar_bytes = artifacts.prepare_artifacts(batch_sizes, [prepared])
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        tar.extractall(volume, filter="data")
    ran = subprocess.run(
        [
            sys.executable,
            str(volume / "program.py"),
            "--framework=onnx",
            f"--artifacts={volume}",
            "--warmup=0",
            "--min-runs=1",
            "--min-seconds=0",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    (line,) = [s for s in ran.stdout.splitlines() if s.startswith(program.RESULT_PREFIX)]
    return dict(json.loads(line.removeprefix(program.RESULT_PREFIX)))


def test_int64_labels_and_integer_keyed_maps_keep_their_types(tmp_path: Path) -> None:
    path = logistic_with_int_labels(tmp_path / "lr.onnx")
    prepared = modelcache.load(parse_spec(str(path)), frameworks=["onnx"])
    data = modelinputs.prepare_data(prepared, (2,))
    described = json.loads((data / "data.json").read_text())["batches"][0]["references"]
    assert described == [
        {"shape": [2], "dtype": "int64"},
        {"shape": [2], "dtype": "map", "keys": "int64"},
    ]
    maps = json.loads((data / "2" / "reference-1.json").read_text())
    assert [k for k, _ in maps[0]] == [0, 1, 2]  # integers, not JSON's string keys
    found = run_program(tmp_path, prepared, (2,))
    assert found["parity"]["2"]["ok"], found


def test_a_factory_returning_a_fitted_estimator_is_converted_with_skl2onnx(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "classical_factory.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    prepared = modelcache.load(parse_spec("classical_factory:make"), frameworks=["onnx"])
    assert prepared.onnx == "model.onnx" and prepared.torch is None
    assert (prepared.info.producer or "").startswith("skl2onnx")
    assert [(t.name, t.dtype) for t in prepared.info.inputs] == [("X", "float32")]
    assert prepared.info.not_applicable == {"pytorch": NO_TORCH_FORM}
    assert "LinearClassifier" in prepared.operators["ai.onnx.ml"]
    with pytest.raises(UsageError, match="pytorch: a scikit-learn estimator has no PyTorch"):
        modelcache.load(parse_spec("classical_factory:make"), frameworks=["pytorch"])


@pytest.mark.parametrize(
    ("factory", "first_line"),
    [
        (
            FACTORY.replace("x[:1]", "'rows'"),
            "ERROR: --model bad_factory:make: a scikit-learn estimator's example_inputs are "
            "rows (a 2-D array), not str",
        ),
        (
            FACTORY.replace("LogisticRegression(max_iter=200)", "Unconvertible()")
            + "\nfrom sklearn.base import BaseEstimator, ClassifierMixin\n"
            "class Unconvertible(ClassifierMixin, BaseEstimator):\n"
            "    def fit(self, x, y):\n        return self\n",
            "ERROR: --model bad_factory:make: skl2onnx cannot convert Unconvertible",
        ),
    ],
)
def test_an_estimator_that_cannot_be_converted_is_refused_in_one_line(
    factory: str, first_line: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "bad_factory.py").write_text(factory)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "bad_factory", raising=False)
    code, lines = run_cli("--model", "bad_factory:make", "--framework", "onnx", cwd=tmp_path)
    assert code == 2, lines
    assert lines[0].startswith(first_line), lines
    assert lines[1].startswith("TIP: ")


def test_without_skl2onnx_an_estimator_is_refused_with_a_tip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "no_skl2onnx.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(sys.modules, "skl2onnx", None)  # as if not installed: ImportError
    code, lines = run_cli("--model", "no_skl2onnx:make", cwd=tmp_path)
    assert code == 2, lines
    assert lines[0].endswith("converting it to ONNX needs skl2onnx on this machine"), lines
    assert lines[1] == (
        "TIP: pip install 'buildbench[classical]', or give the model exported with skl2onnx "
        "as PATH.onnx"
    )


def test_a_uint16_output_is_compared_exactly(tmp_path: Path) -> None:
    """Tensors of any dtype: uint16 was refused before."""
    prepared = modelcache.load(
        parse_spec(str(uint16_output(tmp_path / "u16.onnx"))), frameworks=["onnx"]
    )
    assert [t.dtype for t in prepared.info.outputs] == ["uint16"]
    found = run_program(tmp_path, prepared, (2,))
    assert found["outputs"]["2"]["y"]["ok"] and found["outputs"]["2"]["y"]["exact"], found
