"""`buildbench report`: output checked against stored references, merging, and error paths.

The fixtures in tests/unit/data are results of schema 1 (and 0): every report here also tests
their migration to the current schema."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cattrs import Converter
from click.testing import CliRunner

from buildbench import results
from buildbench.analyze.course import builder_comparison, course_comparison, labelled
from buildbench.analyze.derived import FIGURES, quantiles
from buildbench.cli import cli
from buildbench.cli import run as run_cli
from buildbench.engine import factory
from buildbench.engine.endpoint import Endpoint
from buildbench.errors import BuildFailed
from buildbench.record import (
    BUILD_TIMING,
    SCHEMA_VERSION,
    CellRecord,
    CommandDetail,
    Figures,
    Parity,
    Served,
    from_json,
    make_converter,
    model_of,
)
from buildbench.render import charts
from buildbench.render.fmt import number
from buildbench.render.report import (
    CHARTS_MISSING,
    REPORT_MD,
    draw_charts,
    load_runs,
    render,
    write_report,
)
from buildbench.results import MIGRATIONS, RunResults, load_results, migrate, results_document
from buildbench.run import engines
from buildbench.run.matrix import MatrixOptions, builtin_matrix
from buildbench.run.plan import RunPlan
from buildbench.run.progress import Progress, Silent
from buildbench.status import Status
from tests.fakes import FakeEngine, classic_stream
from tests.unit.references import DATA, reference

VM = DATA / "vm.json"
VM_BUILDKIT = DATA / "vm-buildkit.json"  # vm.json again with BuildKit; its onnx/cuda failed
GPU = DATA / "gpu-runner.json"
SCHEMA0 = DATA / "vm-schema0.json"
# A real `buildbench run --cuda both` in today's schema, as the Runner wrote it.
CURRENT = DATA / "vm-schema2.json"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_report_of_one_run_matches_reference(tmp_path: Path) -> None:
    path = write_report(tmp_path / REPORT_MD, load_runs([VM]))
    assert path.read_text() == reference("report-vm.md", path.read_text())


def test_report_draws_its_charts_next_to_it(tmp_path: Path) -> None:
    write_report(tmp_path / "weekly.md", load_runs([VM]))
    text = (tmp_path / "weekly.md").read_text()
    for name in ("weekly-build-time.png", "weekly-image-size.png"):
        assert f"]({name})" in text
        assert (tmp_path / name).read_bytes().startswith(PNG_MAGIC)


def test_two_machines_merge_into_one_report(tmp_path: Path) -> None:
    path = write_report(tmp_path / REPORT_MD, load_runs([VM, GPU]))
    text = path.read_text()
    assert text == reference("report-merged.md", text)
    assert "| machine " in text
    assert "**build_failed**" in text  # gpu-runner-01's onnx/cpu
    assert "no GPU on vm: CUDA images ran on CPU" in text
    assert "no GPU on gpu-runner-01" not in text


@pytest.mark.parametrize("format_", ["csv", "json"])
def test_csv_and_json_views_match_reference(format_: str) -> None:
    text = render(load_runs([VM, GPU]), format_, "not drawn")
    assert text == reference(f"report-merged.{format_}", text)


def test_json_view_has_the_course_ratios() -> None:
    document = json.loads(render(load_runs([VM]), "json", "not drawn"))
    cpu = next(row for row in document["course_comparison"] if row["variant"] == "cpu")
    assert cpu["faster"] == pytest.approx(91.588 / 25.706)
    assert cpu["course_faster"] == 1.28
    assert len(document["cells"]) == 4


def test_course_ratios_leave_out_failed_and_invalid_cells() -> None:
    rows = {(r["machine"], r["variant"]): r for r in course_comparison(load_runs([VM, GPU]))}
    assert rows["gpu-runner-01", "cpu"]["faster"] is None  # onnx/cpu did not build
    assert rows["gpu-runner-01", "cuda"]["smaller"] is None  # onnx/cuda is not a CUDA build
    assert rows["vm", "cuda"]["course_smaller"] == 8.5


def with_course_images(run: RunResults) -> RunResults:
    """The run as the course config gives it: each built-in cell followed by a course image of
    its framework (`course-pytorch` next to `pytorch`), built three times slower."""
    records: list[CellRecord] = []
    for r in run.records:
        slower = replace(r.build, seconds=[s * 3 for s in r.build.seconds])
        records += [r, replace(r, name=f"course-{r.name}", build=slower)]
    return RunResults(run.info, records)


def test_course_ratios_compare_only_the_builtin_images() -> None:
    runs = load_runs([VM])
    mixed = [with_course_images(run) for run in runs]
    assert course_comparison(mixed) == course_comparison(runs)
    cpu = course_comparison(mixed)[0]
    assert cpu["faster"] == pytest.approx(91.588 / 25.706)


def test_course_ratios_need_a_builtin_image() -> None:
    (run,) = load_runs([VM])
    renamed = [replace(r, name=f"course-{r.name}") for r in run.records]
    assert course_comparison([RunResults(run.info, renamed)]) == []


def test_cells_table_tells_a_config_image_from_the_builtin_one() -> None:
    text = render([with_course_images(run) for run in load_runs([VM])], "markdown", "n/a")
    cells = text.split("## Cells\n\n")[1].split("\n## ")[0]
    assert "| pytorch                  | cpu " in cells
    assert "| course-pytorch (pytorch) | cpu " in cells


def test_cells_left_out_before_building_are_named_with_why() -> None:
    (run,) = load_runs([VM])
    why = "no model runs on pytorch (a.onnx: an ONNX model has no PyTorch form)"
    options = {**run.info.options, "not_built": {"pytorch/cpu": why, "pytorch/cuda": why}}
    left_out = RunResults(replace(run.info, options=options), run.records)
    cells = render([left_out], "markdown", "n/a").split("## Cells\n\n")[1].split("\n## ")[0]
    assert f"Not built: pytorch/cpu, pytorch/cuda: {why}." in cells
    assert "Not built" not in render([run], "markdown", "n/a")


def test_chart_bars_are_keyed_by_cell_not_framework(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drawn: list[list[charts.Bar]] = []

    def grouped_bars(path: Path, bars: list[charts.Bar], **_: str) -> Path:
        drawn.append(bars)
        return path

    monkeypatch.setattr(charts, "grouped_bars", grouped_bars)
    runs = [with_course_images(run) for run in load_runs([VM, GPU])]
    draw_charts(runs, tmp_path / REPORT_MD)
    for bars in drawn:
        slots = [(bar.group, bar.series) for bar in bars]
        assert len(slots) == len(set(slots)) == 16  # 2 machines x 4 images x 2 variants
        assert {bar.colour for bar in bars} == {"pytorch", "onnx", "course-pytorch", "course-onnx"}
        assert [bar.series for bar in bars if bar.group == "cpu"][:4] == [
            "pytorch @ vm",
            "pytorch @ gpu-runner-01",
            "course-pytorch @ vm",
            "course-pytorch @ gpu-runner-01",
        ]


def test_one_host_twice_is_told_apart_by_run_id() -> None:
    labels = [label for label, _ in labelled(load_runs([VM, VM]))]
    assert labels == ["vm 20261125T142553Z-fd9b", "vm 20261125T142553Z-fd9b"]
    assert [label for label, _ in labelled(load_runs([VM, GPU]))] == ["vm", "gpu-runner-01"]


def test_one_host_with_both_builders_is_told_apart_by_builder() -> None:
    labels = [label for label, _ in labelled(load_runs([VM, VM_BUILDKIT]))]
    assert labels == ["vm (classic)", "vm (buildkit)"]
    labels = [label for label, _ in labelled(load_runs([VM, VM_BUILDKIT, VM]))]
    assert labels == ["vm 20261125T142553Z-fd9b", "vm (buildkit)", "vm 20261125T142553Z-fd9b"]


# --- classic builder vs BuildKit ---------------------------------------------------------------


def test_both_builders_merge_into_one_report_with_their_comparison(tmp_path: Path) -> None:
    path = write_report(tmp_path / REPORT_MD, load_runs([VM, VM_BUILDKIT]))
    text = path.read_text()
    assert text == reference("report-builders.md", text)
    section = text.split("## Classic builder vs BuildKit\n\n")[1].split("\n## ")[0]
    assert "| pytorch/cpu  | 91.6 s          | 71.2 s           | 1.29x " in section
    assert "onnx/cuda" not in section  # BuildKit's build of it failed
    assert "| machine " not in section  # one machine
    assert "| vm (buildkit) | onnx    | cuda      | build_failed " in text


def test_builder_comparison_pairs_cells_per_host() -> None:
    runs = load_runs([VM, VM_BUILDKIT])
    # Another machine: the engine's host names it (the client's host does not).
    other = [
        RunResults(replace(run.info, engine=replace(run.info.engine, name="vm2")), run.records)
        for run in runs
    ]
    rows = builder_comparison([*runs, *other, *load_runs([GPU])])
    assert [(row["machine"], row["cell"]) for row in rows] == [
        (host, cell)
        for host in ("vm", "vm2")
        for cell in ("pytorch/cpu", "onnx/cpu", "pytorch/cuda")
    ]
    assert rows[0]["faster"] == pytest.approx(91.588 / 71.214)
    assert (rows[0]["classic_size_bytes"], rows[0]["buildkit_size_bytes"]) == (938096654, 938091022)
    text = render([*runs, *other], "markdown", "not drawn")
    assert "| machine   | cell         | classic build   |" in text


@pytest.mark.parametrize(
    "paths",
    [[VM], [VM, GPU], [VM, VM], [VM_BUILDKIT]],
    ids=["vm", "two-hosts", "vm-twice", "buildkit-only"],
)
def test_no_builder_section_without_a_cell_both_builders_built(paths: list[Path]) -> None:
    text = render(load_runs(paths), "markdown", "not drawn")
    assert "Classic builder vs BuildKit" not in text
    assert builder_comparison(load_runs(paths)) == []


def test_without_matplotlib_the_report_says_charts_were_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    text = write_report(tmp_path / REPORT_MD, load_runs([VM])).read_text()
    assert f"Charts {CHARTS_MISSING}." in text
    assert not list(tmp_path.glob("*.png"))


class Screen:
    """No drawing: each engine's run reports to nobody."""

    def view(self, label: str = "") -> Progress:
        return Silent()

    def __enter__(self) -> Screen:
        return self

    def __exit__(self, *exc: object) -> None: ...


@pytest.fixture
def fake_engine(monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    """The engine every `factory.make_engine(endpoint)` of a run gets."""
    engine = FakeEngine(scripts=[classic_stream("sha256:" + "2" * 64)])
    engine.add_image("base:1", size=50, tags=("base:1",))
    monkeypatch.setattr(factory, "make_engine", lambda endpoint: engine)
    return engine


def test_run_writes_its_report_next_to_its_results(tmp_path: Path, fake_engine: FakeEngine) -> None:
    cells = builtin_matrix(
        MatrixOptions(frameworks=("onnx",), variants=("cpu",), base_image="base:1")
    )
    plan = RunPlan(cells=cells, base_image="base:1", results_dir=tmp_path)
    outcome = engines.run_on_engines([Endpoint("unix:///var/run/fake.sock")], plan, Screen())
    assert outcome.error is None
    (run,) = outcome.runs
    run_dir = tmp_path / run.info.run_id
    assert outcome.results == [run_dir / "results.json"]
    assert outcome.report == run_dir / REPORT_MD
    # The report is of this run's results file, as `buildbench report` would write it.
    runs = load_runs([run_dir])
    expected = render(runs, "markdown", draw_charts(runs, outcome.report))
    assert outcome.report.read_text() == expected
    assert [r.status for r in run.records] == [Status.OK]


def test_buildbench_run_leaves_a_report_next_to_its_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_engine: FakeEngine
) -> None:
    endpoint = Endpoint("unix:///var/run/fake.sock")
    monkeypatch.setattr(run_cli, "endpoints", lambda engines, contexts: [endpoint])
    args = ["--cuda", "cpu", "--framework", "onnx", "--base-image", "base:1", "--no-smoke", "-q"]
    result = CliRunner().invoke(cli, ["run", *args, "--results-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (run_dir,) = tmp_path.iterdir()
    assert f"report:  {run_dir / REPORT_MD}" in result.stdout
    assert f"results: {run_dir / 'results.json'}" in result.stdout
    assert "| onnx    | cpu       | ok " in (run_dir / REPORT_MD).read_text()
    assert (run_dir / "report-build-time.png").read_bytes().startswith(PNG_MAGIC)
    assert fake_engine.builds[0]["tag"].startswith("buildbench/onnx:cpu-")


def test_buildbench_run_exits_1_when_a_cell_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_engine: FakeEngine
) -> None:
    fake_engine.scripts = [BuildFailed("pip failed", ["ERROR: no onnxruntime"])]
    endpoint = Endpoint("unix:///var/run/fake.sock")
    monkeypatch.setattr(run_cli, "endpoints", lambda engines, contexts: [endpoint])
    args = ["--cuda", "cpu", "--framework", "onnx", "--base-image", "base:1", "--no-smoke", "-q"]
    result = CliRunner().invoke(cli, ["run", *args, "--results-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "failed cells: onnx/cpu" in result.stderr


# --- the command line -------------------------------------------------------------------------


def test_cli_prints_markdown_without_charts() -> None:
    code, out, err = invoke("report", str(VM))
    assert (code, err) == (0, "")
    assert out.startswith("# buildbench report\n")
    assert "Charts not drawn: give -o FILE to draw them." in out


def test_cli_writes_report_and_charts_with_output(tmp_path: Path) -> None:
    out_file = tmp_path / "out" / "report.md"
    code, out, err = invoke("report", str(VM), str(GPU), "-o", str(out_file))
    assert (code, out, err) == (0, "", f"report: {out_file}\n")
    assert out_file.read_text() == reference("report-merged.md", out_file.read_text())
    assert sorted(p.name for p in out_file.parent.glob("*.png")) == [
        "report-build-time.png",
        "report-image-size.png",
        "report-size-cold-start.png",
    ]


def test_cli_reads_run_directories(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text(VM.read_text())
    code, out, _ = invoke("report", str(tmp_path), "--format", "csv")
    assert code == 0
    assert out == render(load_runs([VM]), "csv", "not drawn")


def test_cli_csv_matches_reference() -> None:
    code, out, _ = invoke("report", str(VM), str(GPU), "--format", "csv")
    assert code == 0
    assert out == reference("report-merged.csv", out)


# --- loading: every error path is one ERROR line, a TIP, and exit status 2 -------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "results.json"
    path.write_text(text)
    return path


def document(**changes: object) -> str:
    data = json.loads(VM.read_text())
    data.update(changes)
    return json.dumps(data)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("{not json", "ERROR: {path} is not a readable results file (Expecting property name"),
        ('["a list"]', "ERROR: {path} has no schema_version: not a buildbench results file"),
        ('{"run": {}}', "ERROR: {path} has no schema_version: not a buildbench results file"),
        (
            document(schema_version=SCHEMA_VERSION + 1),
            f"ERROR: {{path}} uses results schema {SCHEMA_VERSION + 1}, newer than this "
            f"buildbench reads ({SCHEMA_VERSION})",
        ),
        (
            document(schema_version=-1),
            "ERROR: {path} uses results schema -1, older than any this buildbench reads",
        ),
        (
            document(results=None),
            """ERROR: {path} is malformed: TypeError("'NoneType' object is not iterable")""",
        ),
        (
            document(run=[]),
            "ERROR: {path} is malformed: ValueError('required field missing @ $.run_id;",
        ),
    ],
    ids=["not-json", "not-an-object", "no-version", "newer", "too-old", "no-cells", "no-run"],
)
def test_unreadable_results_are_one_line_errors(tmp_path: Path, text: str, error: str) -> None:
    path = write(tmp_path, text)
    code, out, err = invoke("report", str(path))
    assert (code, out) == (2, "")
    first, *rest = err.splitlines()
    assert first.startswith(error.format(path=path))
    assert len(rest) <= 1 and all(line.startswith("TIP: ") for line in rest)


def test_no_results_given() -> None:
    assert invoke("report") == (
        2,
        "",
        "ERROR: no results given\nTIP: buildbench report results/<run-id> [more runs ...]\n",
    )


def test_missing_file_and_run_directory_without_results(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.json"
    tip = "TIP: give a results.json or a run directory\n"
    assert invoke("report", str(missing)) == (2, "", f"ERROR: no results file at {missing}\n{tip}")
    empty = tmp_path / "run"
    empty.mkdir()
    # A folder may hold runs below it (a results folder): one without any is the error.
    expected = f"ERROR: no results.json in {empty}\nTIP: give results files or run directories\n"
    assert invoke("report", str(empty)) == (2, "", expected)


def test_a_results_folder_reports_every_run_below_it(tmp_path: Path) -> None:
    for name, source in (("a", VM), ("b", GPU)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(source.read_text())
    code, out, _ = invoke("report", str(tmp_path), "--format", "csv")
    assert code == 0
    assert out == render(load_runs([VM, GPU]), "csv", "not drawn")


def test_unwritable_output(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, out, err = invoke("report", str(VM), "-o", str(blocker / "report.md"))
    assert (code, out) == (2, "")
    assert err.startswith(f"ERROR: cannot write the report to {blocker / 'report.md'}: ")


def test_report_of_a_run_in_the_current_schema_matches_reference() -> None:
    text = render(load_runs([CURRENT]), "markdown", "not drawn")
    assert text == reference("report-schema2.md", text)


def _rounded(value: Any) -> Any:
    """Floats to 12 significant digits: derived figures (interval coverage) are recomputed,
    and two exact methods may differ in the last bits."""
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def test_what_the_runner_writes_reads_back_unchanged() -> None:
    run = load_results(CURRENT)
    written = results_document(run.info, run.records, FIGURES)
    assert _rounded(written) == _rounded(migrate(json.loads(CURRENT.read_text())))


def test_a_run_saved_again_and_again_makes_its_converter_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Making a converter costs 20 times the save of a run's document, and a run saves after
    every stage: one per set of figures, the same document each time, with or without them."""
    made: list[Figures] = []

    def counted(figures: Figures) -> Converter:
        made.append(figures)
        return make_converter(figures)

    monkeypatch.setattr(results, "make_converter", counted)
    results._converter.cache_clear()
    run = load_results(CURRENT)
    first = results_document(run.info, run.records, FIGURES)
    again = [results_document(run.info, run.records, FIGURES) for _ in range(3)]
    bare = results_document(run.info, run.records)
    assert again == [first] * 3 and len(made) == 2
    assert "stats" in json.dumps(first) and "stats" not in json.dumps(bare)


# --- older schemas are migrated ----------------------------------------------------------------


def test_schema_0_is_migrated_on_load() -> None:
    records = load_results(SCHEMA0).records
    assert [r.build.seconds for r in records] == [[91.588], [25.706]]
    assert [r.config_hash for r in records] == ["", ""]


def test_schema_1_is_migrated_on_load() -> None:
    run = load_results(VM)
    engine = run.info.engine
    assert (engine.server_version, engine.api_version) == ("20.10.24+dfsg1", "1.41")
    assert (engine.os, engine.arch, engine.storage_driver) == ("linux", "amd64", "overlay2")
    assert (engine.name, engine.endpoint, engine.cpu_model) == (
        "vm",
        "unknown (schema 1)",
        "AMD EPYC",
    )
    assert run.info.machine == "vm"
    cell = run.records[0]
    assert cell.build.seconds == [91.588, 88.904, 95.112] and cell.build.mode == "network"
    assert [step.index for step in cell.build.steps][:2] == [1, 2]
    assert cell.image is not None
    assert (cell.image.size_bytes, cell.image.compressed_size_source) == (938096654, "estimate")
    smoke = cell.smoke
    assert smoke is not None and smoke.status == Status.OK and smoke.kind == "model"
    assert smoke.cold_start_seconds == [2.84]  # one cold start then: a list of one now
    assert model_of(smoke).parity == {"1": Parity(3.2e-06, 1.1e-05, True)}
    latency = model_of(smoke).latency["1"]
    assert latency.samples == [0.0214, 0.0214, 0.0214]
    found = quantiles(latency)  # from the samples
    assert found.n == 3 and found.p50 == pytest.approx(0.0214)


def test_a_failed_cell_of_schema_1_has_no_image() -> None:
    failed = next(r for r in load_results(GPU).records if r.key == "onnx/cpu")
    assert failed.status == Status.BUILD_FAILED and failed.image is None
    assert failed.build.seconds == []


def test_the_method_says_how_much_of_each_build_packing_the_context_took() -> None:
    (old,) = load_runs([CURRENT])
    before = render([old], "markdown", "not drawn")
    assert "Context packed" not in before  # schema 2: packed before timing, not measured
    assert "includes context upload" in before  # and it says what its build times included
    run = RunResults(replace(old.info, timing=BUILD_TIMING), old.records)  # as a run now
    cell = run.records[0]
    cell.build.context_seconds, cell.build.context_bytes = [0.41, 0.39, 0.52], 210_000_000
    text = render([run], "markdown", "not drawn")
    method = text[text.index("## Method") :]
    assert "includes packing and sending the context, as docker build does" in method
    line = (
        f"- Context packed and sent within the build time (median): {cell.key} 0.41 s (210.00 MB)."
    )
    assert line in method.splitlines()


def test_schema_3_builds_are_read_with_their_packing_time_unknown() -> None:
    """Before schema 4 the context was packed before the clock started, and not timed: its
    time is None (not measured), not an empty list of samples or zero."""
    old = migrate(json.loads(CURRENT.read_text()))  # schema 2 up to the current one
    v3 = {**old, "schema_version": 3}
    for cell in v3["results"]:
        del cell["build"]["context_seconds"]
    new = MIGRATIONS[3](v3)
    assert new["schema_version"] == 4
    assert [cell["build"]["context_seconds"] for cell in new["results"]] == [None] * len(
        new["results"]
    )
    assert all(r.build.context_seconds is None for r in load_results(CURRENT).records)
    assert "context_seconds" not in v3["results"][0]["build"]  # the input is left alone


def _v5(document: dict[str, Any]) -> dict[str, Any]:
    """`document` stepped up to schema 5, as a buildbench before schema 6 wrote it."""
    while document["schema_version"] < 5:
        document = MIGRATIONS[document["schema_version"]](document)
    return document


V5_COMMAND = {"status": "ok", "message": "ok", "kind": "command", "seconds": 1.5}
V5_COMMAND |= {"output_tail": ["ready"], "command": ["serve", "--check"], "cuda_build": None}
V5_COMMAND |= {"parity": {}, "latency": {}, "served": None, "more_models": []}
V5_HTTP = {"status": "smoke_failed", "message": "no good answer", "kind": "http"}
V5_HTTP |= {"peak_memory_bytes": 52_428_800, "cold_start_seconds": [2.15], "command": None}
V5_HTTP |= {"parity_summary": None, "latency": {}, "model": None, "more_models": []}
V5_HTTP["served"] = {
    "request": "POST /predict on port 8000",
    "ready_seconds": 2.05,
    "levels": [
        {"concurrency": 1, "samples": [0.01], "seconds": 1.0, "warmup_seconds": 0.5}
        | {"requests": 3, "errors": {"status": 2}, "quantiles": {"n": 1}, "throughput": 1.0}
    ],
    "knee": 1,
}


def test_schema_5_smoke_results_get_the_header_and_their_kinds_detail() -> None:
    """Schema 6 keeps what every kind reports at the top of `smoke`, and the kind's own
    fields under `detail` (schema 5 had every kind's fields side by side)."""
    v5 = _v5(json.loads(CURRENT.read_text()))
    model = v5["results"][0]["smoke"]
    assert "latency" in model and "detail" not in model  # schema 5: flat
    v5["results"][0]["slim"] = {"status": "proven", "message": "ok", "smoke": model}
    v5["results"][1]["smoke"] = V5_COMMAND
    v5["results"].append({**v5["results"][1], "name": "svc", "smoke": V5_HTTP})
    new = MIGRATIONS[5](v5)
    assert new["schema_version"] == 6 and v5["schema_version"] == 5  # the input left alone
    smokes = [cell["smoke"] for cell in new["results"]]
    first, command, http = smokes[0], smokes[1], smokes[-1]
    assert set(first) == {
        "status",
        "message",
        "kind",
        "seconds",
        "output_tail",
        "python_version",
        "peak_memory_bytes",
        "cold_start_seconds",
        "detail",
    }
    assert first["detail"]["latency"] == model["latency"]  # samples and quantiles moved down
    assert first["detail"]["parity_summary"] == model["parity_summary"]
    assert first["cold_start_seconds"] == model["cold_start_seconds"]
    assert new["results"][0]["slim"]["smoke"] == first  # the candidate's too
    assert command == {**_only(V5_COMMAND), "detail": {"command": ["serve", "--check"]}}
    assert http == {**_only(V5_HTTP), "detail": V5_HTTP["served"]}

    found = [from_json(CellRecord, cell) for cell in new["results"]]
    records = [found[0], found[1], found[-1]]
    old = load_results(CURRENT).records[0].smoke
    assert records[0].smoke == old and model_of(old).latency  # as the old file reads now
    assert records[1].smoke is not None and records[1].smoke.detail == CommandDetail(
        ["serve", "--check"]
    )
    served = records[2].smoke.of(Served) if records[2].smoke else None
    assert served is not None and served.levels[0].errors == {"status": 2}
    assert records[2].smoke is not None and records[2].smoke.cold_start_seconds == [2.15]


def _only(smoke: dict[str, Any]) -> dict[str, Any]:
    header = ("status", "message", "kind", "seconds", "output_tail", "python_version")
    header += ("peak_memory_bytes", "cold_start_seconds")
    return {key: smoke[key] for key in header if key in smoke}


def test_every_schema_reads_to_the_same_smoke_results_as_before() -> None:
    """A schema 2 file read through every step gives the same records and report as the
    document written from them now (the migration loses nothing)."""
    run = load_results(CURRENT)
    again = migrate(results_document(run.info, run.records, FIGURES))
    assert [from_json(CellRecord, cell) for cell in again["results"]] == run.records


def test_migrate_steps_up_to_the_current_schema() -> None:
    old = json.loads(SCHEMA0.read_text())
    new = migrate(old)
    assert new["schema_version"] == SCHEMA_VERSION
    assert old["schema_version"] == 0  # the input is left alone
    assert migrate(new) is new
    assert new["run"]["engine"]["server_version"] == old["run"]["engine_version"]
    assert "engine_version" not in new["run"]


def test_schema_0_reports() -> None:
    text = render(load_runs([SCHEMA0]), "markdown", "not drawn")
    assert text == reference("report-schema0.md", text)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0.0999, "0.10"),
        (0.1004, "0.10"),
        (0.04, "0.040"),
        (0.996, "1.0"),
        (99.97, "100"),
        (2.345, "2.3"),
        (0.0, "0.0"),
        (-0.0999, "-0.10"),
    ],
)
def test_numbers_get_their_digits_from_the_rounded_value(value: float, shown: str) -> None:
    assert number(value) == shown


def test_schema_4_contents_are_read_with_the_installing_layer_unknown() -> None:
    """Before schema 5 a distribution or package did not record the layer that installed it:
    None (unknown), which `diff` and `compare` then leave out of their words."""
    old = migrate(json.loads(CURRENT.read_text()))
    v4 = {**old, "schema_version": 4}
    for cell in v4["results"]:
        for owners in ("distributions", "packages"):
            for owner in cell["contents"]["attribution"][owners]:
                del owner["layer"]
    new = MIGRATIONS[4](v4)
    assert new["schema_version"] == 5
    owners = [
        owner
        for cell in new["results"]
        for kind in ("distributions", "packages")
        for owner in cell["contents"]["attribution"][kind]
    ]
    assert owners and all(owner["layer"] is None for owner in owners)
    assert "layer" not in v4["results"][0]["contents"]["attribution"]["distributions"][0]
