"""TorchServe: the model's torch form (a torch.export program, or TorchScript) behind its Java
frontend and one Python worker (dockerfiles/serve/torchserve/handler.py), raw bytes in,
an .npz out. Locked down it needs: token authorisation off (it writes key_file.json in its
working directory otherwise), and /tmp writable for its logs, pid file and the worker's Unix
socket; Java's heap is sized by the container's memory limit."""

from buildbench.measure.servers.base import Server
from buildbench.measure.servers.binary import RAW_NPZ

TORCHSERVE = Server(
    name="torchserve",
    dockerfile="serve-torchserve.dockerfile",
    encoding=RAW_NPZ,
    port=8080,
    ready="/ping",
    path="/predictions/model",
    form="torch",
    torch=True,
    no_batching=(
        "TorchServe batches (batchSize, maxBatchDelay) but buildbench does not turn it on yet: "
        "measured as its image starts it"
    ),
    packages={
        variant: ("torch", "torchserve==0.12.0", "torch-model-archiver==0.12.0")
        for variant in ("cpu", "cuda")
    },
)
