"""NVIDIA Triton Inference Server: the tritonserver binary of PyPI's nvidia-pytriton with its
Python backend (the only one it carries), running the model's ONNX form in ONNX Runtime
(dockerfiles/serve/triton/model/1/model.py); KServe v2 with binary tensors. Locked down it
needs /dev/shm (the backend's stub talks to the server through shared memory: the engine's
own /dev/shm, 64 MB) and /tmp; gRPC and metrics are off, HTTP on loopback. Batching on: model.py's
auto_complete_config declares the dynamic batcher (max_batch_size, its queue delay) and execute
runs each queue of requests as one batch."""

from buildbench.measure.servers.base import Server, ServerBatching
from buildbench.measure.servers.binary import KSERVE_V2_BINARY

TRITON = Server(
    name="triton",
    dockerfile="serve-triton.dockerfile",
    encoding=KSERVE_V2_BINARY,
    port=8000,
    ready="/v2/health/ready",
    path="/v2/models/model/infer",
    batching=ServerBatching(),
    batches_scalar_rows=False,  # the dynamic batcher
    packages={
        "cpu": ("onnxruntime", "numpy<2", "nvidia-pytriton==0.7.0"),
        "cuda": ("onnxruntime-gpu[cuda,cudnn]", "numpy<2", "nvidia-pytriton==0.7.0"),
    },
)
