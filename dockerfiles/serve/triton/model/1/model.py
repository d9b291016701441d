"""Triton's Python backend serving the run's model in its ONNX form with ONNX Runtime."""

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
        for t in meta["inputs"]:
            kind = TRITON_TYPES[t["dtype"]]
            config.add_input({"name": t["name"], "data_type": kind, "dims": _dims(t, t["batched"])})
        for t in meta["outputs"]:
            kind = TRITON_TYPES[t["dtype"]]
            config.add_output({"name": t["name"], "data_type": kind, "dims": _dims(t)})
        return config

    def initialize(self, args):
        meta = bbserve.meta()
        self.session = bbserve.onnx_session()
        self.inputs = [t["name"] for t in meta["inputs"]]
        self.outputs = [t["name"] for t in meta["outputs"]]

    def execute(self, requests):
        answers = []
        for request in requests:
            feeds = {
                name: pb_utils.get_input_tensor_by_name(request, name).as_numpy()
                for name in self.inputs
            }
            got = self.session.run(self.outputs, feeds)
            tensors = [pb_utils.Tensor(n, v) for n, v in zip(self.outputs, got, strict=False)]
            answers.append(pb_utils.InferenceResponse(output_tensors=tensors))
        return answers
