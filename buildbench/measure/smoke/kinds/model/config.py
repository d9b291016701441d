"""The model kind's part of a config: `smoke = "pytorch"`, `"onnx"` ... (a runtime's name,
the built-in images get it too), and the run's models (`--model`, and a `[[model]]` table
each):

    [[model]]
    path = "models/bert.onnx"    # PATH.onnx (external data beside it), PATH.pt2, TorchScript,
                                 # or module = "pkg.mod:factory" instead; relative to the file
    inputs = ["input_ids=1x128:int64:0-30521"]  # like --input NAME=DIMS[:DTYPE][:LOW-HIGH]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from buildbench.measure.runtimes import NAMES
from buildbench.measure.smoke.kinds.model.smoke import InferenceSmoke
from buildbench.measure.smoke.options import ModelRequest, SmokeOptions
from buildbench.measure.smoke.table import Rule, Where, key, read_table


@dataclass(frozen=True)
class ModelConfig:
    framework: str  # the runtime the model runs in (measure/runtimes)

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
            torch_forms=options.torch_forms,
            frameworks=options.frameworks,
        )


def read(text: Any, at: Where) -> ModelConfig:
    if text not in NAMES:
        raise at.error(
            f'unknown smoke test "{text}"',
            f"smoke is {' or '.join(map(repr, NAMES))}, or {{ command = [...] }}",
        )
    return ModelConfig(text)


@dataclass(frozen=True)
class ModelTable:
    path: str | None = None
    module: str | None = None
    inputs: tuple[Any, ...] = key(
        (),
        example='["input_ids=1x128:int64"]',
        rule=Rule(
            lambda inputs: all(isinstance(i, str) for i in inputs),
            "inputs must be strings",
            '["NAME=DIMS[:DTYPE][:LOW-HIGH]"]',
        ),
    )


def read_model(data: Any, at: Where) -> ModelRequest:
    """A `[[model]]` table: the model's path or module, with its inputs; a relative path is
    the config file's folder's."""
    given = [k for k in ("path", "module") if isinstance(data, dict) and data.get(k) is not None]
    table = read_table(ModelTable, data, at)
    if len(given) != 1:
        raise at.error(
            "needs path or module (one of them)",
            'path = "model.onnx", or module = "pkg.mod:factory"',
        )
    spec = getattr(table, given[0])
    if not spec:
        raise at.error(f'"{given[0]}" is required', f'add {given[0]} = "..." to this image')
    return ModelRequest(spec, tuple(table.inputs), base=str(at.source.parent.resolve()))
