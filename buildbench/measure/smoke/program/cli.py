"""The program's command line: one model's container, start-up then (in `full` mode) parity and
latency under every runtime setting, reported as one line."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from .output import RESULT_PREFIX, progress
from .probes import network_probe, peak_memory_bytes
from .runtimes import RUNTIMES
from .settings import DEFAULT_SETTING
from .timing import time_setting


def measure(args: argparse.Namespace, started_epoch: float) -> dict:
    with open(os.path.join(args.artifacts, "meta.json")) as handle:
        meta = json.load(handle)
    runtime = RUNTIMES[args.framework]
    if meta.get(runtime.form) is None:  # the host says so before any container: a backstop
        reason = (meta.get("not_applicable") or {}).get(args.framework)
        return {"not_applicable": reason or f"the model has no {args.framework} form"}
    requested = json.loads(args.settings) if args.settings else [DEFAULT_SETTING]
    meta["first_setting"] = requested[0]  # what the start-up loads (PyTorch: its form)
    progress("importing the framework")
    began = time.perf_counter()
    framework = runtime.framework(meta)
    imported = time.perf_counter()
    progress("loading the model")
    model = runtime(framework, args.artifacts, meta, args.gpu)
    settings = model.settings(requested)
    first = model.open(settings[0])
    loaded = time.perf_counter()
    result: dict = {
        **model.info,
        "providers": first.get("providers"),
        "gpu_used": model.info.get(
            "gpu_used", "CUDAExecutionProvider" in first.get("providers", ())
        ),
        "started_epoch": started_epoch,
        "import_seconds": imported - began,
        "load_seconds": loaded - imported,
        "parity": {},
        "outputs": {},
        "worst_output": {},
        "latency": {},
        "settings": [],
    }
    batches = meta["batches"] if args.mode == "full" else meta["batches"][:1]
    folder = os.path.join(args.artifacts, "data", str(batches[0]["batch"]))
    xs = model.inputs(folder, batches[0], meta)
    model.run(xs)
    result["first_inference_seconds"] = time.perf_counter() - loaded
    result["first_output_epoch"] = time.time()
    if args.mode == "full":
        for index, setting in enumerate(settings):
            entry = {
                "label": model.label(setting),
                "setting": setting,
                **(first if index == 0 else {}),
            }
            if index == 0:
                entry["load_seconds"] = result["load_seconds"]  # model construction included
            try:
                # ONNX Runtime: every setting's session made after the first, cold one, so
                # that their loads compare (the cold load is the start-up's model load).
                if index > 0 or model.fresh_sessions:
                    entry.update(model.open(setting))
                    entry["label"] = model.label(setting)  # as opened (PyTorch: its form)
                entry.update(model.graph_after(setting))
                time_setting(model, meta, batches, args, entry, result if index == 0 else None)
            except Exception as exc:
                if index == 0:
                    raise
                entry["error"] = f"{type(exc).__name__}: {exc}"
            result["settings"].append(entry)
        result["latency"] = result["settings"][0]["latency"]
    result["peak_memory_bytes"] = peak_memory_bytes()
    return result


def main(started_epoch: float) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--framework", choices=list(RUNTIMES), required=True)
    parser.add_argument("--mode", choices=["full", "startup"], default="full")
    parser.add_argument("--artifacts", default="/buildbench")
    parser.add_argument("--gpu", action="store_true", help="run on a GPU when one is visible")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--min-runs", type=int, default=30)
    parser.add_argument("--min-seconds", type=float, default=2.0)
    parser.add_argument("--max-runs", type=int, default=100_000)
    parser.add_argument(
        "--settings",
        help="runtime settings, a JSON list of {level, offline, threads, providers, form} "
        "(PyTorch takes threads and form): the first is the default run's",
    )
    args = parser.parse_args()
    result: dict = {"python_version": sys.version.split()[0], "mode": args.mode}
    try:
        result.update(measure(args, started_epoch))
        code = 0
    except ImportError as exc:
        result["error"] = f"the framework does not import: {type(exc).__name__}: {exc}"
        code = 3
    except Exception as exc:  # report anything else the same way: the host records it
        result["error"] = f"{type(exc).__name__}: {exc}"
        code = 4
    if args.mode == "full" and "not_applicable" not in result:
        result["network"] = network_probe()  # after the model: not part of any timing
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return code
