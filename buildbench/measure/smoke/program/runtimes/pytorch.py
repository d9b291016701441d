"""PyTorch in the image: the model's torch form, on the GPU where the cell asks for one."""

from __future__ import annotations

import contextlib
import os
from typing import Any, ClassVar


class TorchModel:
    """The torch form (a torch.export program, or TorchScript) in the image's own torch.
    Its only runtime setting is intra-op threads: one load serves them all."""

    form: ClassVar[str] = "torch"
    fresh_sessions: ClassVar[bool] = False
    accuracy: ClassVar[dict | None] = None

    @staticmethod
    def framework(meta: dict) -> Any:
        """torch, with what loading the model's form needs: a torch.export program needs the
        export runtime (its serialiser, sympy), over a second of imports that belong to the
        framework's start-up rather than to this model's load."""
        import torch

        if meta.get("torch_format") == "pt2":
            import torch.export

            # What torch.export.load uses; another torch may lay it out differently (then the
            # load pays for it).
            with contextlib.suppress(ImportError):
                import torch._export.serde.serialize
        return torch

    def __init__(self, torch: Any, artifacts: str, meta: dict, want_gpu: bool) -> None:
        self.torch = torch
        cudnn = None
        if torch.version.cuda is not None:
            cudnn = torch.backends.cudnn.version()  # loads libcudnn: proves the libraries load
        self.info = {
            "framework_version": torch.__version__,
            "cuda_version": torch.version.cuda,
            "cudnn_version": cudnn,
            "cuda_build": torch.version.cuda is not None and cudnn is not None,
        }
        self.device = "cuda" if want_gpu and torch.cuda.is_available() else "cpu"
        self.info["gpu_used"] = self.device == "cuda"
        self.info["device"] = torch.cuda.get_device_name(0) if self.device == "cuda" else "cpu"
        self.default_threads = torch.get_num_threads()
        path = os.path.join(artifacts, meta["torch"])
        if meta["torch_format"] == "pt2":
            model = torch.export.load(path).module()  # an exported module refuses .eval()
        else:
            model = torch.jit.load(path, map_location="cpu").eval()
        self.model = model.to(self.device)

    @staticmethod
    def settings(requested: list[dict]) -> list[dict]:
        seen = []
        for setting in requested:
            chosen = {"threads": setting.get("threads")}
            if chosen not in seen:
                seen.append(chosen)
        return seen

    @staticmethod
    def label(setting: dict) -> str:
        return f"threads={setting['threads']}" if setting["threads"] else "default"

    def open(self, setting: dict) -> dict:
        self.torch.set_num_threads(setting["threads"] or self.default_threads)
        return {"threads": self.torch.get_num_threads()}

    def inputs(self, folder: str, batch: dict, meta: dict) -> list:
        found = []
        for i, spec in enumerate(batch["inputs"]):
            with open(os.path.join(folder, f"input-{i}.bin"), "rb") as handle:
                raw = bytearray(handle.read())
            dtype = getattr(self.torch, spec["dtype"])
            found.append(
                self.torch.frombuffer(raw, dtype=dtype).reshape(spec["shape"]).to(self.device)
            )
        return found

    def run(self, xs: list) -> object:
        """One batch, the device synchronised: CUDA runs asynchronously."""
        with self.torch.inference_mode():
            y = self.model(*xs)
        if self.device == "cuda":
            self.torch.cuda.synchronize()
        return y

    def graph_after(self, setting: dict) -> dict:
        return {}

    @property
    def xp(self) -> Any:
        return self.torch

    def outputs(self, y: object) -> list[tuple[list[int], Any]]:
        """Each output's shape, and its values as float64 on the CPU (for parity)."""
        return [
            (list(t.shape), t.detach().cpu().reshape(-1).to(self.torch.float64)) for t in flatten(y)
        ]

    def reference(self, path: str, dtype: str) -> Any:
        with open(path, "rb") as handle:
            raw = bytearray(handle.read())
        if not raw:  # torch.frombuffer refuses an empty buffer
            return self.torch.zeros(0, dtype=self.torch.float64)
        values = self.torch.frombuffer(raw, dtype=getattr(self.torch, dtype))
        return values.to(self.torch.float64)


def flatten(value: Any) -> list:
    """A model's outputs as a flat list of tensors (tuples, lists and dicts in order)."""
    if isinstance(value, (list, tuple)):
        return [leaf for item in value for leaf in flatten(item)]
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in flatten(item)]
    return [value]
