"""TorchServe's handler for the run's model in its torch form ($BUILDBENCH_MODEL: a
torch.export program, .pt2, or TorchScript): a request's body is its inputs' raw bytes, the
answer an .npz of the outputs (bbserve). With batching on (start.sh), TorchServe's frontend
queues requests together and hands them here as one list."""

import os

import bbserve
import torch

_loaded = None


def _load():
    path = os.environ["BUILDBENCH_MODEL"]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if path.endswith(".pt2"):
        model = torch.export.load(path).module().to(device)
    else:
        model = torch.jit.load(path, map_location=device)
    return model, device, bbserve.meta()


def _leaves(out):
    """The outputs' tensors in order, however the model nests them (a tuple, a dict)."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        out = list(out.values())
    return [leaf for item in out for leaf in _leaves(item)]


def _run(model, device, arrays):
    """The model's outputs as numpy arrays for its inputs' arrays."""
    with torch.inference_mode():
        out = model(*(torch.from_numpy(a.copy()).to(device) for a in arrays))
    return [(t.float() if t.dtype == torch.bfloat16 else t).cpu().numpy() for t in _leaves(out)]


def handle(data, context):
    """TorchServe's entry point: a batch of requests in, one answer each (None: initialise).
    With its batching on, the frontend's batch of requests runs as one batch of the model."""
    global _loaded
    if _loaded is None:
        _loaded = _load()
    if data is None:
        return None
    model, device, meta = _loaded
    given = [
        bbserve.split_inputs(bytes(row.get("body") or row.get("data")), meta["inputs"])
        for row in data
    ]
    found = bbserve.run_batch(lambda arrays: _run(model, device, arrays), given)
    names = [t["name"] for t in meta["outputs"]]
    for i in range(len(found)):
        context.set_response_content_type(i, "application/octet-stream")
    return [bbserve.npz(names, outputs) for outputs in found]
