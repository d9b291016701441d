"""What an image could shed: bytes later layers deleted or wrote again, caches, package lists,
tests and docs, bytecode, duplicate shared libraries and build toolchains; each with the
instruction that wrote the most of it and a fix."""

from __future__ import annotations

import posixpath
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping

from buildbench.measure.archive import ArchiveAnalysis, EntryKind, LayerInfo
from buildbench.measure.contents.dpkg import Package, file_lists, installed_packages
from buildbench.measure.contents.filesystem import Filesystem
from buildbench.record import Finding, FindingKind

_EXAMPLES = 5  # paths a finding names
_NO_BYTECODE = "PYTHONDONTWRITEBYTECODE"
# Compilers, build tools, headers: what a runtime image does not need. Versioned and cross
# compilers (gcc-12, gcc-14-x86-64-linux-gnu) are, gcc-12-base (libgcc-s1 needs it) is not.
_TOOLCHAIN = re.compile(
    r"(?:gcc|g\+\+|cpp|gfortran|clang|llvm|lld)(?:-[0-9.]+)?(?:-[a-z0-9_-]+-linux-gnu\w*)?"
    r"|binutils(?:-.+)?|make|build-essential|dpkg-dev|cmake|ninja-build|autoconf|automake"
    r"|libtool|pkg-config|pkgconf|bison|flex|ccache|.+-dev"
)
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


def waste_findings(
    fs: Filesystem, metadata: Mapping[str, bytes], analysis: ArchiveAnalysis
) -> list[Finding]:
    """Every finding with bytes, the largest first."""
    layers = analysis.layers
    found = [
        *_lost_findings(fs, layers),
        # Python honours the variable when it is set to anything but the empty string.
        *_path_findings(fs, layers, bytecode=bool(analysis.env.get(_NO_BYTECODE))),
        *_duplicate_libraries(fs, layers),
        *_toolchain(fs, metadata, layers),
    ]
    return sorted((f for f in found if f.bytes > 0), key=lambda f: -f.bytes)


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


def _lost_findings(fs: Filesystem, layers: list[LayerInfo]) -> list[Finding]:
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


def _path_findings(fs: Filesystem, layers: list[LayerInfo], *, bytecode: bool) -> list[Finding]:
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


def _duplicate_libraries(fs: Filesystem, layers: list[LayerInfo]) -> list[Finding]:
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
    fs: Filesystem, metadata: Mapping[str, bytes], layers: list[LayerInfo]
) -> list[Finding]:
    """Compilers, build tools, headers and what only they need, with their final files."""
    names = _toolchain_packages(installed_packages(metadata))
    if not names:
        return []
    lists = file_lists(metadata)
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


def _toolchain_packages(packages: Mapping[str, Package]) -> list[str]:
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
    names: set[str], packages: Mapping[str, Package], providers: Mapping[str, list[str]]
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
