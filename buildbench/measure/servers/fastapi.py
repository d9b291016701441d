"""FastAPI + uvicorn + ONNX Runtime: the course's exercise 8, the baseline every other
framework is compared with. One uvicorn worker; the model's ONNX form in one session."""

from buildbench.measure.servers.base import Server
from buildbench.measure.servers.encodings import BASE64_TENSORS

FASTAPI = Server(
    name="fastapi",
    dockerfile="serve-fastapi.dockerfile",
    encoding=BASE64_TENSORS,
    no_batching="FastAPI has no server-side batching: each request runs alone in the handler",
    packages={
        "cpu": ("fastapi", "uvicorn", "onnxruntime", "numpy"),
        "cuda": ("fastapi", "uvicorn", "onnxruntime-gpu[cuda,cudnn]", "numpy"),
    },
)
