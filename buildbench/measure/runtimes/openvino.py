"""OpenVINO (its CPU plugin) on the model's ONNX form, read by OpenVINO's own ONNX frontend.
CPU only: its GPU plugin is for Intel GPUs, so the "cuda" cell is not applicable, and says why.
It has none of the `ai.onnx.ml` operators (a skl2onnx classifier's): such a model is not
applicable in its cell either, with the operators named."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from buildbench.measure.runtimes.base import lacking_domains
from buildbench.measure.runtimes.onnx import ONNX
from buildbench.measure.smoke.modelspec import PreparedModel

if TYPE_CHECKING:
    from buildbench.measure.runtimes.base import BuildChoices

NO_CUDA = "OpenVINO has no CUDA build: its GPU plugin is for Intel GPUs, not NVIDIA's"
ML_DOMAIN = "ai.onnx.ml"


@dataclass(frozen=True)
class OpenVino:
    name: str = "openvino"
    default: bool = False
    dockerfile: str = "openvino.dockerfile"
    module: str = "openvino"
    variants: tuple[str, ...] = ("cpu",)
    missing_variant: str | None = NO_CUDA
    form: str = ONNX.form
    exec_tmp: bool = False
    form_help: str = ONNX.form_help

    def build_args(self, variant: str, choices: BuildChoices) -> dict[str, str]:
        return {}

    def requirements(self, variant: str, choices: BuildChoices) -> tuple[str, ...]:
        return ("openvino",)

    def requirements_index(self, variant: str, choices: BuildChoices) -> str | None:
        return None

    def wheels(self, wheels: Sequence[Path]) -> list[Path]:
        return ONNX.wheels(wheels)  # never torch: its image installs none

    def unavailable(self, variant: str, choices: BuildChoices) -> str | None:
        return None

    def prepare(self, model: PreparedModel) -> PreparedModel:
        return model  # the shared ONNX form

    def unable(self, model: PreparedModel) -> str | None:
        if why := ONNX.unable(model):
            return why
        others = [domain for domain in model.operators if domain != ML_DOMAIN]
        if ml := lacking_domains(model, others):
            return f"OpenVINO has no {ML_DOMAIN} operators (the model uses {ml})"
        return None


OPENVINO = OpenVino()
