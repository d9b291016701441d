"""ONNX Runtime: the model's ONNX form (given, or exported from the torch form)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from buildbench.measure.runtimes.base import missing_form
from buildbench.measure.smoke.modelspec import PreparedModel

if TYPE_CHECKING:
    from buildbench.measure.runtimes.base import BuildChoices

_TORCH_WHEEL = re.compile(r"^torch(vision|audio)?-", re.IGNORECASE)


@dataclass(frozen=True)
class OnnxRuntime:
    name: str = "onnx"
    default: bool = True
    dockerfile: str = "onnx.dockerfile"
    module: str = "onnxruntime"
    variants: tuple[str, ...] = ("cpu", "cuda")
    missing_variant: str | None = None
    form: str = "onnx"
    exec_tmp: bool = False
    form_help: str = "an ONNX form (PATH.onnx, module:callable)"

    def build_args(self, variant: str, choices: BuildChoices) -> dict[str, str]:
        return {}

    def requirements(self, variant: str, choices: BuildChoices) -> tuple[str, ...]:
        return ("onnxruntime-gpu[cuda,cudnn]",) if variant == "cuda" else ("onnxruntime",)

    def requirements_index(self, variant: str, choices: BuildChoices) -> str | None:
        return None

    def wheels(self, wheels: Sequence[Path]) -> list[Path]:
        # The image never installs torch: uploading and copying a 190 MB torch wheel would
        # only add seconds to its timed build.
        return [w for w in wheels if not _TORCH_WHEEL.match(w.name)]

    def unavailable(self, variant: str, choices: BuildChoices) -> str | None:
        return None

    def prepare(self, model: PreparedModel) -> PreparedModel:
        return model  # the ONNX form is the shared one modelcache makes with the torch form

    def unable(self, model: PreparedModel) -> str | None:
        # ai.onnx.ml (skl2onnx's classifiers) and com.microsoft are ONNX Runtime's own
        return missing_form(model, self.name, "ONNX", model.onnx is not None)


ONNX = OnnxRuntime()
