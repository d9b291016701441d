"""An image on the engine read whole, for `buildbench diff`: every layer's files stacked, and
whose they are (Python distributions, Debian packages), from one pass over `docker save`.

The same pass and attribution as measuring a built cell (image.py, contents/), with no base
image: the parts then add up to the whole image, and a changed base shows as the packages and
files it changed. No container is started; the engine streams the image, so a remote engine
works as a local one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from buildbench.analyze.sizediff import Inventory, Owned
from buildbench.engine.api import Engine, ImageInfo
from buildbench.errors import UsageError
from buildbench.measure.archive import ArchiveAnalysis
from buildbench.measure.contents.distributions import distribution_shares
from buildbench.measure.contents.dpkg import package_shares
from buildbench.measure.contents.filesystem import Filesystem, final_metadata
from buildbench.measure.contents.findings import waste_findings
from buildbench.measure.image import read_archive
from buildbench.measure.sizecache import DiskLayerSizes


def find_image(engine: Engine, ref: str) -> ImageInfo:
    """The image `ref` names on the engine; a UsageError when the engine has none."""
    info = engine.image(ref)
    if info is None:
        raise UsageError(
            f"the engine has no image {ref!r}",
            tip="give an image the engine holds (`docker images`), or two results files",
        )
    return info


def read_inventory(
    engine: Engine, ref: str, info: ImageInfo, on_read: Callable[[int], None] = lambda done: None
) -> Inventory:
    """The image `ref` (found as `info`) read once from the engine."""
    analysis = read_archive(
        engine, info.id, base_layers=0, on_progress=on_read, sizes=DiskLayerSizes(info.layers)
    )
    return inventory(ref, info.size_bytes, analysis)


def inventory(label: str, size_bytes: int, analysis: ArchiveAnalysis) -> Inventory:
    """Distributions, packages, layers and files of an image from one `ArchiveAnalysis`."""
    fs = Filesystem(analysis.layers)
    metadata = final_metadata(analysis.layers, fs)
    claimed: set[str] = set()
    distributions = distribution_shares(fs, metadata, 0, claimed)
    packages = package_shares(fs, metadata, {}, 0, claimed)
    owned = sum(d.bytes for d in distributions) + sum(p.bytes for p in packages)
    findings: Counter[str] = Counter()
    for finding in waste_findings(fs, metadata, analysis):
        findings[str(finding.kind)] += finding.bytes
    return Inventory(
        label=label,
        size_bytes=size_bytes,
        scope_bytes=size_bytes,
        distributions=[Owned(d.name, d.bytes, d.version, d.layer) for d in distributions],
        packages=[Owned(p.name, p.bytes, p.version, p.layer) for p in packages],
        other_bytes=size_bytes - owned,
        layers=[
            Owned(layer.instruction or "", layer.size_bytes, layer=layer.index)
            for layer in analysis.layers
        ],
        compressed_bytes=analysis.compressed_size_bytes,
        files=[
            Owned("/" + path, placed.size, layer=placed.layer)
            for path, placed in fs.files.items()
            if placed.size
        ],
        findings=dict(findings),
    )
