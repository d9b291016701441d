"""`run --shard K/N` as a CI job matrix runs it: each slice a separate `buildbench run` from the
same folder, the empty slice a success that writes nothing, then one `report` over them all."""

from __future__ import annotations

from pathlib import Path

import pytest

from buildbench.engine.dockersdk import DockerEngine
from tests.integration.conftest import buildbench, remove_runs
from tests.integration.test_shared_engine import TINY

pytestmark = pytest.mark.integration


def test_three_slices_of_a_two_cell_run_report_as_one_run(
    tmp_path: Path, base_image: str, engine: DockerEngine
):
    (tmp_path / "tiny.dockerfile").write_text(TINY)
    (tmp_path / "buildbench.toml").write_text(
        '[[image]]\nname = "tiny"\ndockerfile = "tiny.dockerfile"\n'
        f'build_args = {{ BASE_IMAGE = "{base_image}" }}\n'
    )
    refused = buildbench("run", "--no-smoke", "--shard", "4/3", cwd=tmp_path)
    assert refused.process.returncode == 2
    assert refused.process.stderr.startswith("ERROR: --shard '4/3' is not a slice K/N")
    assert refused.results == []
    quick = ("-q", "--no-smoke", "--no-read-images", "--no-keep-images", "--no-preflight")
    slices = [buildbench("run", *quick, "--shard", f"{k}/3", cwd=tmp_path) for k in (3, 1, 2)]
    for ran in slices:
        assert ran.process.returncode == 0, ran.process.stderr
    said = [ran.process.stderr for ran in slices]
    empty = [text for text in said if "nothing to run in this slice" in text]
    assert len(empty) == 1 and "0 of the run's 2 cells" in empty[0]
    results = sorted(tmp_path.glob("results/*/results.json"))
    assert len(results) == 2  # one cell each; the empty slice wrote none
    report = buildbench("report", "results", cwd=tmp_path)
    assert report.process.returncode == 0, report.process.stderr
    text = report.process.stdout
    assert "2 cells, 2 ok, 0 failed" in text
    assert "of 3 of sharded run `" in text and "every cell present" in text
    assert "| machine " not in text  # one run of one machine, not two
    remove_runs(engine, tmp_path / "results")
