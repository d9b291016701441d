"""ONNX Runtime on the model quantised to int8 on the host (`onnxruntime.quantization`): dynamic
(int8 weights, activations quantised as they run) by default; static (QDQ, activations
calibrated on generated inputs) for a convolutional network, which dynamic quantisation barely
changes. The image is ONNX Runtime's. Parity is an accuracy figure, on the program's own
tolerance for int8 (program/parity.py `INT8`)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from buildbench.errors import UsageError
from buildbench.measure.runtimes.base import made_once, missing_form, with_reason
from buildbench.measure.runtimes.onnx import ONNX
from buildbench.measure.smoke.modelinputs import SEED, make_input
from buildbench.measure.smoke.modelspec import PreparedModel
from buildbench.measure.smoke.modelstack import first_line, quiet

if TYPE_CHECKING:
    from buildbench.measure.runtimes.base import BuildChoices

CALIBRATION_BATCHES = 8  # of one item each, from seeds other than the measured inputs'


@dataclass(frozen=True)
class OnnxInt8:
    name: str = "onnx-int8"
    default: bool = False
    dockerfile: str = ONNX.dockerfile
    module: str = ONNX.module
    variants: tuple[str, ...] = ONNX.variants
    missing_variant: str | None = None
    form: str = "onnx_int8"
    exec_tmp: bool = False
    form_help: str = ONNX.form_help

    def build_args(self, variant: str, choices: BuildChoices) -> dict[str, str]:
        return ONNX.build_args(variant, choices)

    def requirements(self, variant: str, choices: BuildChoices) -> tuple[str, ...]:
        return ONNX.requirements(variant, choices)

    def requirements_index(self, variant: str, choices: BuildChoices) -> str | None:
        return ONNX.requirements_index(variant, choices)

    def wheels(self, wheels: Sequence[Path]) -> list[Path]:
        return ONNX.wheels(wheels)

    def unavailable(self, variant: str, choices: BuildChoices) -> str | None:
        return None

    def prepare(self, model: PreparedModel) -> PreparedModel:
        """The quantised form, made once per model and inputs (calibration reads them)."""
        if model.onnx is None:
            why = model.info.not_applicable.get("onnx", "the model has no ONNX form")
            return with_reason(model, self.name, f"nothing to quantise ({why})")
        plans = json.dumps([asdict(p) for p in model.inputs], sort_keys=True)
        key = hashlib.sha256(f"{SEED}:{plans}".encode()).hexdigest()[:16]
        marker = model.directory / f"int8-{key}.json"
        return made_once(
            model, self.name, self.form, marker, lambda: _quantise(model, f"model.int8-{key}.onnx")
        )

    def unable(self, model: PreparedModel) -> str | None:
        return missing_form(model, self.name, "int8", self.form in model.forms)


ONNX_INT8 = OnnxInt8()


def _quantise(model: PreparedModel, name: str) -> dict[str, Any]:
    """Quantise into the model's folder; {"files", "method", "reason"}: a reason where the
    quantisation failed or changed nothing (then the cell is not applicable, and says so)."""
    import onnx

    try:
        from onnxruntime.quantization import (
            QuantFormat,
            QuantType,
            quantize_dynamic,
            quantize_static,
        )
    except ImportError:
        raise UsageError(
            "--framework onnx-int8 quantises the model here: it needs onnxruntime on the host",
            tip="pip install 'buildbench[model]'",
        ) from None

    assert model.onnx is not None
    source = model.directory / model.onnx
    before = Counter(n.op_type for n in onnx.load(str(source), load_external_data=False).graph.node)
    method = "static" if "Conv" in before else "dynamic"
    external = len(model.onnx_files) > 1
    with tempfile.TemporaryDirectory(dir=model.directory, prefix=".tmp-") as tmp:
        out = Path(tmp) / name
        try:
            with _quiet_logging():
                if method == "static":
                    quantize_static(
                        str(source),
                        str(out),
                        _Calibration(model),
                        quant_format=QuantFormat.QDQ,
                        per_channel=True,
                        weight_type=QuantType.QInt8,
                        activation_type=QuantType.QUInt8,
                        use_external_data_format=external,
                    )
                else:
                    quantize_dynamic(
                        str(source),
                        str(out),
                        weight_type=QuantType.QInt8,
                        use_external_data_format=external,
                    )
        except Exception as exc:  # the quantiser's many failures: the cell says why
            return {
                "files": [],
                "method": method,
                "reason": f"int8 {method} quantisation failed: {first_line(exc)}",
            }
        after = Counter(n.op_type for n in onnx.load(str(out), load_external_data=False).graph.node)
        if after == before:
            return {
                "files": [],
                "method": method,
                "reason": f"int8 {method} quantisation changed nothing: no operator it "
                "quantises (MatMul, Gemm, Conv, ...)",
            }
        files = sorted(p.name for p in Path(tmp).iterdir() if p.name.startswith(name))
        for file in files:
            (Path(tmp) / file).replace(model.directory / file)
    return {"files": [name, *(f for f in files if f != name)], "method": method, "reason": None}


class _Calibration:
    """onnxruntime.quantization's CalibrationDataReader: generated inputs, one item each (or
    the model's fixed batch)."""

    def __init__(self, model: PreparedModel) -> None:
        import numpy

        batch = model.info.fixed_batch or 1
        seeds = range(SEED + 1, SEED + 1 + CALIBRATION_BATCHES)
        self._batches: Iterator[dict[str, Any]] = iter(
            [{p.name: make_input(numpy, p, batch, s) for p in model.inputs} for s in seeds]
        )

    def get_next(self) -> dict[str, Any] | None:
        return next(self._batches, None)


@contextlib.contextmanager
def _quiet_logging() -> Iterator[None]:
    """The quantiser's advice on the root logger, and its calibration's progress: not for the
    user's terminal. A handler meanwhile, so that logging.warning() configures nothing."""
    root = logging.getLogger()
    handler = logging.NullHandler()
    root.addHandler(handler)
    logging.disable(logging.WARNING)
    try:
        with quiet():
            yield
    finally:
        logging.disable(logging.NOTSET)
        root.removeHandler(handler)
