"""A model run in the image's own framework (PyTorch or ONNX Runtime): parity of every output
with the host's reference outputs, latency per batch size and per runtime setting, start-up,
and the image's real variant.

The models are the user's (`--model`, `[[model]]`; without them ResNet-18), prepared on the
host once and shipped in one volume. Per model, the first container checks parity and times
inference under each runtime setting; `cold_starts - 1` more, each fresh, time only the
start-up, so that cold start has a median and a spread. A cell whose framework has no form of
a model is "not applicable" for it, with the reason, never a failure.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from buildbench.engine.api import ContainerOutcome, ContainerSpec, VolumeMount
from buildbench.errors import UsageError
from buildbench.measure.runtimes import DEFAULT_NAMES, NAMES, runtime
from buildbench.measure.smoke import artifacts, modelcache, modelinputs
from buildbench.measure.smoke.modelspec import PreparedModel
from buildbench.measure.smoke.options import ModelRequest, SmokeOptions
from buildbench.measure.smoke.program import DEFAULT_SETTING, ORT_LEVELS, TORCH_FORMS
from buildbench.measure.smoke.runner import (
    MOUNT,
    Idle,
    Payload,
    SmokeContext,
    killed,
    output_tail,
    program_report,
    relay_progress,
)
from buildbench.record import (
    Latency,
    ModelDetail,
    NetworkProbe,
    OutputParity,
    Parity,
    RuntimeSetting,
    SmokeResult,
    Startup,
    from_json,
    model_of,
)
from buildbench.status import Status

_HEADER = ("python_version", "peak_memory_bytes")  # what the program reports that every kind has
_REPORTED = (
    "framework_version",
    "cuda_build",
    "gpu_used",
    "device",
    "cuda_version",
    "cudnn_version",
    "cuda_note",
    "providers",
    "available_providers",
)
# offline: optimised at `all` once, saved, then loaded; providers: every other order of the
# cell's execution providers (a CUDA cell: CPU first), where it has several
ORT_SETTINGS = (*ORT_LEVELS, "offline", "providers")
NOT_APPLICABLE = "not applicable"
EXEC_TMP = "/var/tmp"  # $TMPDIR of a runtime that executes what it unpacks (Runtime.exec_tmp)


def runtime_settings(
    ort: Sequence[str] = (), threads: Sequence[int] = (), forms: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """The settings axis: today's default first, then each `--ort-settings` item, each
    `--threads` count and each `--torch-forms` form (the program keeps, per framework, what
    applies to it; forms are PyTorch's only: the caller gives them to its cells alone)."""
    unknown = [s for s in ort if s not in ORT_SETTINGS]
    if unknown:
        raise UsageError(
            f"--ort-settings {unknown[0]}: not a setting", tip=f"one of {', '.join(ORT_SETTINGS)}"
        )
    strange = [f for f in forms if f not in TORCH_FORMS]
    if strange:
        raise UsageError(
            f"--torch-forms {strange[0]}: not a PyTorch form",
            tip=f"one or more of {', '.join(TORCH_FORMS)}, e.g. --torch-forms eager,export",
        )
    if any(n < 1 for n in threads):
        raise UsageError("--threads: counts are 1 or more", tip="e.g. --threads 1,2")
    found = [dict(DEFAULT_SETTING)]
    for item in ort:
        if item == "providers":
            found.append({**DEFAULT_SETTING, "providers": "each"})
            continue
        offline = item == "offline"
        found.append({**DEFAULT_SETTING, "level": "all" if offline else item, "offline": offline})
    found += [{**DEFAULT_SETTING, "threads": n} for n in threads]
    found += [{**DEFAULT_SETTING, "form": f} for f in forms]
    unique: list[dict[str, Any]] = []
    for setting in found:
        if setting not in unique:
            unique.append(setting)
    return unique


@functools.cache
def load_models(
    requests: tuple[ModelRequest, ...], frameworks: tuple[str, ...]
) -> tuple[PreparedModel, ...]:
    """The run's models, prepared once per process (each kind's check and payload ask)."""
    if not requests:
        return (artifacts.default_model(frameworks),)
    return tuple(modelcache.load_requests(requests, frameworks))


def check_models(options: SmokeOptions) -> None:
    """The run's models and settings, refused now (UsageError) if wrong: before any engine is
    asked anything, so a mistake costs no build and leaves no run behind."""
    runtime_settings(options.ort_settings, options.threads, options.torch_forms)
    if options.models:
        artifacts.check_model_stack()
        _check_references(load_models(options.models, options.frameworks), options.batch_sizes)


def _check_references(models: Sequence[PreparedModel], batch_sizes: Sequence[int]) -> None:
    """Each model run here at every batch size for its reference outputs (cached: the payload
    reads them back): a model that does not run, or returns what cannot be compared, is the
    user's to fix, refused before the run begins rather than once its folder exists."""
    for model in models:
        modelinputs.prepare_data(model, batch_sizes)


@dataclass(frozen=True)
class InferenceSmoke:
    framework: str  # a runtime's name (measure/runtimes)
    variant: str  # "cpu" or "cuda": what the image claims to be
    batch_sizes: tuple[int, ...]
    models: tuple[ModelRequest, ...] = ()  # none: the default ResNet-18
    settings: tuple[str, ...] = ()  # --ort-settings
    threads: tuple[int, ...] = ()  # --threads
    frameworks: tuple[str, ...] = DEFAULT_NAMES  # the run's: a model none of them runs is refused
    torch_forms: tuple[str, ...] = ()  # --torch-forms: PyTorch's forms timed side by side

    def check(self) -> None:
        artifacts.check_model_stack()
        self.settings_axis()
        if self.models:  # the default model runs: its references are made with the payload
            _check_references(self.prepared(), self.batch_sizes)

    def prepared(self) -> tuple[PreparedModel, ...]:
        """The run's models, with the TorchScript form only where --torch-forms asks for it
        (the same for every cell: their volume is one)."""
        models = load_models(self.models, self.frameworks)
        if "torchscript" in self.torch_forms:
            return models
        return tuple(
            replace(m, forms={k: v for k, v in m.forms.items() if k != "torchscript"})
            for m in models
        )

    def settings_axis(self) -> list[dict[str, Any]]:
        """This cell's settings: PyTorch's forms go to the PyTorch cells only."""
        forms = self.torch_forms if self.framework == "pytorch" else ()
        return runtime_settings(self.settings, self.threads, forms)

    def idle(self) -> Idle | None:
        """The run's own models (not the default, which runs everywhere), none of which has a
        form for this framework. Reads the prepared models: ask once their checks passed."""
        if not self.models:
            return None
        models = [m.info for m in self.prepared()]
        if any(self.framework not in m.not_applicable for m in models):
            return None
        reasons = {m.source: m.not_applicable[self.framework] for m in models}
        return Idle(f"no model runs on {self.framework}", reasons)

    def payload(self) -> Payload:
        models = self.prepared()
        identity = json.dumps(
            [[m.info.sha256, [p.__dict__ for p in m.inputs], sorted(m.forms)] for m in models]
            + [list(self.batch_sizes)]
        )
        names = ", ".join(m.info.source for m in models)
        return Payload(
            key="models-" + hashlib.sha256(identity.encode()).hexdigest()[:16],
            make=lambda: artifacts.prepare_artifacts(self.batch_sizes, models),
            describe=f"the smoke-test models ({names}): inputs and reference outputs",
        )

    def run(self, ctx: SmokeContext) -> SmokeResult:
        results = [
            self.run_model(ctx, model, artifacts.model_folder(index), len(self.prepared()) > 1)
            for index, model in enumerate(self.prepared())
        ]
        first, more = results[0], results[1:]
        failed = next((r for r in more if r.status != Status.OK), None)
        model = model_of(failed).model
        if first.status == Status.OK and failed is not None and model is not None:
            first = replace(
                first, status=failed.status, message=f"{model.source}: {failed.message}"
            )
        return _with(first, more_models=more)

    def run_model(
        self, ctx: SmokeContext, model: PreparedModel, folder: str, several: bool
    ) -> SmokeResult:
        reason = model.info.not_applicable.get(self.framework)
        if reason is not None:
            detail = ModelDetail(model=model.info, not_applicable=reason)
            return SmokeResult(Status.OK, f"{NOT_APPLICABLE}: {reason}", "model", detail=detail)

        def progress(text: str) -> None:
            ctx.on_progress(f"{model.info.source}: {text}" if several else text)

        spec = self.spec(ctx, folder)
        full = self.judge(ctx.engine.run(ctx.image, spec, relay_progress(progress)), ctx.gpus)
        full = _with(full, model=model.info)
        if full.status != Status.OK or model_of(full).not_applicable:
            return full
        startups = [full]
        for n in range(2, ctx.options.cold_starts + 1):
            progress(f"cold start {n} of {ctx.options.cold_starts}")
            outcome = ctx.engine.run(ctx.image, self.spec(ctx, folder, mode="startup"))
            found = self.judge(outcome, ctx.gpus, check_verdict=False)
            if found.status != Status.OK:  # a start-up that fails now fails the smoke test
                return _with(found, model=model.info)
            startups.append(found)
        full = _with(
            replace(
                full,
                cold_start_seconds=[s for run in startups for s in run.cold_start_seconds],
                seconds=round(sum(run.seconds for run in startups), 3),
            ),
            startup=[s for run in startups for s in model_of(run).startup],
        )
        return self.form_startups(ctx, folder, full, progress)

    def form_startups(
        self,
        ctx: SmokeContext,
        folder: str,
        full: SmokeResult,
        progress: Callable[[str], None],
    ) -> SmokeResult:
        """Each other PyTorch form's start-up, in as many fresh containers as the headline's
        (import, load and first inference of that form alone), kept with its setting."""
        settings = model_of(full).settings
        if not settings:
            return full
        headline = settings[0].setting.get("form")
        timed: dict[str, list[Startup]] = {}
        found_settings = [settings[0]]
        seconds = full.seconds
        for entry in settings[1:]:
            form = entry.setting.get("form")
            if entry.setting.get("threads") or entry.error is not None or form is None:
                found_settings.append(entry)
                continue
            if form == headline:  # a form asked for by name that the headline is already
                continue
            if form not in timed:
                timed[form] = []
                for n in range(1, ctx.options.cold_starts + 1):
                    progress(f"{form}: cold start {n} of {ctx.options.cold_starts}")
                    spec = self.spec(ctx, folder, "startup", [{**DEFAULT_SETTING, "form": form}])
                    found = self.judge(ctx.engine.run(ctx.image, spec), ctx.gpus, False)
                    seconds += found.seconds
                    if found.status != Status.OK:
                        entry = replace(entry, error=f"start-up: {found.message}")
                        break
                    timed[form] += model_of(found).startup
            found_settings.append(replace(entry, startup=timed[form]))
        if not timed:
            return _with(full, settings=found_settings)
        first = replace(settings[0], startup=model_of(full).startup)
        return _with(
            replace(full, seconds=round(seconds, 3)), settings=[first, *found_settings[1:]]
        )

    def spec(
        self,
        ctx: SmokeContext,
        folder: str = "",
        mode: Literal["full", "startup"] = "full",
        only: list[dict[str, Any]] | None = None,
    ) -> ContainerSpec:
        """The program's container; `only`: these settings instead of the cell's (a form's
        own start-up)."""
        options = ctx.options
        settings = only or self.settings_axis()
        command = [
            "python",
            f"{MOUNT}/program.py",
            f"--framework={self.framework}",
            f"--mode={mode}",
            f"--artifacts={MOUNT}/{folder}".rstrip("/"),
            f"--warmup={options.warmup}",
            f"--min-runs={options.min_runs}",
            f"--min-seconds={options.min_seconds}",
            *(["--gpu"] if ctx.gpus else []),
            *([f"--settings={json.dumps(settings)}"] if len(settings) > 1 or only else []),
        ]
        assert ctx.volume is not None, "the model's files travel in a volume"
        environment = {"HOME": "/tmp", "PYTHONDONTWRITEBYTECODE": "1"}
        tmpfs = dict(ContainerSpec([]).tmpfs)
        if self.framework in NAMES and runtime(self.framework).exec_tmp:
            # Its loader executes what it unpacks: a tmpfs that allows it, as large as the
            # memory it counts against, as $TMPDIR; /tmp stays noexec.
            tmpfs[EXEC_TMP] = f"size={options.memory_bytes},exec"
            environment["TMPDIR"] = EXEC_TMP
        return ContainerSpec(
            command=command,
            memory_bytes=options.memory_bytes,
            timeout_seconds=options.timeout_seconds,
            timeout_from_last_line=True,  # each step reports its progress
            volumes=(VolumeMount(ctx.volume, MOUNT),),
            environment=environment,
            tmpfs=tmpfs,
            gpus=ctx.gpus,
            labels=ctx.labels,
        )

    def judge(
        self, outcome: ContainerOutcome, gpus: bool, check_verdict: bool = True
    ) -> SmokeResult:
        """The smoke result of one model container: its findings, and a status with a reason."""
        base: dict[str, Any] = {"kind": "model", "seconds": round(outcome.seconds, 3)}
        if stopped := killed(outcome):
            detail = ModelDetail(gpus_requested=gpus)
            return SmokeResult(*stopped, output_tail=output_tail(outcome), **base, detail=detail)
        report = program_report(outcome)
        if report is None:
            message = f"the smoke program did not run (exit code {outcome.exit_code})"
            detail = ModelDetail(gpus_requested=gpus)
            tail = output_tail(outcome)
            return SmokeResult(
                Status.SMOKE_FAILED, message, output_tail=tail, **base, detail=detail
            )
        if reason := report.get("not_applicable"):
            detail = ModelDetail(gpus_requested=gpus, not_applicable=reason)
            return SmokeResult(Status.OK, f"{NOT_APPLICABLE}: {reason}", **base, detail=detail)
        header, found = _findings(report, outcome)
        detail = ModelDetail(gpus_requested=gpus, **found)
        if "error" in report:
            tail = output_tail(outcome)
            return SmokeResult(
                Status.SMOKE_FAILED,
                report["error"],
                output_tail=tail,
                **base,
                **header,
                detail=detail,
            )
        result = SmokeResult(Status.OK, "ok", **base, **header, detail=detail)
        if not check_verdict:
            return result
        status, message = self.verdict(detail)
        return replace(result, status=status, message=message)

    def verdict(self, smoke: ModelDetail) -> tuple[Status, str]:
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
        # Imported here: the kinds are read with every config, and `run` starts without numpy.
        from buildbench.analyze.derived import worst_parity

        summary = worst_parity(smoke)
        if summary is None or not summary.ok:
            worst = f"max abs diff {summary.max_abs_diff:.3g}" if summary else "no parity reported"
            names = sorted({n for n in smoke.worst_output.values() if n})
            which = f" (worst: {', '.join(names)})" if names else ""
            return Status.SMOKE_FAILED, f"outputs differ from the reference: {worst}{which}"
        if smoke.network is None or not smoke.network.isolated:
            return Status.SMOKE_FAILED, (
                "the smoke container reached the network: isolation is broken"
            )
        return Status.OK, "ok"


def _with(result: SmokeResult, **detail: Any) -> SmokeResult:
    """`result` with these fields of its model detail replaced."""
    return replace(result, detail=replace(model_of(result), **detail))


def _findings(
    report: dict[str, Any], outcome: ContainerOutcome
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The program's report as the result's header fields and its model detail's; cold start
    from the start request, each part in one clock."""
    header: dict[str, Any] = {key: report.get(key) for key in _HEADER}
    found: dict[str, Any] = {key: report.get(key) for key in _REPORTED}
    found["parity"] = {b: Parity(**p) for b, p in (report.get("parity") or {}).items()}
    found["latency"] = {
        b: Latency(
            samples=run["samples"],
            warmup=run["warmup"],
            seconds=run["seconds"],
            cpu_others_share=run.get("cpu_others_share"),  # see measure/smoke/cpuload.py
        )
        for b, run in (report.get("latency") or {}).items()
    }
    if network := report.get("network"):
        found["network"] = NetworkProbe(**network)
    found["outputs"] = {
        b: {name: from_json(OutputParity, p) for name, p in outputs.items()}
        for b, outputs in (report.get("outputs") or {}).items()
    }
    found["worst_output"] = {b: n for b, n in (report.get("worst_output") or {}).items() if n}
    found["settings"] = [from_json(RuntimeSetting, s) for s in report.get("settings") or []]
    startup = _startup(report, outcome)
    if startup is not None:
        found["startup"] = [startup]
        header["cold_start_seconds"] = [round(startup.total, 3)]
    return header, found


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
