"""LitServe + ONNX Runtime: Lightning's serving layer over FastAPI and uvicorn, the model in a
worker process it starts (`LitAPI.setup`), requests passed to it through a queue. Batching on:
the LitAPI's max_batch_size and batch_timeout, `predict` running each batch at once."""

from buildbench.measure.servers.base import Server, ServerBatching
from buildbench.measure.servers.encodings import BASE64_TENSORS

LITSERVE = Server(
    name="litserve",
    dockerfile="serve-litserve.dockerfile",
    encoding=BASE64_TENSORS,
    batching=ServerBatching(),  # max_batch_size and batch_timeout
    packages={
        "cpu": ("litserve", "onnxruntime", "numpy"),
        "cuda": ("litserve", "onnxruntime-gpu[cuda,cudnn]", "numpy"),
    },
)
