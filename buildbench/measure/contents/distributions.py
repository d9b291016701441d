"""Bytes over the base image that belong to Python distributions, as their RECORD files list
them."""

from __future__ import annotations

import csv
import io
import posixpath
from collections.abc import Iterator

from buildbench.measure.contents.filesystem import Filesystem, claim, clean
from buildbench.record import DistributionShare


def distribution_shares(
    fs: Filesystem, metadata: dict[str, bytes], base_layers: int, claimed: set[str]
) -> list[DistributionShare]:
    shares = []
    for path, record in metadata.items():
        if not path.endswith(".dist-info/RECORD"):
            continue
        dist_info = posixpath.dirname(path)
        name, version = _name_and_version(metadata.get(f"{dist_info}/METADATA"), dist_info)
        # RECORD paths are relative to the dist-info's parent, and may climb out of it.
        root = posixpath.dirname(dist_info)
        listed = (clean(posixpath.join(root, row)) for row in _record_paths(record))
        size = claim(fs, listed, base_layers, claimed)
        if size:
            placed = fs.files.get(path)
            layer = None if placed is None else placed.layer
            shares.append(DistributionShare(name, version, size, layer))
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
