"""LitServe + ONNX Runtime: Lightning's serving layer over FastAPI and uvicorn, the model in a
worker process it starts (`LitAPI.setup`), requests passed to it through a queue."""

from buildbench.measure.servers.base import Server
from buildbench.measure.servers.encodings import BASE64_TENSORS

LITSERVE = Server(
    name="litserve",
    dockerfile="serve-litserve.dockerfile",
    encoding=BASE64_TENSORS,
    no_batching=(
        "LitServe batches (max_batch_size, batch_timeout) but buildbench does not turn it on yet: "
        "measured as its image starts it"
    ),
    packages={
        "cpu": ("litserve", "onnxruntime", "numpy"),
        "cuda": ("litserve", "onnxruntime-gpu[cuda,cudnn]", "numpy"),
    },
)
