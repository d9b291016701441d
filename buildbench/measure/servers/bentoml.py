"""BentoML: a service running the model's ONNX form in ONNX Runtime in one worker
(dockerfiles/serve/bentoml/service.py), tensors as base64 in JSON as FastAPI's. Locked down:
its home (BENTOML_HOME: its Prometheus and socket files) on /tmp, usage tracking off.
It does not start locked down: to reserve its ports it binds "localhost" by name, and in a
container without a network the name does not resolve (the engine writes no /etc/hosts there;
one in the image did not help): it exits before it is ready."""

from buildbench.measure.servers.base import Server
from buildbench.measure.servers.encodings import BASE64_TENSORS

BENTOML = Server(
    name="bentoml",
    no_batching=(
        "BentoML batches (batchable APIs) but buildbench does not turn it on yet: "
        "measured as its image starts it"
    ),
    dockerfile="serve-bentoml.dockerfile",
    encoding=BASE64_TENSORS,
    port=3000,
    ready="/readyz",
    path="/predict",
    unavailable=(
        'BentoML 1.4 binds its ports to "localhost" by name (reserve_free_port), which does '
        "not resolve in a container without a network: it exits before it is ready"
    ),
    packages={
        "cpu": ("onnxruntime", "bentoml==1.4.40"),
        "cuda": ("onnxruntime-gpu[cuda,cudnn]", "bentoml==1.4.40"),
    },
)
