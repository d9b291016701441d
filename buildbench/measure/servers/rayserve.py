"""Ray Serve: one replica running the model's ONNX form in ONNX Runtime on a local Ray cluster
started in the container (dockerfiles/serve/rayserve/app.py), tensors as base64 in JSON.
Locked down: the cluster on loopback without its dashboard, usage stats off, its session files
and object store (Ray's 75 MB floor is more than the engine's 64 MB /dev/shm) on a larger /tmp,
and room for its processes' threads: GCS, raylet, agents, controller, proxy and replica are
each a process with thread pools of their own."""

from buildbench.measure.servers.base import Server
from buildbench.measure.servers.encodings import BASE64_TENSORS

RAYSERVE = Server(
    name="rayserve",
    no_batching=(
        "Ray Serve batches (@serve.batch) but buildbench does not turn it on yet: "
        "measured as its image starts it"
    ),
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
