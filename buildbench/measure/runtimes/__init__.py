"""The runtimes buildbench builds an image of and runs a model in, host side: one module each,
behind `Runtime`, named once in `RUNTIMES`. The CLI's `--framework` choices, a config's
`builtin` and `smoke` values, the built-in matrix and each cell's smoke test are read from
here. The in-container side is `measure/smoke/program/runtimes/`, one module each too.

A runtime's version is its module's `__version__` inside the image (`module`, read by
measure/image.py); whether the image is a real CUDA build (`cuda_build`) is what the program's
runtime module proves in the image (loading cuDNN, or ONNX Runtime's CUDA provider).
"""

from __future__ import annotations

from buildbench.measure.runtimes.aotinductor import AOTINDUCTOR
from buildbench.measure.runtimes.base import BuildChoices, Runtime
from buildbench.measure.runtimes.onnx import ONNX
from buildbench.measure.runtimes.onnx_int8 import ONNX_INT8
from buildbench.measure.runtimes.openvino import OPENVINO
from buildbench.measure.runtimes.pytorch import PYTORCH

RUNTIMES: tuple[Runtime, ...] = (PYTORCH, ONNX, ONNX_INT8, OPENVINO, AOTINDUCTOR)
NAMES = tuple(r.name for r in RUNTIMES)
DEFAULT_NAMES = tuple(r.name for r in RUNTIMES if r.default)  # a run without --framework


def runtime(name: str) -> Runtime:
    """The runtime of that name (a KeyError for another: names are checked where typed)."""
    return {r.name: r for r in RUNTIMES}[name]


__all__ = ["DEFAULT_NAMES", "NAMES", "RUNTIMES", "BuildChoices", "Runtime", "runtime"]
