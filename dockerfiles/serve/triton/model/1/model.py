"""Triton's Python backend serving the run's model in its ONNX form with ONNX Runtime. With
$BUILDBENCH_MAX_BATCH set, Triton's dynamic batcher queues requests together (the model's batch
axis left to it) and execute runs each queue of requests as one batch."""

import sys

# The backend's stub starts its embedded Python without $PYTHONPATH: the image's venv (ONNX
# Runtime, numpy) and bbserve are put on its path here.
sys.path[:0] = ["/opt/serve/lib", "/opt/venv/lib/python3.11/site-packages"]

import bbserve  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402

TRITON_TYPES = {
    "float32": "TYPE_FP32",
    "float16": "TYPE_FP16",
    "float64": "TYPE_FP64",
    "int64": "TYPE_INT64",
    "int32": "TYPE_INT32",
    "int16": "TYPE_INT16",
    "int8": "TYPE_INT8",
    "uint8": "TYPE_UINT8",
    "bool": "TYPE_BOOL",
}


def _dims(tensor, batched=True):
    """A tensor's dims for Triton: its shape at batch 1 with the batch axis free (-1)."""
    shape = list(tensor["shape"])
    return [-1, *shape[1:]] if batched and shape else shape


class TritonPythonModel:
    @staticmethod
    def auto_complete_config(config):
        meta = bbserve.meta()
        setting = bbserve.batching()
        if setting is not None:
            size, delay_ms = setting
            config.set_max_batch_size(size)
            config.set_dynamic_batching()
            # ModelConfig has no setter for the batcher's wait: set in the config it returns.
            batcher = config.as_dict()["dynamic_batching"]
            batcher["max_queue_delay_microseconds"] = int(delay_ms * 1000)
        for kind, tensors in (("input", meta["inputs"]), ("output", meta["outputs"])):
            for t in tensors:
                batched = t.get("batched", True)
                # With batching on, Triton owns the batch axis: the dims are a row's.
                dims = list(t["shape"][1:]) if setting is not None else _dims(t, batched)
                found = {"name": t["name"], "data_type": TRITON_TYPES[t["dtype"]], "dims": dims}
                (config.add_input if kind == "input" else config.add_output)(found)
        return config

    def initialize(self, args):
        meta = bbserve.meta()
        self.session = bbserve.onnx_session()
        self.inputs = [t["name"] for t in meta["inputs"]]
        self.outputs = [t["name"] for t in meta["outputs"]]

    def infer(self, arrays):
        return self.session.run(self.outputs, dict(zip(self.inputs, arrays, strict=True)))

    def execute(self, requests):
        given = [
            [pb_utils.get_input_tensor_by_name(r, name).as_numpy() for name in self.inputs]
            for r in requests
        ]
        answers = bbserve.run_batch(self.infer, given)  # the dynamic batcher's queue: one run
        return [
            pb_utils.InferenceResponse(
                output_tensors=[
                    pb_utils.Tensor(n, v) for n, v in zip(self.outputs, got, strict=False)
                ]
            )
            for got in answers
        ]
