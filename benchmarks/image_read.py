"""Reading an image: buildbench's pass over `docker save` against `docker save` alone, and its
compressed-size estimate against what a registry stores.

Run from the repository, with an engine that has the image and its base:

    .venv/bin/python benchmarks/image_read.py IMAGE --base python:3.11-slim --pairs 5 --registry

1. time: interleaved pairs (A then B, then B then A, ...) of `docker save IMAGE > /dev/null` and
   buildbench's read of it (measure/image.py's `read_archive` and the contents analysis: what a
   run books as the "reading the image" phase), with the known-size cache (measure/sizecache.py)
   in four states: `cold`, nothing known (a machine's first run); `base`, the base image's
   layers known (a new image on a base read before); `rebuilt`, that and the big files' blocks
   known (the same Dockerfile built again: every later run, as buildbench builds with no cache,
   gives new layers of the same big files); `all`, the image read before (--slim reads the
   original again). Goal (issue 28): within 1.2x of `docker save`.
2. fidelity (`--registry`): the image pushed to a local registry (Debian's, as `--registry
   local`); per layer and in all, the estimate against the manifest's size.

Each sample carries the load average when it began: the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from buildbench.engine.api import Engine
from buildbench.engine.factory import make_engine
from buildbench.engine.registry.local import LocalRegistry
from buildbench.engine.registry.manifests import manifest_size
from buildbench.measure.archive import ArchiveAnalysis
from buildbench.measure.contents import image_contents
from buildbench.measure.image import read_archive
from buildbench.measure.sizecache import DiskLayerSizes

STATES = ("cold", "base", "rebuilt", "all")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def docker_save(image: str) -> dict[str, float]:
    load = os.getloadavg()[0]
    began = time.perf_counter()
    subprocess.run(["sh", "-c", f"docker save {image} > /dev/null"], check=True)
    return {"seconds": time.perf_counter() - began, "load": load}


def prepare(root: Path, state: str, base_ids: set[str]) -> None:
    """The cache as `state` has it, from what the previous read left."""
    if state == "cold":
        shutil.rmtree(root, ignore_errors=True)
    elif state in ("base", "rebuilt"):
        for entry in root.rglob("*.json"):
            if json.loads(entry.read_text())["diff_id"] not in base_ids:
                entry.unlink()
        if state == "base":
            for blocks in root.glob("*/blocks.txt"):
                blocks.unlink()


def buildbench_read(
    engine: Engine, image: str, base_layers: int, over_base: int, root: Path
) -> tuple[dict[str, float], ArchiveAnalysis]:
    layers = engine.image(image).layers  # type: ignore[union-attr]
    load = os.getloadavg()[0]
    began, cpu = time.perf_counter(), cpu_seconds()
    analysis = read_archive(
        engine,
        image,
        base_layers=base_layers,
        on_progress=lambda done: None,
        sizes=DiskLayerSizes(layers, root),
    )
    image_contents(analysis, bytes_over_base=over_base)
    sample = {
        "seconds": time.perf_counter() - began,
        "cpu_seconds": cpu_seconds() - cpu,
        "load": load,
    }
    return sample, analysis


def timing(engine: Engine, image: str, base: str, pairs: int, root: Path) -> dict[str, Any]:
    info, base_info = engine.image(image), engine.image(base)
    if info is None or base_info is None:
        raise SystemExit(f"the engine has no {image if info is None else base}")
    base_layers = len(base_info.layers)
    over_base = info.size_bytes - base_info.size_bytes
    base_ids = set(base_info.layers)
    samples: dict[str, list[dict[str, Any]]] = {state: [] for state in STATES}
    for n in range(pairs):
        for state in STATES:
            # Every state needs the cache a cold read leaves: read cold first when it is empty.
            if state != "cold" and not any(root.rglob("*.json")):
                buildbench_read(engine, image, base_layers, over_base, root)
            prepare(root, state, base_ids)
            if n % 2 == 0:
                save = docker_save(image)
                ours, _ = buildbench_read(engine, image, base_layers, over_base, root)
            else:
                ours, _ = buildbench_read(engine, image, base_layers, over_base, root)
                save = docker_save(image)
            samples[state].append({"docker_save": save, "buildbench": ours})
            print(f"pair {n + 1} {state}: {samples[state][-1]}", file=sys.stderr)
    return {
        "image_bytes": info.size_bytes,
        "base_bytes": base_info.size_bytes,
        "samples": samples,
        "ratio_median": {
            state: round(
                statistics.median(
                    s["buildbench"]["seconds"] / s["docker_save"]["seconds"] for s in runs
                ),
                3,
            )
            for state, runs in samples.items()
        },
        "seconds_median": {
            state: {
                side: round(statistics.median(s[side]["seconds"] for s in runs), 3)
                for side in ("docker_save", "buildbench")
            }
            for state, runs in samples.items()
        },
    }


def fidelity(engine: Engine, image: str, root: Path) -> dict[str, Any]:
    """The estimate (nothing known: deflated here) against the registry's manifest."""
    shutil.rmtree(root, ignore_errors=True)
    _, analysis = buildbench_read(engine, image, 0, 0, root)
    with LocalRegistry() as registry:
        reference = f"{registry.address}/bench/read:1"
        engine.tag(image, reference)
        try:
            engine.push(reference)
            stored = manifest_size(registry.address, "bench/read", "1")
        finally:
            engine.remove_image(reference)
    estimates = [layer.compressed_bytes for layer in analysis.layers]

    def error(estimate: int, actual: int) -> float:
        return round(100 * (estimate - actual) / actual, 3)

    return {
        "registry_layers": list(stored.layers),
        "estimate_layers": estimates,
        "error_percent_layers": [
            error(e, a) for e, a in zip(estimates, stored.layers, strict=True)
        ],
        "registry_bytes": stored.layers_bytes,
        "estimate_bytes": analysis.compressed_size_bytes,
        "error_percent": error(analysis.compressed_size_bytes, stored.layers_bytes),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image")
    parser.add_argument("--base", default="python:3.11-slim")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--registry", action="store_true", help="also compare with a registry")
    args = parser.parse_args()
    engine = make_engine()
    with tempfile.TemporaryDirectory(prefix="buildbench-read-") as tmp:
        root = Path(tmp)
        figures: dict[str, Any] = {
            "timing": timing(engine, args.image, args.base, args.pairs, root)
        }
        if args.registry:
            figures["fidelity"] = fidelity(engine, args.image, root)
    figures["cpus"] = os.cpu_count()
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
