"""The report's first table (every runtime against PyTorch, per variant, the course's figures
beside ONNX Runtime) and its chart (image size against cold start)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from buildbench.measure import runtimes as registry
from buildbench.measure.runtimes import RUNTIMES
from buildbench.record import CellRecord, ModelDetail, OutputParity, Parity, model_of
from buildbench.render import charts
from buildbench.render.report import REPORT_MD, draw_charts, load_runs, render
from buildbench.render.runtimes import CHART_TITLE, TITLE, rows
from buildbench.results import RunResults
from buildbench.status import Status
from tests.unit.references import DATA, reference

VM = DATA / "vm.json"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def first_table(runs: list[RunResults], charts_: list[tuple[str, str]] | str = "n/a") -> str:
    text = render(runs, "markdown", charts_)
    return TITLE + text.split(TITLE)[1].split("\n## ")[0]


def cells(text: str, variant: str, runtime: str) -> list[str]:
    """The table's row of that variant and runtime, cell by cell."""
    for line in text.splitlines():
        found = [cell.strip() for cell in line.strip("|").split("|")]
        if found[:2] == [variant, runtime]:
            return found[2:]
    raise AssertionError(f"no row {variant} {runtime}")


def int8(onnx: CellRecord) -> CellRecord:
    """ONNX Runtime's cell again as the int8 form's: the same image, an accuracy figure."""
    accurate = OutputParity(
        0.021,
        0.3,
        True,
        mismatches=3,
        count=1000,
        note="accuracy: 99.7% within tolerance, top-1 agrees on 31 of 32",
    )
    other = OutputParity(
        0.004,
        0.1,
        True,
        mismatches=0,
        count=8,
        note="accuracy: 100.0% within tolerance, top-1 agrees on 1 of 1",
    )
    detail = replace(
        model_of(onnx.smoke),  # none without a smoke test
        parity={"1": Parity(0.021, 0.3, True)},
        outputs={"1": {"logits": other}, "32": {"logits": accurate}},
    )
    faster = replace(onnx.build, seconds=[s / 2 for s in onnx.build.seconds])
    return replace(
        onnx,
        name="onnx-int8",
        framework="onnx-int8",
        build=faster,
        smoke=onnx.smoke and replace(onnx.smoke, detail=detail),
    )


def with_int8(run: RunResults) -> RunResults:
    records = [*run.records, *(int8(r) for r in run.records if r.name == "onnx")]
    return RunResults(run.info, records)


def test_every_runtime_of_the_run_has_a_row_against_pytorch() -> None:
    runs = [with_int8(run) for run in load_runs([VM])]
    text = first_table(runs)
    assert text == reference("first-table.md", text)
    found = {(row.variant, row.runtime): row for row in rows(runs)}
    assert list(found) == [
        (v, n) for v in ("cpu", "cuda") for n in ("pytorch", "onnx", "onnx-int8")
    ]
    cpu = found["cpu", "onnx-int8"]
    assert cpu.build.times == pytest.approx(91.588 / (25.706 / 2))
    assert cpu.size.times == pytest.approx(938.1 / 336.05, rel=1e-3)
    assert found["cpu", "pytorch"].build.times is None  # PyTorch itself: no ratio
    assert set(cpu.latency) == {"1", "32"}  # the smallest and the largest batch
    assert cells(text, "cpu", "onnx-int8")[0] == "12.9 s (7.13x)"
    assert "ok, accuracy 99.7% within tolerance, top-1 32 of 33, max abs diff 2.1e-02" in text
    assert "25.7 s (3.56x), course 1.28x" in text  # the course beside ONNX Runtime
    assert "336.05 MB (2.79x), course 647.00 MB (1.94x)" in text
    assert "938.10 MB, course 1.25 GB" in text


def test_a_runtime_added_to_the_registry_has_its_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    @dataclass(frozen=True)
    class CpuOnly:
        name: str = "openvino"
        missing_variant: str | None = "its GPU plugin is for Intel GPUs"

    monkeypatch.setattr(registry, "RUNTIMES", (*RUNTIMES, CpuOnly()))
    (run,) = load_runs([VM])
    cpu = next(r for r in run.records if r.key == "onnx/cpu")
    ran = RunResults(run.info, [*run.records, replace(cpu, name="openvino")])
    text = first_table([ran])
    assert cells(text, "cpu", "openvino")[:2] == ["25.7 s (3.56x)", "336.05 MB (2.79x)"]
    assert set(cells(text, "cuda", "openvino")) == {"n/a"}  # its missing variant, and why
    assert "- `openvino/cuda`: its GPU plugin is for Intel GPUs" in text


def test_a_cell_without_a_figure_says_why_in_a_word() -> None:
    (run,) = load_runs([VM])
    why = "no model runs on onnx (a.pt2: no ONNX form)"
    options = {**run.info.options, "not_built": {"onnx/cuda": why}}
    records = []
    for r in run.records:
        if r.key == "onnx/cuda":
            continue
        if r.key == "onnx/cpu":
            r = replace(
                r,
                status=Status.BUILD_FAILED,
                error="pip: no matching distribution",
                image=None,
                smoke=None,
            )
        if r.key == "pytorch/cuda":
            assert r.image is not None
            r = replace(r, image=replace(r.image, compressed_size_bytes=None), smoke=None)
        records.append(r)
    text = first_table([RunResults(replace(run.info, options=options), records)])
    assert cells(text, "cpu", "onnx") == [
        "build failed, course 1.28x",  # the course's figures stay
        "build failed, course 647.00 MB (1.94x)",
        *["build failed"] * 5,
    ]
    assert cells(text, "cuda", "pytorch") == [
        "184 s",
        "5.40 GB, course 5.54 GB",
        "not read",
        *["not run"] * 4,  # no smoke test: cold start, the p50s, parity
    ]
    assert cells(text, "cuda", "onnx")[2:] == ["n/a"] * 5  # left out before building
    assert "- `onnx/cpu`: pip: no matching distribution" in text
    assert f"- `onnx/cuda`: {why}" in text


def test_a_model_a_runtime_cannot_run_is_not_applicable() -> None:
    (run,) = load_runs([VM])
    records = []
    for r in run.records:
        if r.name == "pytorch" and r.smoke is not None:
            why = "an ONNX model has no torch form"
            detail = ModelDetail(not_applicable=why)
            r = replace(r, smoke=replace(r.smoke, detail=detail, cold_start_seconds=[]))
        records.append(r)
    text = first_table([RunResults(run.info, records)])
    assert cells(text, "cpu", "pytorch")[3:] == ["n/a"] * 4
    assert "- `pytorch/cpu`: an ONNX model has no torch form" in text


def test_without_a_pytorch_cell_the_table_says_so() -> None:
    (run,) = load_runs([VM])
    alone = RunResults(run.info, [r for r in run.records if r.name != "pytorch"])
    text = first_table([alone])
    assert "This run has no PyTorch cell to hold the others against." in text
    assert "(3.56x)" not in text and "25.7 s, course 1.28x" in text


def test_the_chart_has_a_labelled_point_per_cell_and_a_marker_per_variant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drawn: list[tuple[list[charts.Point], str]] = []

    def scatter(path: Path, points: list[charts.Point], note: str = "", **_: str) -> Path:
        drawn.append((points, note))
        return path

    monkeypatch.setattr(charts, "scatter", scatter)
    (run,) = load_runs([VM])
    records = [replace(r, smoke=None) if r.key == "onnx/cuda" else r for r in run.records]
    links = draw_charts([with_int8(RunResults(run.info, records))], tmp_path / REPORT_MD)
    ((points, note),) = drawn
    assert [(p.label, p.marker) for p in points] == [
        ("pytorch", "cpu"),
        ("onnx", "cpu"),
        ("onnx-int8", "cpu"),
        ("pytorch", "cuda"),
    ]
    assert points[1].x == pytest.approx(0.91, abs=0.01) and points[1].y == pytest.approx(
        0.336, abs=1e-3
    )
    assert note == "not shown: onnx/cuda (not run), onnx-int8/cuda (not run)"
    assert links[0] == (CHART_TITLE, "report-size-cold-start.png")  # type: ignore[index]


def test_the_chart_is_drawn_and_shown_under_the_table(tmp_path: Path) -> None:
    path = tmp_path / REPORT_MD
    runs = load_runs([VM])
    links = draw_charts(runs, path)
    chart = tmp_path / "report-size-cold-start.png"
    assert chart.read_bytes().startswith(PNG_MAGIC)
    assert isinstance(links, list)
    text = render(runs, "markdown", links)
    table = first_table(runs, links)
    assert f"![{CHART_TITLE}](report-size-cold-start.png)" in table
    assert text.count("report-size-cold-start.png") == 1  # not again under Charts


def test_no_chart_without_a_cold_start(tmp_path: Path) -> None:
    (run,) = load_runs([VM])
    untested = RunResults(run.info, [replace(r, smoke=None) for r in run.records])
    links = draw_charts([untested], tmp_path / REPORT_MD)
    assert CHART_TITLE not in dict(links)
    assert not (tmp_path / "report-size-cold-start.png").exists()
