"""BentoML: a service running the model's ONNX form in ONNX Runtime in one worker
(dockerfiles/serve/bentoml/service.py), tensors as base64 in JSON as FastAPI's. Locked down:
its home (BENTOML_HOME: its Prometheus and socket files) on /tmp, usage tracking off."""

from buildbench.measure.servers.base import Server
from buildbench.measure.servers.encodings import BASE64_TENSORS

BENTOML = Server(
    name="bentoml",
    dockerfile="serve-bentoml.dockerfile",
    encoding=BASE64_TENSORS,
    port=3000,
    ready="/readyz",
    path="/predict",
    packages={
        "cpu": ("onnxruntime", "bentoml==1.4.40"),
        "cuda": ("onnxruntime-gpu[cuda,cudnn]", "bentoml==1.4.40"),
    },
)
