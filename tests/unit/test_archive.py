"""`analyse_archive`: one pass over synthetic `docker save` archives, legacy and OCI layouts.

The helpers here build layer tars and whole archives in memory; test_contents uses them too.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import itertools
import json
import random
import tarfile
from collections.abc import Iterator, Sequence
from functools import cache
from pathlib import Path
from typing import Any, Literal

import pytest
from zlib_ng import zlib_ng

from buildbench.measure.archive import (
    ArchiveAnalysis,
    EntryKind,
    FileEntry,
    KnownSize,
    StaleLayerSizes,
    analyse_archive,
)
from buildbench.measure.sizecache import DiskLayerSizes

Entry = tuple[tarfile.TarInfo, bytes | None]
MiB = 1024 * 1024


# ---------------------------------------------------------------------------------------------
# Building archives


def file(path: str, data: bytes | int) -> Entry:
    """A regular file; an int makes that many bytes of incompressible data."""
    content = random.Random(path).randbytes(data) if isinstance(data, int) else data
    info = tarfile.TarInfo(path)
    info.size = len(content)
    return info, content


def directory(path: str) -> Entry:
    info = tarfile.TarInfo(path)
    info.type = tarfile.DIRTYPE
    return info, None


def symlink(path: str, target: str) -> Entry:
    info = tarfile.TarInfo(path)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info, None


def hardlink(path: str, target: str) -> Entry:
    info = tarfile.TarInfo(path)
    info.type, info.linkname = tarfile.LNKTYPE, target
    return info, None


def whiteout(path: str) -> Entry:
    head, _, name = path.rpartition("/")
    return file(f"{head}/.wh.{name}" if head else f".wh.{name}", b"")


def opaque(path: str) -> Entry:
    return file(f"{path}/.wh..wh..opq", b"")


def layer(*entries: Entry) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def run(command: str) -> dict[str, Any]:
    """A history entry as the classic builder writes it for a RUN."""
    return {"created_by": f"/bin/sh -c {command}"}


def nop(instruction: str, *, empty: bool = True) -> dict[str, Any]:
    entry: dict[str, Any] = {"created_by": f"/bin/sh -c #(nop)  {instruction}"}
    if empty:
        entry["empty_layer"] = True
    return entry


def config(
    layers: Sequence[bytes],
    history: list[dict[str, Any]],
    env: list[str],
    diff_ids: list[str] | None = None,
) -> bytes:
    if diff_ids is None:
        diff_ids = [f"sha256:{hashlib.sha256(data).hexdigest()}" for data in layers]
    document = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": env},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    }
    return json.dumps(document).encode()


def save(
    layers: Sequence[bytes],
    *,
    history: list[dict[str, Any]] | None = None,
    env: list[str] | None = None,
    layout: Literal["legacy", "oci", "oci-index-only"] = "legacy",
    gzip_layers: bool = False,
    manifest_first: bool = False,
    diff_ids: list[str] | None = None,
) -> bytes:
    """A `docker save` archive. Legacy: a layer listed twice is saved as a symlink to its first
    copy, as engine 20.10 does. OCI: blobs by digest (gzip'd with `gzip_layers`)."""
    steps = history if history is not None else [run(f"step {i}") for i in range(len(layers))]
    cfg = config(layers, steps, env or ["PATH=/usr/bin"], diff_ids)
    manifest: list[dict[str, Any]] | None
    if layout == "legacy":
        members, manifest = _legacy(layers, cfg)
    else:
        members, manifest = _oci(layers, cfg, gzip_layers, with_manifest=layout == "oci")
    if manifest is not None:
        item = ("manifest.json", json.dumps(manifest).encode())
        members = [item, *members] if manifest_first else [*members, item]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if isinstance(data, str):
                info.type, info.linkname = tarfile.SYMTYPE, data
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


Member = tuple[str, bytes | str]  # bytes: a file; str: a symlink's target


def _legacy(layers: Sequence[bytes], cfg: bytes) -> tuple[list[Member], list[dict[str, Any]]]:
    config_name = f"{hashlib.sha256(cfg).hexdigest()}.json"
    members: list[Member] = [(config_name, cfg)]
    names: list[str] = []
    first_copy: dict[bytes, str] = {}
    for index, data in enumerate(layers):
        layer_id = hashlib.sha256(f"{index}".encode() + data).hexdigest()
        name = f"{layer_id}/layer.tar"
        members += [(f"{layer_id}/VERSION", b"1.0"), (f"{layer_id}/json", b"{}")]
        if data in first_copy:
            members.append((name, f"../{first_copy[data]}"))
        else:
            first_copy[data] = name
            members.append((name, data))
        names.append(name)
    return members, [{"Config": config_name, "RepoTags": ["t:1"], "Layers": names}]


def _oci(
    layers: Sequence[bytes], cfg: bytes, gzip_layers: bool, *, with_manifest: bool
) -> tuple[list[Member], list[dict[str, Any]] | None]:
    members: list[Member] = []
    descriptors: list[dict[str, Any]] = []
    digests: list[str] = []
    for data in layers:
        blob = gzip.compress(data, 6, mtime=0) if gzip_layers else data
        digest = hashlib.sha256(blob).hexdigest()
        if (f"blobs/sha256/{digest}", blob) not in members:
            members.append((f"blobs/sha256/{digest}", blob))
        descriptors.append({"digest": f"sha256:{digest}", "size": len(blob)})
        digests.append(digest)
    config_digest = hashlib.sha256(cfg).hexdigest()
    image_manifest = json.dumps(
        {"config": {"digest": f"sha256:{config_digest}"}, "layers": descriptors}
    ).encode()
    manifest_digest = hashlib.sha256(image_manifest).hexdigest()
    index = {"manifests": [{"digest": f"sha256:{manifest_digest}"}]}
    members += [
        (f"blobs/sha256/{config_digest}", cfg),
        (f"blobs/sha256/{manifest_digest}", image_manifest),
        ("oci-layout", b'{"imageLayoutVersion": "1.0.0"}'),
        ("index.json", json.dumps(index).encode()),
    ]
    names = [f"blobs/sha256/{digest}" for digest in digests]
    manifest = [{"Config": f"blobs/sha256/{config_digest}", "Layers": names}]
    return members, manifest if with_manifest else None


def chunks(data: bytes, size: int = 65_537) -> Iterator[bytes]:
    return (data[i : i + size] for i in range(0, len(data), size))


def analyse(
    data: bytes, base_layers: int = 0, sizes: DiskLayerSizes | None = None
) -> ArchiveAnalysis:
    return analyse_archive(chunks(data), base_layers=base_layers, sizes=sizes)


# ---------------------------------------------------------------------------------------------
# The reference: what a registry would store, computed independently of the module


def segments(data: bytes) -> list[bytes]:
    """A layer's bytes as the sizer streams them: each file of 64 KiB or more on its own, then
    the rest (headers, small files) as one."""
    cuts = [0]
    with contextlib.suppress(tarfile.TarError), tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar:
            if member.isreg() and member.size >= 64 * 1024:
                cuts += [member.offset_data, member.offset_data + member.size]
    parts = [data[a:b] for a, b in itertools.pairwise([*cuts, len(data)])]
    return [part for part in parts[1::2] if part] + [b"".join(parts[0::2])]


@cache
def gzip_size(data: bytes) -> int:
    """zlib-ng level 6 in independent 8 MiB deflate blocks, from the start of each segment (an
    empty one has none), plus 18 bytes of gzip framing."""
    size = 18
    for segment in segments(data):
        for start in range(0, len(segment), 8 * MiB):
            deflate = zlib_ng.compressobj(6, zlib_ng.DEFLATED, -15)
            size += len(deflate.compress(segment[start : start + 8 * MiB])) + len(deflate.flush())
    return size


def compressible(size: int) -> bytes:
    words = [b"torch", b"cuda", b"onnx", b"runtime", b"layer", b"\x00" * 7, b"\n"]
    rng = random.Random(size)
    return b"".join(rng.choice(words) for _ in range(size // 4))[:size]


# Over 8 MiB: two blocks, the second partial.
BIG = layer(file("usr/lib/libbig.so", compressible(9 * MiB)), file("usr/lib/noise", MiB))
MID = layer(file("usr/lib/libmid.so", compressible(MiB + 1000)))  # just worth a look-up
SMALL = layer(directory("etc"), file("etc/hostname", b"buildbench\n"), symlink("etc/x", "hostname"))


# ---------------------------------------------------------------------------------------------
# Sizes


@pytest.mark.parametrize("layout", ["legacy", "oci", "oci-index-only"])
def test_compressed_size_is_the_sum_of_each_layer_gzipped(layout):
    analysis = analyse(save([BIG, SMALL], layout=layout))
    assert [lay.compressed_bytes for lay in analysis.layers] == [gzip_size(BIG), gzip_size(SMALL)]
    assert analysis.compressed_size_bytes == gzip_size(BIG) + gzip_size(SMALL)
    # Independent 8 MiB blocks cost little against one gzip stream over the whole layer.
    assert abs(analysis.compressed_size_bytes - len(gzip.compress(BIG, 6))) < 0.01 * len(BIG)


def test_members_in_any_order_give_the_same_analysis():
    last = analyse(save([SMALL, BIG]))
    first = analyse(save([SMALL, BIG], manifest_first=True))
    assert first == last


def test_a_layer_saved_twice_as_a_link_counts_once_in_the_total():
    analysis = analyse(save([SMALL, BIG, SMALL]))
    assert [lay.compressed_bytes for lay in analysis.layers] == [
        gzip_size(SMALL),
        gzip_size(BIG),
        gzip_size(SMALL),
    ]
    assert analysis.compressed_size_bytes == gzip_size(SMALL) + gzip_size(BIG)
    assert analysis.layers[2].files == analysis.layers[0].files


def test_gzipped_oci_layers_count_as_stored_and_are_still_indexed():
    analysis = analyse(save([SMALL], layout="oci", gzip_layers=True))
    assert analysis.compressed_size_bytes == len(gzip.compress(SMALL, 6, mtime=0))
    assert [e.path for e in analysis.layers[0].files] == ["etc", "etc/hostname", "etc/x"]


def test_layer_size_counts_files_and_symlink_targets_and_hard_links_once():
    data = layer(
        directory("usr"),
        file("usr/a", 1000),
        hardlink("usr/a-again", "usr/a"),
        symlink("usr/b", "a"),
        symlink("usr/c", "/usr/lib/x86_64-linux-gnu/libz.so.1"),
    )
    (info,) = analyse(save([data])).layers
    assert info.size_bytes == 1000 + len("a") + len("/usr/lib/x86_64-linux-gnu/libz.so.1")


def test_an_empty_layer_is_a_layer_of_no_files():
    empty = layer()
    analysis = analyse(save([SMALL, empty]))
    assert analysis.layers[1].files == []
    assert analysis.layers[1].size_bytes == 0
    assert analysis.layers[1].compressed_bytes == gzip_size(empty)


# ---------------------------------------------------------------------------------------------
# The file index and the metadata kept


def test_the_index_has_every_entry_whiteouts_and_opaque_directories_included():
    data = layer(
        directory("./app"),
        file("./app/main.py", b"print(1)\n"),
        symlink("app/link", "main.py"),
        hardlink("app/main2.py", "app/main.py"),
        whiteout("app/old.py"),
        opaque("var/cache"),
        whiteout("gone"),
    )
    (info,) = analyse(save([data])).layers
    assert info.files == [
        FileEntry("app", EntryKind.DIR),
        FileEntry("app/main.py", EntryKind.FILE, 9),
        FileEntry("app/link", EntryKind.SYMLINK, 7, "main.py"),
        FileEntry("app/main2.py", EntryKind.HARDLINK, 0, "app/main.py"),
        FileEntry("app/old.py", EntryKind.WHITEOUT),
        FileEntry("var/cache", EntryKind.OPAQUE),
        FileEntry("gone", EntryKind.WHITEOUT),
    ]


def test_package_metadata_is_kept_and_other_files_are_not():
    site = "usr/local/lib/python3.11/site-packages"
    metadata = b"Metadata-Version: 2.1\nName: Foo\nVersion: 1.2\nSummary: x\n\nlong text\n"
    data = layer(
        file(f"{site}/foo-1.2.dist-info/RECORD", b"foo/__init__.py,,0\n"),
        file(f"{site}/foo-1.2.dist-info/METADATA", metadata),
        file(f"{site}/foo/__init__.py", b""),
        file("var/lib/dpkg/status", b"Package: gcc\nStatus: install ok installed\n"),
        file("var/lib/dpkg/info/gcc.list", b"/usr/bin/gcc\n"),
        file("var/lib/dpkg/info/gcc.md5sums", b"x"),
        file("var/lib/dpkg/status.d/base", b"Package: base\n"),
    )
    (info,) = analyse(save([data])).layers
    assert info.metadata == {
        f"{site}/foo-1.2.dist-info/RECORD": b"foo/__init__.py,,0\n",
        f"{site}/foo-1.2.dist-info/METADATA": b"Name: Foo\nVersion: 1.2\n",
        "var/lib/dpkg/status": b"Package: gcc\nStatus: install ok installed\n",
        "var/lib/dpkg/info/gcc.list": b"/usr/bin/gcc\n",
        "var/lib/dpkg/status.d/base": b"Package: base\n",
    }


# ---------------------------------------------------------------------------------------------
# The config


def test_layers_take_their_instruction_and_diff_id_from_the_config():
    history = [
        {"created_by": "", "comment": "Imported from -"},
        nop("ENV PYTHONDONTWRITEBYTECODE=1"),
        run("pip install torch"),
        {"created_by": "|2 A=1 B=2 /bin/sh -c make"},
        nop("COPY file:abc in /app ", empty=False),
        {"created_by": "RUN /bin/sh -c apt-get update # buildkit"},
        nop('CMD ["python"]'),
    ]
    layers = [layer(file(f"f{i}", b"x")) for i in range(5)]
    analysis = analyse(save(layers, history=history, env=["A=1", "B=x=y", "C"]), base_layers=1)
    assert [lay.instruction for lay in analysis.layers] == [
        "Imported from -",
        "RUN pip install torch",
        "RUN make",
        "COPY file:abc in /app",
        "RUN apt-get update",
    ]
    diff_ids = json.loads(config(layers, history, []))["rootfs"]["diff_ids"]
    assert [lay.diff_id for lay in analysis.layers] == diff_ids
    assert [lay.base for lay in analysis.layers] == [True, False, False, False, False]
    assert [lay.index for lay in analysis.layers] == [0, 1, 2, 3, 4]
    assert analysis.env == {"A": "1", "B": "x=y", "C": ""}
    assert analysis.config["config"]["Env"] == ["A=1", "B=x=y", "C"]


def test_more_base_layers_than_the_image_has_is_an_error():
    with pytest.raises(ValueError, match="base_layers"):
        analyse(save([SMALL]), base_layers=2)


def test_an_archive_without_a_manifest_is_an_error():
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("x/layer.tar")
        info.size = len(SMALL)
        tar.addfile(info, io.BytesIO(SMALL))
    with pytest.raises(ValueError, match=r"no manifest\.json"):
        analyse(buffer.getvalue())


# ---------------------------------------------------------------------------------------------
# Progress


def test_progress_rises_every_8_mib_and_ends_at_the_total():
    data = save([BIG, SMALL, layer(file("more", compressible(9 * MiB)))])
    seen: list[int] = []
    analyse_archive(chunks(data, MiB), base_layers=0, on_progress=seen.append)
    assert seen == sorted(set(seen))
    assert seen[-1] == len(data)
    assert len(seen) == len(data) // (8 * MiB) + 1
    assert all(later - earlier >= 8 * MiB for earlier, later in itertools.pairwise(seen[:-1]))


# ---------------------------------------------------------------------------------------------
# Sizes known from earlier reads


def diff_id(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


class Deflates:
    """Counts the blocks deflated, to tell a size read from the cache from one computed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from buildbench.measure.archive import sizing

        self.blocks = 0
        real = sizing.deflate_size

        def counting(block: bytes) -> int:
            self.blocks += 1
            return real(block)

        monkeypatch.setattr(sizing, "deflate_size", counting)


@pytest.mark.parametrize("layout", ["legacy", "oci"])
def test_a_known_size_gives_the_figure_a_deflate_gives_without_deflating(
    layout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    deflates = Deflates(monkeypatch)
    archive = save([BIG, SMALL], layout=layout)
    missed = analyse(archive, sizes=DiskLayerSizes([diff_id(BIG), diff_id(SMALL)], tmp_path))
    computed = deflates.blocks
    hit = analyse(archive, sizes=DiskLayerSizes([diff_id(BIG), diff_id(SMALL)], tmp_path))
    # BIG (its two files' three blocks and one of the rest) came from the cache; SMALL is
    # under the 1 MiB worth a look-up.
    assert (computed, deflates.blocks - computed) == (5, 1)
    assert hit == missed == analyse(archive)
    assert [lay.compressed_bytes for lay in hit.layers] == [gzip_size(BIG), gzip_size(SMALL)]


def test_a_base_layer_known_from_another_image_is_not_deflated_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    other = layer(file("app/model.onnx", compressible(2 * MiB)))
    analyse(save([BIG, SMALL]), sizes=DiskLayerSizes([diff_id(BIG)], tmp_path))
    deflates = Deflates(monkeypatch)
    # The same base layer under the same member name, below another image's layers.
    image = save([BIG, other])
    analysis = analyse(image, sizes=DiskLayerSizes([diff_id(BIG), diff_id(other)], tmp_path))
    assert deflates.blocks == 2  # `other`'s file and the rest of its layer: BIG was known
    assert analysis == analyse(image)


def test_a_wrong_known_size_is_found_out_and_forgotten(tmp_path: Path):
    archive = save([MID, SMALL])
    sizes = DiskLayerSizes([diff_id(MID)], tmp_path)
    analyse(archive, sizes=sizes)
    (entry,) = (tmp_path).rglob("*.json")
    document = json.loads(entry.read_text())
    # Another layer's size recorded under this member's name: the bytes do not hash to it.
    document["diff_id"] = "sha256:" + "0" * 64
    (entry.parent / "sha256-{}.json".format("0" * 64)).write_text(json.dumps(document))
    entry.unlink()
    tampered = DiskLayerSizes(["sha256:" + "0" * 64, diff_id(MID)], tmp_path)
    with pytest.raises(StaleLayerSizes, match="0000"):
        analyse(archive, sizes=tampered)
    assert not list(tmp_path.rglob("sha256-0000*.json"))
    # Forgotten: the next pass deflates, and gets the true figure.
    assert analyse(archive, sizes=tampered) == analyse(archive)


def test_an_entry_that_cannot_be_parsed_or_believed_is_a_miss(tmp_path: Path):
    archive = save([MID, SMALL])
    reference = analyse(archive, sizes=DiskLayerSizes([diff_id(MID)], tmp_path))
    (entry,) = tmp_path.rglob("*.json")
    good = json.loads(entry.read_text())
    for broken in (
        "not json",
        json.dumps({**good, "compressed_bytes": 1}),  # smaller than deflate can make it
        json.dumps({**good, "compressed_bytes": 2 * len(MID)}),  # bigger than stored
        json.dumps({**good, "diff_id": "sha256:" + "1" * 64}),  # another layer's entry
        json.dumps({k: v for k, v in good.items() if k != "raw_bytes"}),
    ):
        entry.write_text(broken)
        sizes = DiskLayerSizes([diff_id(MID)], tmp_path)
        assert sizes.lookup(good["members"][0], len(MID)) is None
        assert analyse(archive, sizes=sizes) == reference
    assert json.loads(entry.read_text()) == good  # and the miss wrote the entry afresh


def test_a_known_size_for_bytes_of_another_length_is_not_used(tmp_path: Path):
    sizes = DiskLayerSizes([diff_id(MID)], tmp_path)
    analyse(save([MID]), sizes=sizes)
    (member,) = json.loads(next(tmp_path.rglob("*.json")).read_text())["members"]
    assert sizes.lookup(member, len(MID) + 512) is None
    known = sizes.lookup(member, len(MID))
    assert known == KnownSize(diff_id(MID), len(MID), gzip_size(MID))


def test_nothing_is_recorded_for_bytes_that_are_not_the_configs_diff_id(tmp_path: Path):
    archive = save([MID], diff_ids=["sha256:" + "2" * 64])
    analyse(archive, sizes=DiskLayerSizes([diff_id(MID), "sha256:" + "2" * 64], tmp_path))
    assert not list(tmp_path.rglob("*.json"))


def test_a_cache_that_cannot_be_written_changes_no_figure(tmp_path: Path):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    archive = save([MID, SMALL])
    sizes = DiskLayerSizes([diff_id(MID)], blocked)
    assert analyse(archive, sizes=sizes) == analyse(archive)
    assert sizes.lookup(save_members(archive)[0], len(MID)) is None
    assert [p.name for p in tmp_path.iterdir()] == ["not-a-folder"]


def save_members(archive: bytes) -> list[str]:
    """The layer members of a `save` archive, by name."""
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return [m.name for m in tar if m.name.endswith("layer.tar")]


# ---------------------------------------------------------------------------------------------
# Big files' blocks, known by content


def rebuilt(mtime: int, before: int) -> bytes:
    """A layer as a rebuild makes it: new times and a small file of another length, then the
    same big files."""
    entries = [file("app/stamp", compressible(before)), file("usr/lib/libbig.so", BIG_FILE_DATA)]
    entries.append(file("usr/lib/libmid.so", compressible(MiB + 1000)))
    for info, _ in entries:
        info.mtime = mtime
    return layer(*entries)


BIG_FILE_DATA = compressible(9 * MiB + 5)


def test_a_rebuilt_layer_deflates_only_what_is_new(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    first, second = rebuilt(1, 2000), rebuilt(2, 30_000)
    analyse(save([first]), sizes=DiskLayerSizes([diff_id(first)], tmp_path))
    deflates = Deflates(monkeypatch)
    analysis = analyse(save([second]), sizes=DiskLayerSizes([diff_id(second)], tmp_path))
    assert deflates.blocks == 1  # the rest of the layer; libbig's two blocks and libmid's known
    assert analysis == analyse(save([second]))  # the figure a deflate of everything gives
    assert analysis.layers[0].compressed_bytes == gzip_size(second)


@pytest.mark.parametrize("chunk", [1000, 511, MiB, MiB + 3, 8 * MiB])
def test_a_big_file_is_cut_alike_however_the_bytes_arrive(chunk: int):
    # Its data begins exactly where the tee's first 1 MiB piece ends: the walk meets its
    # header before a byte of it is fed.
    small = [file(f"f{i}", 64512) for i in range(16)] + [file("g", 7168)]  # under 64 KiB each
    aligned = layer(*small, file("usr/lib/libbig.so", BIG_FILE_DATA))
    with tarfile.open(fileobj=io.BytesIO(aligned)) as tar:
        assert tar.getmember("usr/lib/libbig.so").offset_data % MiB == 0
    data = save([aligned, BIG])
    analysis = analyse_archive(chunks(data, chunk), base_layers=0)
    assert [lay.compressed_bytes for lay in analysis.layers] == [gzip_size(aligned), gzip_size(BIG)]


def test_a_known_block_size_that_cannot_be_parsed_or_believed_is_a_miss(tmp_path: Path):
    archive = save([MID])
    reference = analyse(archive, sizes=DiskLayerSizes([], tmp_path))
    (kept,) = tmp_path.rglob("blocks.txt")
    (good,) = kept.read_text().splitlines()  # libmid's one block
    digest, raw, _ = good.split()
    for broken in (
        f"{digest} {raw} 1",  # smaller than deflate can make it
        f"{digest} {raw} {10 * MiB}",  # bigger than stored
        f"{digest} {raw}",  # a run killed mid-line
        f"{digest[:-1]} {raw} 5",
        "not a line",
    ):
        kept.write_text(broken + "\n")
        assert analyse(archive, sizes=DiskLayerSizes([], tmp_path)) == reference
        assert kept.read_text().splitlines() == [broken, good]  # the miss kept the size again


def test_blocks_kept_twice_by_two_runs_at_once_are_known_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    archive = save([rebuilt(1, 2000)])
    first, second = DiskLayerSizes([], tmp_path), DiskLayerSizes([], tmp_path)
    assert second.block_size("0" * 64, MiB) is None  # it read blocks.txt before the first wrote
    analyse(archive, sizes=first)
    analyse(archive, sizes=second)
    lines = next(tmp_path.rglob("blocks.txt")).read_text().splitlines()
    assert (len(lines), len(set(lines))) == (6, 3)  # libbig's two blocks and libmid's, twice
    reference = analyse(archive)
    deflates = Deflates(monkeypatch)
    assert analyse(archive, sizes=DiskLayerSizes([], tmp_path)) == reference
    assert deflates.blocks == 1  # the rest of the layer: the big files' blocks are known
