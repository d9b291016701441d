"""TorchServe: the model's torch form (a torch.export program, or TorchScript) behind its Java
frontend and one Python worker (dockerfiles/serve/torchserve/handler.py), raw bytes in,
an .npz out. Locked down it needs: token authorisation off (it writes key_file.json in its
working directory otherwise), and /tmp writable for its logs, pid file and the worker's Unix
socket; Java's heap is sized by the container's memory limit. Batching on: the model's
batchSize and maxBatchDelay in a config written to /tmp (serve/torchserve/start.sh), the
handler running each batch at once."""

from buildbench.measure.servers.base import Server, ServerBatching
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
    batching=ServerBatching(),  # the model's batchSize and maxBatchDelay
    packages={
        variant: ("torch", "torchserve==0.12.0", "torch-model-archiver==0.12.0")
        for variant in ("cpu", "cuda")
    },
)
