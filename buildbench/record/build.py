"""A cell's build, what the image is, and its trip through a registry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from buildbench.record.contents import ImageContents


@dataclass
class Step:
    """One Dockerfile instruction and its duration in each build sample."""

    index: int
    instruction: str
    seconds: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Download:
    """What `--prefetch` downloaded before the timed builds: not part of any build time."""

    bytes: int
    seconds: float
    files: int


BuildMode = Literal["network", "prefetch"]


@dataclass
class BuildRecord:
    """Every no-cache build sample of a cell: raw times, per-step times, what crossed the wire."""

    seconds: list[float] = field(default_factory=list)
    # From the build request to the engine's first output: context upload and unpacking.
    first_output_seconds: list[float] = field(default_factory=list)
    # From the build request until the context was packed and sent (packed as it goes, inside
    # the timed build, as `docker build` does); None: not recorded (schema 3 and older, when
    # packing was done before timing and not counted).
    context_seconds: list[float] | None = field(default_factory=list)
    context_bytes: int | None = None
    steps: list[Step] = field(default_factory=list)
    # network: pip downloads inside the timed build; prefetch: wheels fetched before timing.
    mode: BuildMode = "network"
    download: Download | None = None
    # Per sample: the engine host's CPU share in use in quarter-second windows just before and
    # just after it, while this run used none (the larger); empty where not measured (an
    # engine on another machine). Others' load, told apart from the build's own.
    cpu_others_share: list[float | None] = field(default_factory=list)


@dataclass(frozen=True)
class ImageFacts:
    """A built image as the engine and a registry see it, and the versions inside it."""

    size_bytes: int
    layers: int
    base_image_id: str | None = None
    bytes_over_base: int | None = None
    compressed_size_bytes: int | None = None
    # estimate: layers gzip'd here; registry: the manifest's layer sizes (exact).
    compressed_size_source: Literal["estimate", "registry"] | None = None
    python_version: str | None = None
    framework_version: str | None = None


@dataclass(frozen=True)
class Measurement:
    """What measuring an image returns; the pipeline files it under `image` and `contents`."""

    image: ImageFacts
    contents: ImageContents | None = None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Shipping:
    """The image pushed to a registry and pulled back: what shipping it costs."""

    registry: str
    reference: str
    push_seconds: float
    stored_bytes: int  # the manifest's layer sizes: what the registry stores
    config_bytes: int
    # Pulled onto the engine after removing the image, the base image's layers kept.
    pull_seconds: float | None = None
    # Pulled with nothing local, base included (only where the base could be set aside).
    cold_pull_seconds: float | None = None
    note: str | None = None
