"""`run --shard K/N`: a stable slice of a run's cells, refused when malformed before any engine,
and the slices of one run merged back into one by report, compare and history."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from buildbench.analyze.shards import merge_slices
from buildbench.cli import cli
from buildbench.errors import UsageError
from buildbench.record import Shard
from buildbench.render.report import load_runs, render
from buildbench.results import load_results, results_document, write_results
from buildbench.run import engines
from buildbench.run.matrix import MatrixOptions, builtin_matrix
from buildbench.run.shard import parse_shard, run_identity, slice_cells
from tests.unit.references import DATA

# A real `buildbench run --cuda both` (pytorch and onnx, cpu and cuda), unsharded.
WHOLE = DATA / "vm-schema2.json"


@pytest.mark.parametrize("text", ["0/2", "3/2", "x", "1/0", "1/", "/2", "-1/2", " 1/2", "1/2/3"])
def test_a_malformed_shard_is_refused_in_one_line(text: str) -> None:
    with pytest.raises(UsageError, match="is not a slice K/N"):
        parse_shard(text)


def test_a_shard_reads_k_of_n() -> None:
    assert parse_shard("1/1") == (1, 1)
    assert parse_shard("3/12") == (3, 12)


@pytest.mark.parametrize("args", [["--shard", "3/2"], ["--shard", "x"], ["--shard-run", "r1"]])
def test_run_refuses_bad_shards_before_any_engine(
    monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    monkeypatch.setattr(engines, "execute", _no_engine)
    result = CliRunner().invoke(cli, ["run", "--no-smoke", *args])
    assert result.exit_code == 2
    assert result.stderr.startswith("ERROR: --shard")
    assert "TIP: " in result.stderr
    assert "Traceback" not in result.output


def _no_engine(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("an engine was asked for")


def _keys(n: int) -> tuple[str, ...]:
    return tuple(f"image{i}/{variant}" for i in range(n) for variant in ("cpu", "cuda"))


@pytest.mark.parametrize("cells", [1, 2, 3, 7])
@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_every_cell_is_in_exactly_one_slice_whatever_the_order(cells: int, count: int) -> None:
    keys = _keys(cells)
    shuffled = list(keys)
    random.Random(count).shuffle(shuffled)
    slices = {
        index: [k for k in keys if Shard(index, count, "r", keys).owns(k)]
        for index in range(1, count + 1)
    }
    reordered = {
        index: [k for k in keys if Shard(index, count, "r", tuple(shuffled)).owns(k)]
        for index in range(1, count + 1)
    }
    assert reordered == slices  # the options' order (and so the cells') changes nothing
    assert sorted(k for found in slices.values() for k in found) == sorted(keys)
    sizes = [len(found) for found in slices.values()]
    assert max(sizes) - min(sizes) <= 1  # evened out: no slice idles while another has two more


def test_a_slice_deals_out_the_cells_it_cannot_build_too() -> None:
    cells = builtin_matrix(MatrixOptions(frameworks=("pytorch", "onnx", "openvino")))
    not_built = {"openvino/cuda": "not applicable: no CUDA build"}
    slices = [slice_cells((k, 3), "r", cells, not_built) for k in (1, 2, 3)]
    held = [key for found in slices for key in [*(c.key for c in found.cells), *found.not_built]]
    assert sorted(held) == sorted([*(c.key for c in cells), "openvino/cuda"])
    assert all(found.shard.cells == slices[0].shard.cells for found in slices)
    assert sum(bool(found.not_built) for found in slices) == 1


def test_the_run_identity_is_the_ci_run_else_the_cells(monkeypatch: pytest.MonkeyPatch) -> None:
    cells = builtin_matrix(MatrixOptions(frameworks=("pytorch", "onnx")))
    monkeypatch.delenv("GITHUB_RUN_ID", raising=False)
    local = run_identity(None, cells, None)
    assert local == run_identity(None, list(reversed(cells)), None)  # order does not matter
    assert local != run_identity(None, cells[:1], None)
    assert local != run_identity(None, cells, "gpu")
    assert run_identity("weekly-12", cells, None) == "weekly-12"
    monkeypatch.setenv("GITHUB_RUN_ID", "4242")
    monkeypatch.setenv("GITHUB_RUN_ATTEMPT", "2")
    assert run_identity(None, cells, None) == "github-4242"  # a re-run of failed jobs joins


def test_an_empty_slice_says_so_and_exits_0_without_an_engine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engines, "execute", _no_engine)
    args = ["run", "--no-smoke", "--framework", "pytorch", "--cuda", "cpu", "--shard", "2/2"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "shard 2/2: 0 of the run's 1 cells" in result.stderr
    assert "nothing to run in this slice: no results written" in result.stderr


def _slices(tmp_path: Path, count: int, given: tuple[int, ...]) -> list[Path]:
    """WHOLE cut into `count` slices as `run --shard` writes them; those in `given` kept."""
    data = json.loads(WHOLE.read_text())
    keys = tuple(data["run"]["options"]["cells"])
    paths = []
    for index in given:
        shard = Shard(index, count, "github-7-1", keys)
        part = json.loads(json.dumps(data))
        part["run"]["run_id"] = f"{data['run']['run_id']}-{index}"
        part["run"]["shard"] = {"index": index, "count": count, "run": "github-7-1", "cells": keys}
        owned = [r for r in data["results"] if shard.owns(f"{r['name']}/{r['variant']}")]
        part["results"] = owned
        part["run"]["options"]["cells"] = [f"{r['name']}/{r['variant']}" for r in owned]
        path = tmp_path / f"slice{index}" / "results.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(part))
        paths.append(path)
    return paths


def test_report_merges_the_slices_of_a_run_into_the_run(tmp_path: Path) -> None:
    paths = _slices(tmp_path, 2, (2, 1))
    runs = load_runs(paths)
    assert len(runs) == 1
    whole = load_runs([WHOLE])[0]
    assert [r.key for r in runs[0].records] == [r.key for r in whole.records]  # matrix order
    three = load_runs(_slices(tmp_path / "three", 3, (3, 1, 2)))[0]
    assert three.info.options["cells"] == whole.info.options["cells"]  # the matrix's order
    # The cells, as CSV rows, are the unsharded run's (the run id aside).
    merged_csv = render(runs, "csv", "").replace(runs[0].info.run_id, "ID")
    assert merged_csv == render([whole], "csv", "").replace(whole.info.run_id, "ID")
    text = render(runs, "markdown", "not drawn")
    assert "slices 1, 2 of 2 of sharded run `github-7-1`, every cell present." in text
    assert "| machine " not in text  # one machine's run, not two machines


def test_report_names_the_cells_of_a_missing_slice(tmp_path: Path) -> None:
    runs = load_runs(_slices(tmp_path, 3, (1, 3)))
    shard = Shard(2, 3, "r", tuple(json.loads(WHOLE.read_text())["run"]["options"]["cells"]))
    lost = [key for key in shard.cells if shard.owns(key)]
    text = render(runs, "markdown", "not drawn")
    assert f"**missing: slice 2/3 ({', '.join(lost)})**" in text


def test_a_slice_met_again_starts_the_next_run_of_its_identity(tmp_path: Path) -> None:
    """The same command sharded another day (or one slice run again): two runs, in the order
    they started, the later one missing what it did not run again."""
    first = _slices(tmp_path / "a", 2, (1, 2))
    again = _slices(tmp_path / "b", 2, (1,))
    data = json.loads(again[0].read_text())
    data["run"]["started_at"] = "2099-01-01T00:00:00+00:00"
    again[0].write_text(json.dumps(data))
    runs = load_runs([*again, *first])
    assert [run.info.shard.merged for run in runs if run.info.shard] == [(1, 2), (1,)]


def test_slices_from_runners_with_their_own_host_names_are_one_run(tmp_path: Path) -> None:
    paths = _slices(tmp_path, 2, (1, 2))
    data = json.loads(paths[1].read_text())
    data["run"]["host"] = data["run"]["engine"]["name"] = "runner-b"
    paths[1].write_text(json.dumps(data))
    runs = load_runs(paths)
    assert len(runs) == 1 and runs[0].info.shard and runs[0].info.shard.merged == (1, 2)


def test_unsharded_runs_and_other_machines_stay_apart(tmp_path: Path) -> None:
    runs = load_runs([WHOLE, *_slices(tmp_path, 2, (1, 2))])
    assert len(runs) == 2
    assert merge_slices(load_runs([WHOLE])) == load_runs([WHOLE])


def test_compare_reads_a_folder_of_slices_as_one_run(tmp_path: Path) -> None:
    _slices(tmp_path / "current", 2, (1, 2))
    result = CliRunner().invoke(cli, ["compare", str(WHOLE), str(tmp_path / "current")])
    assert result.exit_code == 0, result.output
    assert "onnx/cuda" in result.stdout and "pytorch/cpu" in result.stdout


def test_a_slice_records_its_shard_and_other_runs_write_none(tmp_path: Path) -> None:
    whole = load_results(WHOLE)
    assert "shard" not in results_document(whole.info, whole.records)["run"]
    shard = Shard(2, 3, "github-7-1", ("pytorch/cpu", "onnx/cpu"))
    sliced = replace(whole.info, shard=shard)
    write_results(tmp_path, results_document(sliced, whole.records))
    assert load_results(tmp_path).info.shard == shard
