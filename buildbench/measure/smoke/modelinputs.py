"""A model's inputs and the host's reference outputs: each input planned (shape, dtype, range),
generated from a fixed seed per batch size, and run on the host once for the references the
program compares against (from the torch form where there is one, else ONNX Runtime), stored
by modeloutputs.py."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from buildbench.errors import UsageError
from buildbench.measure.smoke.modeloutputs import store_reference
from buildbench.measure.smoke.modelspec import INPUT_DTYPES, InputOverride, InputPlan, PreparedModel
from buildbench.measure.smoke.modelstack import first_line, import_stack, quiet
from buildbench.record import ModelInfo, TensorInfo

SEED = 0
RTOL, ATOL = 1e-3, 1e-4  # float parity, in the spirit of numpy.allclose


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
                    f"{batch} ({first_line(exc)})",
                    tip="check the inputs' shapes, dtypes and ranges (--input)",
                ) from None
            refs = [
                store_reference(work / str(batch), i, out, prepared.info.source)
                for i, out in enumerate(outputs)
            ]
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
        with quiet():
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
            f"({first_line(exc)})",
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
