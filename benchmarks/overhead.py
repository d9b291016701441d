"""How close buildbench's numbers are to the work they time, and what buildbench itself costs.

Run on a quiet machine with an engine and the base image (scripts/setup), from the repository:

    .venv/bin/python benchmarks/overhead.py --pairs 5
    .venv/bin/python benchmarks/overhead.py --pairs 3 --builds-only   # figure 1 (and 2) only

Four figures, each from interleaved pairs (A then B, then B then A, ...) so that a machine that
drifts during the benchmark biases neither side:

1. build fidelity: buildbench's build time / `docker build --no-cache` wall time, the same
   network-free Dockerfile, the classic builder on both sides (goal: within 2%), with a small
   context and again with a large one (`--context-mb`, 200 by default: a file the Dockerfile
   copies), where packing and sending the context is a visible part of the build;
2. overhead: `buildbench run --no-smoke --no-read-images` wall time (the whole process:
   start-up, preflight, quiet windows, the version probe, results, report and charts) - the
   same `docker build` wall time (goal: at most 1 s), with the run's own timeline saying where
   it went (reading the image is figure 3's);
3. reading an image: the measure phase's "reading the image" part (one pass over `docker save`,
   from the request to the contents analysis: compressed size, contents, waste; the version
   probe runs beside it; the inspect before it is reported apart) / `docker save IMAGE >
   /dev/null` of the same image right after (goal: within 1.1x). The runs share
   ~/.cache/buildbench/layer-sizes as a user's do: the first may deflate the base image's
   layers, later ones find them known
   (benchmarks/image_read.py times each state of that cache on its own);
4. the smoke test: its wall time / the timed work it was asked for (every timed inference loop,
   and every cold start from its start request to its first inference) (goal: within 1.15x),
   and the model preparation of a second run (goal: nothing prepared again).

Every raw sample is printed as JSON at the end; the medians are the figures to quote.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BUILDBENCH = str(Path(sys.executable).with_name("buildbench"))
# Network-free and CPU-bound enough to take a few seconds: pip or apt would time the network.
DOCKERFILE = """FROM python:3.11-slim
RUN python3 -c "import hashlib; h=b'x'; [h := hashlib.sha256(h).digest() for _ in range(4_000_000)]"
RUN head -c 30000000 /dev/urandom > /payload
"""
LARGE_CONTEXT = "COPY payload.bin /payload.bin\n"  # the large context's file, copied in
# The one-cell run whose own cost figure 2 is (issue 28: at most 1 s beyond what it times).
RUN_OPTIONS = ("--no-smoke", "--no-read-images", "--no-keep-images", "-q")
CONFIG = """[[image]]
name = "netfree"
dockerfile = "Dockerfile"
variants = { cpu = "" }
"""


def wall(command: list[str], **kwargs: Any) -> float:
    began = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, **kwargs)
    return time.perf_counter() - began


def newest_results(results: Path) -> dict[str, Any]:
    path = max(results.glob("*/results.json"), key=lambda p: p.stat().st_mtime)
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def phases(run: dict[str, Any], name: str, detail: str | None = "any") -> float:
    return sum(
        p["seconds"]
        for p in run["timeline"]
        if p["name"] == name and (detail == "any" or p["detail"] == detail)
    )


def docker_build(folder: Path) -> float:
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    seconds = wall(
        ["docker", "build", "--no-cache", "-q", "-t", "bb-overhead:docker", "."],
        cwd=folder,
        env=env,
    )
    subprocess.run(["docker", "rmi", "-f", "bb-overhead:docker"], capture_output=True, check=False)
    return seconds


def buildbench_build(folder: Path) -> dict[str, Any]:
    command = [BUILDBENCH, "run", *RUN_OPTIONS, "--results-dir", "r"]
    seconds = wall(command, cwd=folder)
    run = newest_results(folder / "r")
    cell = run["results"][0]
    return {
        "process_seconds": seconds,
        "build_seconds": cell["build"]["seconds"][0],
        "context_seconds": (cell["build"].get("context_seconds") or [None])[0],
        "context_bytes": cell["build"].get("context_bytes"),
        "wall_seconds": run["run"]["wall_seconds"],
        "phases": {p: phases(run["run"], p) for p in ("preflight", "build", "measure", "clean-up")},
    }


def build_pairs(folder: Path, pairs: int) -> list[dict[str, Any]]:
    samples = []
    for n in range(pairs):
        if n % 2 == 0:
            docker, ours = docker_build(folder), buildbench_build(folder)
        else:
            ours, docker = buildbench_build(folder), docker_build(folder)
        samples.append({"docker_build_seconds": docker, **ours})
        print(f"pair {n + 1}: docker {docker:.2f} s, buildbench {ours}", file=sys.stderr)
    return samples


def onnx_runs(folder: Path, pairs: int) -> list[dict[str, Any]]:
    """The built-in onnx/cpu cell with its smoke test: the image read against `docker save`,
    the smoke test against the timed work, the model preparation of each run."""
    samples = []
    for n in range(pairs):
        command = [
            BUILDBENCH,
            "run",
            "--framework",
            "onnx",
            "--cuda",
            "cpu",
            "-q",
            "--results-dir",
            "r-onnx",
            "--cold-starts",
            "2",
            "--latency-seconds",
            "1",
        ]
        subprocess.run(command, cwd=folder, check=True, capture_output=True)
        run = newest_results(folder / "r-onnx")
        cell = run["results"][0]
        tag = cell["image_tag"]
        save = wall(["sh", "-c", f"docker save {tag} > /dev/null"])
        smoke = cell["smoke"]
        asked = sum(b["seconds"] for b in smoke["latency"].values()) + sum(
            sum(s.values()) for s in smoke["startup"]
        )
        samples.append(
            {
                "read_seconds": phases(run["run"], "measure", "reading the image"),
                "inspect_seconds": phases(run["run"], "measure", None),
                "docker_save_seconds": save,
                "smoke_seconds": phases(run["run"], "smoke"),
                "smoke_timed_work_seconds": asked,
                "model_preparation_seconds": phases(run["run"], "model preparation"),
                "image_bytes": cell["image"]["size_bytes"],
            }
        )
        print(f"onnx run {n + 1}: {samples[-1]}", file=sys.stderr)
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, check=False)
    return samples


def median(values: list[float]) -> float:
    return statistics.median(values)


def build_folder(folder: Path, context_mb: int) -> Path:
    """The benchmark's Dockerfile and config; with `context_mb`, a file of that many MB
    (random: no transport compresses it away) that the Dockerfile copies."""
    folder.mkdir()
    dockerfile = DOCKERFILE
    if context_mb:
        with (folder / "payload.bin").open("wb") as payload:
            for _ in range(context_mb):
                payload.write(os.urandom(1_000_000))
        dockerfile += LARGE_CONTEXT
    (folder / "Dockerfile").write_text(dockerfile)
    (folder / "buildbench.toml").write_text(CONFIG)
    return folder


def build_figures(builds: list[dict[str, Any]]) -> dict[str, Any]:
    packed = [b["context_seconds"] for b in builds if b["context_seconds"] is not None]
    return {
        "build_ratio_median": round(
            median([b["build_seconds"] / b["docker_build_seconds"] for b in builds]), 4
        ),
        "context_seconds_median": round(median(packed), 3) if packed else None,
        "context_bytes": builds[0]["context_bytes"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument(
        "--context-mb", type=int, default=200, help="the large context's size (0: none)"
    )
    parser.add_argument(
        "--builds-only", action="store_true", help="figures 1 and 2 only: no onnx/cpu runs"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="buildbench-overhead-") as tmp:
        folder = Path(tmp)
        builds = build_pairs(build_folder(folder / "small", 0), args.pairs)
        large = []
        if args.context_mb:
            large = build_pairs(build_folder(folder / "large", args.context_mb), args.pairs)
        onnx = []
        if not args.builds_only:
            plain = folder / "built-in"  # no buildbench.toml there: the built-in matrix
            plain.mkdir()
            onnx = onnx_runs(plain, max(2, args.pairs // 2))
    overhead = median([b["process_seconds"] - b["docker_build_seconds"] for b in builds])
    outside = median([b["process_seconds"] - b["wall_seconds"] for b in builds])
    figures: dict[str, Any] = {
        **build_figures(builds),
        "large_context": build_figures(large) if large else None,
        "overhead_seconds_median": round(overhead, 3),
        "outside_the_run_seconds_median": round(outside, 3),
        "phase_seconds_median": {
            p: round(median([b["phases"][p] for b in builds]), 3) for p in builds[0]["phases"]
        },
    }
    if onnx:
        read = median([o["read_seconds"] / o["docker_save_seconds"] for o in onnx])
        smoke = median([o["smoke_seconds"] / o["smoke_timed_work_seconds"] for o in onnx])
        figures |= {
            "image_read_ratio_median": round(read, 3),
            "smoke_ratio_median": round(smoke, 3),
            "model_preparation_seconds": [round(o["model_preparation_seconds"], 3) for o in onnx],
        }
    samples = {"builds": builds, "large_context_builds": large, "onnx": onnx}
    print(json.dumps({"figures": figures, **samples}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
