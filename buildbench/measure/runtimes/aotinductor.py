"""AOTInductor: the model's torch.export program compiled here, for this host's CPU, into a
package (`torch._inductor.aoti_compile_and_package`: a shared library with the weights in it),
loaded in the image with `torch._inductor.aoti_load_package`. The image is PyTorch's, with the
torch that compiled it: a package loads only in that torch. The library links only libtorch,
libstdc++ and libc: the image needs no compiler.

One package per model, with the exported program's dynamic batch axis (1 to MAX_BATCH): every
batch size of the smoke test runs it; a model exported with a fixed batch is timed at that one.

Where it cannot be made the cell says why: no C++ compiler or no torch here, or another torch
in the image (before any build: `unavailable`); a model with no torch.export program, or one
the compiler fails on (its cell, `not_applicable`). CPU only: a CUDA package is compiled on a
machine with a GPU and a CUDA torch, which buildbench does not assume.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from buildbench.measure.runtimes.base import made_once, missing_form, with_reason
from buildbench.measure.runtimes.pytorch import PYTORCH
from buildbench.measure.smoke.modelspec import PreparedModel
from buildbench.measure.smoke.modelstack import first_line, quiet

if TYPE_CHECKING:
    from buildbench.measure.runtimes.base import BuildChoices

NO_CUDA = (
    "AOTInductor's CUDA package is compiled on a machine with a GPU and a CUDA torch: "
    "buildbench compiles here, for the CPU"
)


@dataclass(frozen=True)
class AotInductor:
    name: str = "aotinductor"
    default: bool = False
    dockerfile: str = PYTORCH.dockerfile
    module: str = PYTORCH.module
    variants: tuple[str, ...] = ("cpu",)
    missing_variant: str | None = NO_CUDA
    form: str = "aotinductor"
    form_help: str = "a torch.export form (PATH.pt2, module:callable)"
    exec_tmp: bool = True  # the loader unpacks the package's library and dlopens it

    def build_args(self, variant: str, choices: BuildChoices) -> dict[str, str]:
        return {**PYTORCH.build_args(variant, choices), "TORCH_VERSION": _image_torch(choices)}

    def requirements(self, variant: str, choices: BuildChoices) -> tuple[str, ...]:
        return (f"torch=={_image_torch(choices)}",)

    def requirements_index(self, variant: str, choices: BuildChoices) -> str | None:
        return PYTORCH.requirements_index(variant, choices)

    def wheels(self, wheels: Sequence[Path]) -> list[Path]:
        return PYTORCH.wheels(wheels)

    def unavailable(self, variant: str, choices: BuildChoices) -> str | None:
        host = host_torch()
        if host is None:
            return "AOTInductor compiles the model here, and this host has no torch"
        if choices.torch_version and _public(choices.torch_version) != _public(host):
            return (
                f"torch version skew: the image would install torch {choices.torch_version}, "
                f"this host compiles with {host}; a package loads only in the torch that "
                f"compiled it (--torch-version {_public(host)})"
            )
        return no_compiler()

    def prepare(self, model: PreparedModel) -> PreparedModel:
        """The package, compiled once per model, torch version and compiler (cached beside the
        model's other forms, with what the compile took: `aoti-<key>.json`, which travels too)."""
        if model.torch is None:
            return model  # unable() gives the torch form's reason
        if model.torch_format != "pt2":
            return with_reason(
                model,
                self.name,
                "AOTInductor compiles a torch.export program; this model's torch form is "
                "TorchScript (torch.export failed on it)",
            )
        if why := no_compiler():
            return with_reason(model, self.name, why)
        cxx = os.environ.get("CXX", "g++")
        key = hashlib.sha256(f"{host_torch()}:{cxx}".encode()).hexdigest()[:16]
        marker = model.directory / f"aoti-{key}.json"
        make = lambda: _compile(model, f"model.aoti-{key}.pt2")  # noqa: E731
        return made_once(model, self.name, self.form, marker, make, travels=True)

    def unable(self, model: PreparedModel) -> str | None:
        if model.torch is None:
            return missing_form(model, "pytorch", "torch", False)
        return missing_form(model, self.name, "AOTInductor", self.form in model.forms)


AOTINDUCTOR = AotInductor()


def host_torch() -> str | None:
    """This host's torch version, read without importing it (a run starts without torch)."""
    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return None


def no_compiler() -> str | None:
    """Why Inductor finds no C++ compiler here ($CXX, else g++, as it searches), or None."""
    cxx = os.environ.get("CXX", "g++")
    if shutil.which(cxx):
        return None
    return (
        f"no C++ compiler on this host ({cxx} not found): AOTInductor compiles the model here "
        "(install g++, or name a compiler in $CXX)"
    )


def _public(version: str) -> str:
    return version.split("+")[0]


def _image_torch(choices: BuildChoices) -> str:
    """The torch the image installs: the run's, else (the newest) the one that compiles."""
    return choices.torch_version or _public(host_torch() or "")


def _compile(model: PreparedModel, name: str) -> dict[str, Any]:
    """Compile into the model's folder: {"files", "seconds", "torch", "isa", "batch",
    "reason"}; a reason where the compiler failed (the cell says so)."""
    import torch
    from torch._inductor.cpu_vec_isa import pick_vec_isa

    assert model.torch is not None
    batch = "fixed" if model.info.fixed_batch else "dynamic"
    found: dict[str, Any] = {
        "files": [name],
        "seconds": None,
        "torch": torch.__version__,
        "isa": str(pick_vec_isa()) or "none",
        "batch": batch,
        "reason": None,
    }
    with tempfile.TemporaryDirectory(dir=model.directory, prefix=".tmp-") as tmp:
        began = time.perf_counter()
        try:
            with quiet():
                program = torch.export.load(str(model.directory / model.torch))
                torch._inductor.aoti_compile_and_package(
                    program, package_path=str(Path(tmp) / name)
                )
        except Exception as exc:  # the compiler's many failures: the cell says why
            return {**found, "reason": f"AOTInductor's compile failed: {first_line(exc)}"}
        found["seconds"] = round(time.perf_counter() - began, 2)
        (Path(tmp) / name).replace(model.directory / name)
    return found
