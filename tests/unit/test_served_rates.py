"""The open-loop sweep on the host: --slo-p95 handed to every HTTP cell, what the load generator
reports recorded as rate steps (raw samples kept), the rate at the SLO in results.json, compare
and history, the report's table and chart; a server's batching off and on side by side."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from buildbench.analyze.course import Entry
from buildbench.analyze.derived import FIGURES
from buildbench.analyze.metrics import METRIC_BY_KEY
from buildbench.errors import UsageError
from buildbench.measure.smoke.kinds.http.smoke import RATE_STEPS, loadgen_spec
from buildbench.record import (
    Batching,
    CellRecord,
    Served,
    ServedAnswers,
    SmokeResult,
    from_json,
    make_converter,
    to_json,
)
from buildbench.render.kinds.http import served_charts, served_section, serving_section
from buildbench.status import Status
from tests.fakes import FakeEngine
from tests.unit.test_http_smoke import HTTP, _context, _http, _serve, level, loadgen_report


def step(rate: float, samples: list[float], within: bool, **kw: Any) -> dict[str, Any]:
    errors = dict.fromkeys(("status", "body", "timeout", "connection", "late"), 0)
    found = {
        "rate": rate,
        "warmup_seconds": 0.5,
        "seconds": 1.0,
        "scheduled": len(samples) + sum(kw.get("errors", {}).values()),
        "samples": samples,
        "errors": {**errors, **kw.pop("errors", {})},
        "first_bad": None,
        "max_lag_seconds": 0.001,
        "within_slo": within,
        "stopped": False,
    }
    return {**found, **kw}


RATES = [
    step(40.0, [0.010] * 40, True),
    step(80.0, [0.012] * 80, True),
    step(160.0, [0.300] * 100, False, errors={"late": 60}, max_lag_seconds=0.25),
    step(113.0, [0.030] * 113, True),
]


def test_the_slo_reaches_every_http_clients_command_line() -> None:
    """The run's SLO travels as its timeouts do, on the load generator's command line: every
    service that runs through the http kind's client sweeps (the built-in servers too), and
    the volume's files stay the config's alone."""
    spec = loadgen_spec(HTTP)
    assert spec["rate_steps"] == RATE_STEPS and "slo_p95_seconds" not in spec
    assert spec["open_connections"] == 16  # concurrency (1, 4): the pool's least
    assert loadgen_spec(replace(HTTP, concurrency=(1, 64)))["open_connections"] == 64
    plain, swept = HTTP.client(_ctx()), HTTP.client(_ctx(slo_p95_ms=50.0))
    assert "slo_p95_seconds" not in json.loads(plain.command[-1])
    assert json.loads(swept.command[-1])["slo_p95_seconds"] == 0.05
    # the client's bounds grow with the sweep: time for its steps, threads for its pool
    assert plain.pids_limit == 4 + 64 and swept.pids_limit == 16 + 64
    per_step = HTTP.warmup_seconds + HTTP.seconds + 30 + 5
    assert swept.timeout_seconds == pytest.approx(plain.timeout_seconds + RATE_STEPS * per_step)


def _ctx(**options: Any) -> Any:
    return _context(FakeEngine(), timeout_seconds=60, **options)


def _swept_result(rates: list[dict[str, Any]] = RATES, **http: Any) -> SmokeResult:
    report = loadgen_report(rates=rates, slo_p95_seconds=0.05)
    result, _ = _serve(report, http=replace(HTTP, **http))
    return result


def test_each_rate_step_is_recorded_with_its_raw_samples_and_the_rate_at_the_slo() -> None:
    result = _swept_result()
    assert result.status == Status.OK
    served = result.of(Served)
    assert served is not None and served.slo_p95_seconds == 0.05
    assert [s.rate for s in served.rates] == [40.0, 80.0, 160.0, 113.0]
    assert served.rates[2].samples == [0.300] * 100 and served.rates[2].errors["late"] == 60
    assert served.rates[2].max_lag_seconds == 0.25 and not served.rates[2].within_slo
    assert served.rate_at_slo() == 113.0
    assert from_json(SmokeResult, to_json(result)) == result


def test_no_rate_within_the_slo_is_a_finding_not_a_failure() -> None:
    result = _swept_result([step(5.0, [0.4] * 5, False), step(2.5, [0.3] * 2, False)])
    served = result.of(Served)
    assert result.status == Status.OK and served is not None and served.rate_at_slo() is None


def _record(name: str = "svc", **http: Any) -> CellRecord:
    record = CellRecord(name, "cpu", None, "d", {}, "h")
    record.smoke = _swept_result(**http)
    return record


def test_results_json_has_each_steps_figures_and_the_rate_at_the_slo() -> None:
    served = make_converter(FIGURES).unstructure(_record())["smoke"]["detail"]
    assert served["rate_at_slo"] == 113.0 and served["slo_p95_seconds"] == 0.05
    first = served["rates"][0]
    assert first["throughput"] == 40.0 and first["quantiles"]["p95"] == pytest.approx(0.010)
    assert first["samples"] == [0.010] * 40


def test_compare_and_history_follow_the_rate_at_the_slo_as_a_time_per_answer() -> None:
    metric = METRIC_BY_KEY["served_slo_seconds_per_answer"]
    assert metric.value(_record()) == pytest.approx(1 / 113.0)
    plain = CellRecord("svc", "cpu", None, "d", {}, "h")
    plain.smoke = _serve(loadgen_report())[0]
    assert metric.value(plain) is None  # no sweep: no figure


def test_the_served_section_has_the_rate_at_the_slo_and_each_step() -> None:
    text = served_section([Entry("vm", _record())], merged=False)
    lines = text.splitlines()
    assert lines[2].rstrip().endswith("| knee   | rate at SLO          |")
    assert lines[4].rstrip().endswith("| c=1    | 113/s (p95 <= 50 ms) |")
    rows = [line for line in lines if line.startswith("| svc/cpu | ") and "/s " in line]
    by_rate = [row for row in rows if row.split("|")[2].strip().endswith("/s")]
    assert [row.split("|")[2].strip() for row in by_rate] == [
        "40.0/s",
        "80.0/s",
        "113/s",
        "160/s",
    ]
    over = by_rate[-1]
    assert "| 100 / 160 " in over and "| 60 late " in over and "| 250 ms " in over
    assert over.rstrip().endswith("| no           |")
    assert "coordinated-omission correction" in text


def test_a_plain_run_has_no_slo_column() -> None:
    plain = CellRecord("svc", "cpu", None, "d", {}, "h")
    plain.smoke = _serve(loadgen_report())[0]
    text = served_section([Entry("vm", plain)], merged=False)
    assert "rate at SLO" not in text and "arrival rate" not in text


def test_the_chart_of_p95_against_arrival_rate(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    found = served_charts([Entry("vm", _record("a")), Entry("vm", _record("b"))], merged=False)
    assert [suffix for _, suffix, _ in found] == ["served", "served-rates"]
    title, _, draw = found[1]
    assert title == "Served: p95 against arrival rate (open loop)"
    assert draw(tmp_path / "rates.png").read_bytes().startswith(b"\x89PNG")


def _batched(enabled: bool, samples: dict[int, list[float]]) -> CellRecord:
    batching = Batching(enabled, "srv/cpu", 8 if enabled else None, 5.0 if enabled else None)
    record = CellRecord("srv-batched" if enabled else "srv", "cpu", None, "d", {}, "h")
    levels = [level(c, found) for c, found in samples.items()]
    record.smoke = _serve(loadgen_report(levels=levels), http=replace(HTTP, batching=batching))[0]
    return record


def test_batching_off_and_on_side_by_side_per_concurrency() -> None:
    off = _batched(False, {1: [0.01] * 10, 4: [0.04] * 20})
    on = _batched(True, {1: [0.015] * 8, 4: [0.02] * 50})
    served = on.smoke.of(Served) if on.smoke else None
    assert served is not None and served.batching == Batching(True, "srv/cpu", 8, 5.0)
    text = served_section([Entry("vm", off), Entry("vm", on)], merged=False)
    rows = [line for line in text.splitlines() if "| max " in line]
    assert len(rows) == 2
    assert "| max 8, 5.0 ms " in rows[0] and "| 10.0/s " in rows[0] and "| -20% " in rows[0]
    assert "| 20.0/s " in rows[1] and "| 50.0/s " in rows[1] and "| +150% " in rows[1]
    alone = served_section([Entry("vm", on)], merged=False)  # its pair not measured
    assert "throughput off" not in alone


def test_schema_6_services_read_with_no_sweep_and_batching_unknown() -> None:
    from buildbench.results import MIGRATIONS

    cell = to_json(_record())
    for key in ("slo_p95_seconds", "rates", "batching"):
        del cell["smoke"]["detail"][key]
    model = {"name": "m", "smoke": {"kind": "model", "detail": {"latency": {}}}}
    v6 = {"schema_version": 6, "run": {}, "results": [cell, model]}
    v7 = MIGRATIONS[6](v6)
    assert v7["schema_version"] == 7 and v7["results"][1] == model
    detail = v7["results"][0]["smoke"]["detail"]
    assert (detail["slo_p95_seconds"], detail["rates"], detail["batching"]) == (None, [], None)
    assert "rates" not in cell["smoke"]["detail"]  # the input is left alone
    read = from_json(CellRecord, v7["results"][0]).smoke
    assert read is not None and read.of(Served) is not None


def test_a_services_batching_is_read_from_its_table(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text("FROM python:3.11-slim\n")
    found = _http(
        tmp_path,
        "[image.smoke.http]\nport = 1\n"
        'batching = { enabled = true, pair = "svc", max_batch = 8, max_delay_ms = 5 }\n',
    )
    assert found is not None and found.batching == Batching(True, "svc", 8, 5.0)
    off = _http(
        tmp_path, '[image.smoke.http]\nport = 1\nbatching = { enabled = false, pair = "svc" }\n'
    )
    assert off is not None and off.batching == Batching(False, "svc")
    assert (_http(tmp_path, "[image.smoke.http]\nport = 1\n") or HTTP).batching is None


@pytest.mark.parametrize(
    ("batching", "message"),
    [
        ('{ pair = "svc" }', "batching needs enabled (true or false) and a pair name"),
        ("{ enabled = true }", "batching needs enabled (true or false) and a pair name"),
        ('{ enabled = 1, pair = "svc" }', "batching needs enabled"),
        ('{ enabled = true, pair = "s", max_batch = 0 }', "max_batch 0 is not a whole number"),
        ('{ enabled = true, pair = "s", max_delay_ms = -1 }', "max_delay_ms -1 is not millis"),
        ('{ enabled = true, pair = "s", size = 8 }', "batching has no key 'size'"),
    ],
)
def test_a_bad_batching_table_is_one_line_before_any_build(
    tmp_path: Path, batching: str, message: str
) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text("FROM python:3.11-slim\n")
    with pytest.raises(UsageError) as error:
        _http(tmp_path, f"[image.smoke.http]\nport = 1\nbatching = {batching}\n")
    assert message in error.value.message and "smoke.http" in error.value.message
    assert "\n" not in error.value.message and "batching = {" in (error.value.tip or "")


def test_a_servers_own_batching_run_is_set_beside_it_and_its_gain_in_the_serving_table() -> None:
    """A built-in server's cell holds its run with batching on (`batched`): the side-by-side
    rows under the cell's name and in the serving table the best throughput on against off
    and p95 at the highest concurrency; a server that does not batch says why."""
    off = _batched(False, {1: [0.01] * 10, 4: [0.04] * 20}).smoke
    on = _batched(True, {1: [0.015] * 8, 4: [0.02] * 50}).smoke
    assert off is not None and on is not None
    served, on_served = off.of(Served), on.of(Served)
    assert served is not None and on_served is not None
    answers = ServedAnswers("triton", "JSON", 10, ok=True)
    cell = CellRecord("triton", "cpu", None, "d", {}, "h")
    cell.smoke = replace(off, detail=replace(served, answers=answers, batched=on_served))
    text = served_section([Entry("vm", cell)], merged=False)
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in text.splitlines()]
    rows = [row for row in rows if row[1:2] == ["max 8, 5.0 ms"]]
    assert rows == [
        ["triton/cpu", "max 8, 5.0 ms", "1", "10.0/s", "8.0/s", "-20%", "10.0 ms", "15.0 ms"],
        ["triton/cpu", "max 8, 5.0 ms", "4", "20.0/s", "50.0/s", "+150%", "40.0 ms", "20.0 ms"],
    ]
    table = serving_section([Entry("vm", cell)], merged=False)
    assert "| max 8, 5.0 ms: throughput x2.50, p95 at c=4 40.0 ms -> 20.0 ms |" in table
    alone = Batching(False, "fastapi", unavailable="it has none")
    cell.smoke = replace(off, detail=replace(served, answers=answers, batching=alone))
    assert "| not applicable: it has none |" in serving_section([Entry("vm", cell)], False)
