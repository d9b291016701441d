"""The HTTP smoke test: an image that serves over HTTP, measured as a service.

The image's own CMD/ENTRYPOINT starts the service in a locked-down container with no network
and no port published; buildbench's load generator (`loadgen.py`, standard library only) runs
in a second container that joins the service's network namespace, so it reaches
127.0.0.1:PORT and nothing else. The load generator and the request body travel in a volume
filled through the API, as the model smoke test's files do: any engine works, remote ones too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from buildbench.engine.api import (
    ContainerOutcome,
    ContainerSpec,
    ServiceOutcome,
    VolumeMount,
    tar_of,
)
from buildbench.measure.smoke.options import SmokeOptions
from buildbench.measure.smoke.runner import (
    MOUNT,
    Idle,
    Payload,
    SmokeContext,
    output_tail,
    program_report,
    relay_progress,
)
from buildbench.record import Batching, LoadLevel, RateStep, Served, SmokeResult
from buildbench.status import Status

LOADGEN = "loadgen.py"
SPEC = "spec.json"
BODY = "body"
NOBODY = "65534:65534"
# One thread per connection in the load generator: its pids limit must leave room for them.
MAX_CONCURRENCY = 128
REQUEST_TIMEOUT = 30.0  # seconds one request may take before it counts as a timeout
MAX_REQUESTS = 1_000_000  # per level: a bound even for a service that answers in microseconds
CLIENT_MEMORY = 512 * 1024**2
BODY_SHOWN = 80  # characters of a bad answer's body in a message
ERROR_BUDGET = 0.01  # the share of a level's requests that may fail by default
LOG_LINES = 15
RATE_STEPS = 8  # the open-loop sweep's arrival rates, at most
MIN_OPEN_CONNECTIONS = 16  # open loop: connections free to send on time while others wait


@dataclass(frozen=True)
class HttpSmoke:
    """`[image.smoke.http]`: where the service listens, what to send it and what it must answer."""

    port: int
    ready: str | None = None  # GET this path until a 2xx; None: until the port accepts
    method: str = "GET"
    path: str = "/"
    body: bytes | None = None  # `body_file`'s content, or `json` serialised
    headers: Mapping[str, str] = field(default_factory=dict)
    expect_status: int = 200
    expect: str | None = None  # text the body must contain
    concurrency: tuple[int, ...] = (1, 4, 16)
    seconds: float = 10.0  # per concurrency level, after its warm-up
    # The share of a level's measured requests that may fail (another status, the expected
    # text missing, a timeout, a connection error) before the level, and the cell, fail.
    error_budget: float = ERROR_BUDGET
    # The server's own batching, where the cell knows it (a built-in server's module, or the
    # config's `batching`): recorded, and set beside its pair in the report.
    batching: Batching | None = None

    @property
    def warmup_seconds(self) -> float:
        """Each level's warm-up: a fifth of its time, between 0.5 and 2 s."""
        return round(min(2.0, max(0.5, self.seconds / 5)), 3)

    def request(self) -> str:
        return f"{self.method} {self.path} on port {self.port}"

    # -----------------------------------------------------------------------------------------
    # The config it is read from (SmokeConfig), and the smoke test of each cell (SmokeKind)

    @property
    def framework(self) -> str | None:
        return None

    def describe(self) -> str:
        return f"http: {self.request()}"

    def smoke(self, variant: str, options: SmokeOptions) -> HttpSmoke:
        return self

    @property
    def open_connections(self) -> int:
        """The open loop's connection pool: enough to keep sending on time while some wait."""
        return min(MAX_CONCURRENCY, max(MIN_OPEN_CONNECTIONS, *self.concurrency))

    def check(self) -> None:
        return None  # everything was checked when the config was read

    def idle(self) -> Idle | None:
        return None

    def payload(self) -> Payload:
        files = loadgen_files(loadgen_spec(self), self.body)
        digest = hashlib.sha256(json.dumps(sorted(files)).encode())
        for name in sorted(files):
            digest.update(files[name])
        return Payload(
            key=f"http-{digest.hexdigest()[:16]}",
            make=lambda: tar_of(files),
            describe="the load generator and its request",
        )

    def run(self, ctx: SmokeContext) -> SmokeResult:
        service = self.service(ctx)
        return self.judge(self.serve(ctx, service), service.user)

    def service(self, ctx: SmokeContext) -> ContainerSpec:
        """The service container, locked down: the image's own CMD, never as root."""
        info = ctx.engine.image(ctx.image)
        return ContainerSpec(
            command=[],  # the image's own CMD/ENTRYPOINT
            user=service_user(info.user if info else ""),
            memory_bytes=ctx.options.memory_bytes,
            timeout_seconds=ctx.options.timeout_seconds,
            gpus=ctx.gpus,
            labels=ctx.labels,
        )

    def serve(self, ctx: SmokeContext, service: ContainerSpec) -> ServiceOutcome:
        ctx.on_progress(f"serving {self.request()}")
        return ctx.engine.serve(
            ctx.image, service, ctx.image, self.client(ctx), relay_progress(ctx.on_progress)
        )

    def client(self, ctx: SmokeContext) -> ContainerSpec:
        """The load generator, in the service's own image (its Python) and network namespace;
        its bounds from the run's smoke options: --smoke-timeout is the wait for ready, and
        --slo-p95 the open loop's target (every service that runs through here sweeps)."""
        ready = ctx.options.timeout_seconds
        slo = ctx.options.slo_p95_ms
        bounds = {"ready_timeout": ready, "request_timeout": min(REQUEST_TIMEOUT, ready)}
        if slo is not None:
            bounds["slo_p95_seconds"] = slo / 1000
        per_level = self.warmup_seconds + self.seconds + bounds["request_timeout"] + 5
        steps = RATE_STEPS if slo is not None else 0
        threads = max(self.concurrency, default=1)
        if steps:
            threads = max(threads, self.open_connections)
        return ContainerSpec(
            command=["python3", f"{MOUNT}/{LOADGEN}", f"{MOUNT}/{SPEC}", json.dumps(bounds)],
            memory_bytes=CLIENT_MEMORY,
            pids_limit=threads + 64,
            timeout_seconds=ready + 10 + per_level * (len(self.concurrency) + steps),
            volumes=(VolumeMount(ctx.volume or "", MOUNT),),
            environment={"HOME": "/tmp", "PYTHONDONTWRITEBYTECODE": "1"},
            labels=ctx.labels,
        )

    # -----------------------------------------------------------------------------------------
    # What the two containers reported

    def judge(self, outcome: ServiceOutcome, user: str) -> SmokeResult:
        """The verdict: ready, answering as expected, and alive at the end of the load."""
        client = outcome.client
        log = list(outcome.log_tail[-LOG_LINES:])
        base: dict[str, Any] = {"kind": "http", "seconds": round(client.seconds, 3)}
        if not outcome.started:
            return SmokeResult(
                Status.SMOKE_FAILED, f"the service did not start: {' '.join(log)}", **base
            )
        report = program_report(client)
        served = self.served(outcome, report or {}, user)
        base.update(detail=served, output_tail=log, peak_memory_bytes=served.peak_memory_bytes)
        if served.first_response_seconds is not None:
            base["cold_start_seconds"] = [served.first_response_seconds]
        if report is not None:
            base["python_version"] = report.get("python")
        status, message = self.verdict(outcome, report)
        if status != Status.OK and not log:  # nothing from the service: show the client's
            base["output_tail"] = output_tail(client)
        return SmokeResult(status, message, **base)

    def verdict(self, outcome: ServiceOutcome, report: dict[str, Any] | None) -> tuple[Status, str]:
        died = self.died(outcome)
        if outcome.client.timed_out:
            return Status.SMOKE_TIMEOUT, (
                f"the load generator gave no result within {outcome.client.seconds:.0f} s"
            )
        if report is None:
            return Status.SMOKE_FAILED, (
                f"the load generator did not run (exit code {outcome.client.exit_code}): "
                + _why_not_run(outcome.client)
            )
        if "error" in report:
            return Status.SMOKE_FAILED, f"the load generator failed: {report['error']}"
        ready = report.get("ready") or {}
        if not ready.get("ready"):
            if died:
                return Status.SMOKE_FAILED, f"{died} before it was ready"
            waited = f"{outcome.client.seconds:.0f} s"
            return Status.SMOKE_TIMEOUT, (
                f"not ready within {waited} ({self.ready_probe()}): {ready.get('last_error')}"
            )
        first = report.get("first_response") or {}
        if not first.get("ok"):
            return Status.SMOKE_FAILED, self.bad_answer(first)
        if died:
            levels = report.get("levels") or []
            at = f" at concurrency {levels[-1]['concurrency']}" if levels else ""
            return Status.SMOKE_FAILED, f"{died} under load{at}"
        levels = report.get("levels") or []
        for level in levels:
            if not level["good"]:
                return Status.SMOKE_FAILED, (
                    f"no good answer at concurrency {level['concurrency']} ({_kinds(level)})"
                )
        over = [level for level in levels if self.over_budget(level)]
        if over:
            return Status.SMOKE_FAILED, self.budget_spent(over)
        return Status.OK, "ok"

    def over_budget(self, level: dict[str, Any]) -> bool:
        failed = sum(level["errors"].values())
        return bool(level["requests"]) and failed / level["requests"] > self.error_budget

    def budget_spent(self, over: list[dict[str, Any]]) -> str:
        """One line: the first level past the error budget, its failures, share and budget."""
        first = over[0]
        failed, requests = sum(first["errors"].values()), first["requests"]
        also = ", ".join(str(level["concurrency"]) for level in over[1:])
        return (
            f"{failed} of {requests} requests failed at concurrency {first['concurrency']} "
            f"({_percent(failed / requests, 1)}: {_kinds(first)}), over the error budget of "
            f"{_percent(self.error_budget)}" + (f" (also at concurrency {also})" if also else "")
        )

    @staticmethod
    def died(outcome: ServiceOutcome) -> str | None:
        if outcome.exit_code is None:
            return None
        why = " (killed for memory: raise --smoke-memory)" if outcome.oom_killed else ""
        return f"the service exited with code {outcome.exit_code}{why}"

    def ready_probe(self) -> str:
        return f"GET {self.ready} until a 2xx" if self.ready else f"port {self.port} to accept"

    def bad_answer(self, first: dict[str, Any]) -> str:
        body = " ".join(str(first.get("body_start") or "").split())[:BODY_SHOWN]
        request = f"{self.method} {self.path}"
        if first.get("kind") == "status":
            return (
                f"{request} answered status {first['status']}, not {self.expect_status}: {body!r}"
            )
        if first.get("kind") == "body":
            return f"{request}: the answer lacks {self.expect!r}: {body!r}"
        return f"{request} failed ({first.get('kind')}): {first.get('error')}"

    def served(self, outcome: ServiceOutcome, report: dict[str, Any], user: str) -> Served:
        """The findings, each time from the service's start request: the start request on the
        client's clock, then the engine's clock (its StartedAt, the load generator's epochs)."""

        def since_start(epoch: float | None) -> float | None:
            if epoch is None or outcome.engine_started_epoch is None:
                return None
            after = max(0.0, epoch - outcome.engine_started_epoch)
            return round(outcome.start_request_seconds + after, 4)

        first = report.get("first_response") or {}
        return Served(
            request=self.request(),
            ready_seconds=since_start((report.get("ready") or {}).get("epoch")),
            first_response_seconds=since_start(first.get("epoch") if first.get("ok") else None),
            levels=[_level(level) for level in report.get("levels") or []],
            slo_p95_seconds=report.get("slo_p95_seconds"),
            rates=[_rate(step) for step in report.get("rates") or []],
            batching=self.batching,
            peak_memory_bytes=outcome.peak_memory_bytes,
            cpu_seconds=outcome.cpu_seconds,
            exit_code=outcome.exit_code,
            user=user,
        )


# Exit codes of a command the container could not start: found but not executable, not found.
_NOT_STARTED = (126, 127)


def _why_not_run(client: ContainerOutcome) -> str:
    """Why the load generator printed no result: python3 missing where its start failed,
    else the client's own last line (a Python error, say)."""
    if client.exit_code in _NOT_STARTED:
        return "it needs python3 on the image's PATH"
    tail = output_tail(client)
    return tail[-1] if tail else "it printed nothing"


def _kinds(level: dict[str, Any]) -> str:
    """A level's failures by kind, e.g. "22 status, 1 timeout"."""
    return ", ".join(f"{n} {kind}" for kind, n in level["errors"].items() if n)


def _percent(share: float, digits: int | None = None) -> str:
    """0.489 -> "48.9%" with one digit; a budget as given: 0.01 -> "1%", 0.005 -> "0.5%"."""
    if digits is not None:
        return f"{share * 100:.{digits}f}%"
    return f"{round(share * 100, 6):g}%"


def _first_error(bad: dict[str, Any] | None) -> str | None:
    """The first bad answer of a level or step, in one line: its kind, status and body's start."""
    if not bad:
        return None
    status = f" {bad['status']}" if bad.get("status") is not None else ""
    text = " ".join((bad.get("body_start") or "").split())
    return (f"{bad['kind']}{status}" + (f": {text}" if text else ""))[:BODY_SHOWN]


def _rate(step: dict[str, Any]) -> RateStep:
    return RateStep(
        rate=step["rate"],
        samples=step["samples"],
        seconds=step["seconds"],
        warmup_seconds=step["warmup_seconds"],
        scheduled=step["scheduled"],
        errors=dict(step["errors"]),
        within_slo=step["within_slo"],
        max_lag_seconds=step["max_lag_seconds"],
        first_error=_first_error(step.get("first_bad")),
    )


def _level(level: dict[str, Any]) -> LoadLevel:
    return LoadLevel(
        concurrency=level["concurrency"],
        samples=level["samples"],
        seconds=level["seconds"],
        warmup_seconds=level["warmup_seconds"],
        requests=level["requests"],
        errors={kind: n for kind, n in level["errors"].items()},
        first_error=_first_error(level.get("first_bad")),
    )


def loadgen_spec(http: HttpSmoke) -> dict[str, Any]:
    """What the load generator reads (`spec.json` in the volume); the run's timeouts and SLO
    come on its command line, so that the files depend on the config alone."""
    return {
        "port": http.port,
        "ready": http.ready,
        "method": http.method,
        "path": http.path,
        "body_file": f"{MOUNT}/{BODY}" if http.body is not None else None,
        "headers": dict(http.headers),
        "expect_status": http.expect_status,
        "expect": http.expect,
        "concurrency": list(http.concurrency),
        "seconds": http.seconds,
        "warmup_seconds": http.warmup_seconds,
        "max_requests": MAX_REQUESTS,
        "rate_steps": RATE_STEPS,
        "open_connections": http.open_connections,
    }


def loadgen_files(spec: Mapping[str, Any], body: bytes | None) -> dict[str, bytes]:
    """The volume's files: the load generator, its spec and the request body."""
    files = {
        LOADGEN: (Path(__file__).with_name(LOADGEN)).read_bytes(),
        SPEC: json.dumps(spec).encode(),
    }
    if body is not None:
        files[BODY] = body
    return files


def service_user(image_user: str) -> str:
    """The image's own user when it is not root, else nobody: a service never runs as root."""
    name = image_user.partition(":")[0]
    return NOBODY if name in ("", "0", "root") else image_user
