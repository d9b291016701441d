"""FastAPI + uvicorn + ONNX Runtime, serving the ONNX model at $BUILDBENCH_MODEL (buildbench's
`--server fastapi`; the course's exercise 8). The model loads at import, before uvicorn
listens: GET /health answers once it can serve.

POST /predict {"inputs": {NAME: {"dtype", "shape", "data": base64 of the raw bytes}}}
  -> {"outputs": {NAME: {"dtype", "shape", "data": base64}}}, in the model's output order.
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import Any

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI, HTTPException

WANTED = ["CUDAExecutionProvider", "CPUExecutionProvider"]
providers = [p for p in WANTED if p in ort.get_available_providers()]
session = ort.InferenceSession(os.environ["BUILDBENCH_MODEL"], providers=providers)
inputs = {i.name for i in session.get_inputs()}
outputs = [o.name for o in session.get_outputs()]
app = FastAPI()


def tensor(name: str, given: Any) -> np.ndarray:
    try:
        raw = base64.b64decode(given["data"], validate=True)
        return np.frombuffer(raw, dtype=given["dtype"]).reshape(given["shape"])
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise HTTPException(422, f"input {name}: {exc}") from None


@app.get("/health")
def health() -> dict[str, Any]:
    return {"status": "ok", "providers": session.get_providers()}


@app.post("/predict")
def predict(body: dict[str, Any]) -> dict[str, Any]:
    given = body.get("inputs")
    if not isinstance(given, dict) or set(given) != inputs:
        raise HTTPException(422, f"inputs must be an object of {sorted(inputs)}")
    found = session.run(None, {name: tensor(name, value) for name, value in given.items()})
    return {
        "outputs": {
            name: {
                "dtype": str(value.dtype),
                "shape": list(value.shape),
                "data": base64.b64encode(np.ascontiguousarray(value).tobytes()).decode(),
            }
            for name, value in zip(outputs, found, strict=False)
        }
    }
