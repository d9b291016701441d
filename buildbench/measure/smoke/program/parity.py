"""Parity: every output of the image's runtime against the host's reference outputs.

A tensor's reference is raw bytes (`reference-<i>.bin`, in its STORED_DTYPES dtype); a string
tensor's and a sequence of maps' (skl2onnx's ZipMap: one {label: score} per item) is JSON
(`reference-<i>.json`): strings compared exactly, maps key by key (the keys exactly, the scores
as floats are)."""

from __future__ import annotations

import json
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
    "uint16": "uint16",
    "uint32": "uint32",
    "uint64": "uint64",
    "bool": "bool",
}
# Outputs whose reference is JSON: a string tensor (flat), and a sequence of maps (each item
# its [key, value] pairs, in the reference's order).
STRINGS, MAPS = "string", "map"


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
        if ref["dtype"] in (STRINGS, MAPS):
            with open(os.path.join(folder, f"reference-{i}.json")) as handle:
                want = json.load(handle)
            if ref["dtype"] == STRINGS:
                found[name] = compare_strings(values, want)
            else:
                found[name] = compare_maps(model, values, want, meta)
            continue
        path = os.path.join(folder, f"reference-{i}.bin")
        want = model.reference(path, STORED_DTYPES[ref["dtype"]])
        found[name] = _numbers(model, values, want, shape, meta, exact)
    return found


def _numbers(model: Any, got: Any, want: Any, shape: list, meta: dict, exact: bool) -> dict:
    """Numbers in the model's array library: within tolerance, or its accuracy policy."""
    if model.accuracy is not None and not exact:
        return accuracy(got, want, shape, model.accuracy, model.xp)
    return parity(got, want, meta["rtol"], meta["atol"], exact, xp=model.xp)


def compare_strings(got: Any, want: list[str]) -> dict:
    """A string tensor (class labels), value by value, exactly."""
    if not isinstance(got, list):
        return {**_parity_found(0, 0, 0, 0, 0, True), "ok": False, "note": "not strings"}
    differ = [(g, w) for g, w in zip(got, want, strict=True) if g != w]
    found = _parity_found(0.0, 0.0, len(differ), len(want), math.inf if differ else 0.0, True)
    if differ:
        found["note"] = (
            f"{len(differ)} of {len(want)} differ, e.g. {differ[0][0]!r} for {differ[0][1]!r}"
        )
    return found


def compare_maps(model: Any, got: Any, want: list[list[list[Any]]], meta: dict) -> dict:
    """A sequence of maps (ZipMap's {label: score} per item): each item's keys exactly, then
    every score against the reference's as numbers are (within tolerance, or the accuracy
    policy's figure, a classifier's top-1 among them: one row of scores per item)."""
    if not isinstance(got, list) or not all(isinstance(g, dict) for g in got):
        return {**_parity_found(0, 0, 0, 0, 0, False), "ok": False, "note": "not maps"}
    for n, (g, pairs) in enumerate(zip(got, want, strict=True)):
        keys = [k for k, _ in pairs]
        if sorted(map(repr, g)) != sorted(map(repr, keys)):
            note = f"item {n}: keys {sorted(g, key=repr)}, reference {sorted(keys, key=repr)}"
            return {**_parity_found(0, 0, 1, len(want), math.inf, False), "ok": False, "note": note}
    xp = model.xp
    values = xp.asarray(
        [float(g[k]) for g, pairs in zip(got, want, strict=True) for k, _ in pairs],
        dtype=xp.float64,
    )
    reference = xp.asarray([float(v) for pairs in want for _, v in pairs], dtype=xp.float64)
    shape = [len(want), len(want[0]) if want else 0]
    return _numbers(model, values, reference, shape, meta, exact=False)


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
