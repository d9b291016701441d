"""A model loaded: its forms prepared once and cached by content (`~/.cache/buildbench/models`,
or under XDG_CACHE_HOME), each runtime's own form beside them, and its inputs planned."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from buildbench.errors import UsageError
from buildbench.measure.runtimes import DEFAULT_NAMES, NAMES, runtime
from buildbench.measure.smoke.modelforms import external_files, make_forms
from buildbench.measure.smoke.modelinputs import plan_inputs
from buildbench.measure.smoke.modelspec import (
    InputOverride,
    ModelSpec,
    PreparedModel,
    parse_input,
    parse_spec,
)
from buildbench.measure.smoke.modelstack import import_stack, sha256_of
from buildbench.measure.smoke.options import ModelRequest
from buildbench.measure.smoke.torchforms import factory_key, resolve_factory
from buildbench.record import ModelInfo, TensorInfo


def load_requests(
    requests: Sequence[ModelRequest], frameworks: Sequence[str]
) -> list[PreparedModel]:
    """Each model with its inputs; with several models an `--input` applies to those that
    have an input of its name, and must name an input of one of them."""
    found, used = [], set()
    for request in requests:
        base = Path(request.base) if request.base else None
        overrides = [parse_input(text) for text in request.inputs]
        prepared = load(parse_spec(request.spec, base), overrides, frameworks, strict=False)
        found.append(prepared)
        used |= {t.name for t in prepared.info.inputs}
    for request in requests:
        for text in request.inputs:
            name = parse_input(text).name
            if name not in used:
                known = ", ".join(sorted(used)) or "none"
                raise UsageError(
                    f"--input {name}: no model has an input of that name",
                    tip=f"the models' inputs: {known}",
                )
    return found


# The code that prepares a model and reads what it prepared: a new one prepares it again.
_PREPARING = (
    "modelspec.py",
    "modelstack.py",
    "torchforms.py",
    "modelforms.py",
    "modelcache.py",
    "modelinputs.py",
    "modeloutputs.py",
    "sklearnforms.py",
)


def _code_version() -> str:
    """The source of the model modules, the runtimes' (which prepare their own forms) and the
    program's."""
    here = Path(__file__).parent
    runtimes = sorted((here.parent / "runtimes").glob("*.py"))
    program = sorted((here / "program").rglob("*.py"))
    code = b"".join(p.read_bytes() for p in [*(here / n for n in _PREPARING), *runtimes, *program])
    return hashlib.sha256(code).hexdigest()[:16]


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "buildbench" / "models"


def load(
    spec: ModelSpec,
    overrides: Sequence[InputOverride] = (),
    frameworks: Sequence[str] = DEFAULT_NAMES,
    strict: bool = True,
) -> PreparedModel:
    """The model's forms (cached by content), its inputs and what it is; a UsageError for
    anything the user can fix, including a model none of `frameworks` can run."""
    torch, onnx = import_stack()
    if spec.kind == "factory":
        factory = resolve_factory(spec)
        key = factory_key(torch, spec, factory)
    else:
        assert spec.path is not None
        files = [
            spec.path,
            *(external_files(onnx, spec.path, spec.text) if spec.kind == "onnx" else []),
        ]
        key = sha256_of(files)
    # The cache is by content and by the code that prepares it; results keep only the content.
    directory = cache_root() / hashlib.sha256(f"{key}:{_code_version()}".encode()).hexdigest()
    prepared = _cached(directory)
    if prepared is None:
        prepared = _prepare_forms(torch, onnx, spec, key, directory)
    prepared = replace(prepared, info=replace(prepared.info, source=spec.text))
    _check_runnable(prepared, frameworks)  # the forms' reasons: before planning inputs
    if not strict:  # overrides for other models are checked by the caller
        names = {t.name for t in prepared.info.inputs}
        overrides = [o for o in overrides if o.name in names]
    prepared = replace(prepared, inputs=plan_inputs(prepared.info, overrides))
    for name in dict.fromkeys(f for f in frameworks if f in NAMES):
        prepared = runtime(name).prepare(prepared)  # its own form, from the inputs planned
    prepared = _asked(prepared, frameworks)
    _check_runnable(prepared, frameworks)
    return prepared


def _cached(directory: Path) -> PreparedModel | None:
    try:
        data = json.loads((directory / "model.json").read_text())
    except (OSError, ValueError):
        return None
    info = data["info"]
    info["inputs"] = [TensorInfo(**t) for t in info["inputs"]]
    info["outputs"] = [TensorInfo(**t) for t in info["outputs"]]
    return PreparedModel(
        info=ModelInfo(**info),
        directory=directory,
        inputs=[],
        onnx=data["onnx"],
        onnx_files=data["onnx_files"],
        torch=data["torch"],
        torch_format=data["torch_format"],
        operators=data.get("operators", {}),
    )


def _prepare_forms(
    torch: Any, onnx: Any, spec: ModelSpec, key: str, directory: Path
) -> PreparedModel:
    """Make every form the spec allows in a temporary folder, then move it into the cache."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory.parent, prefix=".tmp-") as tmp:
        work = Path(tmp)
        made = make_forms(torch, onnx, spec, key, work)
        (work / "model.json").write_text(
            json.dumps(
                {
                    "info": asdict(made.info),
                    "onnx": made.onnx,
                    "onnx_files": made.onnx_files,
                    "torch": made.torch,
                    "torch_format": made.torch_format,
                    "operators": made.operators,
                },
                indent=2,
            )
        )
        try:
            work.rename(directory)  # fails if the folder is there: never under another run
        except OSError:
            if (theirs := _cached(directory)) is not None:
                return theirs  # another run on this machine made it meanwhile: use theirs
            shutil.rmtree(directory, ignore_errors=True)  # a broken one, no model.json
            work.rename(directory)
        work.mkdir()  # for TemporaryDirectory's own clean-up
    return replace(made, directory=directory)


def _asked(prepared: PreparedModel, frameworks: Sequence[str]) -> PreparedModel:
    """The model with each selected runtime's reason it cannot run it (Runtime.unable) among
    its `not_applicable` reasons: its cells say so."""
    found = {
        f: why
        for f in dict.fromkeys(frameworks)
        if f in NAMES and (why := runtime(f).unable(prepared))
    }
    reasons = {**prepared.info.not_applicable, **found}
    return replace(prepared, info=replace(prepared.info, not_applicable=reasons))


def _check_runnable(prepared: PreparedModel, frameworks: Sequence[str]) -> None:
    """A model that none of the selected frameworks can run is the user's to fix."""
    selected = [f for f in frameworks if f in NAMES]
    if selected and all(f in prepared.info.not_applicable for f in selected):
        reasons = "; ".join(f"{f}: {prepared.info.not_applicable[f]}" for f in selected)
        forms = " or ".join(dict.fromkeys(runtime(f).form_help for f in selected))
        raise UsageError(
            f"--model {prepared.info.source}: the selected frameworks cannot run it ({reasons})",
            tip=f"give {forms}, or select another framework (--framework)",
        )
