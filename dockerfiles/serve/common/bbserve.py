"""What buildbench's serving images share: the run's model as buildbench mounts it.

$BUILDBENCH_MODEL is the model's file (the form the server serves) and $BUILDBENCH_MODEL_META
a JSON file with its inputs (name, dtype, shape at batch 1, batched) and outputs (name, ...).
A raw request is the inputs' bytes back to back in that order, C-ordered, at one batch size;
a raw answer is an .npz of the outputs by name (numpy's own format: shapes and dtypes travel).
As JSON, tensors travel as {NAME: {"dtype", "shape", "data": base64 of the raw bytes}}
(from_base64, to_base64), as FastAPI's and LitServe's do.
"""

import base64
import io
import json
import os

import numpy as np


def meta():
    with open(os.environ["BUILDBENCH_MODEL_META"]) as f:
        return json.load(f)


def split_inputs(body, inputs):
    """The inputs' arrays from a raw body; the batch is what its length holds."""

    def per_item(t):
        return np.dtype(t["dtype"]).itemsize * int(
            np.prod(t["shape"][1:] if t["batched"] else t["shape"])
        )

    fixed = sum(per_item(t) for t in inputs if not t["batched"])
    rows = sum(per_item(t) for t in inputs if t["batched"])
    batch, rest = divmod(len(body) - fixed, rows) if rows else (1, len(body) - fixed)
    if rest or batch < 1:
        raise ValueError(f"a body of {len(body)} bytes is not the model's inputs at any batch")
    arrays, at = [], 0
    for t in inputs:
        shape = [batch, *t["shape"][1:]] if t["batched"] else list(t["shape"])
        count = int(np.prod(shape))
        arrays.append(np.frombuffer(body, t["dtype"], count, at).reshape(shape))
        at += count * np.dtype(t["dtype"]).itemsize
    return arrays


def npz(names, arrays):
    out = io.BytesIO()
    np.savez(out, **{n: np.asarray(a) for n, a in zip(names, arrays, strict=False)})
    return out.getvalue()


def onnx_session():
    """An ONNX Runtime session on the model (CUDA first where the image has it)."""
    import onnxruntime as ort

    found = ort.get_available_providers()
    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in found]
    return ort.InferenceSession(os.environ["BUILDBENCH_MODEL"], providers=providers)


def from_base64(given):
    """{NAME: {"dtype", "shape", "data": base64}} -> {NAME: array}"""
    return {
        name: np.frombuffer(base64.b64decode(t["data"]), t["dtype"]).reshape(t["shape"])
        for name, t in given.items()
    }


def to_base64(names, arrays):
    """The outputs as {"outputs": {NAME: {"dtype", "shape", "data": base64}}}."""
    return {
        "outputs": {
            name: {
                "dtype": str(v.dtype),
                "shape": list(v.shape),
                "data": base64.b64encode(np.ascontiguousarray(v).tobytes()).decode(),
            }
            for name, v in zip(names, arrays, strict=True)
        }
    }


def batching():
    """The server's own batching as buildbench turned it on: (largest batch, longest wait in
    ms) from $BUILDBENCH_MAX_BATCH and $BUILDBENCH_MAX_DELAY_MS; None: off."""
    size = os.environ.get("BUILDBENCH_MAX_BATCH")
    if not size:
        return None
    return int(size), float(os.environ.get("BUILDBENCH_MAX_DELAY_MS") or 0)


def stack(requests):
    """Several requests' inputs (each a list of arrays in the model's input order) as one
    batch along the batch axis, and each request's rows, to split the outputs back."""
    rows = [len(arrays[0]) for arrays in requests]
    return [np.concatenate(column) for column in zip(*requests, strict=True)], rows


def unstack(outputs, rows):
    """The batch's outputs split back into each request's, as `stack` joined them."""
    total = sum(rows)
    for value in outputs:
        if np.ndim(value) == 0 or len(value) != total:
            raise ValueError(f"an output of shape {np.shape(value)} has no batch of {total} rows")
    edges = np.cumsum(rows)[:-1]
    parts = [np.split(value, edges) for value in outputs]
    return [[np.ascontiguousarray(p[i]) for p in parts] for i in range(len(rows))]


def run_batch(run, requests):
    """Each request's outputs from `run` (a model's call: its inputs' arrays in, its outputs'
    out): a request alone as the model answers it, whatever its outputs' shapes; several as one
    batch (`stack`, one call, `unstack`)."""
    if len(requests) == 1:
        return [run(requests[0])]
    joined, rows = stack(requests)
    return unstack(run(joined), rows)
