"""Torch forms of a model: a factory's module, or a torch file, saved as the form PyTorch images
load (a torch.export program, else TorchScript), its ONNX export, and a factory's other torch
forms (eager: its code and state dict; TorchScript beside an export) for --torch-forms."""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import re
import shutil
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from buildbench.errors import UsageError
from buildbench.measure.smoke.modelspec import MODEL_TIP, ModelSpec, TorchFormat
from buildbench.measure.smoke.modelstack import first_line, quiet
from buildbench.record import TensorInfo

MAX_BATCH = 1024  # the exported batch axis's upper bound
EAGER = "eager.json"  # the eager form: how to make the module; its code and weights beside it
SCRIPT = "model-script.ts"  # the TorchScript form beside a torch.export program


def resolve_factory(spec: ModelSpec) -> Any:
    assert spec.module and spec.callable
    folder = str(spec.path) if spec.path else ""  # "": the current folder, as `python -m`
    if folder not in sys.path:
        sys.path.insert(0, folder)
    try:
        module = importlib.import_module(spec.module)
    except Exception as exc:
        raise UsageError(
            f"--model {spec.text}: module {spec.module} does not import ({first_line(exc)})",
            tip="run from the folder that holds it, or put it on PYTHONPATH",
        ) from None
    factory = getattr(module, spec.callable, None)
    if not callable(factory):
        raise UsageError(
            f"--model {spec.text}: {spec.module} has no callable {spec.callable}",
            tip="the callable returns (torch.nn.Module, example_inputs)",
        )
    return factory


def factory_key(torch: Any, spec: ModelSpec, factory: Any) -> str:
    """A factory is known by its module's source, the callable's name and the torch version
    (that exports it): editing that file prepares the model again."""
    try:
        source = inspect.getsource(sys.modules[factory.__module__])
    except (OSError, TypeError, KeyError):
        source = repr(factory)
    return hashlib.sha256(
        f"factory:{spec.module}:{spec.callable}:{torch.__version__}\n{source}".encode()
    ).hexdigest()


FACTORY_TIP = "it returns (torch.nn.Module or fitted scikit-learn estimator, example_inputs)"


def call_factory(spec: ModelSpec) -> tuple[Any, Any]:
    """What a factory returns: (model, example inputs)."""
    factory = resolve_factory(spec)
    try:
        model, example = factory()
    except Exception as exc:
        raise UsageError(
            f"--model {spec.text}: the factory failed ({first_line(exc)})", tip=FACTORY_TIP
        ) from None
    return model, example


def torch_module(
    torch: Any, spec: ModelSpec, made: tuple[Any, Any] | None = None
) -> tuple[Any, tuple[Any, ...], list[str]]:
    """(module, example inputs as a tuple, their names) from a factory (what it returned:
    `made`) or a torch file."""
    if spec.kind == "factory":
        module, example = made or call_factory(spec)
        if not isinstance(module, torch.nn.Module):
            raise UsageError(
                f"--model {spec.text}: the factory returned {type(module).__name__}, "
                "not a torch.nn.Module",
                tip=FACTORY_TIP,
            )
        return _named_example(torch, spec, module.eval(), example)
    assert spec.path is not None
    try:
        with quiet():
            if spec.kind == "pt2":
                program = torch.export.load(str(spec.path))
            else:
                program = torch.jit.load(str(spec.path), map_location="cpu")
    except Exception as exc:
        raise UsageError(
            f"--model {spec.text}: not a valid {spec.kind} model ({first_line(exc)})",
            tip=MODEL_TIP,
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
            self.names = names
            self.as_keywords = as_keywords

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


def save_torch_form(
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
    save_eager(torch, module, spec, work)
    program = None
    # torch.export takes a batch of 1 for a constant: a dynamic batch axis needs 2 or more.
    doubled = tuple(torch.cat([v, v]) if v.dim() and v.shape[0] == 1 else v for v in example)
    with quiet():
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
        _save_script(torch, module, example, work / SCRIPT)
        inputs, outputs = _program_tensors(torch, program, names)
        named = [replace(o, name=n) for o, n in zip(outputs, out_names, strict=True)]
        return "model.pt2", "pt2", *_batch_named(inputs, named), program
    try:
        with quiet(), torch.no_grad():
            traced = torch.jit.trace(module, example, check_trace=False)
        traced.save(str(work / "model.ts"))
    except Exception as exc:
        raise UsageError(
            f"--model {spec.text}: neither torch.export nor TorchScript takes it "
            f"({first_line(exc)})",
            tip="check that the module runs on its example inputs",
        ) from None
    inputs = [
        TensorInfo(n, _torch_dtype(v.dtype), list(v.shape))
        for n, v in zip(names, example, strict=False)
    ]
    return "model.ts", "torchscript", inputs, _outputs_of(torch, module, example, out_names), None


def save_eager(torch: Any, module: Any, spec: ModelSpec, work: Path) -> None:
    """The eager form, PyTorch's own way to ship a model: the factory's module file as it is
    (the image imports it, if it imports only what the image has), the callable's name, and the
    module's state dict (the weights the references come from, whatever the factory draws)."""
    source = getattr(sys.modules.get(str(spec.module)), "__file__", None)
    if not source or not source.endswith(".py"):
        return  # no one file of source (a compiled module, say): no eager form
    shutil.copyfile(source, work / "eager.py")
    torch.save(module.inner.state_dict(), str(work / "eager.pt"))
    how = {
        "module": spec.module,
        "callable": spec.callable,
        "code": "eager.py",
        "weights": "eager.pt",
        "keywords": module.names if module.as_keywords else None,
    }
    (work / EAGER).write_text(json.dumps(how, indent=2))


def _save_script(torch: Any, module: Any, example: tuple[Any, ...], path: Path) -> None:
    """The TorchScript form beside an export, traced; none where tracing fails."""
    try:
        with quiet(), torch.no_grad():
            torch.jit.trace(module, example, check_trace=False).save(str(path))
    except Exception:  # the program says the model has no torchscript form
        path.unlink(missing_ok=True)


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


def export_onnx(
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
