"""Measuring a built image: sizes as the engine and a registry see them (one pass over
`docker save`), what is in it, and the versions it carries."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from zlib_ng import zlib_ng

from buildbench.engine.api import ContainerOutcome, ContainerSpec, ImageInfo
from buildbench.measure.archive import KnownSize
from buildbench.measure.image import PROBE_TIMEOUT, measure_image, probe_versions
from buildbench.measure.sizecache import DiskLayerSizes
from tests.fakes import FakeEngine, docker_save, fake_layer, layer_tar

IMAGE = "sha256:" + "1" * 64
BASE = "sha256:" + "b" * 64
LAYER = b"".join(i.to_bytes(4, "little") for i in range(300_000))  # 1.2 MB, compressible
BIG = layer_tar({"usr/lib/big.so": LAYER})
SMALL = layer_tar({"etc/hostname": LAYER[:1000]})


@pytest.fixture(autouse=True)
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Known layer sizes go to a folder of the test's, never the user's cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path


def _engine(archive: bytes | None = None, layers: int = 3) -> tuple[FakeEngine, ImageInfo]:
    """An engine with a 1-layer base (50 B) and a built image of `layers` layers on it (300 B)."""
    engine = FakeEngine()
    base = engine.add_image(BASE, size=50, tags=("base:1",))
    engine.add_image(IMAGE, size=300, tags=("buildbench/onnx:cpu-r",), layers=layers)
    if archive is not None:
        engine.archives[IMAGE] = archive
    return engine, base


def _gzipped(*layers: bytes) -> int:
    """zlib-ng level 6 as gzip (18 bytes of framing): Go's gzip, which `docker push` uses, is
    within 0.01% of it on LAYER; zlib's own level 6 is 42% smaller (3-byte matches, not 4)."""
    return sum(len(zlib_ng.compress(data, 6, -15)) + 18 for data in layers)


# big.so is deflated on its own (archive/sizing.py): 0.07% over one stream, on these counters.
CUT = 600


def test_sizes_layers_versions_and_contents_in_one_measurement() -> None:
    engine, base = _engine()
    read: list[tuple[int, int]] = []
    measured = measure_image(
        engine, IMAGE, base=base, framework="onnx", on_read=lambda d, t: read.append((d, t))
    )
    image = measured.image
    assert (image.size_bytes, image.layers, image.bytes_over_base) == (300, 3, 250)
    assert image.base_image_id == BASE
    expected = _gzipped(*(fake_layer(f"layer{i}") for i in range(3)))
    assert abs((image.compressed_size_bytes or 0) - expected) <= 3 * 64
    assert image.compressed_size_source == "estimate"
    assert (image.python_version, image.framework_version) == ("3.11.2", "9.9")
    assert measured.warnings == ()
    # The base's layer is the base's: only the two layers above it are attributed.
    assert measured.contents is not None
    assert [layer.index for layer in measured.contents.attribution.layers] == [1, 2]
    assert measured.contents.attribution.bytes_over_base == 250
    assert read and read[-1][1] == 300  # progress: bytes read, of the image's size
    assert read[0] == (0, 300)  # the read's phase starts with the request, not the first bytes


def test_the_version_probe_runs_locked_down_and_asks_for_the_framework() -> None:
    engine, base = _engine()
    measure_image(engine, IMAGE, base=base, framework="pytorch")
    ((image, spec),) = engine.runs
    assert image == IMAGE
    assert spec.command[:2] == ["python", "-c"] and spec.command[-1] == "torch"
    assert spec.network is False and spec.read_only is True
    assert spec == ContainerSpec(command=spec.command, timeout_seconds=PROBE_TIMEOUT)  # defaults


def test_the_version_probe_runs_while_the_archive_streams() -> None:
    """The probe is a container start: it waits on the engine beside the read, not after it."""
    engine, base = _engine()
    streaming = threading.Event()
    archive, run = engine.image_archive, engine.run

    def image_archive(ref: str) -> Iterator[bytes]:
        streaming.set()
        yield from archive(ref)

    def probe(image: str, spec: ContainerSpec, on_stderr: Any = None) -> ContainerOutcome:
        assert streaming.wait(10), "the probe ran before the read began"
        return run(image, spec, on_stderr)

    engine.image_archive, engine.run = image_archive, probe  # type: ignore[method-assign]
    measured = measure_image(engine, IMAGE, base=base, framework="onnx")
    assert measured.image.framework_version == "9.9" and measured.image.compressed_size_bytes


def test_an_image_of_no_known_framework_reports_only_python() -> None:
    engine = FakeEngine(
        run_result=lambda image, spec: ContainerOutcome(0, '{"python": "3.12.1"}\n', "")
    )
    engine.add_image(IMAGE)
    assert probe_versions(engine, IMAGE, None) == {"python": "3.12.1"}
    assert engine.runs[0][1].command[-1] != "torch"
    assert len(engine.runs[0][1].command) == 3  # python -c PROGRAM, no module to import


def test_a_failed_probe_and_a_framework_that_does_not_import_are_warnings() -> None:
    engine, base = _engine()
    engine.run_result = lambda image, spec: ContainerOutcome(127, "", "exec: python: not found")
    measured = measure_image(engine, IMAGE, base=base, framework="onnx")
    assert measured.warnings == ("version probe failed: exec: python: not found",)
    assert measured.image.python_version is None
    broken = {"python": "3.11.2", "framework_error": "ImportError: libcudnn.so.9"}
    engine.run_result = lambda image, spec: ContainerOutcome(0, json.dumps(broken) + "\n", "")
    measured = measure_image(engine, IMAGE, base=base, framework="onnx")
    assert measured.warnings == ("framework does not import: ImportError: libcudnn.so.9",)
    assert measured.image.framework_version is None


def test_without_reading_the_image_there_is_no_compressed_size_and_no_contents() -> None:
    engine, base = _engine()
    engine.image_archive = None  # type: ignore[assignment,method-assign]  # never called
    measured = measure_image(engine, IMAGE, base=base, framework="onnx", read_image=False)
    assert measured.image.compressed_size_bytes is None
    assert measured.image.compressed_size_source is None
    assert measured.contents is None
    assert measured.image.bytes_over_base == 250


def test_without_a_base_the_image_is_sized_but_not_attributed() -> None:
    engine, _ = _engine()
    measured = measure_image(engine, IMAGE, base=None, framework="onnx")
    assert measured.image.bytes_over_base is None and measured.image.base_image_id is None
    assert measured.image.compressed_size_bytes is not None
    assert measured.contents is None


def test_a_base_that_is_not_the_images_first_layers_shares_none() -> None:
    engine, _ = _engine()
    other = ImageInfo("sha256:" + "c" * 64, 40, ("elsewhere",))
    measured = measure_image(engine, IMAGE, base=other, framework="onnx")
    assert measured.contents is not None
    assert [layer.index for layer in measured.contents.attribution.layers] == [0, 1, 2]


def test_an_image_gone_before_it_is_measured_is_an_error() -> None:
    with pytest.raises(LookupError, match="vanished"):
        measure_image(FakeEngine(), IMAGE, base=None, framework=None)


# The compressed size: each layer as a registry stores it (gzip'd), a layer stored once.


def test_legacy_layout_counts_each_layer_gzipped() -> None:
    engine, _ = _engine(docker_save([BIG, SMALL]), layers=2)
    measured = measure_image(engine, IMAGE, base=None, framework=None)
    assert abs((measured.image.compressed_size_bytes or 0) - _gzipped(BIG, SMALL)) <= CUT


def test_oci_layout_and_a_layer_listed_twice_counts_once() -> None:
    engine, _ = _engine(docker_save([BIG, BIG], layout="oci"), layers=2)
    measured = measure_image(engine, IMAGE, base=None, framework=None)
    assert abs((measured.image.compressed_size_bytes or 0) - _gzipped(BIG)) <= CUT


def test_a_repeated_layer_saved_as_a_link_counts_once() -> None:
    engine, _ = _engine(docker_save([BIG, BIG], link_repeats=True), layers=2)
    measured = measure_image(engine, IMAGE, base=None, framework=None)
    assert abs((measured.image.compressed_size_bytes or 0) - _gzipped(BIG)) <= CUT


# Known sizes: kept by diff_id in the user's cache; one that is wrong is found out, not used.


def _diff_id(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def _image_of(engine: FakeEngine, *layers: bytes) -> None:
    engine.add_image(IMAGE, size=300, layers=len(layers))
    info = engine.images[IMAGE]
    engine.images[IMAGE] = ImageInfo(
        info.id, info.size_bytes, tuple(_diff_id(d) for d in layers), info.tags, {}, ""
    )
    engine.archives[IMAGE] = docker_save(list(layers))


HUGE = layer_tar({"usr/lib/huge.so": LAYER * 2})  # 2.4 MB: worth knowing


def test_a_second_read_of_a_layer_takes_its_size_from_the_cache(cache_home: Path) -> None:
    engine = FakeEngine()
    _image_of(engine, HUGE, SMALL)
    first = measure_image(engine, IMAGE, base=None, framework=None)
    (entry,) = cache_home.rglob("*.json")
    assert json.loads(entry.read_text())["diff_id"] == _diff_id(HUGE)
    second = measure_image(engine, IMAGE, base=None, framework=None)
    assert second.image.compressed_size_bytes == first.image.compressed_size_bytes


class Tampered(DiskLayerSizes):
    """A cache that knows a wrong size for every member it is asked about."""

    def __init__(self, root: Path) -> None:
        super().__init__([], root)
        self.forgotten: list[str] = []
        self.asked = 0

    def lookup(self, member: str, raw_bytes: int) -> KnownSize | None:
        self.asked += 1
        if self.forgotten:
            return None
        return KnownSize("sha256:" + "9" * 64, raw_bytes, 12345)

    def forget(self, diff_id: str) -> None:
        self.forgotten.append(diff_id)


def test_a_known_size_for_other_bytes_is_read_again_not_reported(cache_home: Path) -> None:
    engine = FakeEngine()
    _image_of(engine, HUGE, SMALL)
    honest = measure_image(engine, IMAGE, base=None, framework=None, sizes=DiskLayerSizes([]))
    tampered = Tampered(cache_home)
    measured = measure_image(engine, IMAGE, base=None, framework=None, sizes=tampered)
    assert measured.image.compressed_size_bytes == honest.image.compressed_size_bytes
    assert tampered.forgotten == ["sha256:" + "9" * 64]
    assert tampered.asked == 2  # HUGE, once per pass: SMALL is deflated, never looked up
