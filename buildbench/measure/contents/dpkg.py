"""dpkg's database in an image: the installed packages (var/lib/dpkg/status, read as Debian's
own deb822 parser reads it) and each package's file list; and the bytes over the base image
that belong to Debian packages."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass

from debian.deb822 import Deb822, PkgRelation

from buildbench.measure.archive import LayerInfo
from buildbench.measure.contents.filesystem import Filesystem, claim, clean
from buildbench.record import PackageShare

_DPKG_STATUS = "var/lib/dpkg/status"
_DPKG_STATUS_D = "var/lib/dpkg/status.d/"
_DPKG_INFO = "var/lib/dpkg/info/"


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    protected: bool  # Essential or Priority: required: never removable, never waste
    depends: list[list[str]]  # Depends and Pre-Depends: groups of alternatives
    provides: list[str]


def installed_packages(metadata: Mapping[str, bytes]) -> dict[str, Package]:
    """Installed packages, from var/lib/dpkg/status (and distroless's status.d/*)."""
    packages = {}
    for path, data in metadata.items():
        if not _is_status(path):
            continue
        text = data.decode("utf-8", "replace")
        for paragraph in Deb822.iter_paragraphs(text, use_apt_pkg=False):
            package = _installed(paragraph)
            if package is not None:
                packages[package.name] = package
    return packages


def _is_status(path: str) -> bool:
    return path == _DPKG_STATUS or path.startswith(_DPKG_STATUS_D)


def base_packages(layers: list[LayerInfo]) -> dict[str, Package]:
    """The base image's installed packages: its top-most dpkg status wins."""
    for layer in reversed([layer for layer in layers if layer.base]):
        found = {path: data for path, data in layer.metadata.items() if _is_status(path)}
        if found:
            return installed_packages(found)
    return {}


def _installed(paragraph: Deb822) -> Package | None:
    """A status paragraph's package, if dpkg says it is installed (field names are read
    case-insensitively, continuation lines and blank-looking separators as deb822 has them)."""
    if "Package" not in paragraph or paragraph.get("Status", "").split()[-1:] != ["installed"]:
        return None
    return Package(
        name=paragraph["Package"],
        version=paragraph.get("Version", ""),
        protected=paragraph.get("Essential") == "yes" or paragraph.get("Priority") == "required",
        depends=_relations(paragraph.get("Pre-Depends", ""), paragraph.get("Depends", "")),
        provides=[group[0] for group in _relations(paragraph.get("Provides", ""))],
    )


def _relations(*fields: str) -> list[list[str]]:
    """`a (>= 1) | b:any, c` -> [[a, b], [c]]: versions and architectures dropped."""
    groups = []
    for field in fields:
        if not field.strip():  # python-debian warns about an empty relation
            continue
        for group in PkgRelation.parse_relations(field):
            names = [str(alternative["name"]) for alternative in group if alternative["name"]]
            if names:
                groups.append(names)
    return groups


def file_lists(metadata: Mapping[str, bytes]) -> dict[str, list[str]]:
    """Each package's files (info/<pkg>.list, or <pkg>:<arch>.list), relative to /."""
    lists: dict[str, list[str]] = {}
    for path, data in metadata.items():
        if _is_list(path):
            text = data.decode("utf-8", "surrogateescape")
            lists.setdefault(_listed_package(path), []).extend(
                clean(line) for line in text.splitlines() if line
            )
    return lists


def _is_list(path: str) -> bool:
    return path.startswith(_DPKG_INFO) and path.endswith(".list")


def _listed_package(path: str) -> str:
    return posixpath.basename(path).removesuffix(".list").partition(":")[0]


def package_shares(
    fs: Filesystem,
    metadata: dict[str, bytes],
    in_base: dict[str, Package],
    base_layers: int,
    claimed: set[str],
) -> list[PackageShare]:
    installed = installed_packages(metadata)
    # The layer that wrote a package's file list is the one that installed it.
    layers = {
        _listed_package(path): placed.layer
        for path in metadata
        if _is_list(path) and (placed := fs.files.get(path)) is not None
    }
    shares = []
    for name, listed in file_lists(metadata).items():
        size = claim(fs, listed, base_layers, claimed)
        if size:
            version = installed[name].version if name in installed else ""
            new = name not in in_base
            shares.append(PackageShare(name, version, size, new=new, layer=layers.get(name)))
    return shares
