"""The runtimes the program runs a model in: one module each, behind `Runtime`, named once in
`RUNTIMES` (the host's registry, `buildbench.measure.runtimes`, names the same ones)."""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

from ..settings import DEFAULT_SETTING
from .aotinductor import AotiModel
from .onnx import OnnxModel
from .onnx_int8 import OnnxInt8Model
from .openvino import OpenVinoModel
from .pytorch import TorchModel


class Runtime(Protocol):
    """One model loaded in the image's runtime: `framework` (the import) and the model's load
    are timed apart."""

    form: ClassVar[str]  # the key of meta.json that names the file it loads
    # Whether every setting opens its own session after the cold one, the first included
    # (so that the settings' loads compare); else the first setting reuses the load.
    fresh_sessions: ClassVar[bool]
    # None: parity within the model's rtol/atol; else its form is lossy (a quantised one)
    # and parity is an accuracy figure on this tolerance (parity.accuracy).
    accuracy: ClassVar[dict | None]
    info: dict  # framework_version, cuda_build, device ... as the host reads them

    def __init__(self, framework: Any, artifacts: str, meta: dict, want_gpu: bool) -> None:
        """Load the model (timed as the model load), on the GPU where asked and possible."""

    @staticmethod
    def framework(meta: dict) -> Any:
        """The runtime, imported: the start-up's "framework import"."""

    def settings(self, requested: list[dict]) -> list[dict]:
        """The requested settings this runtime has (its settings axis), each once."""

    @staticmethod
    def label(setting: dict) -> str: ...

    def open(self, setting: dict) -> dict:
        """Apply a setting (a new session where the runtime needs one); facts about it."""

    def graph_after(self, setting: dict) -> dict:
        """What the runtime made of the model under the setting (an optimised graph's size)."""

    def inputs(self, folder: str, batch: dict, meta: dict) -> list: ...

    def run(self, xs: list) -> object:
        """One batch, done: where the device is asynchronous, synchronised."""

    @property
    def xp(self) -> Any:
        """The array library parity computes in."""

    def outputs(self, y: Any) -> list[tuple[list[int], Any]]: ...

    def reference(self, path: str, dtype: str) -> Any: ...


RUNTIMES: dict[str, type[Runtime]] = {
    "pytorch": TorchModel,
    "onnx": OnnxModel,
    "onnx-int8": OnnxInt8Model,
    "openvino": OpenVinoModel,
    "aotinductor": AotiModel,
}

__all__ = ["DEFAULT_SETTING", "RUNTIMES", "Runtime"]
