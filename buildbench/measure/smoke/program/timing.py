"""The timing loops: latency per batch size under one runtime setting, with parity."""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from .output import progress
from .parity import compare_outputs, worst

try:  # inside this package in the volume: CPU that others used around each timed loop
    from . import cpuload  # type: ignore[attr-defined]
except ImportError:  # imported on the host, or an older volume
    cpuload = None


def timed_runs(model: Any, xs: list, args: argparse.Namespace) -> dict:
    """Warm-up, then timed runs until at least --min-runs runs *and* --min-seconds seconds,
    with the CPU share others used meanwhile (snapshots outside the timed calls)."""
    for _ in range(args.warmup):
        model.run(xs)
    samples: list[float] = []
    before = cpuload.snapshot() if cpuload else None
    began = time.perf_counter()
    while len(samples) < args.min_runs or time.perf_counter() - began < args.min_seconds:
        t = time.perf_counter()
        model.run(xs)
        samples.append(time.perf_counter() - t)
        if len(samples) >= args.max_runs:
            break
    seconds = time.perf_counter() - began
    share = cpuload.others_share(before, cpuload.snapshot()) if cpuload and before else None
    return {
        "samples": [round(s, 6) for s in samples],
        "seconds": round(seconds, 3),
        "warmup": args.warmup,
        "cpu_others_share": share,
    }


def time_setting(
    model: Any, meta: dict, batches: list, args: argparse.Namespace, entry: dict, top: dict | None
) -> None:
    """Latency per batch size under one setting, with parity: every batch for the first
    setting (`top`, today's figures), the first batch for the others."""
    entry["latency"] = {}
    for n, batch in enumerate(batches):
        key = str(batch["batch"])
        folder = os.path.join(args.artifacts, "data", key)
        xs = model.inputs(folder, batch, meta)
        y = model.run(xs)
        if top is not None or n == 0:
            outputs = compare_outputs(model, model.outputs(y), batch, meta, folder)
            name, summary = worst(outputs)
            if n == 0:
                entry["parity"], entry["worst_output"] = summary, name
            if top is not None:
                top["outputs"][key], top["worst_output"][key], top["parity"][key] = (
                    outputs,
                    name,
                    summary,
                )
        progress(f"timing batch size {key} ({entry['label']})")
        entry["latency"][key] = timed_runs(model, xs, args)
