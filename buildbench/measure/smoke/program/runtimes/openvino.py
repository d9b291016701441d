"""OpenVINO in the image: the model's ONNX form read by its ONNX frontend and compiled for its
CPU plugin (it has no CUDA build: the host makes no "cuda" image of it)."""

from __future__ import annotations

import os
from typing import Any, ClassVar

from ..protobuf import count_nodes
from ..settings import ThreadsOnly
from .onnx import OnnxModel


class OpenVinoModel(ThreadsOnly):
    """One compiled model per setting; its only setting is intra-op threads. Inference runs
    in f32: on CPUs with bf16 units OpenVINO's default would be bf16, which fp32 parity would
    measure as an accuracy loss rather than a runtime's."""

    form: ClassVar[str] = "onnx"
    fresh_sessions: ClassVar[bool] = False  # the first setting's compile is the model load
    accuracy: ClassVar[dict | None] = None

    @staticmethod
    def framework(meta: dict) -> Any:
        import openvino

        return openvino

    def __init__(self, ov: Any, artifacts: str, meta: dict, want_gpu: bool) -> None:
        import numpy  # openvino's own dependency: imported with it already

        self.numpy = numpy
        self.core = ov.Core()
        self.path = os.path.join(artifacts, meta[self.form])
        self.model = self.core.read_model(self.path)
        self.compiled: Any = None
        self.info = {
            "framework_version": ov.__version__,
            "available_devices": self.core.available_devices,
            "cuda_build": False,
            "gpu_used": False,
            "device": self.core.get_property("CPU", "FULL_DEVICE_NAME"),
        }

    def open(self, setting: dict) -> dict:
        """The model compiled for the CPU under the setting (the first: the model load)."""
        config = {"INFERENCE_PRECISION_HINT": "f32"}
        if setting["threads"]:
            config["INFERENCE_NUM_THREADS"] = str(setting["threads"])
        self.compiled = None  # free the previous setting's compiled model first
        self.compiled = self.core.compile_model(self.model, "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.names = [port.get_any_name() for port in self.compiled.inputs]
        threads = self.compiled.get_property("INFERENCE_NUM_THREADS")
        return {"threads": int(threads), "providers": ["CPU"]}

    def graph_after(self, setting: dict) -> dict:
        """The ONNX graph's nodes, and the operations OpenVINO compiled it into."""
        ops = self.compiled.get_runtime_model().get_ordered_ops()
        return {"nodes_before": count_nodes(self.path), "nodes_after": len(ops)}

    def run(self, xs: list) -> object:
        return self.request.infer(dict(zip(self.names, xs, strict=True))).to_tuple()

    # Arrays in and out are numpy's, as beside ONNX Runtime.
    inputs = OnnxModel.inputs
    outputs = OnnxModel.outputs
    reference = OnnxModel.reference
    xp = OnnxModel.xp
