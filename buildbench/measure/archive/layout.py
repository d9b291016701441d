"""The archive's members, resolved into an image once the stream ends.

Engine 20.10 writes the legacy layout (`<id>/layer.tar`, `<config>.json`, `manifest.json`); newer
engines write the OCI layout (`blobs/sha256/<digest>`, `index.json`, and `manifest.json` too).
Members come in any order (the manifest is often last), so every member is classified by its
first bytes as it streams past and the manifest is resolved at the end.
"""

from __future__ import annotations

import json
import posixpath
import tarfile
from typing import Any

from buildbench.measure.archive.history import layer_instructions
from buildbench.measure.archive.layer import LayerFormat, read_blob, sniff_format
from buildbench.measure.archive.model import (
    ArchiveAnalysis,
    Blob,
    KnownSize,
    LayerInfo,
    LayerSizes,
    StaleLayerSizes,
)
from buildbench.measure.archive.sizing import KNOWN_MIN_BYTES, Compressor
from buildbench.measure.archive.stream import ChunkStream, Member

_SMALL_LIMIT = 64 * 1024 * 1024  # configs and manifests are KBs; anything bigger is data


class Archive:
    """The members seen so far, resolved against the manifest once the stream ends."""

    def __init__(self, sizes: LayerSizes | None) -> None:
        self.sizes = sizes
        self.blobs: dict[str, Blob] = {}
        self.small: dict[str, bytes] = {}
        self.links: dict[str, str] = {}  # 20.10 saves a repeated layer as a link to its first
        self.warnings: list[str] = []

    def take(self, stream: ChunkStream, member: tarfile.TarInfo, compressor: Compressor) -> None:
        if member.issym() or member.islnk():
            self.links[member.name] = _member_link(member)
            return
        if not member.isreg() or member.issparse():  # `docker save` writes neither sparse files
            return  # nor devices: directories are all that is left
        handle = Member(stream, member.offset_data, member.size)
        head = handle.read(512)
        kind = sniff_format(head)
        if kind is None and member.size <= _SMALL_LIMIT:
            self.small[member.name] = head + handle.read()
            return
        blob = Blob(raw_bytes=member.size)
        self.blobs[member.name] = blob
        if kind == LayerFormat.TAR and member.size >= KNOWN_MIN_BYTES and self.sizes:
            known = self.sizes.lookup(member.name, member.size)
            if known is not None and known.raw_bytes == member.size:
                blob.known, blob.compressed_bytes = known, known.compressed_bytes
        read_blob(handle, head, kind, blob, compressor)
        if blob.error:
            self.warnings.append(f"{member.name}: {blob.error}")

    def resolve(self, base_layers: int) -> ArchiveAnalysis:
        config_name, layer_names = self._manifest()
        config = self._json(config_name)
        diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
        if len(diff_ids) != len(layer_names):
            self.warnings.append(
                f"the config lists {len(diff_ids)} layers, the manifest {len(layer_names)}"
            )
        if base_layers > len(layer_names):
            raise ValueError(f"base_layers={base_layers}, but the image has {len(layer_names)}")
        instructions = layer_instructions(config.get("history") or [])
        layers, counted, stale = [], set(), []
        compressed_total = 0
        for index, name in enumerate(layer_names):
            path = self._follow(name)
            blob = self.blobs.get(path)
            if blob is None:
                raise ValueError(f"the image archive has no layer {name}")
            diff_id = diff_ids[index] if index < len(diff_ids) else ""
            if path not in counted:
                counted.add(path)
                compressed_total += blob.compressed_bytes
                if (wrong := self._settle_size(path, blob, diff_id)) is not None:
                    stale.append(wrong)
            layers.append(
                LayerInfo(
                    index=index,
                    diff_id=diff_id,
                    instruction=instructions[index] if index < len(instructions) else None,
                    size_bytes=blob.size_bytes,
                    compressed_bytes=blob.compressed_bytes,
                    base=index < base_layers,
                    files=blob.files,
                    metadata=blob.metadata,
                )
            )
        if stale:
            raise StaleLayerSizes(stale)
        return ArchiveAnalysis(compressed_total, layers, config, self.warnings)

    def _settle_size(self, path: str, blob: Blob, diff_id: str) -> str | None:
        """Record a size deflated here under the diff_id its bytes hash to. A size known for
        this layer that was for other bytes is forgotten, and its diff_id returned."""
        if self.sizes is None or blob.digest is None:
            return None
        if blob.known is None:
            # Not when the config and the bytes disagree, nor when it is cheaper to deflate.
            if blob.digest == diff_id and blob.raw_bytes >= KNOWN_MIN_BYTES:
                self.sizes.record(path, KnownSize(diff_id, blob.raw_bytes, blob.compressed_bytes))
            return None
        if blob.digest == blob.known.diff_id == diff_id:
            return None
        self.sizes.forget(blob.known.diff_id)
        return blob.known.diff_id

    def _manifest(self) -> tuple[str, list[str]]:
        """The config's and the layers' member names, from manifest.json or else index.json."""
        if "manifest.json" in self.small:
            manifest = json.loads(self.small["manifest.json"])
            if not manifest:
                raise ValueError("the image archive's manifest.json is empty")
            if len(manifest) > 1:
                self.warnings.append("the archive holds several images: the first is analysed")
            return manifest[0]["Config"], list(manifest[0]["Layers"])
        if "index.json" not in self.small:
            raise ValueError("the image archive has no manifest.json")
        document = self._json("index.json")
        while "manifests" in document:  # an index, maybe of indexes: take the first image
            document = self._json(_blob_path(document["manifests"][0]["digest"]))
        layers = [_blob_path(layer["digest"]) for layer in document["layers"]]
        return _blob_path(document["config"]["digest"]), layers

    def _json(self, name: str) -> dict[str, Any]:
        data = self.small.get(self._follow(name))
        if data is None:
            raise ValueError(f"the image archive has no {name}")
        value: dict[str, Any] = json.loads(data)
        return value

    def _follow(self, name: str) -> str:
        for _ in range(40):  # as the kernel's symlink limit: a cycle is an error, not a hang
            if name not in self.links:
                return name
            name = self.links[name]
        raise ValueError(f"the image archive's links loop at {name}")


def _member_link(member: tarfile.TarInfo) -> str:
    if member.islnk():
        return member.linkname
    return posixpath.normpath(posixpath.join(posixpath.dirname(member.name), member.linkname))


def _blob_path(digest: str) -> str:
    algorithm, _, hexdigest = digest.partition(":")
    return f"blobs/{algorithm}/{hexdigest}"
