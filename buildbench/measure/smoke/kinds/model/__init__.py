"""The model kind: a model run in the image's own framework (PyTorch or ONNX Runtime): parity
with the host's reference outputs, latency per batch size and runtime setting, start-up."""

from buildbench.measure.smoke.kinds.model import config
from buildbench.measure.smoke.kinds.model.smoke import check_models
from buildbench.measure.smoke.runner import Kind

KIND = Kind(
    name="model",
    keys=(),
    read=config.read,
    tip='e.g. smoke = "onnx"',
    check_run=check_models,
)
