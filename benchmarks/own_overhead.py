"""Where buildbench's own time goes in a run, outside the build and the image read, and how two
source trees compare on it (e.g. a change against main).

    .venv/bin/python benchmarks/own_overhead.py --pairs 5 [--tree NAME=/path/to/a/tree ...]

Each round runs `docker build --no-cache`, then `buildbench run --no-smoke --no-read-images
--no-keep-images -q` of the same network-free Dockerfile as benchmarks/overhead.py, once per
tree, the order turned each round (interleaved: a machine that drifts biases no side). A
`--tree` is a folder holding a `buildbench/` package, run with it first on PYTHONPATH; without
one, this checkout. Per run, from the process's wall time and the run's own timeline:

- overhead: process wall - `docker build` wall (issue 28's goal: at most 1 s);
- cpu: the process's CPU seconds (user and system, its children's too): its own work, which a
  busy machine slows but does not add to;
- outside the run: process wall - the timeline's wall, split into start-up (imports, options,
  the matrix: up to the run's first phase), the report (its charts and text: from the run's
  last results.csv to report.md, by their files' times) and the exit after it;
- preflight, and the build phase beyond the timed build (context, quiet windows, bookkeeping);
- measure (the version probe: the image is not read), clean-up;
- start-up alone: `buildbench run --help` (imports and click).

Medians per tree are printed as JSON with every sample, and the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from overhead import CONFIG, DOCKERFILE, RUN_OPTIONS, docker_build, newest_results, phases

BUILDBENCH = str(Path(sys.executable).with_name("buildbench"))


def _env(tree: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if tree:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [tree, env.get("PYTHONPATH")]))
    return env


def _wall(command: list[str], folder: Path, env: dict[str, str]) -> float:
    began = time.perf_counter()
    subprocess.run(command, cwd=folder, env=env, check=True, capture_output=True)
    return time.perf_counter() - began


def _cpu() -> float:
    """CPU seconds of the finished children so far: a run's own work, however busy the machine."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def one_run(folder: Path, tree: str | None, results: str) -> dict[str, float]:
    env = _env(tree)
    command = [BUILDBENCH, "run", *RUN_OPTIONS, "--results-dir", results]
    cpu = _cpu()
    process = _wall(command, folder, env)
    ended, cpu = time.time(), _cpu() - cpu
    run = newest_results(folder / results)
    info = run["run"]
    timed = run["results"][0]["build"]["seconds"][0]
    run_dir = max((folder / results).glob("*/results.json"), key=lambda p: p.stat().st_mtime)
    run_dir = run_dir.parent
    table, report = (
        (run_dir / "results.csv").stat().st_mtime,
        (run_dir / "report.md").stat().st_mtime,
    )
    outside = process - info["wall_seconds"]
    return {
        "process": process,
        "cpu": cpu,
        "outside_the_run": outside,
        "startup": outside - (report - table) - (ended - report),
        "report": report - table,
        "exit": ended - report,
        "preflight": phases(info, "preflight"),
        "build_beyond_timed": phases(info, "build") - timed,
        "measure": phases(info, "measure"),
        "clean_up": phases(info, "clean-up"),
        "startup_help": _wall([BUILDBENCH, "run", "--help"], folder, env),
    }


def startup(folder: Path, tree: str | None) -> dict[str, float]:
    """Start-up alone: `buildbench list` (imports, pip's settings, the matrix, exit)."""
    return {"list": _wall([BUILDBENCH, "list"], folder, _env(tree))}


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument(
        "--startup-only", action="store_true", help="only `buildbench list`, no builds"
    )
    parser.add_argument(
        "--tree", action="append", default=[], help="NAME=FOLDER holding a buildbench/ package"
    )
    args = parser.parse_args()
    given = dict(tree.split("=", 1) for tree in args.tree)
    trees: dict[str, str | None] = {name: path for name, path in given.items()} or {"this": None}
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    loads = [load()]
    with tempfile.TemporaryDirectory(prefix="buildbench-own-") as tmp:
        folder = Path(tmp)
        (folder / "Dockerfile").write_text(DOCKERFILE)
        (folder / "buildbench.toml").write_text(CONFIG)
        for n in range(args.pairs):
            order = list(trees) if n % 2 == 0 else list(reversed(trees))
            if args.startup_only:
                for name in order:
                    samples[name].append(startup(folder, trees[name]))
                continue
            docker = docker_build(folder)
            for name in order:
                found = one_run(folder, trees[name], f"r-{name}")
                found["overhead"] = found["process"] - docker
                found["docker_build"] = docker
                samples[name].append(found)
                print(f"round {n + 1} {name}: {json.dumps(found)}", file=sys.stderr)
            loads.append(load())
    medians: dict[str, Any] = {
        name: {k: round(statistics.median(s[k] for s in runs), 3) for k in runs[0]}
        for name, runs in samples.items()
    }
    print(json.dumps({"medians": medians, "load_average": loads, "samples": samples}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
