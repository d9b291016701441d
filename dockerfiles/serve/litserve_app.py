"""LitServe + ONNX Runtime, serving the ONNX model at $BUILDBENCH_MODEL (buildbench's
`--server litserve`): one LitAPI, one worker; LitServe runs it in its own process behind its
FastAPI/uvicorn front and answers GET /health once the worker has loaded the model. With
$BUILDBENCH_MAX_BATCH set, LitServe's batching (max_batch_size, batch_timeout) hands `predict`
up to that many requests at once, which run as one batch.

POST /predict {"inputs": {NAME: {"dtype", "shape", "data": base64 of the raw bytes}}}
  -> {"outputs": {NAME: {"dtype", "shape", "data": base64}}}, in the model's output order.
"""

from __future__ import annotations

import os
from typing import Any

import bbserve
import litserve as ls
import numpy as np


class OnnxAPI(ls.LitAPI):
    def setup(self, device: str) -> None:
        self.session = bbserve.onnx_session()
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]

    # Left unannotated: LitServe reads the body as JSON only when this says no type.
    def decode_request(self, request):  # type: ignore[no-untyped-def]
        given = request.get("inputs")
        if not isinstance(given, dict) or set(given) != set(self.inputs):
            raise ValueError(f"inputs must be an object of {sorted(self.inputs)}")
        found = bbserve.from_base64(given)
        return [found[name] for name in self.inputs]

    def infer(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        return list(self.session.run(self.outputs, dict(zip(self.inputs, arrays, strict=True))))

    def predict(self, x: list[Any]) -> list[Any]:
        # one request's arrays; with batching on, a list of them (LitAPI.batch leaves a list of
        # lists as it is)
        return self.infer(x) if self.max_batch_size == 1 else bbserve.run_batch(self.infer, x)

    def encode_response(self, output: list[np.ndarray]) -> dict[str, Any]:
        return bbserve.to_base64(self.outputs, output)


if __name__ == "__main__":
    setting = bbserve.batching()
    size, delay_ms = setting or (1, 0.0)
    api = OnnxAPI(max_batch_size=size, batch_timeout=delay_ms / 1000)
    server = ls.LitServer(api, accelerator="auto", workers_per_device=1)
    server.run(port=int(os.environ.get("PORT", "8000")), generate_client_file=False)
