"""What a runtime is, host side (see `buildbench.measure.runtimes`)."""

from __future__ import annotations

import fcntl
import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from buildbench.measure.smoke.modelspec import PreparedModel


class BuildChoices(Protocol):
    """What a run chose for the built-in images (run/matrix.py's MatrixOptions)."""

    @property
    def base_image(self) -> str: ...
    @property
    def torch_version(self) -> str: ...
    @property
    def torch_cpu_index_url(self) -> str: ...


class Runtime(Protocol):
    """One runtime, as the host sees it."""

    @property
    def name(self) -> str:
        """`--framework`'s value, a config's `builtin`, and the built-in cell's name."""

    @property
    def default(self) -> bool:
        """Whether a run without `--framework` builds it."""

    @property
    def dockerfile(self) -> str:
        """Its Dockerfile in dockerfiles/ (takes the `CUDA` build-arg where it has CUDA)."""

    @property
    def module(self) -> str:
        """The module the image imports it as: its `__version__` is the framework version."""

    @property
    def variants(self) -> Sequence[str]:
        """The variants it has: "cpu", "cuda", or one of them (`missing_variant` says why)."""

    @property
    def missing_variant(self) -> str | None:
        """Why it lacks a variant; None where it has both."""

    @property
    def exec_tmp(self) -> bool:
        """Whether its load in the image executes what it unpacks (AOTInductor dlopens the
        package's library): its container gets a $TMPDIR that allows it, beside /tmp (noexec)."""

    @property
    def form(self) -> str:
        """The model form it loads (the key of meta.json naming its file)."""

    @property
    def form_help(self) -> str:
        """The forms a user can give it, for a model it cannot run."""

    def build_args(self, variant: str, choices: BuildChoices) -> dict[str, str]:
        """Its own build-args beside CUDA and BASE_IMAGE."""

    def requirements(self, variant: str, choices: BuildChoices) -> tuple[str, ...]:
        """What its Dockerfile installs (keep in step with it)."""

    def requirements_index(self, variant: str, choices: BuildChoices) -> str | None:
        """The index its requirements come from, where not the default one."""

    def wheels(self, wheels: Sequence[Path]) -> list[Path]:
        """The local wheels its build context takes."""

    def unavailable(self, variant: str, choices: BuildChoices) -> str | None:
        """Why this host cannot make the cell's model form (a compiler or torch it lacks, a
        torch other than the image's), asked before anything is built: the cell is then not
        built, with the reason; None where it can."""

    def prepare(self, model: PreparedModel) -> PreparedModel:
        """The model with its form made and cached, where the shared forms (torch, ONNX) are
        not the one it loads; a form it cannot make: `not_applicable[name]` says why."""

    def unable(self, model: PreparedModel) -> str | None:
        """Why it cannot run this (prepared) model: no form of it, an operator it lacks; None
        where it can. Its cells say so ("not applicable" with the reason), and a model that
        none of a run's runtimes can run is refused before any build (modelcache.load)."""


def missing_form(model: PreparedModel, name: str, form: str, present: bool) -> str | None:
    """The reason the runtime `name` has no `form` of the model (the one recorded where the
    form could not be made), or None where the model has it."""
    if present:
        return None
    return model.info.not_applicable.get(name) or f"the model has no {form} form"


def lacking_domains(model: PreparedModel, domains: Sequence[str]) -> str | None:
    """The ONNX form's operators from other domains than `domains` (the standard one is ""),
    in a few words ("ai.onnx.ml: LinearClassifier, ZipMap"); None where it has none."""
    other = {d: ops for d, ops in model.operators.items() if d not in domains}
    return "; ".join(f"{d}: {', '.join(ops)}" for d, ops in sorted(other.items())) or None


def with_reason(model: PreparedModel, name: str, reason: str) -> PreparedModel:
    """The model with why the runtime `name` cannot run it among its `not_applicable`."""
    reasons = {**model.info.not_applicable, name: reason}
    return replace(model, info=replace(model.info, not_applicable=reasons))


def made_once(
    model: PreparedModel,
    name: str,
    form: str,
    marker: Path,
    make: Callable[[], dict[str, Any]],
    travels: bool = False,
) -> PreparedModel:
    """A runtime's own form, made once into the model's folder by `make` (what it found kept
    in `marker`: {"files", "reason", ...}): the model with the form's files (and the marker,
    where it `travels`: the image reads it), or with the reason it could not be made."""
    # Runs on one machine share the cache (two at once in scripts/test): one makes the form,
    # the others wait for its marker.
    with marker.with_name(f".{marker.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.is_file():
            tmp = marker.with_name(f".{marker.name}.tmp")
            tmp.write_text(json.dumps(make(), indent=2))
            tmp.replace(marker)  # whole or not at all
    found = json.loads(marker.read_text())
    if found["reason"]:
        return with_reason(model, name, found["reason"])
    files = [*found["files"], *([marker.name] if travels else [])]
    return replace(model, forms={**model.forms, form: files})
