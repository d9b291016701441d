import gzip
import io
import json
import tarfile

from buildbench.measure import compressed_size


def _archive(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _chunks(data: bytes, size: int = 777):
    return (data[i : i + size] for i in range(0, len(data), size))


LAYER = b"".join(i.to_bytes(4, "little") for i in range(300_000))  # 1.2 MB, compressible


def test_legacy_layout_counts_each_layer_gzipped():
    manifest = json.dumps([{"Layers": ["a/layer.tar", "b/layer.tar"]}]).encode()
    data = _archive(
        {
            "a/layer.tar": LAYER,
            "b/layer.tar": LAYER[:1000],
            "cfg.json": b"{}" * 4000,
            "manifest.json": manifest,
        }
    )
    expected = len(gzip.compress(LAYER, 6)) + len(gzip.compress(LAYER[:1000], 6))
    assert abs(compressed_size(_chunks(data)) - expected) <= 64


def test_oci_layout_and_a_layer_listed_twice_counts_once():
    manifest = json.dumps([{"Layers": ["blobs/sha256/aa", "blobs/sha256/aa"]}]).encode()
    data = _archive({"manifest.json": manifest, "blobs/sha256/aa": LAYER})
    assert abs(compressed_size(_chunks(data)) - len(gzip.compress(LAYER, 6))) <= 32


def test_a_repeated_layer_saved_as_a_link_counts_once():
    buffer = io.BytesIO()
    manifest = json.dumps([{"Layers": ["a/layer.tar", "b/layer.tar"]}]).encode()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in (("a/layer.tar", LAYER), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("b/layer.tar")
        link.type, link.linkname = tarfile.SYMTYPE, "../a/layer.tar"
        tar.addfile(link)
    assert abs(compressed_size(_chunks(buffer.getvalue())) - len(gzip.compress(LAYER, 6))) <= 32
