"""Parity: every output of the image's runtime against the host's reference outputs."""

from __future__ import annotations

import math
import os
from typing import Any

# Each output dtype a reference file can hold, and the dtype it is stored in (half floats as
# float32, which every reader has).
STORED_DTYPES = {
    "float32": "float32",
    "float16": "float32",
    "bfloat16": "float32",
    "float64": "float64",
    "int64": "int64",
    "int32": "int32",
    "int16": "int16",
    "int8": "int8",
    "uint8": "uint8",
    "bool": "bool",
}


def parity(
    got: Any, want: Any, rtol: float, atol: float, exact: bool = False, xp: Any = None
) -> dict:
    """Floats within atol + rtol * |reference| (NaN matches NaN); integers and booleans
    exactly. `ratio`: the worst difference over what the tolerance allows (above 1 fails).

    Vectorised in the image's own array library `xp` (torch, or numpy beside onnxruntime) over
    float64 arrays, so that a large output (a vocabulary's logits) costs no Python loop; plain
    sequences are read with numpy."""
    if xp is None:
        import numpy

        xp = numpy
        got, want = xp.asarray(got, dtype="float64"), xp.asarray(want, dtype="float64")
    g, w = got.reshape(-1), want.reshape(-1)
    if len(g) != len(w):
        raise ValueError(f"{len(g)} values against {len(w)} in the reference")
    if not len(w):
        return _parity_found(0.0, 0.0, 0, 0, 0.0, exact)
    magnitude = xp.where(xp.isnan(w), 0.0, xp.abs(w))  # a NaN reference allows nothing
    diff = xp.where(xp.isnan(g) & xp.isnan(w), 0.0, xp.abs(g - w))
    diff = xp.where(xp.isnan(diff), math.inf, diff)  # NaN on one side only
    allowed = magnitude * 0.0 if exact else atol + rtol * magnitude
    over = xp.where(allowed > 0, diff / xp.where(allowed > 0, allowed, 1.0), 0.0)
    over = xp.where((allowed <= 0) & (diff > 0), math.inf, over)
    relative = diff / xp.where(magnitude > 1e-12, magnitude, 1e-12)
    return _parity_found(
        float(diff.max()),
        float(relative.max()),
        int((diff > allowed).sum()),
        len(w),
        float(over.max()),
        exact,
    )


def _parity_found(
    max_abs: float, max_rel: float, mismatches: int, count: int, ratio: float, exact: bool
) -> dict:
    return {
        "max_abs_diff": max_abs,
        "max_rel_diff": max_rel,
        "ok": mismatches == 0,
        "exact": exact,
        "mismatches": mismatches,
        "count": count,
        "ratio": ratio,
    }


def compare_outputs(model: Any, got: list, batch: dict, meta: dict, folder: str) -> dict[str, dict]:
    """Parity of every output with its reference, by name, in `model`'s array library; a
    missing output or another shape fails by itself."""
    found: dict[str, dict] = {}
    for i, (name, ref) in enumerate(zip(meta["outputs"], batch["references"], strict=True)):
        exact = not ref["dtype"].startswith(("float", "bfloat"))
        if i >= len(got):
            found[name] = {**_parity_found(0, 0, 0, 0, 0, exact), "ok": False, "note": "missing"}
            continue
        shape, values = got[i]
        if list(shape) != list(ref["shape"]):
            note = f"shape {list(shape)}, reference {ref['shape']}"
            found[name] = {**_parity_found(0, 0, 0, 0, 0, exact), "ok": False, "note": note}
            continue
        path = os.path.join(folder, f"reference-{i}.bin")
        want = model.reference(path, STORED_DTYPES[ref["dtype"]])
        if model.accuracy is not None and not exact:
            found[name] = accuracy(values, want, shape, model.accuracy, model.xp)
        else:
            found[name] = parity(values, want, meta["rtol"], meta["atol"], exact, xp=model.xp)
    return found


ACCURACY_NOTE = "accuracy: "  # how an output's note starts when it is an accuracy figure


def accuracy(got: Any, want: Any, shape: list[int], policy: dict, xp: Any) -> dict:
    """A lossy form's accuracy (a quantised model's): the largest difference, the share of
    values within the policy's tolerance (`of_range` x the output's largest magnitude + `rtol`
    x the value's; passing at `share`) and, for a classifier's scores (one row of two or more
    per item), how often its top-1 agrees with the reference's."""
    scale = float(xp.where(xp.isnan(want), 0.0, xp.abs(want)).max()) if len(want) else 0.0
    found = parity(got, want, policy["rtol"], policy["of_range"] * scale, xp=xp)
    share = 1 - found["mismatches"] / found["count"] if found["count"] else 1.0
    note = f"{ACCURACY_NOTE}{share:.1%} within tolerance"
    if len(shape) == 2 and shape[0] and shape[1] > 1:
        rows = shape[0]
        agree = int((got.reshape(shape).argmax(1) == want.reshape(shape).argmax(1)).sum())
        note += f", top-1 agrees on {agree} of {rows}"
    return {**found, "ok": share >= policy["share"], "note": note}


def worst(outputs: dict[str, dict]) -> tuple[str | None, dict]:
    """The output furthest from its reference, and a summary over all of them."""
    if not outputs:
        return None, {"max_abs_diff": 0.0, "max_rel_diff": 0.0, "ok": False}
    name = max(outputs, key=lambda n: (not outputs[n]["ok"], outputs[n]["ratio"]))
    summary = {
        "max_abs_diff": max(p["max_abs_diff"] for p in outputs.values()),
        "max_rel_diff": max(p["max_rel_diff"] for p in outputs.values()),
        "ok": all(p["ok"] for p in outputs.values()),
    }
    return name, summary
