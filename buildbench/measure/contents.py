"""What an image holds over its base, and what it wastes, from one `ArchiveAnalysis`.

The layers are stacked as overlayfs stacks them (whiteouts, opaque directories, later layers
hiding earlier ones) into the final filesystem. Then:

- attribution: the bytes over the base image, split into Python distributions (their RECORD
  files), Debian packages (dpkg's file lists) and the rest; the split sums exactly to the
  engine's figure, whatever is left over being "other";
- findings: bytes an image could shed, each with the instruction that wrote them and a fix.

Every file counts once: a file two owners list goes to the first, distributions before packages.
"""

from __future__ import annotations

import csv
import io
import posixpath
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from buildbench.measure.archive import ArchiveAnalysis, EntryKind, FileEntry, LayerInfo
from buildbench.record import (
    Attribution,
    DistributionShare,
    Finding,
    FindingKind,
    ImageContents,
    LayerShare,
    PackageShare,
)

_EXAMPLES = 5  # paths a finding names
_NO_BYTECODE = "PYTHONDONTWRITEBYTECODE"
_DPKG_STATUS = "var/lib/dpkg/status"
_DPKG_STATUS_D = "var/lib/dpkg/status.d/"
_DPKG_INFO = "var/lib/dpkg/info/"
_SYMLINK_HOPS = 40  # as the kernel's limit: a loop gives up instead of recursing forever
# Compilers, build tools, headers: what a runtime image does not need. Versioned and cross
# compilers (gcc-12, gcc-14-x86-64-linux-gnu) are, gcc-12-base (libgcc-s1 needs it) is not.
_TOOLCHAIN = re.compile(
    r"(?:gcc|g\+\+|cpp|gfortran|clang|llvm|lld)(?:-[0-9.]+)?(?:-[a-z0-9_-]+-linux-gnu\w*)?"
    r"|binutils(?:-.+)?|make|build-essential|dpkg-dev|cmake|ninja-build|autoconf|automake"
    r"|libtool|pkg-config|pkgconf|bison|flex|ccache|.+-dev"
)
_DEPENDENCY = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9+.-]*)")
_SHARED_LIBRARY = re.compile(r"lib.+\.so(?:\.[0-9]+)*")
_SITE_PACKAGES = re.compile(r"(?:^|/)(?:site|dist)-packages/")
_TEST_AND_DOC_DIRS = frozenset({"tests", "test", "docs", "doc", "examples"})


_FIXES = {
    FindingKind.DELETED_LATER: "delete these files in the RUN that creates them, or build them "
    "in another stage and COPY --from only what the image needs",
    FindingKind.OVERWRITTEN_LATER: "write these files once: merge the steps that write them, "
    "or order COPY/RUN so that each file is written by one layer",
    FindingKind.PIP_CACHE: "pip install --no-cache-dir (or RUN --mount=type=cache,"
    "target=/root/.cache/pip)",
    FindingKind.APT_CACHE: "apt-get clean in the same RUN as apt-get install",
    FindingKind.APT_LISTS: "rm -rf /var/lib/apt/lists/* in the same RUN as apt-get update",
    FindingKind.BYTECODE: "pip install --no-compile (PYTHONDONTWRITEBYTECODE does not stop pip "
    "from compiling), or delete __pycache__ in the same RUN",
    FindingKind.TOOLCHAIN: "compile in a build stage and copy the results into a runtime stage, "
    "or apt-get purge --auto-remove the toolchain in the RUN that uses it",
    FindingKind.DUPLICATE_LIBRARIES: "keep one copy: use the wheels' libraries instead of the "
    "base image's (or the reverse), or delete the extra copy in the RUN that adds it",
    FindingKind.TESTS_AND_DOCS: "delete tests/docs/examples directories in site-packages in "
    "the RUN that pip installs them",
}
_BASE_FIX = (
    "deleting or rewriting a base image's files in a later layer frees nothing: choose a base "
    "without them, or copy what the image needs onto one in a multi-stage build"
)


def image_contents(analysis: ArchiveAnalysis, *, bytes_over_base: int) -> ImageContents:
    """Attribution and findings; `bytes_over_base`: the engine's image Size - base Size."""
    fs = _Filesystem(analysis.layers)
    base_layers = analysis.base_layers
    metadata = _final_metadata(analysis.layers, fs)
    claimed: set[str] = set()
    distributions = _distributions(fs, metadata, base_layers, claimed)
    packages = _packages(fs, metadata, _base_status(analysis.layers), base_layers, claimed)
    lost_over_base = sum(lost.size for lost in fs.lost if lost.layer >= base_layers)
    attributed = sum(d.bytes for d in distributions) + sum(p.bytes for p in packages)
    attribution = Attribution(
        bytes_over_base=bytes_over_base,
        layers=[
            LayerShare(layer.index, layer.instruction, layer.size_bytes)
            for layer in analysis.layers
            if not layer.base
        ],
        distributions=sorted(distributions, key=lambda d: (-d.bytes, d.name)),
        packages=sorted(packages, key=lambda p: (-p.bytes, p.name)),
        deleted_or_overwritten_bytes=lost_over_base,
        unowned_bytes=bytes_over_base - attributed - lost_over_base,
    )
    findings = [
        *_lost_findings(fs, analysis.layers),
        # Python honours the variable when it is set to anything but the empty string.
        *_path_findings(fs, analysis.layers, bytecode=bool(analysis.env.get(_NO_BYTECODE))),
        *_duplicate_libraries(fs, analysis.layers),
        *_toolchain(fs, metadata, analysis.layers),
    ]
    return ImageContents(
        attribution=attribution,
        findings=sorted((f for f in findings if f.bytes > 0), key=lambda f: -f.bytes),
        wasted_bytes=sum(lost.size for lost in fs.lost),
        efficiency=fs.efficiency,
    )


# ---------------------------------------------------------------------------------------------
# The final filesystem


@dataclass(frozen=True, slots=True)
class _Placed:
    """A non-directory of the final image: the layer that wrote it, the bytes it holds there."""

    layer: int
    entry: FileEntry
    size: int


@dataclass(frozen=True, slots=True)
class _Lost:
    """Bytes a layer stores that the final image does not show."""

    layer: int
    path: str
    size: int
    deleted: bool  # by a whiteout or opaque directory above; else overwritten at its path


class _Filesystem:
    """The layers stacked as overlayfs stacks them."""

    def __init__(self, layers: list[LayerInfo]) -> None:
        self.files: dict[str, _Placed] = {}
        self.lost: list[_Lost] = []
        self._real_dirs: dict[str, str] = {}
        killers = _Killers(layers)
        stacked = [copy for layer in layers for copy in self._stack(layer, killers)]
        self.efficiency = _efficiency(stacked)

    def _stack(self, layer: LayerInfo, killers: _Killers) -> list[tuple[FileEntry, bool | None]]:
        """Place a layer's non-directories: each with its fate (see `_Killers.fate`)."""
        fates: list[tuple[FileEntry, bool | None]] = []
        lost_files: dict[str, _Lost] = {}
        links: list[FileEntry] = []
        for entry in layer.files:
            if entry.kind in (EntryKind.WHITEOUT, EntryKind.OPAQUE, EntryKind.DIR):
                continue
            deleted = killers.fate(entry, layer.index)
            fates.append((entry, deleted))
            if deleted is not None:
                lost_files[entry.path] = _Lost(layer.index, entry.path, entry.size, deleted)
                continue
            self.files[entry.path] = _Placed(layer.index, entry, entry.size)
            if entry.kind is EntryKind.HARDLINK:
                links.append(entry)
        # A file's data outlives its path while a hard link to it is still there.
        for link in links:
            target = lost_files.pop(link.link or "", None)
            if target is not None:
                self.files[link.path] = _Placed(layer.index, link, target.size)
        self.lost.extend(lost for lost in lost_files.values() if lost.size)
        return fates

    def lookup(self, path: str) -> tuple[str, _Placed] | None:
        """The final file at `path`, following symlinked directories (/lib -> usr/lib)."""
        directory, name = posixpath.split(path)
        real = posixpath.join(self._real_dir(directory, 0), name) if directory else name
        placed = self.files.get(real)
        return None if placed is None else (real, placed)

    def _real_dir(self, path: str, hops: int) -> str:
        if not path or hops > _SYMLINK_HOPS:
            return path
        cached = self._real_dirs.get(path)
        if cached is not None:
            return cached
        parent, name = posixpath.split(path)
        real_parent = self._real_dir(parent, hops + 1)
        candidate = posixpath.join(real_parent, name)
        placed = self.files.get(candidate)
        real = candidate
        if placed is not None and placed.entry.kind is EntryKind.SYMLINK and placed.entry.link:
            real = self._real_dir(_clean(posixpath.join(real_parent, placed.entry.link)), hops + 1)
        self._real_dirs[path] = real
        return real


def _efficiency(stacked: list[tuple[FileEntry, bool | None]]) -> float:
    """dive's score: over every path, its smallest copy's bytes / all its copies' bytes.

    Unlike dive, which adds a deleted directory's size to both sums (so deleting a directory
    never lowers its score), each file a deletion hides counts as a 0-byte copy.
    """
    smallest: dict[str, int] = {}
    written = 0
    for entry, deleted in stacked:
        written += entry.size
        size = 0 if deleted else entry.size
        smallest[entry.path] = min(smallest.get(entry.path, size), size)
    return sum(smallest.values()) / written if written else 1.0


class _Killers:
    """Where each layer hides what is below it; the highest layer that does, per path."""

    def __init__(self, layers: list[LayerInfo]) -> None:
        self.written: dict[str, int] = {}  # any entry: replaces a non-directory at the path
        self.subtree: dict[str, int] = {}  # a whiteout or non-directory: the path and below
        self.below: dict[str, int] = {}  # an opaque directory: what is below it
        for layer in layers:
            for entry in layer.files:
                if entry.kind is EntryKind.WHITEOUT:
                    self.subtree[entry.path] = layer.index
                elif entry.kind is EntryKind.OPAQUE:
                    self.below[entry.path] = layer.index
                else:
                    self.written[entry.path] = layer.index
                    if entry.kind is not EntryKind.DIR:
                        self.subtree[entry.path] = layer.index

    def fate(self, entry: FileEntry, layer: int) -> bool | None:
        """None if a non-directory survives; True if a layer above deletes it, False if one
        above writes the same path."""
        if self.written.get(entry.path, -1) > layer:
            return False
        if self.subtree.get(entry.path, -1) > layer:
            return True
        for ancestor in _ancestors(entry.path):
            if self.subtree.get(ancestor, -1) > layer or self.below.get(ancestor, -1) > layer:
                return True
        return None


def _ancestors(path: str) -> Iterator[str]:
    end = path.rfind("/")
    while end > 0:
        yield path[:end]
        end = path.rfind("/", 0, end)


def _clean(path: str) -> str:
    """`path` relative to /, without `.`, `..` or a leading slash."""
    cleaned = posixpath.normpath("/" + path).lstrip("/")
    return "" if cleaned == "." else cleaned


def _final_metadata(layers: list[LayerInfo], fs: _Filesystem) -> dict[str, bytes]:
    """The captured metadata files the final image shows: each from the layer that wins."""
    final = {}
    for layer in layers:
        for path, data in layer.metadata.items():
            placed = fs.files.get(path)
            if placed is not None and placed.layer == layer.index:
                final[path] = data
    return final


# ---------------------------------------------------------------------------------------------
# Attribution


def _distributions(
    fs: _Filesystem, metadata: dict[str, bytes], base_layers: int, claimed: set[str]
) -> list[DistributionShare]:
    shares = []
    for path, record in metadata.items():
        if not path.endswith(".dist-info/RECORD"):
            continue
        dist_info = posixpath.dirname(path)
        name, version = _name_and_version(metadata.get(f"{dist_info}/METADATA"), dist_info)
        # RECORD paths are relative to the dist-info's parent, and may climb out of it.
        root = posixpath.dirname(dist_info)
        listed = (_clean(posixpath.join(root, row)) for row in _record_paths(record))
        size = _claim(fs, listed, base_layers, claimed)
        if size:
            shares.append(DistributionShare(name, version, size))
    return shares


def _record_paths(record: bytes) -> Iterator[str]:
    try:
        for row in csv.reader(io.StringIO(record.decode("utf-8", "replace"))):
            if row and row[0]:
                yield row[0]
    except csv.Error:
        return  # a mangled RECORD: what it names is left to "unowned"


def _name_and_version(headers: bytes | None, dist_info: str) -> tuple[str, str]:
    # Wheel dist-info names are `{name}-{version}.dist-info`, the name's dashes escaped.
    name, _, version = posixpath.basename(dist_info).removesuffix(".dist-info").partition("-")
    for line in (headers or b"").decode("utf-8", "replace").splitlines():
        key, _, value = line.partition(":")
        if key == "Name":
            name = value.strip()
        elif key == "Version":
            version = value.strip()
    return name, version


def _packages(
    fs: _Filesystem,
    metadata: dict[str, bytes],
    base_status: dict[str, _Package],
    base_layers: int,
    claimed: set[str],
) -> list[PackageShare]:
    status = _status(metadata)
    shares = []
    for name, listed in _file_lists(metadata).items():
        size = _claim(fs, listed, base_layers, claimed)
        if size:
            version = status[name].version if name in status else ""
            shares.append(PackageShare(name, version, size, new=name not in base_status))
    return shares


def _claim(fs: _Filesystem, paths: Iterable[str], base_layers: int, claimed: set[str]) -> int:
    """Bytes of the final files at `paths` in layers above the base not yet claimed."""
    total = 0
    for path in paths:
        hit = fs.lookup(path)
        if hit is None:
            continue
        real, placed = hit
        if placed.layer >= base_layers and real not in claimed:
            claimed.add(real)
            total += placed.size
    return total


# ---------------------------------------------------------------------------------------------
# dpkg's database


@dataclass(frozen=True)
class _Package:
    name: str
    version: str
    protected: bool  # Essential or Priority: required: never removable, never waste
    depends: list[list[str]]  # Depends and Pre-Depends: groups of alternatives
    provides: list[str]


def _status(metadata: Mapping[str, bytes]) -> dict[str, _Package]:
    """Installed packages, from var/lib/dpkg/status (and distroless's status.d/*)."""
    texts = [data for path, data in metadata.items() if _is_status(path)]
    packages = {}
    for text in texts:
        for paragraph in text.decode("utf-8", "replace").split("\n\n"):
            package = _parse_paragraph(paragraph)
            if package is not None:
                packages[package.name] = package
    return packages


def _is_status(path: str) -> bool:
    return path == _DPKG_STATUS or path.startswith(_DPKG_STATUS_D)


def _base_status(layers: list[LayerInfo]) -> dict[str, _Package]:
    """The base image's installed packages: its top-most dpkg status wins."""
    for layer in reversed([layer for layer in layers if layer.base]):
        found = {path: data for path, data in layer.metadata.items() if _is_status(path)}
        if found:
            return _status(found)
    return {}


def _parse_paragraph(paragraph: str) -> _Package | None:
    fields = {}
    for line in paragraph.splitlines():
        if line and not line[0].isspace():  # continuation lines (Description...) are not needed
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    if "Package" not in fields or fields.get("Status", "").split()[-1:] != ["installed"]:
        return None
    return _Package(
        name=fields["Package"],
        version=fields.get("Version", ""),
        protected=fields.get("Essential") == "yes" or fields.get("Priority") == "required",
        depends=_relations(f"{fields.get('Pre-Depends', '')},{fields.get('Depends', '')}"),
        provides=[group[0] for group in _relations(fields.get("Provides", ""))],
    )


def _relations(text: str) -> list[list[str]]:
    """`a (>= 1) | b:any, c` -> [[a, b], [c]]: versions and architectures dropped."""
    groups = []
    for group in text.split(","):
        names = [m.group(1) for alt in group.split("|") if (m := _DEPENDENCY.match(alt))]
        if names:
            groups.append(names)
    return groups


def _file_lists(metadata: Mapping[str, bytes]) -> dict[str, list[str]]:
    """Each package's files (info/<pkg>.list, or <pkg>:<arch>.list), relative to /."""
    lists: dict[str, list[str]] = {}
    for path, data in metadata.items():
        if path.startswith(_DPKG_INFO) and path.endswith(".list"):
            name = posixpath.basename(path).removesuffix(".list").partition(":")[0]
            text = data.decode("utf-8", "surrogateescape")
            lists.setdefault(name, []).extend(_clean(line) for line in text.splitlines() if line)
    return lists


# ---------------------------------------------------------------------------------------------
# Findings


def _instruction(layers: list[LayerInfo], index: int) -> str | None:
    return layers[index].instruction if 0 <= index < len(layers) else None


def _finding(
    kind: FindingKind,
    sized_paths: Iterable[tuple[int, str, int]],
    layers: list[LayerInfo],
    fix: str | None = None,
    packages: list[str] | None = None,
) -> Finding:
    """One finding from (layer, path, bytes): its instruction is the layer with most bytes."""
    items = list(sized_paths)
    by_layer: dict[int, int] = defaultdict(int)
    for layer, _, size in items:
        by_layer[layer] += size
    top_layer = max(by_layer, key=lambda index: by_layer[index], default=-1)
    examples = sorted(items, key=lambda item: -item[2])[:_EXAMPLES]
    return Finding(
        kind=kind,
        bytes=sum(size for _, _, size in items),
        paths=["/" + path for _, path, _ in examples],
        instruction=_instruction(layers, top_layer),
        fix=fix or _FIXES[kind],
        packages=packages or [],
    )


def _lost_findings(fs: _Filesystem, layers: list[LayerInfo]) -> list[Finding]:
    """Per layer: bytes a later layer deleted, and bytes a later layer wrote again."""
    groups: dict[tuple[int, bool], list[tuple[int, str, int]]] = defaultdict(list)
    for lost in fs.lost:
        groups[lost.layer, lost.deleted].append((lost.layer, lost.path, lost.size))
    findings = []
    for (layer, deleted), items in groups.items():
        kind = FindingKind.DELETED_LATER if deleted else FindingKind.OVERWRITTEN_LATER
        fix = _BASE_FIX if layers[layer].base else None
        findings.append(_finding(kind, items, layers, fix))
    return findings


def _path_findings(fs: _Filesystem, layers: list[LayerInfo], *, bytecode: bool) -> list[Finding]:
    """Caches, package lists, tests and docs, bytecode: final files over the base, by path."""
    groups: dict[FindingKind, list[tuple[int, str, int]]] = defaultdict(list)
    tests_and_docs: dict[str, list[tuple[int, str, int]]] = defaultdict(list)
    for path, placed in fs.files.items():
        if layers[placed.layer].base or not placed.size:
            continue
        item = (placed.layer, path, placed.size)
        if (kind := _cache_kind(path)) is not None:
            groups[kind].append(item)
        elif (directory := _test_or_doc_dir(path)) is not None:
            tests_and_docs[directory].append(item)
        elif bytecode and path.endswith(".pyc"):
            groups[FindingKind.BYTECODE].append(item)
    findings = [_finding(kind, items, layers) for kind, items in groups.items()]
    if tests_and_docs:
        # Name the directories, not the files in them: that is what the fix deletes.
        dirs = [
            (_top_layer(items), directory, sum(size for _, _, size in items))
            for directory, items in tests_and_docs.items()
        ]
        findings.append(_finding(FindingKind.TESTS_AND_DOCS, dirs, layers))
    return findings


def _top_layer(items: list[tuple[int, str, int]]) -> int:
    by_layer: dict[int, int] = defaultdict(int)
    for layer, _, size in items:
        by_layer[layer] += size
    return max(by_layer, key=lambda index: by_layer[index])


def _cache_kind(path: str) -> FindingKind | None:
    if "/.cache/pip/" in f"/{path}":
        return FindingKind.PIP_CACHE
    if path.startswith("var/cache/apt/archives/") and path.endswith(".deb"):
        return FindingKind.APT_CACHE
    if posixpath.dirname(path) == "var/cache/apt" and path.endswith(".bin"):
        return FindingKind.APT_CACHE
    if path.startswith("var/lib/apt/lists/"):
        return FindingKind.APT_LISTS
    return None


def _test_or_doc_dir(path: str) -> str | None:
    """The top-most tests/docs/examples directory holding `path` inside site-packages."""
    match = _SITE_PACKAGES.search(path)
    if match is None:
        return None
    parts = path[match.end() :].split("/")[:-1]  # the directories below site-packages
    if parts and parts[0].endswith((".dist-info", ".egg-info")):
        return None
    for depth, part in enumerate(parts):
        if part in _TEST_AND_DOC_DIRS:
            return path[: match.end()] + "/".join(parts[: depth + 1])
    return None


def _duplicate_libraries(fs: _Filesystem, layers: list[LayerInfo]) -> list[Finding]:
    """The same shared library (file name) twice or more: all copies but the largest."""
    copies: dict[str, list[tuple[int, str, int]]] = defaultdict(list)
    for path, placed in fs.files.items():
        name = posixpath.basename(path)
        if placed.entry.kind is EntryKind.FILE and _SHARED_LIBRARY.fullmatch(name):
            copies[name].append((placed.layer, path, placed.size))
    extra = []
    for found in copies.values():
        if len(found) > 1 and any(not layers[layer].base for layer, _, _ in found):
            extra.extend(sorted(found, key=lambda item: -item[2])[1:])
    return [_finding(FindingKind.DUPLICATE_LIBRARIES, extra, layers)] if extra else []


def _toolchain(
    fs: _Filesystem, metadata: dict[str, bytes], layers: list[LayerInfo]
) -> list[Finding]:
    """Compilers, build tools, headers and what only they need, with their final files."""
    names = _toolchain_packages(_status(metadata))
    if not names:
        return []
    lists = _file_lists(metadata)
    seen: set[str] = set()
    items: list[tuple[int, str, int]] = []
    bytes_by_package: dict[str, int] = {}
    for name in names:
        before = len(items)
        for path in lists.get(name, []):
            hit = fs.lookup(path)
            if hit is not None and hit[0] not in seen and hit[1].size:
                seen.add(hit[0])
                items.append((hit[1].layer, hit[0], hit[1].size))
        bytes_by_package[name] = sum(size for _, _, size in items[before:])
    ordered = sorted(names, key=lambda name: (-bytes_by_package[name], name))
    return [_finding(FindingKind.TOOLCHAIN, items, layers, packages=ordered)]


def _toolchain_packages(packages: Mapping[str, _Package]) -> list[str]:
    """Toolchain packages, and the dependencies only they need (as apt's autoremove would see
    it once they are gone); Essential and required packages excepted."""
    roots = {name for name in packages if _TOOLCHAIN.fullmatch(name)}
    providers: dict[str, list[str]] = defaultdict(list)
    for package in packages.values():
        for virtual in package.provides:
            providers[virtual].append(package.name)
    candidates = _closure(roots, packages, providers)
    needed_by_others = _closure(set(packages) - candidates, packages, providers)
    chosen = roots | (candidates - needed_by_others)
    return sorted(n for n in chosen if n in packages and not packages[n].protected)


def _closure(
    names: set[str], packages: Mapping[str, _Package], providers: Mapping[str, list[str]]
) -> set[str]:
    """`names` and every installed package they depend on, directly or not (all alternatives
    that are installed: which one a dependency uses is unknown, so none is called waste)."""
    seen: set[str] = set()
    stack = list(names)
    while stack:
        name = stack.pop()
        if name in seen or name not in packages:
            continue
        seen.add(name)
        for group in packages[name].depends:
            for alternative in group:
                stack.append(alternative)
                stack.extend(providers.get(alternative, []))
    return seen


def _normalise_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
