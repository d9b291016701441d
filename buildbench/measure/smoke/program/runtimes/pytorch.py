"""PyTorch in the image: the model in one of its torch forms, on the GPU where asked."""

from __future__ import annotations

import contextlib
import os
from typing import Any, ClassVar

# PyTorch's forms (--torch-forms): the model's own code with its state dict, TorchScript, and
# a torch.export program. "eager" is the headline where the image can run the model's code.
FORMS = ("eager", "torchscript", "export")


class TorchModel:
    """The model in the image's own torch, in one of its forms (a setting's `form`): eager (the
    factory's module, shipped, with its state dict), TorchScript, or a torch.export program.
    Its settings are the form and intra-op threads: a setting loads its form unless loaded."""

    form: ClassVar[str] = "torch"
    fresh_sessions: ClassVar[bool] = False
    accuracy: ClassVar[dict | None] = None

    @staticmethod
    def framework(meta: dict) -> Any:
        """torch, with what loading the first setting's form needs: a torch.export program
        needs the export runtime (its serialiser, sympy), over a second of imports that belong
        to the framework's start-up rather than to this model's load."""
        import torch

        if resolve_form(meta, (meta.get("first_setting") or {}).get("form")) == "export":
            import torch.export

            # What torch.export.load uses; another torch may lay it out differently (then the
            # load pays for it).
            with contextlib.suppress(ImportError):
                import torch._export.serde.serialize
        return torch

    def __init__(self, torch: Any, artifacts: str, meta: dict, want_gpu: bool) -> None:
        self.torch = torch
        self.artifacts = artifacts
        self.meta = meta
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
        self.loaded: str | None = None
        self.model: Any = None
        self.keywords: list[str] | None = None  # eager: the inputs the module takes by name
        self.headline: str | None = None  # the form a setting that names none runs

    def settings(self, requested: list[dict]) -> list[dict]:
        """Each requested form and thread count once. A setting that names no form takes the
        headline's: eager where the model's code came (tried on the first load), else the
        form given; one that names a form is that form, even the headline's."""
        seen = []
        for setting in requested:
            chosen = {"threads": setting.get("threads"), "form": setting.get("form")}
            if chosen not in seen:
                seen.append(chosen)
        return seen

    @staticmethod
    def label(setting: dict) -> str:
        threads = setting.get("threads")
        return " ".join(
            [setting.get("form") or "default", *([f"threads={threads}"] * bool(threads))]
        )

    def open(self, setting: dict) -> dict:
        """Load the setting's form (timed by the caller), then its threads; the setting then
        names the form it ran. The headline's eager form falls back to the form given where
        the model's module does not import here: the note says why."""
        facts: dict = {}
        named = setting["form"]
        form = named or self.headline or resolve_form(self.meta, None)
        if form != self.loaded:
            self.model = None  # free the previous form first
            try:
                self.model = self._load(form)
            except Exception as exc:  # the user's module may fail any way, and say so
                if named or self.headline or form != "eager":
                    raise
                given = given_form(self.meta)
                facts["note"] = (
                    f"eager: the model's module does not import here ({type(exc).__name__}: "
                    f"{exc}); {given} instead"
                )
                form = given
                self.model = self._load(form)
            self.loaded = form
        if not named:
            self.headline = form
        setting["form"] = form
        self.torch.set_num_threads(setting["threads"] or self.default_threads)
        return {**facts, "threads": self.torch.get_num_threads()}

    def _load(self, form: str) -> Any:
        torch, meta = self.torch, self.meta
        self.keywords = None
        if form == "eager":
            if not meta.get("eager"):
                raise RuntimeError("no eager form: the model's code is a factory's only")
            return self._eager().to(self.device)
        if form == "export" and meta.get("torch_format") == "pt2":
            path = os.path.join(self.artifacts, meta["torch"])
            return torch.export.load(path).module().to(self.device)  # refuses .eval()
        script = meta.get("torchscript") or (
            meta["torch"] if meta.get("torch_format") == "torchscript" else None
        )
        if form == "torchscript" and script:
            path = os.path.join(self.artifacts, script)
            return torch.jit.load(path, map_location="cpu").eval().to(self.device)
        raise RuntimeError(f"no {form} form of this model (the form given: {given_form(meta)})")

    def _eager(self) -> Any:
        """The factory's module, imported from its shipped source, called for the module;
        then the host's state dict loaded into it (the weights the references came from)."""
        import importlib.util
        import json
        import sys

        with open(os.path.join(self.artifacts, self.meta["eager"])) as handle:
            how = json.load(handle)
        folder = os.path.dirname(os.path.join(self.artifacts, self.meta["eager"]))
        spec = importlib.util.spec_from_file_location(
            how["module"], os.path.join(folder, how["code"])
        )
        assert spec is not None and spec.loader is not None
        code = importlib.util.module_from_spec(spec)
        sys.modules[how["module"]] = code
        spec.loader.exec_module(code)
        module, _ = getattr(code, how["callable"])()
        weights = self.torch.load(
            os.path.join(folder, how["weights"]), map_location="cpu", weights_only=True
        )
        module.load_state_dict(weights)
        self.keywords = how.get("keywords")
        return module.eval()

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
            if self.keywords:
                y = self.model(**dict(zip(self.keywords, xs, strict=False)))
            else:
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


def given_form(meta: dict) -> str:
    """The torch form the host made of the model (the one a .pt2 or TorchScript file is)."""
    return "export" if meta.get("torch_format") == "pt2" else "torchscript"


def resolve_form(meta: dict, form: str | None) -> str:
    """A setting's form; none: eager where the model's code came, else the form given."""
    return form or ("eager" if meta.get("eager") else given_form(meta))
