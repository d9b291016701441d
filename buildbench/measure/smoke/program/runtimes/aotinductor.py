"""AOTInductor in the image: the package the host compiled, loaded with
`torch._inductor.aoti_load_package` in the image's torch (the one that compiled it). The loader
unpacks the package's library into $TMPDIR and dlopens it: the host gives this container a
$TMPDIR that allows that (/tmp is noexec)."""

from __future__ import annotations

import json
import os
from typing import Any, ClassVar

from ..settings import ThreadsOnly
from .pytorch import TorchModel


class AotiModel(ThreadsOnly, TorchModel):
    """One package on the CPU; its only setting is intra-op threads."""

    form: ClassVar[str] = "aotinductor"

    @staticmethod
    def framework(meta: dict) -> Any:
        """torch and its package loader (Inductor's Python side: part of the start-up's
        import, as torch.export's runtime is for the export form)."""
        import torch
        import torch._inductor.package  # what aoti_load_package imports

        return torch

    def __init__(self, torch: Any, artifacts: str, meta: dict, want_gpu: bool) -> None:
        super().__init__(torch, artifacts, meta, want_gpu=False)  # a CPU package
        with open(os.path.join(artifacts, "model", meta[f"{self.form}_files"][-1])) as handle:
            self.compiled = json.load(handle)  # what the host's compile found
        # The public version: the host's torch may be another build of it (PyPI's CUDA one,
        # +cu126) than the image's CPU wheel (+cpu); the package's C shim is the same.
        if self.compiled["torch"].split("+")[0] != torch.__version__.split("+")[0]:
            raise RuntimeError(
                f"the package was compiled with torch {self.compiled['torch']} and the image "
                f"has {torch.__version__}: a package loads only in the torch that compiled it"
            )

    def open(self, setting: dict) -> dict:
        """The package loaded once (the model load: unpacked, its library opened), then the
        setting's threads."""
        facts: dict = {}
        if self.model is None:
            path = os.path.join(self.artifacts, self.meta[self.form])
            self.model = self.torch._inductor.aoti_load_package(path)
            found = self.compiled
            facts["note"] = (
                f"AOTInductor package compiled on the host in {found['seconds']} s (torch "
                f"{found['torch']}, {found['isa']}, {found['batch']} batch: one package)"
            )
        self.torch.set_num_threads(setting["threads"] or self.default_threads)
        return {**facts, "threads": self.torch.get_num_threads()}
