"""Request encodings a server may use: its own JSON with base64 tensors (FastAPI, LitServe),
and KServe v2's JSON tensors (MLServer, whose HTTP has no binary tensors), whose request and
answer code the binary extension (binary.py, Triton) shares. numpy is imported only to decode
an answer."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from buildbench.measure.servers.base import Request, Tensor

JSON = {"Content-Type": "application/json"}


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError as exc:
        raise ValueError(f"the answer is not JSON ({exc})") from None


def _named(found: dict[str, Any], outputs: Sequence[str]) -> dict[str, Any]:
    missing = [name for name in outputs if name not in found]
    if missing:
        raise ValueError(f"the answer lacks output {missing[0]} (it has {', '.join(found)})")
    return {name: found[name] for name in outputs}


@dataclass(frozen=True)
class Base64Tensors:
    """`{"inputs": {NAME: {"dtype", "shape", "data": base64 of the raw bytes}}}`, answered
    `{"outputs": {NAME: {...}}}` alike: a tensor costs 4/3 of its bytes, not a float's text."""

    name: str = "JSON, tensors as base64"

    def request(self, inputs: Sequence[Tensor]) -> Request:
        body = {
            "inputs": {
                t.name: {
                    "dtype": t.dtype,
                    "shape": list(t.shape),
                    "data": base64.b64encode(t.data).decode(),
                }
                for t in inputs
            }
        }
        return Request(json.dumps(body).encode(), JSON)

    def decode(self, body: bytes, outputs: Sequence[str]) -> dict[str, Any]:
        import numpy

        found = _json(body)
        if not isinstance(found, dict) or not isinstance(found.get("outputs"), dict):
            raise ValueError('the answer has no "outputs" object')
        arrays = {}
        for name, tensor in found["outputs"].items():
            try:
                raw = base64.b64decode(tensor["data"], validate=True)
                value = numpy.frombuffer(raw, dtype=tensor["dtype"])
                arrays[name] = value.reshape(tensor["shape"])
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"output {name} cannot be read ({exc})") from None
        return _named(arrays, outputs)


# KServe v2's datatypes by numpy's dtype name.
KSERVE_TYPES = {
    "float32": "FP32",
    "float16": "FP16",
    "float64": "FP64",
    "int64": "INT64",
    "int32": "INT32",
    "int16": "INT16",
    "int8": "INT8",
    "uint8": "UINT8",
    "bool": "BOOL",
}
KSERVE_DTYPES = {kind: dtype for dtype, kind in KSERVE_TYPES.items()}


@dataclass(frozen=True)
class KServeV2Json:
    """KServe v2's inference request with each tensor's values as a flat JSON list."""

    name: str = "KServe v2, JSON values"

    def request(self, inputs: Sequence[Tensor]) -> Request:
        import numpy

        body = {
            "inputs": [
                {
                    "name": t.name,
                    "shape": list(t.shape),
                    "datatype": KSERVE_TYPES[t.dtype],
                    "data": numpy.frombuffer(t.data, dtype=t.dtype).tolist(),
                }
                for t in inputs
            ]
        }
        return Request(json.dumps(body).encode(), JSON)

    def decode(self, body: bytes, outputs: Sequence[str]) -> dict[str, Any]:
        found = _json(body)
        if not isinstance(found, dict) or not isinstance(found.get("outputs"), list):
            raise ValueError('the answer has no "outputs" list')
        return kserve_outputs(found, body, len(body), outputs)


def kserve_outputs(
    header: dict[str, Any], body: bytes, at: int, outputs: Sequence[str]
) -> dict[str, Any]:
    """A KServe v2 answer's outputs, each as its datatype says: JSON values in the header, or
    (the binary tensor extension) `binary_data_size` bytes of the body from `at` on, in order."""
    import numpy

    arrays = {}
    for tensor in header.get("outputs") or []:
        try:
            dtype = KSERVE_DTYPES[tensor["datatype"]]
            size = (tensor.get("parameters") or {}).get("binary_data_size")
            if size is None:
                value = numpy.asarray(tensor["data"], dtype=dtype)
            else:
                value = numpy.frombuffer(body[at : at + size], dtype=dtype)
                at += size
            arrays[tensor["name"]] = value.reshape(tensor["shape"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"an output cannot be read ({exc})") from None
    return _named(arrays, outputs)


BASE64_TENSORS = Base64Tensors()
KSERVE_V2_JSON = KServeV2Json()
