"""Reading commands on the results of a fast model: tens of thousands of latency samples a cell
(16k-37k per loop, rounded to the microsecond as the load generator writes them, so tied).
`compare` once grew to 24 GB on them; every reading command must answer in bounded memory.
No engine needed: the results files are a real run's layout with large sample lists."""

from __future__ import annotations

import json
import os
import random
import resource
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.conftest import BUILDBENCH
from tests.unit.references import DATA

pytestmark = pytest.mark.integration

SAMPLES = (37_695, 16_342)  # the batch-1 loop of each run
ADDRESS_SPACE = 3 * 1024**3  # scipy and numpy map ~1.5 GB; the permutations wanted 4 GiB more
MAX_RSS_BYTES = 1024**3


def write_runs(folder: Path) -> list[Path]:
    """Two runs of vm.json's cells, each cell with SAMPLES[i] batch-1 latencies around 0.3 ms."""
    template = json.loads((DATA / "vm.json").read_text())
    found = []
    for n, (count, level) in enumerate(zip(SAMPLES, (310e-6, 295e-6), strict=True)):
        data = json.loads(json.dumps(template))
        data["run"]["run_id"] = f"20261206T{n:02d}0000Z-{n:04x}"
        data["run"]["started_at"] = f"2026-12-0{n + 5}T00:00:00+00:00"
        rng = random.Random(n)
        for cell in data["results"]:
            cell["smoke"]["latency"]["1"]["samples"] = [
                round(level * rng.lognormvariate(0, 0.15), 6) for _ in range(count)
            ]
        run_dir = folder / data["run"]["run_id"]
        run_dir.mkdir(parents=True)
        (run_dir / "results.json").write_text(json.dumps(data))
        found.append(run_dir)
    return found


@dataclass(frozen=True)
class Capped:
    returncode: int
    stdout: str
    stderr: str
    peak_bytes: int  # the command's own peak resident memory


def capped(*args: str, cwd: Path) -> Capped:
    """The console script run under an address-space cap, with its own peak resident memory
    (wait4 reports it for that child alone)."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))

    out, err = cwd / "stdout.txt", cwd / "stderr.txt"
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(
            [BUILDBENCH, *args], cwd=cwd, stdout=stdout, stderr=stderr, preexec_fn=cap
        )
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return Capped(process.returncode, out.read_text(), err.read_text(), usage.ru_maxrss * 1024)


def test_compare_of_tens_of_thousands_of_tied_samples_answers_in_bounded_memory(tmp_path: Path):
    baseline, current = write_runs(tmp_path / "results")
    ran = capped("compare", str(baseline), str(current), "--format", "json", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert "Traceback" not in ran.stderr
    assert ran.peak_bytes < MAX_RSS_BYTES
    document = json.loads(ran.stdout)
    assert document["format"] == "buildbench-compare/1"
    latency = [row for row in document["rows"] if row["metric_key"] == "latency_b1_seconds"]
    assert len(latency) == 4
    for row in latency:
        assert row["evidence"] == "p<0.001 (37695 vs 16342 samples)"
        assert 0 <= row["p_value"] < 0.001  # 5% faster over that many samples
        assert row["ratio"] == pytest.approx(295 / 310, rel=0.01)


def test_report_and_history_of_the_same_runs_answer_in_bounded_memory(tmp_path: Path):
    write_runs(tmp_path / "results")
    for command in (["report", "results", "--format", "json"], ["history", "--format", "json"]):
        ran = capped(*command, cwd=tmp_path)
        assert ran.returncode == 0, ran.stderr
        assert ran.peak_bytes < MAX_RSS_BYTES, command
        assert json.loads(ran.stdout)
