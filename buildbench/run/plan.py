"""What a run is asked to do, before anything runs: the plan (cells, how to build, measure and
test them) and the request the command line makes of it (`RunRequest`): the smoke test's options
as the user gave them, checked and turned into the plan's here, and the registry to ship through,
whose lifetime the run layer owns (run/engines.py's `execute`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from buildbench.engine.builders import BuilderName
from buildbench.measure.smoke.options import Gpus, ModelRequest, SmokeOptions
from buildbench.measure.smoke.runner import Payload, SmokeKind
from buildbench.record import Shard
from buildbench.run.matrix import Cell
from buildbench.run.pipconfig import PipInputs


@dataclass(frozen=True)
class RunPlan:
    """What the user asked for: the cells and how to build, measure and test them."""

    cells: list[Cell]
    base_image: str
    results_dir: Path
    pip: PipInputs = field(default_factory=PipInputs)
    builder: BuilderName = "classic"
    repeat: int = 1
    keep_images: bool = True
    read_images: bool = True  # one pass over `docker save`: compressed size, contents, waste
    smoke: SmokeOptions | None = None
    prefetch: bool = False
    preflight: bool = True
    machine: str | None = None  # a stable name for reports and history (CI runners' vary)
    registry: str | None = None  # HOST[:PORT]: push, size in, and pull back every image
    cold_pull: bool = False  # and pull each with nothing local, the base set aside meanwhile
    slim: bool = False  # trace the smoke test, build a slim image of it, smoke-test that too
    slim_exclude: tuple[str, ...] = ()  # globs (/paths) the slim image leaves out on purpose
    not_built: Mapping[str, str] = field(default_factory=dict)  # cell key -> why: see idle()
    shard: Shard | None = None  # --shard: the slice of a run these cells are (run/shard.py)

    def smoke_kinds(self) -> dict[str, SmokeKind]:
        """Each cell's smoke test, by cell key (none for cells without one, or --no-smoke)."""
        if self.smoke is None:
            return {}
        from buildbench.run.smokes import smoke_kind  # the kinds (and numpy): with a smoke test

        kinds = {cell.key: smoke_kind(cell, self.smoke) for cell in self.cells}
        return {key: kind for key, kind in kinds.items() if kind is not None}

    def idle(self) -> RunPlan:
        """The plan without the cells whose image no model of the run could use (run/smokes.py),
        each kept in `not_built` with its reason: decided once the models are checked, before
        anything is built."""
        idle: dict[str, str] = {}
        if self.smoke is not None:
            from buildbench.run.smokes import idle_cells

            idle = idle_cells(self.cells, self.smoke)
        cells = [cell for cell in self.cells if cell.key not in idle]
        return replace(self, cells=cells, not_built={**self.not_built, **idle})

    def payloads(self) -> list[Payload]:
        """The files the smoke tests need, once each."""
        found = (kind.payload() for kind in self.smoke_kinds().values())
        return list({p.key: p for p in found if p is not None}.values())

    def options(self) -> dict[str, object]:
        return {
            "repeat": self.repeat,
            "keep_images": self.keep_images,
            "read_images": self.read_images,
            "prefetch": self.prefetch,
            "registry": self.registry,
            "cold_pull": self.cold_pull,
            "smoke": asdict(self.smoke) if self.smoke else None,
            "cells": [cell.key for cell in self.cells],
            **({"not_built": dict(self.not_built)} if self.not_built else {}),
        }


@dataclass(frozen=True)
class SmokeRequest:
    """The smoke test's options in the command line's own units (`run --help` has their
    defaults)."""

    batch_sizes: tuple[int, ...] = (1, 8, 32)
    latency_runs: int = 30
    latency_seconds: float = 2.0
    cold_starts: int = 3
    gpus: Gpus = "auto"
    timeout_seconds: float = 300.0
    memory_mib: int = 6144
    models: tuple[ModelRequest, ...] = ()  # --model with --input, then the config's [[model]]
    ort_settings: str = ""  # comma-separated, as given
    threads: tuple[int, ...] = ()
    slo_p95_ms: float | None = None
    serve_concurrency: tuple[int, ...] = (1, 4, 16)  # a built-in server's load (--server)
    serve_seconds: float = 10.0
    torch_forms: str = ""  # comma-separated, as given

    def options(self, cells: list[Cell]) -> SmokeOptions:
        """The run's smoke options for these cells; a user's model is refused here (UsageError),
        before any engine is asked."""
        options = SmokeOptions(
            batch_sizes=self.batch_sizes,
            gpus=self.gpus,
            timeout_seconds=self.timeout_seconds,
            min_runs=self.latency_runs,
            min_seconds=self.latency_seconds,
            cold_starts=self.cold_starts,
            memory_bytes=self.memory_mib * 1024**2,
            models=self.models,
            ort_settings=tuple(s.strip() for s in self.ort_settings.split(",") if s.strip()),
            threads=self.threads,
            slo_p95_ms=self.slo_p95_ms,
            serve_concurrency=self.serve_concurrency,
            serve_seconds=self.serve_seconds,
            torch_forms=tuple(f.strip() for f in self.torch_forms.split(",") if f.strip()),
        )
        from buildbench.run.smokes import run_smoke_options

        return run_smoke_options(options, cells)


@dataclass(frozen=True)
class RunRequest:
    """A run as the command line asks for it: the plan without its smoke options and registry,
    which the run layer makes of `smoke` (None: --no-smoke) and `registry` (HOST[:PORT], or
    `local`: one started for the run)."""

    plan: RunPlan
    smoke: SmokeRequest | None = None
    registry: str | None = None

    def checked(self) -> RunPlan:
        """The plan with its smoke options, the models checked (UsageError); the registry's
        address is the run's to fill in once it is up."""
        smoke = self.smoke.options(self.plan.cells) if self.smoke else None
        return replace(self.plan, smoke=smoke)
