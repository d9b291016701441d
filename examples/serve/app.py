"""An inference service: FastAPI + uvicorn serving model.py's network, with ONNX Runtime or
PyTorch (`BACKEND`, set by each image's Dockerfile). The model loads at import, before uvicorn
listens: GET /health answers once it can serve.

POST /predict {"image": "<base64 of 3x64x64 uint8, channels first>"} -> {"scores": [10 floats],
"label": k, "backend": ..., "device": ...}
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

BACKEND = os.environ.get("BACKEND", "onnx")
HERE = os.path.dirname(os.path.abspath(__file__))
SHAPE = (1, 3, 64, 64)


def onnx_backend() -> tuple[Callable[[bytes], list[float]], str]:
    import numpy as np
    import onnxruntime as ort

    wanted = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    providers = [p for p in wanted if p in ort.get_available_providers()]
    session = ort.InferenceSession(os.path.join(HERE, "model.onnx"), providers=providers)

    def run(raw: bytes) -> list[float]:
        x = np.frombuffer(raw, dtype=np.uint8).astype(np.float32).reshape(SHAPE) / 255.0
        return [float(v) for v in session.run(None, {"input": x})[0][0]]

    return run, session.get_providers()[0]


def torch_backend() -> tuple[Callable[[bytes], list[float]], str]:
    import torch
    from model import build

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = build()
    weights = torch.load(os.path.join(HERE, "weights.pt"), map_location="cpu", weights_only=True)
    model.load_state_dict(weights)
    model = model.to(device)

    def run(raw: bytes) -> list[float]:
        x = torch.frombuffer(bytearray(raw), dtype=torch.uint8).reshape(SHAPE)
        with torch.inference_mode():
            y = model(x.to(device).float() / 255.0)
        return [float(v) for v in y[0].cpu()]

    return run, device


infer, DEVICE = onnx_backend() if BACKEND == "onnx" else torch_backend()
app = FastAPI()


class Request(BaseModel):
    image: str


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok", "backend": BACKEND, "device": DEVICE}


@app.post("/predict")
def predict(request: Request) -> dict[str, object]:
    try:
        raw = base64.b64decode(request.image, validate=True)
    except binascii.Error:
        raise HTTPException(422, "image is not base64") from None
    if len(raw) != SHAPE[1] * SHAPE[2] * SHAPE[3]:
        raise HTTPException(422, f"image must be {SHAPE[1:]} uint8, got {len(raw)} bytes")
    scores = infer(raw)
    return {
        "scores": scores,
        "label": scores.index(max(scores)),
        "backend": BACKEND,
        "device": DEVICE,
    }
