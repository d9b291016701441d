"""`run --shard K/N`: one slice of a run's cells, for a CI job matrix that spreads a run over
several runners; `report` merges the slices back into one run (analyze/shards.py)."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from buildbench.errors import UsageError
from buildbench.record import Shard
from buildbench.run.matrix import Cell

SHARD_TIP = "give K/N with 1 <= K <= N, e.g. --shard 1/3 (slice 1 of 3)"


def parse_shard(text: str) -> tuple[int, int]:
    """K and N of `K/N`; anything else refused in one line, before any engine or build."""
    found = re.fullmatch(r"([0-9]+)/([0-9]+)", text)
    k, n = (int(found[1]), int(found[2])) if found else (0, 0)
    if not 1 <= k <= n:
        raise UsageError(f"--shard {text!r} is not a slice K/N of N slices", tip=SHARD_TIP)
    return k, n


def run_identity(given: str | None, cells: Sequence[Cell], machine: str | None) -> str:
    """What the slices of one run share: --shard-run; in GitHub Actions, the workflow run; else
    a fingerprint of the run's cells, which slices of one command share."""
    if given:
        return given
    if github := os.environ.get("GITHUB_RUN_ID"):
        return f"github-{github}"  # a re-run of failed jobs joins its run
    digest = hashlib.sha256(repr(machine).encode())
    for cell in sorted(cells, key=lambda c: c.key):
        digest.update(f"{cell.key}={cell.config_hash()}".encode())
    return f"cells-{digest.hexdigest()[:12]}"


@dataclass(frozen=True)
class Slice:
    """The cells and not-built cells of one slice, and the shard the results record."""

    shard: Shard
    cells: list[Cell]
    not_built: dict[str, str]

    @property
    def empty(self) -> bool:
        return not self.cells and not self.not_built

    def describe(self) -> str:
        total = len(self.shard.cells)
        mine = len(self.cells) + len(self.not_built)
        return f"shard {self.shard.index}/{self.shard.count}: {mine} of the run's {total} cells"


def slice_cells(
    shard: tuple[int, int], run: str, cells: Sequence[Cell], not_built: Mapping[str, str]
) -> Slice:
    """Slice K of N of the run's cells, those it cannot build (not_built) dealt out with them:
    every cell is in exactly one slice (record.Shard.slice_of)."""
    keys = tuple(dict.fromkeys([*(cell.key for cell in cells), *not_built]))
    found = Shard(index=shard[0], count=shard[1], run=run, cells=keys)
    owned = {key for key in keys if found.owns(key)}
    return Slice(
        shard=found,
        cells=[cell for cell in cells if cell.key in owned],
        not_built={key: why for key, why in not_built.items() if key in owned},
    )
