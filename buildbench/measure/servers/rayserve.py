"""Ray Serve: one replica running the model's ONNX form in ONNX Runtime on a local Ray cluster
started in the container (dockerfiles/serve/rayserve/app.py), tensors as base64 in JSON.
Locked down: the cluster on loopback without its dashboard, usage stats off, its session files
and object store (Ray's 75 MB floor is more than the engine's 64 MB /dev/shm) on a larger /tmp,
and room for its processes' threads: GCS, raylet, agents, controller, proxy and replica are
each a process with thread pools of their own. Batching on: `@serve.batch` (its max batch
size and wait set as the replica starts), and room for two batches of ongoing requests."""

from buildbench.measure.servers.base import Server, ServerBatching
from buildbench.measure.servers.encodings import BASE64_TENSORS

RAYSERVE = Server(
    name="rayserve",
    batching=ServerBatching(),  # @serve.batch: max_batch_size, batch_wait_timeout_s
    dockerfile="serve-rayserve.dockerfile",
    encoding=BASE64_TENSORS,
    port=8000,
    ready="/health",
    path="/predict",
    tmpfs={"/tmp": "size=512m"},
    pids_limit=2048,
    packages={
        "cpu": ("onnxruntime", "ray[serve]==2.60.0"),
        "cuda": ("onnxruntime-gpu[cuda,cudnn]", "ray[serve]==2.60.0"),
    },
)
