"""The slices of a sharded run (`run --shard K/N`), merged back into the one run they are: same
shard identity and --machine label. What reads runs (report, compare, history) reads them
merged, as if one job had run every cell; machines stay apart, as in any merged report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from buildbench.record import Phase, RunInfo, Shard
from buildbench.results import RunResults
from buildbench.status import ExitReason


def merge_slices(runs: Sequence[RunResults]) -> list[RunResults]:
    """`runs` with each sharded run's slices merged into one, where its first slice stood. The
    slices of one identity (and --machine label: the runners' own host names differ) in the
    order they started; a slice met again starts the next run of that identity (a slice run
    again, or the same command sharded another day)."""
    groups: dict[tuple[str, str | None], list[RunResults]] = {}
    for run in runs:
        if run.info.shard is not None:
            groups.setdefault((run.info.shard.run, run.info.label), []).append(run)
    merged: list[RunResults] = []
    for run in runs:
        shard = run.info.shard
        if shard is None:
            merged.append(run)
        elif slices := groups.pop((shard.run, run.info.label), None):
            merged += [_merge(one) for one in _one_run_each(slices)]
    return merged


def _one_run_each(slices: list[RunResults]) -> list[list[RunResults]]:
    """The slices in the order they started, cut where a slice (or another count) comes again."""
    found: list[list[RunResults]] = [[]]
    for run in sorted(slices, key=lambda run: run.info.started_at):
        shard = _shard(run)
        if any(_shard(s).index == shard.index or _shard(s).count != shard.count for s in found[-1]):
            found.append([])
        found[-1].append(run)
    return found


def missing_cells(shard: Shard) -> dict[int, list[str]]:
    """A merged run's cells that no given slice holds, by the slice that should have run them
    (an empty slice writes no results, and is never missing)."""
    missing: dict[int, list[str]] = {}
    for index in range(1, shard.count + 1):
        if index not in shard.merged:
            keys = [key for key in shard.cells if shard.slice_of(key) == index]
            if keys:
                missing[index] = keys
    return missing


def _merge(slices: list[RunResults]) -> RunResults:
    slices = sorted(slices, key=lambda run: _shard(run).index)
    first = _shard(slices[0])
    order = {key: i for i, key in enumerate(first.cells)}
    records = sorted(
        (record for run in slices for record in run.records),
        key=lambda record: order.get(record.key, len(order)),
    )
    info = _merged_info([run.info for run in slices], order)
    merged = tuple(_shard(run).index for run in slices)
    return RunResults(replace(info, shard=replace(first, merged=merged)), records)


def _merged_info(infos: list[RunInfo], order: dict[str, int]) -> RunInfo:
    """The first slice's facts (its engine and host stand for the others', in the environment
    section), its options holding every slice's cells; the time from the first start to the
    last finish; the timelines back to back, adding up to the slices' summed wall time."""
    first = infos[0]
    cells = sorted(
        (key for info in infos for key in info.options.get("cells") or []),
        key=lambda key: order.get(key, len(order)),
    )
    not_built = {k: v for info in infos for k, v in (info.options.get("not_built") or {}).items()}
    options = {**first.options, "cells": cells, **({"not_built": not_built} if not_built else {})}
    timeline: list[Phase] = []
    offset = 0.0
    for info in infos:
        timeline += [replace(phase, start=phase.start + offset) for phase in info.timeline]
        offset += info.wall_seconds or 0.0
    walls = [info.wall_seconds for info in infos]
    finished = [info.finished_at for info in infos]
    reasons = [info.exit_reason for info in infos]
    return replace(
        first,
        started_at=min(info.started_at for info in infos),
        finished_at=None if None in finished else max(f for f in finished if f),
        exit_reason=next((r for r in reasons if r != ExitReason.COMPLETED), first.exit_reason),
        wall_seconds=None if None in walls else sum(w for w in walls if w is not None),
        timeline=timeline,
        options=options,
    )


def _shard(run: RunResults) -> Shard:
    assert run.info.shard is not None  # merge_slices groups sharded runs only
    return run.info.shard
