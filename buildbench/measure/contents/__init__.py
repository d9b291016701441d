"""What an image holds over its base, and what it wastes, from one `ArchiveAnalysis`.

The layers are stacked as overlayfs stacks them (whiteouts, opaque directories, later layers
hiding earlier ones) into the final filesystem. Then:

- attribution: the bytes over the base image, split into Python distributions (their RECORD
  files), Debian packages (dpkg's file lists) and the rest; the split sums exactly to the
  engine's figure, whatever is left over being "other";
- findings: bytes an image could shed, each with the instruction that wrote them and a fix.

Every file counts once: a file two owners list goes to the first, distributions before packages.
One module per job: `filesystem` (the layers stacked), `distributions` and `dpkg` (whose the
bytes are), `findings` (what could go).
"""

from __future__ import annotations

from buildbench.measure.archive import ArchiveAnalysis
from buildbench.measure.contents.distributions import distribution_shares
from buildbench.measure.contents.dpkg import base_packages, package_shares
from buildbench.measure.contents.filesystem import Filesystem, final_metadata
from buildbench.measure.contents.findings import waste_findings
from buildbench.record import Attribution, ImageContents, LayerShare


def image_contents(analysis: ArchiveAnalysis, *, bytes_over_base: int) -> ImageContents:
    """Attribution and findings; `bytes_over_base`: the engine's image Size - base Size."""
    fs = Filesystem(analysis.layers)
    base_layers = analysis.base_layers
    metadata = final_metadata(analysis.layers, fs)
    claimed: set[str] = set()
    distributions = distribution_shares(fs, metadata, base_layers, claimed)
    packages = package_shares(fs, metadata, base_packages(analysis.layers), base_layers, claimed)
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
    return ImageContents(
        attribution=attribution,
        findings=waste_findings(fs, metadata, analysis),
        wasted_bytes=sum(lost.size for lost in fs.lost),
        efficiency=fs.efficiency,
    )
