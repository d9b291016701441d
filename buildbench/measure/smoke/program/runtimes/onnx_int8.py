"""ONNX Runtime on the model's int8 form (quantised on the host): as ONNX Runtime, with parity
as an accuracy figure against the fp32 reference."""

from __future__ import annotations

from typing import ClassVar

from .onnx import OnnxModel

# A value is within tolerance within 5% of its output's largest magnitude plus 5% of its own;
# an output passes when 99% of its values are (parity.accuracy).
INT8 = {"of_range": 0.05, "rtol": 0.05, "share": 0.99}


class OnnxInt8Model(OnnxModel):
    form: ClassVar[str] = "onnx_int8"
    accuracy: ClassVar[dict | None] = INT8
