"""A serving framework's cell (`--server NAME`): its image serves the run's model on the http
kind, and its first answer's values are checked against the host's reference outputs.

The model's files, the request (the model's inputs at batch 1, in the framework's encoding),
the load generator and `serve.json` travel in one volume, mounted read-only at `MOUNT` in the
service container (which finds the model there) and in the load generator's. The service is
locked down as every smoke container; it may write only to the tmpfs mounts its `Server`
declares.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from buildbench.engine.api import VolumeMount
from buildbench.errors import UsageError
from buildbench.measure.servers.base import (
    MODEL_DIR,
    MODEL_META,
    Request,
    Server,
    ServerBatching,
    Tensor,
)
from buildbench.measure.smoke import artifacts, modelinputs
from buildbench.measure.smoke.kinds.http.smoke import HttpSmoke, loadgen_files, loadgen_spec
from buildbench.measure.smoke.kinds.model.smoke import load_models
from buildbench.measure.smoke.modelspec import PreparedModel
from buildbench.measure.smoke.options import ModelRequest, SmokeOptions
from buildbench.measure.smoke.program import MAPS, STORED_DTYPES, STRINGS
from buildbench.measure.smoke.runner import MOUNT, Idle, Payload, SmokeContext, program_report
from buildbench.record import (
    Batching,
    OutputParity,
    Served,
    ServedAnswers,
    SmokeResult,
    from_json,
)
from buildbench.status import Status

# Outputs that are no numeric tensor (measure/smoke/modeloutputs.py), as a reason names them.
_NOT_TENSORS = {STRINGS: "a string tensor", MAPS: "a sequence of maps (ZipMap)"}
# The forms a server may serve, in words, and how a user gives a model that has one.
FORMS = {"onnx": "an ONNX form", "torch": "a torch form"}
FORM_TIPS = {
    "onnx": "PATH.onnx, or module:callable",
    "torch": "PATH.pt2, a TorchScript file, or module:callable",
}
BATCH = 1  # each request carries one item (the model's fixed batch where it has one)


@dataclass(frozen=True)
class ServeConfig:
    """A server's cells' smoke test, as the matrix makes it (not read from a config)."""

    server: Server
    # Named by --server (a model it cannot serve is refused), not only reached by `all`
    # (its cell is then not applicable).
    chosen: bool = True

    @property
    def framework(self) -> str | None:
        return None  # not a runtime: --framework does not select it

    def describe(self) -> str:
        return f"serves the model with {self.server.name} ({self.server.encoding.name})"

    def smoke(self, variant: str, options: SmokeOptions) -> ServeSmoke:
        return ServeSmoke(
            self.server,
            chosen=self.chosen,
            models=options.models,
            frameworks=options.frameworks,
            concurrency=options.serve_concurrency,
            seconds=options.serve_seconds,
        )


@dataclass(frozen=True)
class ServeSmoke:
    server: Server
    chosen: bool = True
    models: tuple[ModelRequest, ...] = ()  # the run's; the first is served (none: ResNet-18)
    frameworks: tuple[str, ...] = ()
    concurrency: tuple[int, ...] = HttpSmoke.concurrency
    seconds: float = HttpSmoke.seconds

    def model(self) -> PreparedModel:
        return load_models(self.models, self.frameworks)[0]

    def cannot(self) -> str | None:
        """Why this server cannot serve the run's model here, or None."""
        if self.server.unavailable:
            return self.server.unavailable
        model = self.model()
        if not self.files(model):
            runtime = "pytorch" if self.server.form == "torch" else self.server.form
            return (
                model.info.not_applicable.get(runtime)
                or f"the model has no {FORMS[self.server.form]}"
            )
        others = [r["dtype"] for r in self.data[1]["references"] if r["dtype"] not in STORED_DTYPES]
        if others:  # a classifier's labels and its ZipMap: no numeric tensor to send back
            what = _NOT_TENSORS.get(others[0], others[0])
            return f"an output is {what}, which {self.server.encoding.name} does not carry"
        return None

    def files(self, model: PreparedModel) -> list[str]:
        """The files of the model's form this server serves, the model's file first (none:
        the model has no such form)."""
        if self.server.form == "torch":
            return [model.torch] if model.torch else []
        return list(model.onnx_files) if model.onnx else []

    def check(self) -> None:
        artifacts.check_model_stack()
        reason = self.cannot() if self.chosen else None
        if reason is not None:
            tip = f"drop --server {self.server.name}"
            if not self.server.unavailable:  # what it lacks is the model's form
                tip = (
                    f"it serves {FORMS[self.server.form]} ({FORM_TIPS[self.server.form]}), or {tip}"
                )
            raise UsageError(
                f"--server {self.server.name} cannot serve {self.model().info.source}: {reason}",
                tip=tip,
            )

    def idle(self) -> Idle | None:
        reason = self.cannot()
        if reason is None:
            return None
        return Idle(f"{self.server.name} cannot serve it", {self.model().info.source: reason})

    # -----------------------------------------------------------------------------------------
    # What is sent, and what travels

    @functools.cached_property
    def data(self) -> tuple[Path, dict[str, Any]]:
        """The inputs and references at the batch served, and data.json's entry for them."""
        model = self.model()
        folder = modelinputs.prepare_data(model, model.batches((BATCH,)))
        described = json.loads((folder / "data.json").read_text())["batches"][0]
        return folder / str(described["batch"]), described

    def request(self) -> Request:
        folder, described = self.data
        inputs = [
            Tensor(
                plan.name,
                given["dtype"],
                tuple(given["shape"]),
                (folder / f"input-{i}.bin").read_bytes(),
            )
            for i, (plan, given) in enumerate(
                zip(self.model().inputs, described["inputs"], strict=True)
            )
        ]
        return self.server.encoding.request(inputs)

    @functools.cached_property
    def http(self) -> HttpSmoke:
        request = self.request()
        return HttpSmoke(
            port=self.server.port,
            ready=self.server.ready,
            method="POST",
            path=self.server.path,
            body=request.body,
            headers=request.headers,
            concurrency=self.concurrency,
            seconds=self.seconds,
        )

    def outputs(self) -> list[str]:
        model = self.model()
        count = len(self.data[1]["references"])
        return [o.name for o in model.info.outputs] or [f"output_{i}" for i in range(count)]

    def meta(self) -> dict[str, Any]:
        """serve.json: what a server may need to know of the model beyond its file."""
        model = self.model()
        return {
            "model": f"{MODEL_DIR}/{self.files(model)[0]}",
            "inputs": [
                {"name": p.name, "dtype": p.dtype, "shape": p.at(BATCH), "batched": p.batched}
                for p in model.inputs
            ],
            "outputs": [
                {"name": name, **ref}
                for name, ref in zip(self.outputs(), self.data[1]["references"], strict=True)
            ],
        }

    def payload(self) -> Payload:
        model = self.model()
        spec = {**loadgen_spec(self.http), "keep_answer": True}
        files = loadgen_files(spec, self.http.body)
        files["serve.json"] = json.dumps(self.meta(), indent=2).encode()
        digest = hashlib.sha256(model.info.sha256.encode())
        for name in sorted(files):
            digest.update(name.encode() + files[name])
        model_files = {f"model/{n}": model.directory / n for n in self.files(model)}
        return Payload(
            key=f"serve-{digest.hexdigest()[:16]}",
            make=lambda: _tar(files, model_files),
            describe=f"the served model ({model.info.source}), its request and the load generator",
        )

    # -----------------------------------------------------------------------------------------
    # The run

    def unbatchable(self) -> str | None:
        """Why this server's batching is not measured on the run's model, or None."""
        if self.server.batching is None:
            return self.server.no_batching
        model = self.model()
        if model.info.fixed_batch:
            return f"the model's batch is fixed at {model.info.fixed_batch}: requests cannot stack"
        fixed = [p.name for p in model.inputs if not p.batched]
        if fixed:
            return f"input {fixed[0]} has no batch axis: requests cannot stack"
        if not self.server.batches_scalar_rows:
            shapes = [(p.name, p.shape) for p in model.inputs]
            shapes += [(o["name"], o["shape"]) for o in self.meta()["outputs"]]
            rows = [name for name, shape in shapes if len(shape) < 2]
            if rows:
                return (
                    f"{rows[0]} is one value a row: {self.server.name}'s batching would answer "
                    "it with another shape ([batch, 1])"
                )
        return None

    def run(self, ctx: SmokeContext) -> SmokeResult:
        """The server as its image starts it; where it batches, again in a fresh container with
        its batching on, measured alike, both answers proven."""
        reason = self.unbatchable()
        off = Batching(False, self.server.name, unavailable=reason)
        result = self.serve(ctx, off, {})
        setting = self.server.batching
        served = result.of(Served)
        if reason is not None or setting is None or served is None or result.status != Status.OK:
            return result
        ctx.on_progress(f"again with {self.server.name}'s batching on ({_setting(setting)})")
        on = Batching(True, self.server.name, setting.max_batch, setting.max_delay_ms)
        batched = self.serve(ctx, on, setting.environment())
        both = replace(
            result,
            seconds=round(result.seconds + batched.seconds, 3),
            detail=replace(served, batched=batched.of(Served)),
        )
        if batched.status == Status.OK:
            return both
        return replace(
            both,
            status=batched.status,
            message=f"with batching on ({_setting(setting)}): {batched.message}",
            output_tail=batched.output_tail,
        )

    def serve(self, ctx: SmokeContext, batching: Batching, env: dict[str, str]) -> SmokeResult:
        """One service container from the image, its answer proven."""
        model = self.model()
        assert ctx.volume is not None and self.files(model)
        http = replace(self.http, batching=batching)
        service = replace(
            http.service(ctx),
            volumes=(VolumeMount(ctx.volume, MOUNT),),
            tmpfs=dict(self.server.tmpfs),
            pids_limit=self.server.pids_limit,
            environment={
                **self.server.environment,
                **env,
                "BUILDBENCH_MODEL": f"{MODEL_DIR}/{self.files(model)[0]}",
                "BUILDBENCH_MODEL_META": MODEL_META,
            },
        )
        outcome = http.serve(ctx, service)
        first = (program_report(outcome.client) or {}).get("first_response") or {}
        return self.judge(http.judge(outcome, service.user), first)

    def judge(self, result: SmokeResult, first: dict[str, Any]) -> SmokeResult:
        """The http kind's verdict, and the answer's values: a good status with wrong numbers
        fails."""
        served = result.of(Served)
        if served is None:
            return result
        answers = self.answers(first)
        detail = replace(served, answers=answers)
        if result.status != Status.OK or answers.ok:
            return replace(result, detail=detail)
        return replace(result, status=Status.SMOKE_FAILED, message=_wrong(answers), detail=detail)

    def answers(self, first: dict[str, Any]) -> ServedAnswers:
        found = ServedAnswers(
            server=self.server.name,
            encoding=self.server.encoding.name,
            request_bytes=len(self.http.body or b""),
            answer_bytes=first.get("answer_bytes"),
        )
        if not first.get("ok"):  # the http kind's verdict says why
            return replace(found, note="no good answer")
        if "answer" not in first:
            return replace(
                found, note=f"the answer ({first.get('answer_bytes')} bytes) was not kept"
            )
        try:
            got = self.server.encoding.decode(base64.b64decode(first["answer"]), self.outputs())
        except ValueError as exc:
            return replace(found, note=f"the answer cannot be decoded: {exc}")
        outputs = compare(got, *self.data, self.outputs())
        return replace(found, outputs=outputs, ok=all(p.ok for p in outputs.values()))


def compare(
    got: dict[str, Any], folder: Path, described: dict[str, Any], names: list[str]
) -> dict[str, OutputParity]:
    """Each output against its reference with the model smoke test's rules: floats within
    atol + rtol x |reference|, integers and booleans exactly; another shape fails."""
    import numpy

    from buildbench.measure.smoke.program.parity import parity

    found = {}
    for i, (name, ref) in enumerate(zip(names, described["references"], strict=True)):
        exact = not ref["dtype"].startswith(("float", "bfloat"))
        value = numpy.asarray(got[name])
        if list(value.shape) != list(ref["shape"]):
            note = f"shape {list(value.shape)}, reference {ref['shape']}"
            found[name] = OutputParity(0.0, 0.0, False, exact=exact, note=note)
            continue
        want = numpy.fromfile(folder / f"reference-{i}.bin", dtype=STORED_DTYPES[ref["dtype"]])
        checked = parity(value, want, modelinputs.RTOL, modelinputs.ATOL, exact)
        found[name] = from_json(OutputParity, checked)
    return found


def _setting(batching: ServerBatching) -> str:
    return f"max batch {batching.max_batch}, max delay {batching.max_delay_ms:g} ms"


def _wrong(answers: ServedAnswers) -> str:
    if answers.note:
        return answers.note
    bad = [name for name, p in answers.outputs.items() if not p.ok]
    worst = answers.outputs[bad[0]]
    why = (
        worst.note
        or f"max abs diff {worst.max_abs_diff:.3g}, {worst.mismatches} of {worst.count} values"
    )
    return f"the answer differs from the reference: {bad[0]} ({why})"


def _tar(files: dict[str, bytes], model_files: dict[str, Path]) -> bytes:
    """The payload: the model's folder and its files, then the others, world-readable."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        folder = tarfile.TarInfo("model")
        folder.type, folder.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(folder)
        for name, path in model_files.items():
            info = tar.gettarinfo(str(path), arcname=name)
            info.mode, info.uid, info.gid, info.uname, info.gname = 0o644, 0, 0, "root", "root"
            with path.open("rb") as handle:
                tar.addfile(info, handle)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()
