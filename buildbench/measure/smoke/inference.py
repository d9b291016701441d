"""A model run in the image's own framework (PyTorch or ONNX Runtime): parity with the host's
reference outputs, latency per batch size, start-up, and the image's real variant.

The first container checks parity and times inference; `cold_starts - 1` more, each fresh, time
only the start-up, so that cold start has a median and a spread.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from buildbench.analyze.derived import worst_parity
from buildbench.engine.api import ContainerOutcome, ContainerSpec, VolumeMount
from buildbench.measure.smoke import artifacts
from buildbench.measure.smoke.runner import (
    MOUNT,
    Payload,
    SmokeContext,
    killed,
    output_tail,
    program_report,
    relay_progress,
)
from buildbench.record import Latency, NetworkProbe, Parity, SmokeResult, Startup
from buildbench.status import Status

_REPORTED = (
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


@dataclass(frozen=True)
class InferenceSmoke:
    framework: str  # "pytorch" or "onnx"
    variant: str  # "cpu" or "cuda": what the image claims to be
    batch_sizes: tuple[int, ...]

    def check(self) -> None:
        artifacts.check_model_stack()

    def payload(self) -> Payload:
        return Payload(
            key=f"resnet18-{'-'.join(map(str, self.batch_sizes))}",
            make=lambda: artifacts.prepare_artifacts(self.batch_sizes),
            describe="the smoke-test model (ResNet-18, ONNX export, references)",
        )

    def run(self, ctx: SmokeContext) -> SmokeResult:
        full = self.judge(
            ctx.engine.run(ctx.image, self.spec(ctx), relay_progress(ctx.on_progress)), ctx.gpus
        )
        if full.status != Status.OK or ctx.options.cold_starts < 2:
            return full
        startups = [full]
        for n in range(2, ctx.options.cold_starts + 1):
            ctx.on_progress(f"cold start {n} of {ctx.options.cold_starts}")
            outcome = ctx.engine.run(ctx.image, self.spec(ctx, mode="startup"))
            found = self.judge(outcome, ctx.gpus, check_verdict=False)
            if found.status != Status.OK:  # a start-up that fails now fails the smoke test
                return found
            startups.append(found)
        return replace(
            full,
            cold_start_seconds=[s for run in startups for s in run.cold_start_seconds],
            startup=[s for run in startups for s in run.startup],
            seconds=round(sum(run.seconds for run in startups), 3),
        )

    def spec(self, ctx: SmokeContext, mode: Literal["full", "startup"] = "full") -> ContainerSpec:
        options = ctx.options
        command = [
            "python",
            f"{MOUNT}/program.py",
            f"--framework={self.framework}",
            f"--mode={mode}",
            f"--artifacts={MOUNT}",
            f"--warmup={options.warmup}",
            f"--min-runs={options.min_runs}",
            f"--min-seconds={options.min_seconds}",
            *(["--gpu"] if ctx.gpus else []),
        ]
        assert ctx.volume is not None, "the model's files travel in a volume"
        return ContainerSpec(
            command=command,
            memory_bytes=options.memory_bytes,
            timeout_seconds=options.timeout_seconds,
            volumes=(VolumeMount(ctx.volume, MOUNT),),
            environment={"HOME": "/tmp", "PYTHONDONTWRITEBYTECODE": "1"},
            gpus=ctx.gpus,
            labels=ctx.labels,
        )

    def judge(
        self, outcome: ContainerOutcome, gpus: bool, check_verdict: bool = True
    ) -> SmokeResult:
        """The smoke result of one model container: its findings, and a status with a reason."""
        base: dict[str, Any] = {
            "kind": "model",
            "seconds": round(outcome.seconds, 3),
            "gpus_requested": gpus,
        }
        if stopped := killed(outcome):
            return SmokeResult(*stopped, output_tail=output_tail(outcome), **base)
        report = program_report(outcome)
        if report is None:
            message = f"the smoke program did not run (exit code {outcome.exit_code})"
            return SmokeResult(
                Status.SMOKE_FAILED, message, output_tail=output_tail(outcome), **base
            )
        found = _findings(report, outcome)
        if "error" in report:
            return SmokeResult(
                Status.SMOKE_FAILED,
                report["error"],
                output_tail=output_tail(outcome),
                **base,
                **found,
            )
        result = SmokeResult(Status.OK, "ok", **base, **found)
        if not check_verdict:
            return result
        status, message = self.verdict(result)
        return replace(result, status=status, message=message)

    def verdict(self, smoke: SmokeResult) -> tuple[Status, str]:
        """Whether the image is the variant it claims, computes what the reference does, and
        was really cut off from the network."""
        if self.variant == "cuda" and not smoke.cuda_build:
            return Status.INVALID_VARIANT, (
                f"labelled CUDA, but its {self.framework} is not a working CUDA build"
            )
        if self.variant == "cpu" and smoke.cuda_build:
            return Status.INVALID_VARIANT, (
                f"labelled CPU, but its {self.framework} is a CUDA build"
            )
        summary = worst_parity(smoke)
        if summary is None or not summary.ok:
            worst = f"max abs diff {summary.max_abs_diff:.3g}" if summary else "no parity reported"
            return Status.SMOKE_FAILED, f"outputs differ from the reference: {worst}"
        if smoke.network is None or not smoke.network.isolated:
            return Status.SMOKE_FAILED, (
                "the smoke container reached the network: isolation is broken"
            )
        return Status.OK, "ok"


def _findings(report: dict[str, Any], outcome: ContainerOutcome) -> dict[str, Any]:
    """The program's report as SmokeResult fields; cold start from the start request, each
    part in one clock."""
    found: dict[str, Any] = {key: report.get(key) for key in _REPORTED}
    found["parity"] = {b: Parity(**p) for b, p in (report.get("parity") or {}).items()}
    found["latency"] = {
        b: Latency(samples=run["samples"], warmup=run["warmup"], seconds=run["seconds"])
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
