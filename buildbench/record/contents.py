"""What an image holds over its base, and what it wastes (measured by buildbench.measure)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum


class FindingKind(StrEnum):
    DELETED_LATER = "deleted_later"
    OVERWRITTEN_LATER = "overwritten_later"
    PIP_CACHE = "pip_cache"
    APT_CACHE = "apt_cache"
    APT_LISTS = "apt_lists"
    BYTECODE = "bytecode"
    TOOLCHAIN = "toolchain"
    DUPLICATE_LIBRARIES = "duplicate_libraries"
    TESTS_AND_DOCS = "tests_and_docs"


@dataclass(frozen=True)
class LayerShare:
    index: int
    instruction: str | None
    size_bytes: int


@dataclass(frozen=True)
class DistributionShare:
    """A Python distribution's files above the base image, as its RECORD lists them."""

    name: str
    version: str
    bytes: int
    layer: int | None = None  # the layer that installed it (wrote its RECORD); None: unknown

    @property
    def cuda(self) -> bool:
        return re.sub(r"[-_.]+", "-", self.name).lower().startswith("nvidia-")  # PEP 503


@dataclass(frozen=True)
class PackageShare:
    """A Debian package's files above the base image, as dpkg's file list names them."""

    name: str
    version: str
    bytes: int
    new: bool  # not installed in the base image (else upgraded or rewritten over it)
    layer: int | None = None  # the layer that installed it (wrote its file list); None: unknown


@dataclass(frozen=True)
class Attribution:
    """The bytes over the base image: distributions + packages + other == bytes_over_base."""

    bytes_over_base: int
    layers: list[LayerShare]
    distributions: list[DistributionShare]
    packages: list[PackageShare]
    # Other: files a later layer deleted or overwrote (still stored in their layer), and the
    # rest, owned by no RECORD and no dpkg list (plus any gap between the engine's figure and
    # the layers' file sizes, which is nil on overlay2).
    deleted_or_overwritten_bytes: int
    unowned_bytes: int

    @property
    def distributions_bytes(self) -> int:
        return sum(d.bytes for d in self.distributions)

    @property
    def packages_bytes(self) -> int:
        return sum(p.bytes for p in self.packages)

    @property
    def cuda_libraries_bytes(self) -> int:
        return sum(d.bytes for d in self.distributions if d.cuda)

    @property
    def other_bytes(self) -> int:
        return self.deleted_or_overwritten_bytes + self.unowned_bytes

    @property
    def layers_bytes(self) -> int:
        return sum(layer.size_bytes for layer in self.layers)


@dataclass(frozen=True)
class Finding:
    kind: FindingKind
    bytes: int
    paths: list[str]  # a few examples, biggest first
    instruction: str | None  # of the layer that wrote (most of) the bytes
    fix: str
    packages: list[str] = field(default_factory=list)  # the toolchain finding's packages


@dataclass(frozen=True)
class ImageContents:
    attribution: Attribution
    findings: list[Finding]  # largest first
    # Bytes stored in a layer but deleted or overwritten by a later one, all layers.
    wasted_bytes: int
    # As dive's: over every path, the smallest copy's bytes over all copies' (a deletion
    # counts as a copy of 0 bytes); 1.0 when nothing is written twice or deleted.
    efficiency: float

    @property
    def cuda_libraries_bytes(self) -> int:
        return self.attribution.cuda_libraries_bytes

    def top_distributions(self, n: int = 10) -> list[DistributionShare]:
        return sorted(self.attribution.distributions, key=lambda d: -d.bytes)[:n]

    def top_packages(self, n: int = 10) -> list[PackageShare]:
        return sorted(self.attribution.packages, key=lambda p: -p.bytes)[:n]

    def biggest_layers(self, n: int = 5) -> list[LayerShare]:
        return sorted(self.attribution.layers, key=lambda layer: -layer.size_bytes)[:n]
