"""The smoke test's model as the user gives it: `--model SPEC` and `--input` parsed, and the
values the other model modules pass around (the prepared model, its inputs' plans).

A SPEC is an ONNX file (external-data files beside it), a `torch.export` program (`.pt2`), a
TorchScript file, or `module:callable` returning `(torch.nn.Module, example_inputs)` or
`(fitted scikit-learn estimator, example rows)`. Reading
and converting it is modelforms.py's job, caching modelcache.py's, inputs modelinputs.py's.

Everything a user can get wrong is a `UsageError`, before anything is built.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from buildbench.errors import UsageError
from buildbench.record import ModelInfo

INPUT_DTYPES = ("float32", "float16", "float64", "int64", "int32", "bool")


TorchFormat = Literal["pt2", "torchscript"]


MODEL_TIP = "--model is PATH.onnx, PATH.pt2, a TorchScript file, or module:callable"


_INPUT_RE = re.compile(
    r"^(?P<name>[^=]+)=(?P<dims>\d+(?:x\d+)*)?"
    r"(?::(?P<dtype>[a-z0-9]+))?(?::(?P<low>-?[\d.]+)-(?P<high>-?[\d.]+))?$"
)


@dataclass(frozen=True)
class ModelSpec:
    """A parsed `--model`: a file (`path`) or a factory (`module`, `callable`)."""

    text: str
    kind: Literal["onnx", "pt2", "torchscript", "factory"]
    path: Path | None = None  # the file; a factory: the folder it is imported from, if not here
    module: str | None = None
    callable: str | None = None


@dataclass(frozen=True)
class InputOverride:
    """A parsed `--input NAME=DIMS[:DTYPE][:LOW-HIGH]`: any part but the name may be left out."""

    name: str
    shape: tuple[int, ...] | None = None
    dtype: str | None = None
    low: float | None = None
    high: float | None = None


def parse_spec(text: str, base: Path | None = None) -> ModelSpec:
    """`--model`'s value; a relative path is taken from `base` (a config file's folder)."""
    candidate = Path(text).expanduser()
    if base is not None and not candidate.is_absolute():
        candidate = base / candidate
    looks_like_file = candidate.suffix or "/" in text or candidate.exists()
    if ":" in text and not candidate.exists() and not (len(text) > 1 and text[1] == ":"):
        module, _, name = text.rpartition(":")
        if module and name and all(p.isidentifier() for p in (*module.split("."), name)):
            # `path`: the folder it is imported from (a config file's), else the current one
            return ModelSpec(text, "factory", path=base, module=module, callable=name)
    if not looks_like_file:
        raise UsageError(f"--model {text}: neither a file nor module:callable", tip=MODEL_TIP)
    if not candidate.is_file():
        raise UsageError(f"--model {text}: no such file", tip=MODEL_TIP)
    suffix = candidate.suffix.lower()
    if suffix == ".py":
        raise UsageError(
            f"--model {text}: a Python file is not a model",
            tip=f"name its factory as module:callable, e.g. --model {candidate.stem}:make_model",
        )
    kind: Literal["onnx", "pt2", "torchscript"] = (
        "onnx" if suffix == ".onnx" else "pt2" if suffix == ".pt2" else "torchscript"
    )
    return ModelSpec(text, kind, path=candidate.resolve())


def parse_input(text: str) -> InputOverride:
    """`input_ids=1x128:int64:0-30521`, `mask=:bool`, `x=4x3x224x224`, `x=:0-1` ..."""
    found = _INPUT_RE.match(text.strip())
    if found is None:
        raise UsageError(
            f"--input {text}: not NAME=DIMS[:DTYPE][:LOW-HIGH]",
            tip="e.g. --input input_ids=1x128:int64:0-30521 (DIMS like 1x3x224x224)",
        )
    dtype = found["dtype"]
    if dtype is not None and dtype not in INPUT_DTYPES:
        raise UsageError(
            f"--input {text}: unknown dtype {dtype}", tip=f"dtypes: {', '.join(INPUT_DTYPES)}"
        )
    low, high = found["low"], found["high"]
    if low is not None and high is not None and float(low) > float(high):
        raise UsageError(f"--input {text}: LOW is above HIGH", tip="a range is LOW-HIGH, e.g. 0-1")
    dims = found["dims"]
    return InputOverride(
        name=found["name"].strip(),
        shape=tuple(int(d) for d in dims.split("x")) if dims else None,
        dtype=dtype,
        low=float(low) if low is not None else None,
        high=float(high) if high is not None else None,
    )


@dataclass(frozen=True)
class InputPlan:
    """How an input is generated: its shape at the model's own batch (dimension 0 is the batch
    axis when `batched`), dtype and value range."""

    name: str
    dtype: str
    shape: list[int]
    batched: bool
    low: float
    high: float

    def at(self, batch: int) -> list[int]:
        return [batch, *self.shape[1:]] if self.batched else list(self.shape)


@dataclass(frozen=True)
class PreparedModel:
    """A model's files in the cache, ready to travel: `onnx` and `torch` name files in
    `directory` (None: that form could not be made, see `info.not_applicable`)."""

    info: ModelInfo
    directory: Path
    inputs: list[InputPlan]
    onnx: str | None = None
    onnx_files: list[str] = field(default_factory=list)  # model.onnx and its external data
    torch: str | None = None
    torch_format: TorchFormat | None = None
    # A runtime's own form (measure/runtimes), by its meta.json key: its files, the model first.
    forms: dict[str, list[str]] = field(default_factory=dict)
    # The ONNX form's operator types by domain ("": the standard one; "ai.onnx.ml": a
    # scikit-learn model's), which runtimes lacking a domain are asked about (Runtime.unable).
    operators: dict[str, list[str]] = field(default_factory=dict)

    def batches(self, batch_sizes: Sequence[int]) -> list[int]:
        return [self.info.fixed_batch] if self.info.fixed_batch else list(batch_sizes)
