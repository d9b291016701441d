"""LitServe + ONNX Runtime, serving the ONNX model at $BUILDBENCH_MODEL (buildbench's
`--server litserve`): one LitAPI, one worker; LitServe runs it in its own process behind its
FastAPI/uvicorn front and answers GET /health once the worker has loaded the model.

POST /predict {"inputs": {NAME: {"dtype", "shape", "data": base64 of the raw bytes}}}
  -> {"outputs": {NAME: {"dtype", "shape", "data": base64}}}, in the model's output order.
"""

from __future__ import annotations

import base64
import os
from typing import Any

import litserve as ls
import numpy as np

WANTED = ["CUDAExecutionProvider", "CPUExecutionProvider"]


class OnnxAPI(ls.LitAPI):
    def setup(self, device: str) -> None:
        import onnxruntime as ort

        providers = [p for p in WANTED if p in ort.get_available_providers()]
        self.session = ort.InferenceSession(os.environ["BUILDBENCH_MODEL"], providers=providers)
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.outputs = [o.name for o in self.session.get_outputs()]

    # Left unannotated: LitServe reads the body as JSON only when this says no type.
    def decode_request(self, request):  # type: ignore[no-untyped-def]
        given = request.get("inputs")
        if not isinstance(given, dict) or set(given) != self.inputs:
            raise ValueError(f"inputs must be an object of {sorted(self.inputs)}")
        return {
            name: np.frombuffer(base64.b64decode(t["data"]), dtype=t["dtype"]).reshape(t["shape"])
            for name, t in given.items()
        }

    def predict(self, x: dict[str, np.ndarray]) -> list[np.ndarray]:
        return list(self.session.run(None, x))

    def encode_response(self, output: list[np.ndarray]) -> dict[str, Any]:
        return {
            "outputs": {
                name: {
                    "dtype": str(value.dtype),
                    "shape": list(value.shape),
                    "data": base64.b64encode(np.ascontiguousarray(value).tobytes()).decode(),
                }
                for name, value in zip(self.outputs, output, strict=False)
            }
        }


if __name__ == "__main__":
    server = ls.LitServer(OnnxAPI(), accelerator="auto", workers_per_device=1)
    server.run(port=int(os.environ.get("PORT", "8000")), generate_client_file=False)
