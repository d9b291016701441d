"""The smoke test's model, host side: `--model SPEC` and `--input` parsed, read and prepared.

A SPEC is an ONNX file (external-data files beside it), a `torch.export` program (`.pt2`), a
TorchScript file, or `module:callable` returning `(torch.nn.Module, example_inputs)`. What each
framework's image loads is prepared once and cached by content (`~/.cache/buildbench/models`,
or under XDG_CACHE_HOME): an ONNX file for ONNX Runtime, a `.pt2` (TorchScript where
`torch.export` fails) for PyTorch. A form that cannot be made leaves that framework's cells
"not applicable" with the reason. Inputs are generated here from a fixed seed and the host's
reference outputs computed once: from the torch form where there is one, else ONNX Runtime.

Everything a user can get wrong is a `UsageError` here, before anything is built.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import inspect
import io
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from buildbench.errors import UsageError
from buildbench.measure.smoke.options import ModelRequest
from buildbench.measure.smoke.program import STORED_DTYPES
from buildbench.record import ModelInfo, TensorInfo

SEED = 0
RTOL, ATOL = 1e-3, 1e-4  # float parity, in the spirit of numpy.allclose
MAX_BATCH = 1024  # the exported batch axis's upper bound
INPUT_DTYPES = ("float32", "float16", "int64", "int32", "bool")
# ONNX TensorProto element types -> names (inputs: INPUT_DTYPES; outputs may be any of these).
ONNX_DTYPES = {
    1: "float32",
    2: "uint8",
    3: "int8",
    5: "int16",
    6: "int32",
    7: "int64",
    9: "bool",
    10: "float16",
    11: "float64",
    16: "bfloat16",
}
TorchFormat = Literal["pt2", "torchscript"]
Framework = Literal["pytorch", "onnx"]
_MODEL_TIP = "--model is PATH.onnx, PATH.pt2, a TorchScript file, or module:callable"
_FORMS = {  # what a framework's cells can run, for a model none of them can
    "pytorch": "a torch form (PATH.pt2, TorchScript, module:callable)",
    "onnx": "an ONNX form (PATH.onnx, module:callable)",
}
_INPUT_RE = re.compile(
    r"^(?P<name>[^=]+)=(?P<dims>\d+(?:x\d+)*)?"
    r"(?::(?P<dtype>[a-z0-9]+))?(?::(?P<low>-?[\d.]+)-(?P<high>-?[\d.]+))?$"
)


# ---------------------------------------------------------------------------------------------
# What the user typed


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


def load_requests(
    requests: Sequence[ModelRequest], frameworks: Sequence[str]
) -> list[PreparedModel]:
    """Each model with its inputs; with several models an `--input` applies to those that
    have an input of its name, and must name an input of one of them."""
    found, used = [], set()
    for request in requests:
        base = Path(request.base) if request.base else None
        overrides = [parse_input(text) for text in request.inputs]
        prepared = load(parse_spec(request.spec, base), overrides, frameworks, strict=False)
        found.append(prepared)
        used |= {t.name for t in prepared.info.inputs}
    for request in requests:
        for text in request.inputs:
            name = parse_input(text).name
            if name not in used:
                known = ", ".join(sorted(used)) or "none"
                raise UsageError(
                    f"--input {name}: no model has an input of that name",
                    tip=f"the models' inputs: {known}",
                )
    return found


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
        raise UsageError(f"--model {text}: neither a file nor module:callable", tip=_MODEL_TIP)
    if not candidate.is_file():
        raise UsageError(f"--model {text}: no such file", tip=_MODEL_TIP)
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


# ---------------------------------------------------------------------------------------------
# What the model is


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

    def batches(self, batch_sizes: Sequence[int]) -> list[int]:
        return [self.info.fixed_batch] if self.info.fixed_batch else list(batch_sizes)


def _code_version() -> str:
    """This file's and the program's source: a new buildbench prepares its models again."""
    here = Path(__file__).parent
    code = b"".join((here / name).read_bytes() for name in ("modelspec.py", "program.py"))
    return hashlib.sha256(code).hexdigest()[:16]


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "buildbench" / "models"


# ---------------------------------------------------------------------------------------------
# The host's model stack


def import_stack() -> tuple[Any, Any]:  # (torch, onnx)
    """torch and onnx, or a UsageError saying what to install."""
    try:
        import onnx
        import onnxscript  # noqa: F401 - torch.onnx.export(dynamo=True) needs it
        import torch
    except ImportError as exc:
        raise UsageError(
            f"smoke tests need torch, onnx and onnxscript on the host ({exc.name} is missing)",
            tip="pip install torch --index-url https://download.pytorch.org/whl/cpu && "
            "pip install 'buildbench[model]'; or run with --no-smoke",
        ) from None
    return torch, onnx


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporters' warnings and progress text: not for the user's terminal."""
    logger = logging.getLogger("torch")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _first_line(exc: BaseException, limit: int = 160) -> str:
    """An exception in a few words: its type and first sentence, cut to `limit` characters."""
    lines = str(exc).strip().splitlines()
    text = lines[0].split(". ")[0] if lines else ""
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return f"{type(exc).__name__}: {text}".strip().rstrip(":")


def _sha256(paths: Sequence[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# Loading: from the spec to the cached forms


def load(
    spec: ModelSpec,
    overrides: Sequence[InputOverride] = (),
    frameworks: Sequence[str] = ("pytorch", "onnx"),
    strict: bool = True,
) -> PreparedModel:
    """The model's forms (cached by content), its inputs and what it is; a UsageError for
    anything the user can fix, including a model none of `frameworks` can run."""
    torch, onnx = import_stack()
    if spec.kind == "factory":
        factory = _resolve_factory(spec)
        key = _factory_key(torch, spec, factory)
    else:
        assert spec.path is not None
        files = [
            spec.path,
            *(_external_files(onnx, spec.path, spec.text) if spec.kind == "onnx" else []),
        ]
        key = _sha256(files)
    # The cache is by content and by the code that prepares it; results keep only the content.
    directory = cache_root() / hashlib.sha256(f"{key}:{_code_version()}".encode()).hexdigest()
    prepared = _cached(directory)
    if prepared is None:
        prepared = _prepare_forms(torch, onnx, spec, key, directory)
    prepared = replace(prepared, info=replace(prepared.info, source=spec.text))
    _check_runnable(prepared, frameworks)
    if not strict:  # overrides for other models are checked by the caller
        names = {t.name for t in prepared.info.inputs}
        overrides = [o for o in overrides if o.name in names]
    return replace(prepared, inputs=plan_inputs(prepared.info, overrides))


def _resolve_factory(spec: ModelSpec) -> Any:
    assert spec.module and spec.callable
    folder = str(spec.path) if spec.path else ""  # "": the current folder, as `python -m`
    if folder not in sys.path:
        sys.path.insert(0, folder)
    try:
        module = importlib.import_module(spec.module)
    except Exception as exc:
        raise UsageError(
            f"--model {spec.text}: module {spec.module} does not import ({_first_line(exc)})",
            tip="run from the folder that holds it, or put it on PYTHONPATH",
        ) from None
    factory = getattr(module, spec.callable, None)
    if not callable(factory):
        raise UsageError(
            f"--model {spec.text}: {spec.module} has no callable {spec.callable}",
            tip="the callable returns (torch.nn.Module, example_inputs)",
        )
    return factory


def _factory_key(torch: Any, spec: ModelSpec, factory: Any) -> str:
    """A factory is known by its module's source, the callable's name and the torch version
    (that exports it): editing that file prepares the model again."""
    try:
        source = inspect.getsource(sys.modules[factory.__module__])
    except (OSError, TypeError, KeyError):
        source = repr(factory)
    return hashlib.sha256(
        f"factory:{spec.module}:{spec.callable}:{torch.__version__}\n{source}".encode()
    ).hexdigest()


def _external_files(onnx: Any, path: Path, label: str) -> list[Path]:
    """The external-data files an ONNX model names (beside it), in a stable order."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise UsageError(
            f"--model {label}: not a valid ONNX model ({_first_line(exc)})", tip=_MODEL_TIP
        ) from None
    names: set[str] = set()
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    for tensor in _get_all_tensors(model):
        if uses_external_data(tensor):
            entries = {e.key: e.value for e in tensor.external_data}
            names.add(entries["location"])
    files = [path.parent / name for name in sorted(names)]
    missing = [str(f.name) for f in files if not f.is_file()]
    if missing:
        raise UsageError(
            f"--model {label}: its external data {', '.join(missing)} is not beside it",
            tip="keep the .onnx file and its data files in one folder",
        )
    return files


def _cached(directory: Path) -> PreparedModel | None:
    try:
        data = json.loads((directory / "model.json").read_text())
    except (OSError, ValueError):
        return None
    info = data["info"]
    info["inputs"] = [TensorInfo(**t) for t in info["inputs"]]
    info["outputs"] = [TensorInfo(**t) for t in info["outputs"]]
    return PreparedModel(
        info=ModelInfo(**info),
        directory=directory,
        inputs=[],
        onnx=data["onnx"],
        onnx_files=data["onnx_files"],
        torch=data["torch"],
        torch_format=data["torch_format"],
    )


def _prepare_forms(
    torch: Any, onnx: Any, spec: ModelSpec, key: str, directory: Path
) -> PreparedModel:
    """Make every form the spec allows in a temporary folder, then move it into the cache."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory.parent, prefix=".tmp-") as tmp:
        work = Path(tmp)
        made = _make_forms(torch, onnx, spec, key, work)
        (work / "model.json").write_text(
            json.dumps(
                {
                    "info": asdict(made.info),
                    "onnx": made.onnx,
                    "onnx_files": made.onnx_files,
                    "torch": made.torch,
                    "torch_format": made.torch_format,
                },
                indent=2,
            )
        )
        shutil.rmtree(directory, ignore_errors=True)
        work.rename(directory)
        work.mkdir()  # for TemporaryDirectory's own clean-up
    return replace(made, directory=directory)


def _make_forms(torch: Any, onnx: Any, spec: ModelSpec, key: str, work: Path) -> PreparedModel:
    not_applicable: dict[str, str] = {}
    onnx_name: str | None = None
    onnx_files: list[str] = []
    torch_name: str | None = None
    torch_format: TorchFormat | None = None
    inputs: list[TensorInfo] | None = None
    outputs: list[TensorInfo] | None = None
    if spec.kind == "onnx":
        assert spec.path is not None
        for source in [spec.path, *_external_files(onnx, spec.path, spec.text)]:
            shutil.copyfile(source, work / source.name)
            onnx_files.append(source.name)
        onnx_name = spec.path.name
        not_applicable["pytorch"] = "an ONNX model has no PyTorch form"
    else:
        module, example, names = _torch_module(torch, spec)
        form = _save_torch_form(torch, module, example, names, spec, work)
        torch_name, torch_format, inputs, outputs, program = form
        if not example and program is not None:  # a .pt2 file: the inputs it was exported with
            example = tuple((getattr(program, "example_inputs", None) or ((), {}))[0])
        if spec.kind == "torchscript":
            not_applicable["onnx"] = (
                "a TorchScript file is not exported to ONNX (give its .onnx, or module:callable)"
            )
        else:
            try:
                with _quiet():
                    _export_onnx(
                        torch, program or module, example, names, outputs, work / "model.onnx"
                    )
                onnx.checker.check_model(str(work / "model.onnx"), full_check=True)
                onnx_name = "model.onnx"
                onnx_files = sorted(
                    p.name for p in work.iterdir() if p.name.startswith("model.onnx")
                )
            except Exception as exc:  # the exporter's many failures: ONNX cells say why
                not_applicable["onnx"] = f"the ONNX export failed: {_first_line(exc)}"
    graph = _onnx_facts(onnx, work / onnx_name, spec.text) if onnx_name else {}
    files = [work / n for n in onnx_files] if onnx_name else [work / str(torch_name)]
    found_inputs = inputs if inputs is not None else graph.get("inputs", [])
    info = ModelInfo(
        source=spec.text,
        kind=spec.kind,
        sha256=key,
        size_bytes=sum(f.stat().st_size for f in files),
        inputs=found_inputs,
        outputs=outputs if outputs is not None else graph.get("outputs", []),
        opset=graph.get("opset"),
        producer=graph.get("producer"),
        fixed_batch=_fixed_batch(found_inputs),
        not_applicable=not_applicable,
        nodes=graph.get("nodes"),
    )
    return PreparedModel(info, work, [], onnx_name, onnx_files, torch_name, torch_format)


def _onnx_facts(onnx: Any, path: Path, label: str) -> dict[str, Any]:
    try:
        onnx.checker.check_model(str(path), full_check=False)
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise UsageError(
            f"--model {label}: not a valid ONNX model ({_first_line(exc)})", tip=_MODEL_TIP
        ) from None
    initializers = {t.name for t in model.graph.initializer}

    def tensor(value: Any) -> TensorInfo:
        kind = value.type.tensor_type
        dims: list[int | str] = [d.dim_param or d.dim_value or "?" for d in kind.shape.dim]
        return TensorInfo(value.name, ONNX_DTYPES.get(kind.elem_type, str(kind.elem_type)), dims)

    default = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    producer = " ".join(p for p in (model.producer_name, model.producer_version) if p)
    return {
        "inputs": [tensor(v) for v in model.graph.input if v.name not in initializers],
        "outputs": [tensor(v) for v in model.graph.output],
        "opset": default[0] if default else None,
        "producer": producer or None,
        "nodes": len(model.graph.node),
    }


def _fixed_batch(inputs: Sequence[TensorInfo]) -> int | None:
    """The batch every input declares on its first axis, when none leaves it symbolic."""
    firsts = {t.shape[0] for t in inputs if t.shape}
    only = firsts.pop() if len(firsts) == 1 else None
    return only if isinstance(only, int) else None


def _check_runnable(prepared: PreparedModel, frameworks: Sequence[str]) -> None:
    """A model that none of the selected frameworks can run is the user's to fix."""
    selected = [f for f in frameworks if f in ("pytorch", "onnx")]
    if selected and all(f in prepared.info.not_applicable for f in selected):
        reasons = "; ".join(f"{f}: {prepared.info.not_applicable[f]}" for f in selected)
        forms = " or ".join(_FORMS[f] for f in selected)
        raise UsageError(
            f"--model {prepared.info.source}: the selected frameworks cannot run it ({reasons})",
            tip=f"give {forms}, or select another framework (--framework)",
        )


# ---------------------------------------------------------------------------------------------
# Torch forms


def _torch_module(torch: Any, spec: ModelSpec) -> tuple[Any, tuple[Any, ...], list[str]]:
    """(module, example inputs as a tuple, their names) from a factory or a torch file."""
    if spec.kind == "factory":
        factory = _resolve_factory(spec)
        try:
            module, example = factory()
        except Exception as exc:
            raise UsageError(
                f"--model {spec.text}: the factory failed ({_first_line(exc)})",
                tip="it returns (torch.nn.Module, example_inputs)",
            ) from None
        if not isinstance(module, torch.nn.Module):
            raise UsageError(
                f"--model {spec.text}: the factory returned {type(module).__name__}, "
                "not a torch.nn.Module",
                tip="it returns (torch.nn.Module, example_inputs)",
            )
        return _named_example(torch, spec, module.eval(), example)
    assert spec.path is not None
    try:
        with _quiet():
            if spec.kind == "pt2":
                program = torch.export.load(str(spec.path))
            else:
                program = torch.jit.load(str(spec.path), map_location="cpu")
    except Exception as exc:
        raise UsageError(
            f"--model {spec.text}: not a valid {spec.kind} model ({_first_line(exc)})",
            tip=_MODEL_TIP,
        ) from None
    return program, (), []


def _named_example(
    torch: Any, spec: ModelSpec, module: Any, example: Any
) -> tuple[Any, tuple[Any, ...], list[str]]:
    """Example inputs as a tuple of tensors and their names: a dict's keys, else the
    parameters of `forward` they fill."""
    if isinstance(example, torch.Tensor):
        example = (example,)
    if isinstance(example, dict):
        names, values = list(example), tuple(example.values())
    else:
        values = tuple(example)
        try:
            params = [
                p.name
                for p in inspect.signature(module.forward).parameters.values()
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            ]
        except (TypeError, ValueError):
            params = []
        names = params[: len(values)] if len(params) >= len(values) else []
        names = names or [f"input_{i}" for i in range(len(values))]
    if not values or not all(isinstance(v, torch.Tensor) for v in values):
        raise UsageError(
            f"--model {spec.text}: example_inputs must be tensors (a tensor, tuple or dict)",
            tip="return (module, (tensor, ...)) from the factory",
        )
    return _flat(torch, module, names, isinstance(example, dict)), values, names


def _flat(torch: Any, inner: Any, names: list[str], as_keywords: bool) -> Any:
    """The module with positional tensor inputs and a flat tuple of tensor outputs: a form any
    torch loads without the model's own classes (a transformers ModelOutput, say)."""
    from torch.utils import _pytree as pytree

    class Flat(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = inner

        def call(self, args: tuple[Any, ...]) -> Any:
            return (
                self.inner(**dict(zip(names, args, strict=False)))
                if as_keywords
                else self.inner(*args)
            )

        def forward(self, *args: Any) -> tuple[Any, ...]:
            return tuple(pytree.tree_leaves(self.call(args)))

        def outputs(self, example: tuple[Any, ...]) -> list[tuple[str, Any]]:
            """Each output's name (its path in what the module returns) and value."""
            with torch.no_grad():
                out = self.call(example)
            leaves = pytree.tree_flatten_with_path(out)[0]
            paths = [pytree.keystr(p) for p, _ in leaves]
            if len(paths) == 1 and not paths[0]:
                return [("output", leaves[0][1])]
            cleaned = [
                re.sub(r"\W+", "_", p).strip("_") or f"output_{i}" for i, p in enumerate(paths)
            ]
            names = [f"output_{c}" if c[0].isdigit() else c for c in cleaned]
            return [(n, value) for n, (_, value) in zip(names, leaves, strict=True)]

    return Flat().eval()


def _save_torch_form(
    torch: Any, module: Any, example: tuple[Any, ...], names: list[str], spec: ModelSpec, work: Path
) -> tuple[str, TorchFormat, list[TensorInfo] | None, list[TensorInfo] | None, Any]:
    """(file, format, inputs, outputs, exported program or None) of the form PyTorch images
    load: a torch.export program with a dynamic batch axis, or static where that fails, or
    TorchScript where export fails altogether. A torch file is copied as it is."""
    if spec.kind != "factory":
        assert spec.path is not None
        name = "model.pt2" if spec.kind == "pt2" else "model.ts"
        shutil.copyfile(spec.path, work / name)
        if spec.kind == "pt2":
            return name, "pt2", *_program_tensors(torch, module), module
        return name, "torchscript", _script_inputs(module), None, None
    out_names = _tensor_outputs(torch, spec, module.outputs(example))
    program = None
    # torch.export takes a batch of 1 for a constant: a dynamic batch axis needs 2 or more.
    doubled = tuple(torch.cat([v, v]) if v.dim() and v.shape[0] == 1 else v for v in example)
    with _quiet():
        batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
        dynamic = (tuple({0: batch} if v.dim() else None for v in example),)
        for shapes, values in ((dynamic, doubled), (None, example)):
            try:
                program = torch.export.export(module, values, dynamic_shapes=shapes, strict=False)
                break
            except Exception:  # not exportable with a dynamic batch: try it static
                continue
    if program is not None:
        torch.export.save(program, str(work / "model.pt2"))
        inputs, outputs = _program_tensors(torch, program, names)
        named = [replace(o, name=n) for o, n in zip(outputs, out_names, strict=True)]
        return "model.pt2", "pt2", *_batch_named(inputs, named), program
    try:
        with _quiet(), torch.no_grad():
            traced = torch.jit.trace(module, example, check_trace=False)
        traced.save(str(work / "model.ts"))
    except Exception as exc:
        raise UsageError(
            f"--model {spec.text}: neither torch.export nor TorchScript takes it "
            f"({_first_line(exc)})",
            tip="check that the module runs on its example inputs",
        ) from None
    inputs = [
        TensorInfo(n, _torch_dtype(v.dtype), list(v.shape))
        for n, v in zip(names, example, strict=False)
    ]
    return "model.ts", "torchscript", inputs, _outputs_of(torch, module, example, out_names), None


def _tensor_outputs(torch: Any, spec: ModelSpec, outputs: list[tuple[str, Any]]) -> list[str]:
    """The outputs' names, or a UsageError naming the first output that is not a tensor (a
    transformers model's key-value cache, say): no exporter takes one, and nothing compares it."""
    for name, value in outputs:
        if isinstance(value, torch.Tensor):
            continue
        kind = type(value)
        cache = kind.__module__.split(".")[0] == "transformers"
        raise UsageError(
            f"--model {spec.text}: output {name} is a {kind.__name__}, not a tensor",
            tip="a transformers model returns its cache unless told not to: "
            "config.use_cache=False, or model(..., use_cache=False)"
            if cache
            else "the module returns tensors only (a tensor, tuple or dict of them)",
        )
    return [name for name, _ in outputs]


def _batch_named(
    inputs: list[TensorInfo], outputs: list[TensorInfo]
) -> tuple[list[TensorInfo], list[TensorInfo]]:
    """The exporter's name for the batch axis ("s33") as "batch", where it made one."""
    first = inputs[0].shape[0] if inputs and inputs[0].shape else None
    if not isinstance(first, str):
        return inputs, outputs

    def named(t: TensorInfo) -> TensorInfo:
        shape = None if t.shape is None else ["batch" if d == first else d for d in t.shape]
        return replace(t, shape=shape)

    return [named(t) for t in inputs], [named(t) for t in outputs]


def _torch_dtype(dtype: Any) -> str:
    return str(dtype).removeprefix("torch.")


def _outputs_of(
    torch: Any, module: Any, example: tuple[Any, ...], names: list[str]
) -> list[TensorInfo]:
    with torch.no_grad():
        values = module(*example)
    return [
        TensorInfo(n, _torch_dtype(v.dtype), list(v.shape))
        for n, v in zip(names, values, strict=False)
    ]


def _program_tensors(
    torch: Any, program: Any, names: Sequence[str] = ()
) -> tuple[list[TensorInfo], list[TensorInfo]]:
    """An ExportedProgram's user inputs and outputs; a symbolic dimension by its name."""
    signature = program.graph_signature
    user_in = [s.arg.name for s in signature.input_specs if s.kind.name == "USER_INPUT"]
    user_out = [getattr(s.arg, "name", None) for s in signature.output_specs]
    nodes = {n.name: n for n in program.graph.nodes}

    def info(node_name: str | None, label: str) -> TensorInfo:
        value = nodes[node_name].meta.get("val") if node_name in nodes else None
        if value is None or not hasattr(value, "shape"):
            return TensorInfo(label, "unknown", None)
        dims: list[int | str] = [d if isinstance(d, int) else str(d) for d in value.shape]
        return TensorInfo(label, _torch_dtype(value.dtype), dims)

    labels = list(names) if len(names) == len(user_in) else user_in
    outputs = [info(n, n or f"output_{i}") for i, n in enumerate(user_out)]
    return [info(n, label) for n, label in zip(user_in, labels, strict=False)], outputs


def _script_inputs(module: Any) -> list[TensorInfo]:
    """A TorchScript module names its inputs but not their shapes: --input gives those."""
    arguments = module.forward.schema.arguments[1:]  # past `self`
    return [TensorInfo(a.name, "float32", None) for a in arguments]


def _export_onnx(
    torch: Any,
    model: Any,
    example: tuple[Any, ...],
    names: list[str],
    outputs: list[TensorInfo] | None,
    path: Path,
) -> None:
    """ONNX with a dynamic batch axis where the torch form has one (an ExportedProgram carries
    its own dynamic shapes)."""
    if not example:
        raise ValueError("no example inputs to export with")
    program = torch.onnx.export(
        model,
        example,
        dynamo=True,
        input_names=names or None,
        output_names=[o.name for o in outputs] if outputs else None,
        verbose=False,
    )
    program.save(str(path))


# ---------------------------------------------------------------------------------------------
# Inputs


def plan_inputs(info: ModelInfo, overrides: Sequence[InputOverride] = ()) -> list[InputPlan]:
    """Each input's shape, dtype and range: the model's own, where `--input` does not say;
    a symbolic dimension past the batch axis needs `--input`."""
    by_name = {o.name: o for o in overrides}
    known = {t.name for t in info.inputs}
    unknown = [name for name in by_name if name not in known]
    if unknown:
        raise UsageError(
            f"--input {unknown[0]}: the model has no input of that name",
            tip=f"its inputs: {', '.join(sorted(known)) or 'none'}",
        )
    plans = []
    for tensor in info.inputs:
        given = by_name.get(tensor.name, InputOverride(tensor.name))
        _check_dtype(info, tensor, given)
        dtype = given.dtype or tensor.dtype
        if dtype not in INPUT_DTYPES:
            raise UsageError(
                f"--model {info.source}: input {tensor.name} is {dtype}: the smoke test "
                f"generates {', '.join(INPUT_DTYPES)}",
                tip=f"give it one with --input {tensor.name}=DIMS:DTYPE",
            )
        shape = _shape(info, tensor, given)
        # The first axis is the batch where it is symbolic (or the model's fixed batch);
        # TorchScript says no shapes: the given shape's first axis.
        declared = tensor.shape if tensor.shape is not None else shape
        batched = bool(declared) and (
            not isinstance(declared[0], int) or info.fixed_batch is not None or not tensor.shape
        )
        low, high = _range(dtype, given)
        plans.append(InputPlan(tensor.name, dtype, shape, batched, low, high))
    return plans


def _check_dtype(info: ModelInfo, tensor: TensorInfo, given: InputOverride) -> None:
    """A dtype given for an input whose dtype the model declares must be that one: ONNX
    Runtime and torch.export refuse any other. A TorchScript file declares none: any goes."""
    declared = tensor.dtype != "unknown" and info.kind != "torchscript"
    if given.dtype is None or given.dtype == tensor.dtype or not declared:
        return
    raise UsageError(
        f"--input {tensor.name}: dtype {given.dtype} given, but {info.source} declares "
        f"{tensor.dtype}",
        tip=f"leave the dtype out (the model's own is used), or give "
        f"--input {tensor.name}=DIMS:{tensor.dtype}",
    )


def _shape(info: ModelInfo, tensor: TensorInfo, given: InputOverride) -> list[int]:
    if given.shape is not None:
        declared = tensor.shape
        if declared is not None and len(declared) != len(given.shape):
            raise UsageError(
                f"--input {tensor.name}: {len(given.shape)} dimensions, the model's has "
                f"{len(declared)} ({'x'.join(map(str, declared))})",
                tip=f"give all {len(declared)}, e.g. --input {tensor.name}="
                + "x".join(str(d) if isinstance(d, int) else "1" for d in declared),
            )
        clash = [
            (i, d, g)
            for i, (d, g) in enumerate(zip(declared or [], given.shape, strict=False))
            if isinstance(d, int) and d != g
        ]
        if clash:
            i, d, g = clash[0]
            raise UsageError(
                f"--input {tensor.name}: dimension {i} is {d} in the model, not {g}",
                tip="only symbolic dimensions can be chosen",
            )
        return list(given.shape)
    if tensor.shape is None:
        raise UsageError(
            f"--model {info.source}: input {tensor.name}: the model does not say its shape"
            + (" (a TorchScript file declares none)" if info.kind == "torchscript" else ""),
            tip=f"give it with --input {tensor.name}=DIMS, e.g. --input {tensor.name}=1x3x224x224",
        )
    open_dims = [d for d in tensor.shape[1:] if not isinstance(d, int)]
    if open_dims:
        raise UsageError(
            f"--model {info.source}: input {tensor.name}: dimension {open_dims[0]} is symbolic",
            tip=f"give its size with --input {tensor.name}=DIMS, e.g. {tensor.name}="
            + "x".join(str(d) if isinstance(d, int) else "1" for d in tensor.shape),
        )
    return [d if isinstance(d, int) else 1 for d in tensor.shape]


def _range(dtype: str, given: InputOverride) -> tuple[float, float]:
    """Floats: normal(0, 1) unless a range is given; integers 0-1 (a valid index for any
    embedding, a valid mask); booleans both values."""
    if given.low is not None and given.high is not None:
        return given.low, given.high
    return (float("nan"), float("nan")) if dtype.startswith("float") else (0.0, 1.0)


def make_input(numpy: Any, plan: InputPlan, batch: int, seed: int) -> Any:
    """One input at one batch size, from a fixed seed (the same every run)."""
    rng = numpy.random.default_rng([seed, batch, *plan.name.encode()])
    shape = plan.at(batch)
    if plan.dtype.startswith("float"):
        if plan.low != plan.low:  # NaN: no range given
            values = rng.standard_normal(shape)
        else:
            values = rng.uniform(plan.low, plan.high, shape)
        return values.astype(plan.dtype)
    if plan.dtype == "bool":
        return rng.integers(0, 2, shape).astype(bool)
    return rng.integers(int(plan.low), int(plan.high) + 1, shape).astype(plan.dtype)


# ---------------------------------------------------------------------------------------------
# Inputs and references, per batch size: what the program compares against


def prepare_data(prepared: PreparedModel, batch_sizes: Sequence[int]) -> Path:
    """Inputs (fixed seed) and the host's reference outputs for each batch size, cached with
    the model; the folder also holds `data.json` that describes them."""
    batches = prepared.batches(batch_sizes)
    plan = json.dumps([asdict(p) for p in prepared.inputs] + batches, sort_keys=True)
    key = hashlib.sha256(f"{SEED}:{plan}".encode()).hexdigest()[:16]
    directory = prepared.directory / f"data-{key}"
    if (directory / "data.json").is_file():
        return directory
    import numpy

    torch, _ = import_stack()
    run = _reference_runner(torch, prepared)
    with tempfile.TemporaryDirectory(dir=prepared.directory, prefix=".tmp-") as tmp:
        work = Path(tmp)
        described = []
        for batch in batches:
            (work / str(batch)).mkdir()
            values = [make_input(numpy, p, batch, SEED) for p in prepared.inputs]
            for i, value in enumerate(values):
                (work / str(batch) / f"input-{i}.bin").write_bytes(value.tobytes())
            try:
                outputs = run(values)
            except Exception as exc:
                raise UsageError(
                    f"--model {prepared.info.source}: it does not run on the host at batch "
                    f"{batch} ({_first_line(exc)})",
                    tip="check the inputs' shapes, dtypes and ranges (--input)",
                ) from None
            refs = []
            for i, out in enumerate(outputs):
                dtype = str(out.dtype)
                if dtype not in STORED_DTYPES:
                    raise UsageError(
                        f"--model {prepared.info.source}: output {i} is {dtype}",
                        tip=f"outputs are one of {', '.join(STORED_DTYPES)}",
                    )
                stored = out.astype(STORED_DTYPES[dtype])
                (work / str(batch) / f"reference-{i}.bin").write_bytes(stored.tobytes())
                refs.append({"shape": list(out.shape), "dtype": dtype})
            described.append(
                {
                    "batch": batch,
                    "inputs": [{"shape": list(v.shape), "dtype": str(v.dtype)} for v in values],
                    "references": refs,
                }
            )
        (work / "data.json").write_text(json.dumps({"batches": described}, indent=2))
        shutil.rmtree(directory, ignore_errors=True)
        work.rename(directory)
        work.mkdir()
    return directory


def _reference_runner(torch: Any, prepared: PreparedModel) -> Any:
    """Host references: the torch form where there is one, else ONNX Runtime on the CPU."""
    import numpy

    if prepared.torch is not None:
        path = str(prepared.directory / prepared.torch)
        with _quiet():
            if prepared.torch_format == "pt2":
                module = torch.export.load(path).module()
            else:
                module = torch.jit.load(path, map_location="cpu")

        def run_torch(values: list[Any]) -> list[Any]:
            with torch.inference_mode():
                out = module(*(torch.from_numpy(numpy.ascontiguousarray(v)) for v in values))
            return [_to_numpy(torch, t) for t in _leaves(torch, out)]

        return run_torch
    try:
        import onnxruntime
    except ImportError:
        raise UsageError(
            "an ONNX-only model needs onnxruntime on the host for its reference outputs",
            tip="pip install 'buildbench[model]'",
        ) from None
    assert prepared.onnx is not None
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    try:
        session = onnxruntime.InferenceSession(
            str(prepared.directory / prepared.onnx), options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # the host's references need it: nothing to compare with
        raise UsageError(
            f"--model {prepared.info.source}: ONNX Runtime on the host cannot load it "
            f"({_first_line(exc)})",
            tip="check the model with onnx.checker and onnxruntime first",
        ) from None
    names = [i.name for i in session.get_inputs()]

    def run_onnx(values: list[Any]) -> list[Any]:
        return list(session.run(None, dict(zip(names, values, strict=True))))

    return run_onnx


def _leaves(torch: Any, out: Any) -> list[Any]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        out = list(out.values())
    return [leaf for item in out for leaf in _leaves(torch, item)]


def _to_numpy(torch: Any, tensor: Any) -> Any:
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.float()
    return tensor.detach().cpu().numpy()
