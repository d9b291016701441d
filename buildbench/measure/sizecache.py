"""Compressed layer sizes kept between reads of images, by content.

A layer's estimated registry size depends only on its bytes and on the estimator, so it is kept
by diff_id (the SHA-256 of those bytes) in `~/.cache/buildbench/layer-sizes/<estimator>/` (or
under XDG_CACHE_HOME): a base image's layers, deflated once in an earlier cell or run, are then
only hashed. While the archive streams, before its manifest says which layer a member is, a
layer is recognised by its member name, which the engine derives from content too (20.10's
legacy layer directories from the chain of diff_ids below them, OCI blobs from their digest);
the SHA-256 of what streamed then decides (archive/layout.py). An entry that cannot be read,
parsed or believed is a miss; one that cannot be written is not kept.

A rebuilt image's layers are new (their headers carry new times), but its big files are not:
each big file's block's size is kept by the block's SHA-256, a line `<sha256> <raw> <deflated>`
appended to `blocks.txt` (one write, whole: runs beside each other append, never interleave
within a line), so only the rest of such a layer is deflated again.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from collections.abc import Iterable
from pathlib import Path

from buildbench.measure.archive import ESTIMATOR, KnownSize

_DIFF_ID = re.compile(r"^sha256:[0-9a-f]{64}$")
_BLOCK_LINE = re.compile(r"^([0-9a-f]{64}) ([0-9]+) ([0-9]+)$")
_BLOCKS = "blocks.txt"
_MEMBERS_KEPT = 8  # names a layer was streamed under; more are new images' last layers
# Deflate never shrinks data by more than ~1032:1, and grows it by 5 bytes per 64 KiB stored
# block, plus framing: a size outside these bounds was not computed from the layer.
_MAX_RATIO = 1100
_SLACK_BYTES = 1024


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "buildbench" / "layer-sizes"


def plausible(raw: int, compressed: int) -> bool:
    return raw > 0 and raw // _MAX_RATIO <= compressed <= raw + raw // 8192 + _SLACK_BYTES


def _read_blocks(path: Path) -> dict[str, tuple[int, int]]:
    """Known blocks by SHA-256: (raw, deflated) bytes. A line that cannot be parsed or believed
    (a run killed mid-write, an edit) is skipped."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return {}
    blocks = {}
    for line in text.splitlines():
        if (match := _BLOCK_LINE.match(line)) is not None:
            raw, compressed = int(match[2]), int(match[3])
            if plausible(raw, compressed):
                blocks[match[1]] = (raw, compressed)
    return blocks


class DiskLayerSizes:
    """The known sizes of one image's layers (`diff_ids`), and where this read's go."""

    def __init__(self, diff_ids: Iterable[str], root: Path | None = None) -> None:
        self._folder = (root or cache_root()) / ESTIMATOR
        self._blocks: dict[str, tuple[int, int]] | None = None
        self._blocks_lock = threading.Lock()
        self._members: dict[str, list[str]] = {}
        self._by_member: dict[str, KnownSize] = {}
        for diff_id in set(diff_ids):
            found = self._load(diff_id)
            if found is not None:
                size, members = found
                self._members[diff_id] = members
                self._by_member.update(dict.fromkeys(members, size))

    def lookup(self, member: str, raw_bytes: int) -> KnownSize | None:
        size = self._by_member.get(member)
        return size if size is not None and size.raw_bytes == raw_bytes else None

    def record(self, member: str, size: KnownSize) -> None:
        path = self._path(size.diff_id)
        if path is None or not plausible(size.raw_bytes, size.compressed_bytes):
            return
        members = [m for m in self._members.get(size.diff_id, []) if m != member]
        members = [member, *members][:_MEMBERS_KEPT]
        document = {
            "diff_id": size.diff_id,
            "raw_bytes": size.raw_bytes,
            "compressed_bytes": size.compressed_bytes,
            "members": members,
        }
        # Written whole, then renamed: a reader, or a run beside this one, sees an old entry
        # or the new one, never half of one.
        temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        try:
            self._folder.mkdir(parents=True, exist_ok=True)
            temporary.write_text(json.dumps(document))
            os.replace(temporary, path)
        except OSError:  # a cache that cannot be written costs a deflate next time, no more
            with contextlib.suppress(OSError):
                temporary.unlink(missing_ok=True)
            return
        self._members[size.diff_id] = members
        self._by_member[member] = size

    def forget(self, diff_id: str) -> None:
        for member in self._members.pop(diff_id, []):
            self._by_member.pop(member, None)
        if (path := self._path(diff_id)) is not None:
            with contextlib.suppress(OSError):  # forgotten here all the same
                path.unlink(missing_ok=True)

    def block_size(self, digest: str, raw_bytes: int) -> int | None:
        with self._blocks_lock:  # read once, by the first of the sizer's threads to ask
            if self._blocks is None:
                self._blocks = _read_blocks(self._folder / _BLOCKS)
            blocks = self._blocks
        known = blocks.get(digest)
        return known[1] if known is not None and known[0] == raw_bytes else None

    def record_block(self, digest: str, raw_bytes: int, compressed_bytes: int) -> None:
        line = f"{digest} {raw_bytes} {compressed_bytes}\n"
        if not _BLOCK_LINE.match(line[:-1]) or not plausible(raw_bytes, compressed_bytes):
            return
        try:
            self._folder.mkdir(parents=True, exist_ok=True)
            with (self._folder / _BLOCKS).open("a") as kept:
                kept.write(line)
        except OSError:  # not kept: a deflate next time, no more
            return
        if self._blocks is not None:
            self._blocks[digest] = (raw_bytes, compressed_bytes)

    def _path(self, diff_id: str) -> Path | None:
        if not _DIFF_ID.match(diff_id):
            return None  # not a digest: nothing to key an entry by
        return self._folder / f"{diff_id.replace(':', '-')}.json"

    def _load(self, diff_id: str) -> tuple[KnownSize, list[str]] | None:
        path = self._path(diff_id)
        if path is None:
            return None
        try:
            document = json.loads(path.read_text())
            size = KnownSize(
                str(document["diff_id"]),
                int(document["raw_bytes"]),
                int(document["compressed_bytes"]),
            )
            members = [str(m) for m in document["members"]]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if size.diff_id != diff_id or not plausible(size.raw_bytes, size.compressed_bytes):
            return None
        return size, members
