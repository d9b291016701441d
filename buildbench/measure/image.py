"""Measure a built image: its sizes as the engine and a registry see them, what is inside it,
and the versions it carries. Returns a `Measurement`; the pipeline files it on the cell."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from buildbench.engine.api import ContainerSpec, Engine, ImageInfo
from buildbench.measure.archive import ArchiveAnalysis, LayerSizes, StaleLayerSizes, analyse_archive
from buildbench.measure.contents import image_contents
from buildbench.measure.runtimes import NAMES, runtime
from buildbench.measure.sizecache import DiskLayerSizes
from buildbench.record import ImageContents, ImageFacts, Measurement

_VERSION_PROBE = """
import json, platform, sys
out = {"python": platform.python_version()}
if len(sys.argv) > 1:
    try:
        out["framework"] = __import__(sys.argv[1]).__version__
    except Exception as exc:
        out["framework_error"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(out))
"""

# The longest the version probe may take (it imports the framework: seconds); less where the
# run allows its containers less (--smoke-timeout).
PROBE_TIMEOUT = 120.0

# Progress while reading the image: (bytes read, bytes in all).
ReadProgress = Callable[[int, int], None]


def probe_versions(
    engine: Engine, image: str, framework: str | None, timeout: float = PROBE_TIMEOUT
) -> dict[str, str]:
    """Python and framework versions inside the image, from a locked-down throwaway container."""
    # A runtime's version is its module's; an image of none reports only Python.
    module = runtime(framework).module if framework in NAMES else None
    command = ["python", "-c", _VERSION_PROBE, *([module] if module else [])]
    outcome = engine.run(image, ContainerSpec(command=command, timeout_seconds=timeout))
    lines = outcome.stdout.strip().splitlines()
    if outcome.exit_code != 0 or not lines:
        return {"error": (outcome.stderr or outcome.stdout).strip()[-300:]}
    found = json.loads(lines[-1])
    return {str(k): str(v) for k, v in found.items()}


def read_archive(
    engine: Engine,
    image_id: str,
    *,
    base_layers: int,
    on_progress: Callable[[int], None],
    sizes: LayerSizes,
) -> ArchiveAnalysis:
    """One pass over `docker save`; a second should a known size turn out to be for other bytes
    (never, unless the cache was tampered with: sizes are kept by content)."""

    def read() -> ArchiveAnalysis:
        return analyse_archive(
            engine.image_archive(image_id),
            base_layers=base_layers,
            on_progress=on_progress,
            sizes=sizes,
        )

    try:
        return read()
    except StaleLayerSizes:  # every stale size is forgotten: the second pass deflates them
        return read()


def measure_image(
    engine: Engine,
    image_id: str,
    *,
    base: ImageInfo | None,
    framework: str | None,
    read_image: bool = True,
    on_read: ReadProgress = lambda done, total: None,
    on_analysis: Callable[[ArchiveAnalysis], None] = lambda analysis: None,
    sizes: LayerSizes | None = None,
    probe_timeout: float = PROBE_TIMEOUT,
) -> Measurement:
    """Sizes, versions and (`read_image`) one pass over `docker save` for the compressed size,
    the size attribution and the waste findings; `on_analysis` gets that pass (--slim's).
    `sizes`: compressed sizes known from earlier reads (by default those kept on disk)."""
    info = engine.image(image_id)
    if info is None:
        raise LookupError(f"image {image_id} vanished before it was measured")
    over_base = None if base is None else info.size_bytes - base.size_bytes
    compressed, contents = None, None
    # The version probe (a container: most of its second is the engine starting it) runs while
    # the archive streams; the read is the measure phase's critical path.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="buildbench-probe") as pool:
        probing = pool.submit(probe_versions, engine, image_id, framework, probe_timeout)
        if read_image:
            compressed, contents = _read(
                engine, image_id, info, base, over_base, on_read, on_analysis, sizes
            )
        versions = probing.result()
    warnings: list[str] = []
    if "error" in versions:
        warnings.append(f"version probe failed: {versions['error']}")
    if "framework_error" in versions:
        warnings.append(f"framework does not import: {versions['framework_error']}")
    facts = ImageFacts(
        size_bytes=info.size_bytes,
        layers=len(info.layers),
        base_image_id=base.id if base else None,
        bytes_over_base=over_base,
        compressed_size_bytes=compressed,
        compressed_size_source=None if compressed is None else "estimate",
        python_version=versions.get("python"),
        framework_version=versions.get("framework"),
    )
    return Measurement(facts, contents, tuple(warnings))


def _read(
    engine: Engine,
    image_id: str,
    info: ImageInfo,
    base: ImageInfo | None,
    over_base: int | None,
    on_read: ReadProgress,
    on_analysis: Callable[[ArchiveAnalysis], None],
    sizes: LayerSizes | None,
) -> tuple[int, ImageContents | None]:
    """The compressed size and (over a known base) the contents, from one pass."""
    shared = len(base.layers) if base and info.layers[: len(base.layers)] == base.layers else 0
    on_read(0, info.size_bytes)  # the read begins with the request, before the first bytes
    analysis = read_archive(
        engine,
        image_id,
        base_layers=shared,
        # The archive is a little more than the image (tar headers): a bar, not a figure.
        on_progress=lambda done: on_read(min(done, info.size_bytes), info.size_bytes),
        sizes=DiskLayerSizes(info.layers) if sizes is None else sizes,
    )
    on_analysis(analysis)
    contents = None if over_base is None else image_contents(analysis, bytes_over_base=over_base)
    return analysis.compressed_size_bytes, contents
