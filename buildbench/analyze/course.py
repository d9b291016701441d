"""The course exercise's question, answered from results: how many times faster ONNX Runtime's
image builds and how many times smaller it is than PyTorch's, beside the course's own figures;
and the classic builder against BuildKit where both built a cell."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from buildbench.analyze.metrics import build_seconds, median, ratio
from buildbench.record import CellRecord, RunInfo
from buildbench.results import RunResults
from buildbench.status import NO_IMAGE, Status


@dataclass(frozen=True)
class Course:
    """What the course exercise measured on its laptop, to put beside our numbers."""

    faster: float
    smaller: float
    pytorch_bytes: int
    onnx_bytes: int


COURSE = {
    "cpu": Course(faster=1.28, smaller=1.94, pytorch_bytes=1_250_000_000, onnx_bytes=647_000_000),
    "cuda": Course(faster=7.0, smaller=8.5, pytorch_bytes=5_540_000_000, onnx_bytes=647_000_000),
}


@dataclass(frozen=True)
class Entry:
    """A cell with the machine it ran on, as a merged report lists it."""

    machine: str
    record: CellRecord


def labelled(runs: Sequence[RunResults]) -> list[tuple[str, RunResults]]:
    """Each run with its machine: the engine's host; where one machine ran several runs, plus
    its builder when that tells them apart ("vm (buildkit)"), else its run id."""
    machines = [run.info.machine for run in runs]
    builds = [(run.info.machine, run.info.builder) for run in runs]
    return [(_label(run.info, machines, builds), run) for run in runs]


def _label(info: RunInfo, machines: list[str], builds: list[tuple[str, str]]) -> str:
    if machines.count(info.machine) == 1:
        return info.machine
    if builds.count((info.machine, info.builder)) == 1:
        return f"{info.machine} ({info.builder})"
    return f"{info.machine} {info.run_id}"


def entries(runs: Sequence[RunResults]) -> list[Entry]:
    return [Entry(label, r) for label, run in labelled(runs) for r in run.records]


def build_median(record: CellRecord) -> float | None:
    return median(build_seconds(record))


def _size(record: CellRecord) -> float | None:
    return None if record.image is None else record.image.size_bytes


def _ok(record: CellRecord | None, metric: Callable[[CellRecord], float | None]) -> float | None:
    """A metric of a cell that built, measured, and is the variant it claims to be."""
    if record is None or record.status in NO_IMAGE:
        return None
    return metric(record)


# The two built-in images the course compares, by the names their cells have.
COURSE_IMAGES = ("pytorch", "onnx")


def course_comparison(runs: Sequence[RunResults]) -> list[dict[str, Any]]:
    """Per machine and variant: how many times faster and smaller ONNX Runtime is than PyTorch.

    Only the built-in images count, told by name: a config's own image of either framework
    (the course's `course-pytorch`, say) is another Dockerfile, not the one the ratios are of.
    """
    cells = {
        (e.machine, e.record.variant, e.record.name): e.record
        for e in entries(runs)
        if e.record.name in COURSE_IMAGES
    }
    pairs = dict.fromkeys((machine, variant) for machine, variant, _ in cells)
    return [_course_row(machine, variant, cells) for machine, variant in pairs]


def _course_row(
    machine: str, variant: str, cells: dict[tuple[str, str, str], CellRecord]
) -> dict[str, Any]:
    torch, onnx = cells.get((machine, variant, "pytorch")), cells.get((machine, variant, "onnx"))
    torch_s, onnx_s = _ok(torch, build_median), _ok(onnx, build_median)
    torch_b, onnx_b = _ok(torch, _size), _ok(onnx, _size)
    course = COURSE.get(variant)
    return {
        "machine": machine,
        "variant": variant,
        "pytorch_build_seconds": torch_s,
        "onnx_build_seconds": onnx_s,
        "faster": ratio(torch_s, onnx_s),
        "course_faster": course.faster if course else None,
        "pytorch_size_bytes": torch_b,
        "onnx_size_bytes": onnx_b,
        "smaller": ratio(torch_b, onnx_b),
        "course_smaller": course.smaller if course else None,
    }


def builder_comparison(runs: Sequence[RunResults]) -> list[dict[str, Any]]:
    """Per machine and cell that both builders built: median build times and image sizes.

    A machine's classic and BuildKit runs pair up. Where a machine built a cell with one
    builder in several runs, the first of them counts.
    """
    built: dict[tuple[str, str, str], CellRecord] = {}
    for run in runs:
        for r in run.records:
            if r.status != Status.BUILD_FAILED and build_median(r) is not None:
                built.setdefault((run.info.machine, r.key, r.builder), r)
    rows = []
    for machine, key in dict.fromkeys((machine, key) for machine, key, _ in built):
        classic = built.get((machine, key, "classic"))
        buildkit = built.get((machine, key, "buildkit"))
        if classic and buildkit:
            classic_s, buildkit_s = build_median(classic), build_median(buildkit)
            rows.append(
                {
                    "machine": machine,
                    "cell": classic.key,
                    "classic_build_seconds": classic_s,
                    "buildkit_build_seconds": buildkit_s,
                    "faster": ratio(classic_s, buildkit_s),
                    "classic_size_bytes": _size(classic),
                    "buildkit_size_bytes": _size(buildkit),
                }
            )
    return rows
