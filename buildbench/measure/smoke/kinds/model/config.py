"""The model kind's part of a config: `smoke = "pytorch"` or `"onnx"` (the image's framework;
the built-in images get it too). The models are the run's (`--model`, `[[model]]`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from buildbench.measure.smoke.kinds.model.smoke import InferenceSmoke
from buildbench.measure.smoke.options import SmokeOptions
from buildbench.measure.smoke.table import Where
from buildbench.record import FRAMEWORKS


@dataclass(frozen=True)
class ModelConfig:
    framework: str  # the framework the model runs in: "pytorch" or "onnx"

    def describe(self) -> str:
        return self.framework

    def smoke(self, variant: str, options: SmokeOptions) -> InferenceSmoke:
        return InferenceSmoke(
            self.framework,
            variant,
            options.batch_sizes,
            models=options.models,
            settings=options.ort_settings,
            threads=options.threads,
            frameworks=options.frameworks,
        )


def read(text: Any, at: Where) -> ModelConfig:
    if text not in FRAMEWORKS:
        raise at.error(
            f'unknown smoke test "{text}"',
            f"smoke is {' or '.join(map(repr, FRAMEWORKS))}, or {{ command = [...] }}",
        )
    return ModelConfig(text)
