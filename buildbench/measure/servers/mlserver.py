"""Seldon's MLServer: a custom runtime running the model's ONNX form in ONNX Runtime
(dockerfiles/serve/mlserver/runtime.py), KServe v2 with the tensors as JSON values: its HTTP
has no binary tensor extension (SeldonIO/MLServer#324), so a request is the tensors' text.
Locked down: one process (no parallel workers, whose pool shares memory through /dev/shm), no
metrics server, its metrics folder (by default in the working directory) on /tmp. Batching
on: its adaptive batching (max_batch_size, max_batch_time), set by the runtime as MLServer
makes it, which merges queued requests along the batch axis."""

from buildbench.measure.servers.base import Server, ServerBatching
from buildbench.measure.servers.encodings import KSERVE_V2_JSON

MLSERVER = Server(
    name="mlserver",
    batching=ServerBatching(),  # adaptive batching: max_batch_size, max_batch_time
    dockerfile="serve-mlserver.dockerfile",
    encoding=KSERVE_V2_JSON,
    port=8080,
    ready="/v2/models/model/ready",
    path="/v2/models/model/infer",
    packages={
        "cpu": ("onnxruntime", "mlserver==1.7.1"),
        "cuda": ("onnxruntime-gpu[cuda,cudnn]", "mlserver==1.7.1"),
    },
)
