"""A fitted scikit-learn estimator a factory returns: its ONNX form, converted here with
skl2onnx (the `classical` extra) as the course exports one, ZipMap and all. It has no torch
form: it runs in the runtimes that read ONNX and have its `ai.onnx.ml` operators."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from buildbench.errors import UsageError
from buildbench.measure.smoke.modelspec import ModelSpec
from buildbench.measure.smoke.modelstack import first_line, quiet

NO_TORCH_FORM = "a scikit-learn estimator has no PyTorch form (it runs as ONNX, via skl2onnx)"


def is_estimator(value: Any) -> bool:
    """Whether `value` is a scikit-learn estimator (a Pipeline too), known without importing
    scikit-learn: by its classes' modules."""
    return any(c.__module__.split(".")[0] == "sklearn" for c in type(value).__mro__)


def save_onnx(spec: ModelSpec, estimator: Any, example: Any, work: Path) -> str:
    """The estimator converted with skl2onnx into `work`, its inputs typed by `example` (an
    array of rows, or a tuple of one); the file's name. A UsageError where it cannot be."""
    try:
        from skl2onnx import to_onnx
    except ImportError:
        raise UsageError(
            f"--model {spec.text}: the factory returned a scikit-learn estimator: converting "
            "it to ONNX needs skl2onnx on this machine",
            tip="pip install 'buildbench[classical]', or give the model exported with skl2onnx "
            "as PATH.onnx",
        ) from None
    if isinstance(example, (tuple, list)) and len(example) == 1:
        example = example[0]
    if not hasattr(example, "shape") or len(example.shape) != 2 or not example.shape[0]:
        raise UsageError(
            f"--model {spec.text}: a scikit-learn estimator's example_inputs are rows (a 2-D "
            f"array), not {type(example).__name__}",
            tip="return (estimator, X[:1]) from the factory, X as the estimator was fitted on",
        )
    try:
        with quiet():
            model = to_onnx(estimator, example[:1])
    except Exception as exc:  # the converter's many refusals: say which, in a line
        raise UsageError(
            f"--model {spec.text}: skl2onnx cannot convert {type(estimator).__name__} "
            f"({first_line(exc)})",
            tip="convert it yourself (skl2onnx, a registered converter) and give PATH.onnx",
        ) from None
    (work / "model.onnx").write_bytes(model.SerializeToString())
    return "model.onnx"
