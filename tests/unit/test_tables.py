"""The run's results.csv is written without pandas, and reads exactly as pandas' view of the
same rows (`cells_frame(...).to_csv`, which `report --format csv` still writes)."""

from __future__ import annotations

import math
import random
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from buildbench.render.tables import RESULTS_CSV, cells_frame, csv_text, write_cells_csv
from buildbench.results import load_results
from tests.unit.references import DATA


@pytest.mark.parametrize("name", sorted(p.name for p in DATA.glob("*.json")))
def test_a_runs_csv_is_the_frames_csv(name: str, tmp_path: Path) -> None:
    run = load_results(DATA / name)
    written = write_cells_csv(tmp_path, run).read_text()
    assert written == cells_frame([run]).to_csv(index=False)
    assert written.count("\n") == 1 + len(run.records)


def _value(rng: random.Random, kind: str) -> Any:
    """A value of a column of `kind`, missing now and then."""
    if rng.random() < 0.2:
        return rng.choice([None, math.nan]) if kind in ("float", "whole") else None
    match kind:
        case "int":
            return rng.randrange(-(10**12), 10**12)
        case "whole":  # floats that are whole numbers: pandas writes them as integers
            return float(rng.randrange(0, 10**15))
        case "float":
            return rng.choice([rng.random() * 10 ** rng.randint(-8, 17), 1e-05, 0.1 + 0.2, 3])
        case "bool":
            return rng.random() < 0.5
        case "str":
            return rng.choice(["plain", "a,b", 'say "hi"', "two\nlines", "", " spaced "])
        case _:  # mixed kinds: written value by value
            return rng.choice([1, 2.5, "x", True, None])


def test_csv_text_writes_what_pandas_writes_for_every_kind_of_column() -> None:
    rng = random.Random(23)
    kinds = ["int", "whole", "float", "bool", "str", "mixed"]
    for _ in range(200):
        columns = [rng.choice(kinds) for _ in range(rng.randint(1, 8))]
        rows = [
            {f"c{i}": _value(rng, kind) for i, kind in enumerate(columns)}
            for _ in range(rng.randint(1, 4))
        ]
        expected = pd.DataFrame(rows).convert_dtypes().to_csv(index=False)
        assert csv_text(rows) == expected, rows
    assert csv_text([]) == pd.DataFrame().to_csv(index=False)


def test_a_run_writes_its_csv_without_pandas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # importing it now fails
    write_cells_csv(tmp_path, load_results(DATA / "vm.json"))
    assert (tmp_path / RESULTS_CSV).read_text().startswith("run_id,machine,engine,name,")
