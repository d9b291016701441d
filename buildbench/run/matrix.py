"""What to build: the cells of the matrix (framework x variant) and their build-args."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from buildbench.engine.dockerfile import final_base
from buildbench.errors import UsageError
from buildbench.measure.runtimes import DEFAULT_NAMES, runtime
from buildbench.measure.servers import server, server_names
from buildbench.measure.servers.smoke import ServeConfig
from buildbench.measure.smoke.kinds.model.config import ModelConfig
from buildbench.measure.smoke.runner import SmokeConfig
from buildbench.record import cell_key

Variant = Literal["cpu", "cuda"]
VARIANTS: tuple[Variant, ...] = ("cpu", "cuda")
# The course exercise builds its CUDA variant with `--build-arg CUDA=true`; empty means CPU.
CUDA_VALUES: dict[str, str] = {"cpu": "", "cuda": "true"}
DEFAULT_BASE_IMAGE = "python:3.11-slim"
DEFAULT_TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def dockerfiles_dir() -> Path:
    """The built-in Dockerfiles: inside the installed wheel, or at the top of a source checkout."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / "dockerfiles", package.parent / "dockerfiles"):
        if (candidate / "pytorch.dockerfile").is_file():
            return candidate
    raise UsageError(
        "the built-in Dockerfiles are missing from this installation",
        tip="reinstall buildbench (pip install --force-reinstall buildbench)",
    )


@dataclass(frozen=True)
class Cell:
    """One image to build: a Dockerfile, a context and the build-args of one variant."""

    name: str
    variant: Variant
    dockerfile: Path
    context: Path
    build_args: dict[str, str] = field(default_factory=dict)
    framework: str | None = None  # the image's runtime (--framework, measure/runtimes)
    build_inputs: bool = False  # whether the context gets buildbench's build-inputs/ folder
    smoke: SmokeConfig | None = None  # its smoke test, as its kind read it; None: none
    # What the builder stage pip installs, for --prefetch (built-in images only), and the index
    # it comes from (None: pip's configured index; "": none, find-links only).
    requirements: tuple[str, ...] = ()
    requirements_index: str | None = None

    @property
    def key(self) -> str:
        return cell_key(self.name, self.variant)

    @property
    def base_image(self) -> str | None:
        """The image the final stage builds on (its FROM, build-args substituted), which
        buildbench makes local before timing and measures the image against."""
        return final_base(self.dockerfile_text(), self.build_args)

    def config_hash(self) -> str:
        """Changes with the Dockerfile or the build-args: results are then not comparable."""
        digest = hashlib.sha256(self.dockerfile_text().encode())
        digest.update(json.dumps(self.build_args, sort_keys=True).encode())
        return digest.hexdigest()[:16]

    def dockerfile_text(self) -> str:
        return read_dockerfile(self.dockerfile)


def read_dockerfile(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise UsageError(
            f"cannot read Dockerfile {path}: {exc.strerror}",
            tip="check the path, or run `buildbench list` to see the matrix",
        ) from None


@dataclass(frozen=True)
class MatrixOptions:
    frameworks: tuple[str, ...] = DEFAULT_NAMES
    variants: tuple[Variant, ...] = VARIANTS
    base_image: str = DEFAULT_BASE_IMAGE
    torch_version: str = ""
    torch_cpu_index_url: str = DEFAULT_TORCH_CPU_INDEX
    servers: tuple[str, ...] = ()  # --server, as given ("all" for every one)


def variants_for(cuda: str) -> tuple[Variant, ...]:
    return tuple(v for v in VARIANTS if cuda in (v, "both"))


def builtin_matrix(options: MatrixOptions) -> list[Cell]:
    """The built-in runtimes' images (measure/runtimes), each in the variants it has."""
    root = dockerfiles_dir()
    cells = []
    for framework in options.frameworks:
        found = runtime(framework)
        for variant in options.variants:
            if _missing(framework, variant, options) is not None:
                continue
            args = {"CUDA": CUDA_VALUES[variant], "BASE_IMAGE": options.base_image}
            cells.append(
                Cell(
                    name=framework,
                    variant=variant,
                    dockerfile=root / found.dockerfile,
                    context=root,
                    build_args={**args, **found.build_args(variant, options)},
                    framework=framework,
                    build_inputs=True,
                    smoke=ModelConfig(framework),
                    requirements=found.requirements(variant, options),
                    requirements_index=found.requirements_index(variant, options),
                )
            )
    return cells


def _torch_args(options: MatrixOptions) -> dict[str, str]:
    return {
        "TORCH_VERSION": options.torch_version,
        "TORCH_CPU_INDEX_URL": options.torch_cpu_index_url,
    }


def server_cells(options: MatrixOptions) -> list[Cell]:
    """The serving frameworks' images (measure/servers), each in the variants it has, serving
    the run's model on the http kind. A server named by --server must serve the model; one
    only reached by `all` is not applicable where it cannot."""
    root = dockerfiles_dir()
    cells = []
    for name in server_names(options.servers):
        found = server(name)
        for variant in options.variants:
            if variant not in found.variants:
                continue
            cells.append(
                Cell(
                    name=name,
                    variant=variant,
                    dockerfile=root / found.dockerfile,
                    context=root,
                    build_args={
                        "CUDA": CUDA_VALUES[variant],
                        "BASE_IMAGE": options.base_image,
                        **(_torch_args(options) if found.torch else {}),
                    },
                    framework=name,
                    build_inputs=True,
                    smoke=ServeConfig(found, chosen=name in options.servers),
                    requirements=found.requirements(variant),
                )
            )
    return cells


def missing_variants(options: MatrixOptions) -> dict[str, str]:
    """The built-in cells asked for whose runtime has no such variant (OpenVINO's "cuda"), or
    whose model form this host cannot make (AOTInductor without a compiler), by key, with why:
    left out as not built, never built as some other variant."""
    missing = {}
    for framework in options.frameworks:
        for variant in options.variants:
            if (why := _missing(framework, variant, options)) is not None:
                missing[cell_key(framework, variant)] = f"not applicable: {why}"
    return missing


def _missing(framework: str, variant: str, options: MatrixOptions) -> str | None:
    found = runtime(framework)
    if variant not in found.variants:
        return found.missing_variant or f"{framework} has no {variant} variant"
    return found.unavailable(variant, options)
