"""PyTorch: the model's torch forms (a torch.export program or TorchScript; a factory's eager
code and state dict) in the image's torch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from buildbench.measure.runtimes.base import missing_form
from buildbench.measure.smoke.modelspec import PreparedModel
from buildbench.measure.smoke.torchforms import EAGER, SCRIPT

if TYPE_CHECKING:
    from buildbench.measure.runtimes.base import BuildChoices


@dataclass(frozen=True)
class PyTorch:
    name: str = "pytorch"
    default: bool = True
    dockerfile: str = "pytorch.dockerfile"
    module: str = "torch"
    variants: tuple[str, ...] = ("cpu", "cuda")
    missing_variant: str | None = None
    form: str = "torch"
    exec_tmp: bool = False
    form_help: str = "a torch form (PATH.pt2, TorchScript, module:callable)"

    def build_args(self, variant: str, choices: BuildChoices) -> dict[str, str]:
        return {
            "TORCH_VERSION": choices.torch_version,
            "TORCH_CPU_INDEX_URL": choices.torch_cpu_index_url,
        }

    def requirements(self, variant: str, choices: BuildChoices) -> tuple[str, ...]:
        return (f"torch=={choices.torch_version}" if choices.torch_version else "torch",)

    def requirements_index(self, variant: str, choices: BuildChoices) -> str | None:
        return choices.torch_cpu_index_url if variant == "cpu" else None

    def wheels(self, wheels: Sequence[Path]) -> list[Path]:
        return list(wheels)

    def unavailable(self, variant: str, choices: BuildChoices) -> str | None:
        return None

    def prepare(self, model: PreparedModel) -> PreparedModel:
        """The torch form is the shared one modelcache makes first; a factory's other forms
        (torchforms.py made them beside it) travel too, by their meta.json keys."""
        forms = dict(model.forms)
        if (model.directory / EAGER).is_file():
            forms["eager"] = [EAGER, "eager.py", "eager.pt"]
        if (model.directory / SCRIPT).is_file():
            forms["torchscript"] = [SCRIPT]
        return replace(model, forms=forms)

    def unable(self, model: PreparedModel) -> str | None:
        return missing_form(model, self.name, "torch", model.torch is not None)


PYTORCH = PyTorch()
