"""A model's forms, made from its spec: the torch form and the ONNX form (each where it can be
made; else that runtime's cells are "not applicable" with the reason; a scikit-learn
estimator's: ONNX only, sklearnforms.py), and what the ONNX graph says of the model's inputs,
outputs and operators."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from buildbench.errors import UsageError
from buildbench.measure.smoke.modelspec import MODEL_TIP, ModelSpec, PreparedModel, TorchFormat
from buildbench.measure.smoke.modelstack import first_line, quiet
from buildbench.measure.smoke.sklearnforms import NO_TORCH_FORM, is_estimator, save_onnx
from buildbench.measure.smoke.torchforms import (
    call_factory,
    export_onnx,
    save_torch_form,
    torch_module,
)
from buildbench.record import ModelInfo, TensorInfo

# ONNX TensorProto element types -> names (inputs: INPUT_DTYPES; outputs may be any of these).
ONNX_DTYPES = {
    1: "float32",
    2: "uint8",
    3: "int8",
    4: "uint16",
    5: "int16",
    6: "int32",
    7: "int64",
    8: "string",
    9: "bool",
    10: "float16",
    11: "float64",
    12: "uint32",
    13: "uint64",
    16: "bfloat16",
}


def external_files(onnx: Any, path: Path, label: str) -> list[Path]:
    """The external-data files an ONNX model names (beside it), in a stable order."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise UsageError(
            f"--model {label}: not a valid ONNX model ({first_line(exc)})", tip=MODEL_TIP
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


def make_forms(torch: Any, onnx: Any, spec: ModelSpec, key: str, work: Path) -> PreparedModel:
    not_applicable: dict[str, str] = {}
    onnx_name: str | None = None
    onnx_files: list[str] = []
    torch_name: str | None = None
    torch_format: TorchFormat | None = None
    inputs: list[TensorInfo] | None = None
    outputs: list[TensorInfo] | None = None
    made = call_factory(spec) if spec.kind == "factory" else None
    if made is not None and is_estimator(made[0]):
        onnx_name = save_onnx(spec, *made, work)
        onnx_files = [onnx_name]
        not_applicable["pytorch"] = NO_TORCH_FORM
    elif spec.kind == "onnx":
        assert spec.path is not None
        for source in [spec.path, *external_files(onnx, spec.path, spec.text)]:
            shutil.copyfile(source, work / source.name)
            onnx_files.append(source.name)
        onnx_name = spec.path.name
        not_applicable["pytorch"] = "an ONNX model has no PyTorch form"
    else:
        module, example, names = torch_module(torch, spec, made)
        form = save_torch_form(torch, module, example, names, spec, work)
        torch_name, torch_format, inputs, outputs, program = form
        if not example and program is not None:  # a .pt2 file: the inputs it was exported with
            example = tuple((getattr(program, "example_inputs", None) or ((), {}))[0])
        if spec.kind == "torchscript":
            not_applicable["onnx"] = (
                "a TorchScript file is not exported to ONNX (give its .onnx, or module:callable)"
            )
        else:
            try:
                with quiet():
                    export_onnx(
                        torch, program or module, example, names, outputs, work / "model.onnx"
                    )
                onnx.checker.check_model(str(work / "model.onnx"), full_check=True)
                onnx_name = "model.onnx"
                onnx_files = sorted(
                    p.name for p in work.iterdir() if p.name.startswith("model.onnx")
                )
            except Exception as exc:  # the exporter's many failures: ONNX cells say why
                not_applicable["onnx"] = f"the ONNX export failed: {first_line(exc)}"
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
    return PreparedModel(
        info,
        work,
        [],
        onnx_name,
        onnx_files,
        torch_name,
        torch_format,
        operators=graph.get("operators", {}),
    )


def _onnx_facts(onnx: Any, path: Path, label: str) -> dict[str, Any]:
    try:
        onnx.checker.check_model(str(path), full_check=False)
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise UsageError(
            f"--model {label}: not a valid ONNX model ({first_line(exc)})", tip=MODEL_TIP
        ) from None
    initializers = {t.name for t in model.graph.initializer}

    def tensor(value: Any) -> TensorInfo:
        if value.type.WhichOneof("value") != "tensor_type":  # ZipMap's seq(map(...)), say
            return TensorInfo(value.name, _type_name(value.type), None)
        kind = value.type.tensor_type
        dims: list[int | str] = [d.dim_param or d.dim_value or "?" for d in kind.shape.dim]
        return TensorInfo(value.name, ONNX_DTYPES.get(kind.elem_type, str(kind.elem_type)), dims)

    default = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    operators: dict[str, set[str]] = {}
    graphs = [model.graph]
    while graphs:  # subgraphs (If, Loop, Scan) too: a runtime is asked to have them all
        graph = graphs.pop()
        for node in graph.node:
            domain = "" if node.domain in ("", "ai.onnx") else node.domain
            operators.setdefault(domain, set()).add(node.op_type)
            for attribute in node.attribute:
                if attribute.HasField("g"):
                    graphs.append(attribute.g)
                graphs.extend(attribute.graphs)
    producer = " ".join(p for p in (model.producer_name, model.producer_version) if p)
    return {
        "inputs": [tensor(v) for v in model.graph.input if v.name not in initializers],
        "outputs": [tensor(v) for v in model.graph.output],
        "opset": default[0] if default else None,
        "producer": producer or None,
        "nodes": len(model.graph.node),
        "operators": {d: sorted(ops) for d, ops in sorted(operators.items())},
    }


def _type_name(kind: Any) -> str:
    """An ONNX type in a few words: float32, seq(map(int64, float32)) ..."""
    which = kind.WhichOneof("value")
    if which == "tensor_type":
        return ONNX_DTYPES.get(kind.tensor_type.elem_type, str(kind.tensor_type.elem_type))
    if which == "sequence_type":
        return f"seq({_type_name(kind.sequence_type.elem_type)})"
    if which == "map_type":
        key = ONNX_DTYPES.get(kind.map_type.key_type, str(kind.map_type.key_type))
        return f"map({key}, {_type_name(kind.map_type.value_type)})"
    return str(which)


def _fixed_batch(inputs: Sequence[TensorInfo]) -> int | None:
    """The batch every input declares on its first axis, when none leaves it symbolic."""
    firsts = {t.shape[0] for t in inputs if t.shape}
    only = firsts.pop() if len(firsts) == 1 else None
    return only if isinstance(only, int) else None
