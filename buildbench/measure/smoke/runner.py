"""Run the smoke program in a built image and turn what it reports into a `SmokeResult`.

The program and model reach the container in a volume of the engine's, filled once per run
through the API (`Engine.fill_volume`) and mounted read-only: no host path, so any engine works.
The first container checks parity and times inference; `cold_starts - 1` more, each fresh, time
only the start-up, so that cold start has a median and a spread.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

from buildbench.analyze.stats import latency_quantiles
from buildbench.engine.api import ContainerOutcome, ContainerSpec, Engine, EngineInfo, VolumeMount
from buildbench.measure.smoke.program import PROGRESS_PREFIX, RESULT_PREFIX
from buildbench.record import Latency, NetworkProbe, Parity, SmokeResult, Startup
from buildbench.run.matrix import Cell
from buildbench.status import Status

MOUNT = "/buildbench"
Gpus = Literal["auto", "all", "none"]
NO_GPU_WARNING = "no GPU: this CUDA image ran its inference on the CPU"
_TAIL_LINES = 15


@dataclass(frozen=True)
class SmokeOptions:
    batch_sizes: tuple[int, ...] = (1, 8, 32)
    gpus: Gpus = "auto"
    timeout_seconds: float = 300.0
    memory_bytes: int = 6 * 1024**3
    warmup: int = 3
    min_runs: int = 30  # timed runs per batch size, at least ...
    min_seconds: float = 2.0  # ... and for at least this long
    cold_starts: int = 3  # fresh containers, each timed from its start request


def uses_model(cell: Cell) -> bool:
    """Whether the cell's smoke test runs the reference model (else its own command, or none)."""
    return cell.framework in ("pytorch", "onnx") and not cell.smoke_command


def wants_gpus(info: EngineInfo, gpus: Gpus) -> bool:
    """auto: request GPUs only where the engine has an NVIDIA runtime."""
    return gpus == "all" or (gpus == "auto" and info.has_nvidia_runtime)


def model_spec(
    cell: Cell,
    options: SmokeOptions,
    volume: str,
    gpus: bool,
    labels: dict[str, str],
    mode: Literal["full", "startup"] = "full",
) -> ContainerSpec:
    command = [
        "python",
        f"{MOUNT}/program.py",
        f"--framework={cell.framework}",
        f"--mode={mode}",
        f"--artifacts={MOUNT}",
        f"--warmup={options.warmup}",
        f"--min-runs={options.min_runs}",
        f"--min-seconds={options.min_seconds}",
        *(["--gpu"] if gpus else []),
    ]
    return ContainerSpec(
        command=command,
        memory_bytes=options.memory_bytes,
        timeout_seconds=options.timeout_seconds,
        volumes=(VolumeMount(volume, MOUNT),),
        environment={"HOME": "/tmp", "PYTHONDONTWRITEBYTECODE": "1"},
        gpus=gpus,
        labels=labels,
    )


def smoke_test(
    engine: Engine,
    cell: Cell,
    image: str,
    *,
    options: SmokeOptions,
    volume: str | None,
    labels: dict[str, str],
    gpus: bool,
    on_progress: Callable[[str], None] = lambda text: None,
) -> SmokeResult | None:
    """The cell's smoke test: its own command, or the model; None when it has neither."""
    if cell.smoke_command:
        spec = ContainerSpec(
            command=list(cell.smoke_command),
            timeout_seconds=options.timeout_seconds,
            memory_bytes=options.memory_bytes,
            labels=labels,
        )
        on_progress("running the smoke command")
        return judge_command(cell, engine.run(image, spec))
    if not uses_model(cell) or volume is None:
        return None

    def relay(line: str) -> None:
        if line.startswith(PROGRESS_PREFIX):
            on_progress(line.removeprefix(PROGRESS_PREFIX))

    spec = model_spec(cell, options, volume, gpus, labels)
    full = judge(cell, engine.run(image, spec, relay), gpus)
    if full.status != Status.OK or options.cold_starts < 2:
        return full
    startups = [full]
    for n in range(2, options.cold_starts + 1):
        on_progress(f"cold start {n} of {options.cold_starts}")
        spec = model_spec(cell, options, volume, gpus, labels, mode="startup")
        found = judge(cell, engine.run(image, spec), gpus, check_verdict=False)
        if found.status != Status.OK:  # a start-up that fails now fails the smoke test
            return found
        startups.append(found)
    return _with_startups(full, startups)


def _with_startups(full: SmokeResult, runs: list[SmokeResult]) -> SmokeResult:
    return replace(
        full,
        cold_start_seconds=[s for run in runs for s in run.cold_start_seconds],
        startup=[s for run in runs for s in run.startup],
        seconds=round(sum(run.seconds for run in runs), 3),
    )


def smoke_warnings(result: SmokeResult | None) -> list[str]:
    if result is not None and result.cuda_build and not result.gpu_used:
        return [NO_GPU_WARNING]
    return []


def _tail(outcome: ContainerOutcome) -> list[str]:
    text = (outcome.stderr + "\n" + outcome.stdout).strip().splitlines()
    skip = (RESULT_PREFIX, PROGRESS_PREFIX)
    return [line for line in text if not line.startswith(skip)][-_TAIL_LINES:]


def _report(outcome: ContainerOutcome) -> dict[str, Any] | None:
    for line in reversed(outcome.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            found = json.loads(line[len(RESULT_PREFIX) :])
            return found if isinstance(found, dict) else None
    return None


def _killed(outcome: ContainerOutcome) -> tuple[Status, str] | None:
    """Why the container did not get to report, when the engine stopped it."""
    if outcome.timed_out:
        seconds = f"{outcome.seconds:.0f} s"
        return Status.SMOKE_TIMEOUT, f"no result within {seconds}: the container was killed"
    if outcome.oom_killed:
        return Status.SMOKE_FAILED, "the container was killed for memory (raise --smoke-memory)"
    return None


def judge(
    cell: Cell, outcome: ContainerOutcome, gpus: bool, check_verdict: bool = True
) -> SmokeResult:
    """The smoke result of one model container: its findings, and a status with a reason."""
    base: dict[str, Any] = {
        "kind": "model",
        "seconds": round(outcome.seconds, 3),
        "gpus_requested": gpus,
    }
    if killed := _killed(outcome):
        return SmokeResult(*killed, output_tail=_tail(outcome), **base)
    report = _report(outcome)
    if report is None:
        message = f"the smoke program did not run (exit code {outcome.exit_code})"
        return SmokeResult(Status.SMOKE_FAILED, message, output_tail=_tail(outcome), **base)
    found = _findings(report, outcome)
    if "error" in report:
        return SmokeResult(
            Status.SMOKE_FAILED, report["error"], output_tail=_tail(outcome), **base, **found
        )
    result = SmokeResult(Status.OK, "ok", **base, **found)
    if not check_verdict:
        return result
    status, message = verdict(cell, result)
    return replace(result, status=status, message=message)


def _findings(report: dict[str, Any], outcome: ContainerOutcome) -> dict[str, Any]:
    """The program's report as SmokeResult fields: latency statistics from the raw samples,
    cold start from the start request, each part in one clock."""
    found: dict[str, Any] = {
        key: report.get(key)
        for key in (
            "python_version",
            "framework_version",
            "cuda_build",
            "gpu_used",
            "device",
            "cuda_version",
            "cudnn_version",
            "cuda_note",
            "providers",
            "available_providers",
            "peak_memory_bytes",
        )
    }
    found["parity"] = {b: Parity(**p) for b, p in (report.get("parity") or {}).items()}
    found["latency"] = {
        b: Latency(
            samples=run["samples"],
            quantiles=latency_quantiles(run["samples"]),
            warmup=run["warmup"],
            seconds=run["seconds"],
        )
        for b, run in (report.get("latency") or {}).items()
    }
    if network := report.get("network"):
        found["network"] = NetworkProbe(**network)
    startup = _startup(report, outcome)
    if startup is not None:
        found["startup"] = [startup]
        found["cold_start_seconds"] = [round(startup.total, 3)]
    return found


def _startup(report: dict[str, Any], outcome: ContainerOutcome) -> Startup | None:
    """Start request -> program start (client clock, then the engine's), then the program's
    own import, load and first-inference times."""
    needed = ("started_epoch", "import_seconds", "load_seconds", "first_inference_seconds")
    if outcome.engine_started_epoch is None or any(report.get(k) is None for k in needed):
        return None
    interpreter = max(0.0, report["started_epoch"] - outcome.engine_started_epoch)
    return Startup(
        container_start=round(outcome.start_request_seconds + interpreter, 4),
        framework_import=round(report["import_seconds"], 4),
        model_load=round(report["load_seconds"], 4),
        first_inference=round(report["first_inference_seconds"], 4),
    )


def verdict(cell: Cell, smoke: SmokeResult) -> tuple[Status, str]:
    """Whether the image is the variant it claims, computes what the reference does, and was
    really cut off from the network."""
    if cell.variant == "cuda" and not smoke.cuda_build:
        return Status.INVALID_VARIANT, (
            f"labelled CUDA, but its {cell.framework} is not a working CUDA build"
        )
    if cell.variant == "cpu" and smoke.cuda_build:
        return Status.INVALID_VARIANT, f"labelled CPU, but its {cell.framework} is a CUDA build"
    summary = smoke.parity_summary
    if summary is None or not summary.ok:
        worst = f"max abs diff {summary.max_abs_diff:.3g}" if summary else "no parity reported"
        return Status.SMOKE_FAILED, f"outputs differ from the reference: {worst}"
    if smoke.network is None or not smoke.network.isolated:
        return Status.SMOKE_FAILED, "the smoke container reached the network: isolation is broken"
    return Status.OK, "ok"


def judge_command(cell: Cell, outcome: ContainerOutcome) -> SmokeResult:
    """A config's own smoke command: it must exit 0 and print what the config expects."""
    base: dict[str, Any] = {
        "kind": "command",
        "command": list(cell.smoke_command or ()),
        "seconds": round(outcome.seconds, 3),
        "output_tail": _tail(outcome),
    }
    if killed := _killed(outcome):
        return SmokeResult(*killed, **base)
    if outcome.exit_code != 0:
        return SmokeResult(
            Status.SMOKE_FAILED, f"the smoke command exited with {outcome.exit_code}", **base
        )
    if cell.smoke_expect is not None and cell.smoke_expect not in outcome.stdout + outcome.stderr:
        return SmokeResult(
            Status.SMOKE_FAILED, f"the smoke command's output lacks {cell.smoke_expect!r}", **base
        )
    return SmokeResult(Status.OK, "ok", **base)
