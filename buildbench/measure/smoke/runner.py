"""Run the smoke program in a built image and turn what it reports into the cell's `smoke`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from buildbench import record as status
from buildbench.engine import ContainerOutcome, ContainerSpec, Engine, Mount
from buildbench.matrix import Cell
from buildbench.record import CellRecord
from buildbench.smoke.program import RESULT_PREFIX

MOUNT = "/buildbench"
Gpus = Literal["auto", "all", "none"]


@dataclass(frozen=True)
class SmokeOptions:
    batch_sizes: tuple[int, ...] = (1, 8, 32)
    gpus: Gpus = "auto"
    timeout_seconds: float = 300.0
    memory_bytes: int = 6 * 1024**3
    warmup: int = 2
    runs: int = 10


def uses_model(cell: Cell) -> bool:
    """Whether the cell's smoke test runs the reference model (else its own command, or none)."""
    return cell.framework in ("pytorch", "onnx") and not cell.smoke_command


def wants_gpus(engine: Engine, gpus: Gpus) -> bool:
    """auto: request GPUs only where the engine has an NVIDIA runtime."""
    return gpus == "all" or (gpus == "auto" and engine.info().has_nvidia_runtime)


def container_spec(
    cell: Cell, options: SmokeOptions, artifacts: Path, gpus: bool, labels: dict[str, str]
) -> ContainerSpec:
    command = [
        "python",
        f"{MOUNT}/program.py",
        f"--framework={cell.framework}",
        f"--artifacts={MOUNT}",
        f"--warmup={options.warmup}",
        f"--runs={options.runs}",
        *(["--gpu"] if gpus else []),
    ]
    return ContainerSpec(
        command=command,
        memory_bytes=options.memory_bytes,
        timeout_seconds=options.timeout_seconds,
        mounts=(Mount(str(artifacts), MOUNT),),
        environment={"HOME": "/tmp", "PYTHONDONTWRITEBYTECODE": "1"},
        gpus=gpus,
        labels=labels,
    )


def _tail(outcome: ContainerOutcome, lines: int = 15) -> list[str]:
    text = (outcome.stderr + "\n" + outcome.stdout).strip().splitlines()
    return [line for line in text if not line.startswith(RESULT_PREFIX)][-lines:]


def _report(outcome: ContainerOutcome) -> dict[str, Any] | None:
    for line in reversed(outcome.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])
    return None


def judge(cell: Cell, outcome: ContainerOutcome, gpus: bool) -> dict[str, Any]:
    """The smoke record of one container run: its findings and a status with a reason."""
    smoke: dict[str, Any] = {"gpus_requested": gpus, "seconds": round(outcome.seconds, 3)}
    if outcome.timed_out:
        return {
            **smoke,
            "status": status.SMOKE_TIMEOUT,
            "output_tail": _tail(outcome),
            "message": f"no result within {outcome.seconds:.0f} s: the container was killed",
        }
    if outcome.oom_killed:
        return {
            **smoke,
            "status": status.SMOKE_FAILED,
            "output_tail": _tail(outcome),
            "message": "the container was killed for memory (raise --smoke-memory)",
        }
    report = _report(outcome)
    if report is None:
        return {
            **smoke,
            "status": status.SMOKE_FAILED,
            "output_tail": _tail(outcome),
            "message": f"the smoke program did not run (exit code {outcome.exit_code})",
        }
    smoke.update(report)
    if "first_output_epoch" in report:
        smoke["cold_start_seconds"] = round(
            report.pop("first_output_epoch") - outcome.started_at, 3
        )
        smoke.pop("first_output_epoch", None)
    if "error" in report:
        return {
            **smoke,
            "status": status.SMOKE_FAILED,
            "message": report["error"],
            "output_tail": _tail(outcome),
        }
    return {**smoke, **_verdict(cell, smoke)}


def _verdict(cell: Cell, smoke: dict[str, Any]) -> dict[str, Any]:
    parities = smoke.get("parity", {}).values()
    worst_abs = max((p["max_abs_diff"] for p in parities), default=0.0)
    worst_rel = max((p["max_rel_diff"] for p in parities), default=0.0)
    summary = {
        "max_abs_diff": worst_abs,
        "max_rel_diff": worst_rel,
        "ok": all(p["ok"] for p in parities),
    }
    if cell.variant == "cuda" and not smoke["cuda_build"]:
        return {
            "parity_summary": summary,
            "status": status.INVALID_VARIANT,
            "message": f"labelled CUDA, but its {cell.framework} is not a working CUDA build",
        }
    if cell.variant == "cpu" and smoke["cuda_build"]:
        return {
            "parity_summary": summary,
            "status": status.INVALID_VARIANT,
            "message": f"labelled CPU, but its {cell.framework} is a CUDA build",
        }
    if not summary["ok"]:
        return {
            "parity_summary": summary,
            "status": status.SMOKE_FAILED,
            "message": f"outputs differ from the reference: max abs diff {worst_abs:.3g}",
        }
    network = smoke.get("network", {})
    if network.get("interfaces") != ["lo"] or not network.get("connection_failed", False):
        return {
            "parity_summary": summary,
            "status": status.SMOKE_FAILED,
            "message": "the smoke container reached the network: isolation is broken",
        }
    return {"parity_summary": summary, "status": status.OK, "message": "ok"}


def smoke_cell(
    engine: Engine,
    cell: Cell,
    record: CellRecord,
    *,
    options: SmokeOptions,
    artifacts: Path,
    labels: dict[str, str],
) -> None:
    """Smoke-test the cell's image; the cell's status becomes the smoke status when not ok."""
    if record.image_id is None:
        return
    if cell.smoke_command:
        spec = ContainerSpec(
            command=list(cell.smoke_command),
            timeout_seconds=options.timeout_seconds,
            memory_bytes=options.memory_bytes,
            labels=labels,
        )
        record.smoke = judge_command(cell, engine.run(record.image_id, spec))
    elif uses_model(cell):
        _smoke_model(engine, cell, record, options, artifacts, labels)
    if record.smoke and record.smoke["status"] != status.OK:
        record.status = record.smoke["status"]
        record.error = record.smoke["message"]


def judge_command(cell: Cell, outcome: ContainerOutcome) -> dict[str, Any]:
    """A config's own smoke command: it must exit 0 and print what the config expects."""
    smoke: dict[str, Any] = {
        "command": list(cell.smoke_command or ()),
        "seconds": round(outcome.seconds, 3),
        "output_tail": _tail(outcome),
    }
    output = outcome.stdout + outcome.stderr
    if outcome.timed_out:
        return {
            **smoke,
            "status": status.SMOKE_TIMEOUT,
            "message": f"no result within {outcome.seconds:.0f} s: the container was killed",
        }
    if outcome.exit_code != 0:
        return {
            **smoke,
            "status": status.SMOKE_FAILED,
            "message": f"the smoke command exited with {outcome.exit_code}",
        }
    if cell.smoke_expect is not None and cell.smoke_expect not in output:
        return {
            **smoke,
            "status": status.SMOKE_FAILED,
            "message": f"the smoke command's output lacks {cell.smoke_expect!r}",
        }
    return {**smoke, "status": status.OK, "message": "ok"}


def _smoke_model(
    engine: Engine,
    cell: Cell,
    record: CellRecord,
    options: SmokeOptions,
    artifacts: Path,
    labels: dict[str, str],
) -> None:
    gpus = wants_gpus(engine, options.gpus)
    outcome = engine.run(record.image_id, container_spec(cell, options, artifacts, gpus, labels))
    record.smoke = judge(cell, outcome, gpus)
    if record.smoke.get("cuda_build") and not record.smoke.get("gpu_used"):
        record.warnings.append("no GPU: this CUDA image ran its inference on the CPU")
