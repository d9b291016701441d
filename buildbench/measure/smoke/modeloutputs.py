"""The host's reference outputs, stored as the program reads them (program/parity.py): a tensor
of numbers as raw bytes, a string tensor and a sequence of maps (skl2onnx's ZipMap, which ONNX
Runtime returns as a list of dicts) as JSON; anything else is the user's to know about."""

from __future__ import annotations

import json
import numbers
from pathlib import Path
from typing import Any

from buildbench.errors import UsageError
from buildbench.measure.smoke.program import MAPS, STORED_DTYPES, STRINGS

OUTPUTS_TIP = (
    f"outputs are tensors ({', '.join(STORED_DTYPES)} or string) or sequences of maps "
    "(skl2onnx's ZipMap)"
)


def store_reference(folder: Path, index: int, out: Any, source: str) -> dict[str, Any]:
    """Write output `index` into `folder`; what data.json says of it (shape, dtype, and a
    map's key type)."""
    if isinstance(out, list):
        return _store_maps(folder, index, out, source)
    dtype = str(out.dtype)
    if out.dtype.kind in "OUS":  # ONNX Runtime's tensor(string): numpy objects
        texts = [v.decode() if isinstance(v, bytes) else v for v in out.reshape(-1).tolist()]
        if not all(isinstance(t, str) for t in texts):
            _refuse(source, index, f"an array of {_kinds(texts)}")
        _write_json(folder / f"reference-{index}.json", texts)
        return {"shape": list(out.shape), "dtype": STRINGS}
    if dtype not in STORED_DTYPES:
        _refuse(source, index, dtype)
    stored = out.astype(STORED_DTYPES[dtype])
    (folder / f"reference-{index}.bin").write_bytes(stored.tobytes())
    return {"shape": list(out.shape), "dtype": dtype}


def _store_maps(folder: Path, index: int, out: list[Any], source: str) -> dict[str, Any]:
    """A sequence of maps from labels (integers or strings) to scores, each item's pairs in
    its own order."""
    if not all(isinstance(item, dict) for item in out):
        _refuse(source, index, f"a sequence of {_kinds(out)}")
    items = [[[_plain(k), v] for k, v in item.items()] for item in out]
    pairs = [pair for item in items for pair in item]
    if not all(isinstance(v, numbers.Real) for _, v in pairs):
        _refuse(source, index, "a sequence of maps to other values than numbers")
    keys = {type(k) for k, _ in pairs}
    if not keys <= {int, str} or len(keys) > 1:
        _refuse(source, index, "a sequence of maps keyed by other than integers or strings")
    for item in items:
        for pair in item:
            pair[1] = float(pair[1])
    _write_json(folder / f"reference-{index}.json", items)
    return {"shape": [len(out)], "dtype": MAPS, "keys": "string" if str in keys else "int64"}


def _plain(key: Any) -> Any:
    return key.item() if hasattr(key, "item") else key  # a numpy integer, say


def _kinds(values: list[Any]) -> str:
    return ", ".join(sorted({type(v).__name__ for v in values})) or "nothing"


def _refuse(source: str, index: int, what: str) -> None:
    raise UsageError(f"--model {source}: output {index} is {what}", tip=OUTPUTS_TIP)


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value))
