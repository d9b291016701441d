"""Binary request encodings: a tensor travels as its raw bytes, not as text.

KServe v2's binary tensor extension (Triton): a JSON header naming each tensor's
`binary_data_size`, then the tensors' bytes; its length in `Inference-Header-Content-Length`
(the answer is read without that header: its JSON ends where the outer braces close).
Raw bytes (TorchServe): the inputs' bytes back to back, answered with an .npz of the outputs.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from buildbench.measure.servers.base import Request, Tensor
from buildbench.measure.servers.encodings import KSERVE_TYPES, _named, kserve_outputs

HEADER_LENGTH = "Inference-Header-Content-Length"


def _json_prefix(body: bytes) -> tuple[dict[str, Any], int]:
    """The JSON object a body starts with, and where its bytes end."""
    try:
        found, end = json.JSONDecoder().raw_decode(body[:1_000_000].decode("latin-1"))
    except ValueError as exc:
        raise ValueError(f"the answer does not start with a JSON header ({exc})") from None
    if not isinstance(found, dict):
        raise ValueError("the answer's header is not a JSON object")
    return found, end


@dataclass(frozen=True)
class KServeV2Binary:
    """KServe v2 with the binary tensor extension, inputs and outputs as raw bytes."""

    outputs: tuple[str, ...] = ()  # empty: every output, each asked for as binary data
    name: str = "KServe v2, binary tensors"

    def request(self, inputs: Sequence[Tensor]) -> Request:
        header = {
            "inputs": [
                {
                    "name": t.name,
                    "shape": list(t.shape),
                    "datatype": KSERVE_TYPES[t.dtype],
                    "parameters": {"binary_data_size": len(t.data)},
                }
                for t in inputs
            ],
            "parameters": {"binary_data_output": True},
        }
        head = json.dumps(header).encode()
        headers = {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(len(head))}
        return Request(head + b"".join(t.data for t in inputs), headers)

    def decode(self, body: bytes, outputs: Sequence[str]) -> dict[str, Any]:
        header, at = _json_prefix(body)
        return kserve_outputs(header, body, at, outputs)


@dataclass(frozen=True)
class RawNpz:
    """The inputs' raw bytes back to back (the server knows their shapes from serve.json);
    the answer an .npz of the outputs by name."""

    name: str = "raw bytes, answered as .npz"

    def request(self, inputs: Sequence[Tensor]) -> Request:
        headers = {"Content-Type": "application/octet-stream"}
        return Request(b"".join(t.data for t in inputs), headers)

    def decode(self, body: bytes, outputs: Sequence[str]) -> dict[str, Any]:
        import numpy

        try:
            with numpy.load(io.BytesIO(body), allow_pickle=False) as found:
                arrays = {name: found[name] for name in found.files}
        except (OSError, ValueError) as exc:
            raise ValueError(f"the answer is not an .npz ({exc})") from None
        return _named(arrays, outputs)


KSERVE_V2_BINARY = KServeV2Binary()
RAW_NPZ = RawNpz()
