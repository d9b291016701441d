import json
from pathlib import Path

import pytest

from buildbench import record as status
from buildbench.engine import ContainerOutcome
from buildbench.matrix import Cell
from buildbench.record import CellRecord
from buildbench.smoke import program
from buildbench.smoke.runner import SmokeOptions, container_spec, judge, smoke_cell
from tests.fakes import FakeEngine

CPU = Cell("onnx", "cpu", Path("d"), Path("."), framework="onnx")
CUDA = Cell("onnx", "cuda", Path("d"), Path("."), framework="onnx")


def report(**overrides) -> dict:
    base = {
        "python_version": "3.11.2",
        "network": {"interfaces": ["lo"], "connection_failed": True, "error": "gaierror"},
        "framework_version": "1.32.0",
        "cuda_build": False,
        "gpu_used": False,
        "parity": {"1": {"max_abs_diff": 1e-7, "max_rel_diff": 1e-6, "ok": True}},
        "latency": {"1": {"p50": 0.01, "p95": 0.02, "samples": [0.01, 0.02]}},
        "first_output_epoch": 1002.5,
        "peak_memory_bytes": 10,
    }
    return {**base, **overrides}


def outcome(result: dict | None, **kw) -> ContainerOutcome:
    stdout = "" if result is None else program.RESULT_PREFIX + json.dumps(result) + "\n"
    return ContainerOutcome(
        kw.pop("exit_code", 0), stdout, kw.pop("stderr", ""), started_at=1000.0, seconds=3.0, **kw
    )


def test_a_good_report_is_ok_with_cold_start_from_container_start():
    smoke = judge(CPU, outcome(report()), gpus=False)
    assert smoke["status"] == status.OK
    assert smoke["cold_start_seconds"] == 2.5
    assert smoke["parity_summary"] == {"max_abs_diff": 1e-7, "max_rel_diff": 1e-6, "ok": True}


@pytest.mark.parametrize(
    ("cell", "result", "kw", "expected", "message"),
    [
        (CUDA, report(), {}, status.INVALID_VARIANT, "labelled CUDA"),
        (CPU, report(cuda_build=True), {}, status.INVALID_VARIANT, "labelled CPU"),
        (
            CPU,
            report(parity={"1": {"max_abs_diff": 0.5, "max_rel_diff": 1.0, "ok": False}}),
            {},
            status.SMOKE_FAILED,
            "differ from the reference",
        ),
        (
            CPU,
            report(network={"connection_failed": False}),
            {},
            status.SMOKE_FAILED,
            "reached the network",
        ),
        (
            CPU,
            {"error": "the framework does not import: ModuleNotFoundError"},
            {"exit_code": 3},
            status.SMOKE_FAILED,
            "does not import",
        ),
        (
            CPU,
            None,
            {"exit_code": 127, "stderr": "exec: python: not found"},
            status.SMOKE_FAILED,
            "did not run",
        ),
        (CPU, None, {"exit_code": None, "timed_out": True}, status.SMOKE_TIMEOUT, "killed"),
        (CPU, None, {"exit_code": 137, "oom_killed": True}, status.SMOKE_FAILED, "memory"),
    ],
)
def test_each_failure_gets_its_status_and_reason(cell, result, kw, expected, message):
    smoke = judge(cell, outcome(result, **kw), gpus=False)
    assert smoke["status"] == expected
    assert message in smoke["message"]


def test_the_container_is_locked_down(tmp_path: Path):
    spec = container_spec(CPU, SmokeOptions(timeout_seconds=7), tmp_path, False, {"l": "1"})
    assert spec.network is False and spec.read_only is True
    assert not spec.user.startswith("0")
    assert all(m.read_only for m in spec.mounts) and spec.mounts[0].source == str(tmp_path)
    assert spec.timeout_seconds == 7 and spec.memory_bytes > 0 and spec.pids_limit > 0
    assert spec.command[:2] == ["python", "/buildbench/program.py"]


def test_a_cuda_image_without_gpu_runs_and_says_so(tmp_path: Path):
    engine = FakeEngine(run_result=lambda image, spec: outcome(report(cuda_build=True)))
    record = CellRecord("onnx", "cuda", "onnx", status.OK, "d", {}, "h", image_id="img")
    smoke_cell(engine, CUDA, record, options=SmokeOptions(), artifacts=tmp_path, labels={})
    assert record.status == status.OK
    assert "--gpu" not in engine.runs[0][1].command  # auto: no NVIDIA runtime in the engine
    assert record.warnings == ["no GPU: this CUDA image ran its inference on the CPU"]


def test_gpus_auto_requests_them_where_the_engine_has_an_nvidia_runtime(tmp_path: Path):
    engine = FakeEngine(
        runtimes=("nvidia", "runc"), run_result=lambda image, spec: outcome(report(cuda_build=True))
    )
    record = CellRecord("onnx", "cuda", "onnx", status.OK, "d", {}, "h", image_id="img")
    smoke_cell(engine, CUDA, record, options=SmokeOptions(), artifacts=tmp_path, labels={})
    assert engine.runs[0][1].gpus is True and "--gpu" in engine.runs[0][1].command


def test_program_percentile_and_parity():
    from array import array

    assert program.percentile([5, 1, 4, 2, 3], 50) == 3
    assert program.percentile([1.0] * 19 + [9.0], 95) == 1.0
    assert program.percentile([1.0] * 19 + [9.0], 100) == 9.0
    result = program.parity([1.0, 2.0005], array("f", [1.0, 2.0]), rtol=1e-3, atol=1e-4)
    assert result["ok"] is True and result["max_abs_diff"] == pytest.approx(5e-4, rel=1e-3)
    assert program.parity([1.01], array("f", [1.0]), rtol=1e-3, atol=1e-4)["ok"] is False


COMMAND_CELL = Cell(
    "mine", "cpu", Path("d"), Path("."), smoke_command=("serve", "--check"), smoke_expect="ready"
)


@pytest.mark.parametrize(
    ("result", "expected", "message"),
    [
        (ContainerOutcome(0, "model ready\n", ""), status.OK, "ok"),
        (ContainerOutcome(0, "starting\n", ""), status.SMOKE_FAILED, "lacks 'ready'"),
        (ContainerOutcome(2, "", "boom"), status.SMOKE_FAILED, "exited with 2"),
        (ContainerOutcome(None, "", "", timed_out=True), status.SMOKE_TIMEOUT, "killed"),
    ],
)
def test_a_config_smoke_command_must_exit_zero_and_print_what_is_expected(
    result, expected, message, tmp_path: Path
):
    engine = FakeEngine(run_result=lambda image, spec: result)
    record = CellRecord("mine", "cpu", None, status.OK, "d", {}, "h", image_id="img")
    smoke_cell(engine, COMMAND_CELL, record, options=SmokeOptions(), artifacts=tmp_path, labels={})
    assert engine.runs[0][1].command == ["serve", "--check"]
    assert engine.runs[0][1].network is False
    assert record.smoke["status"] == expected and message in record.smoke["message"]
    assert record.status == expected


def test_a_container_with_a_network_interface_fails_even_if_dns_failed():
    net = {"interfaces": ["eth0", "lo"], "connection_failed": True, "error": "gaierror"}
    smoke = judge(CPU, outcome(report(network=net)), gpus=False)
    assert smoke["status"] == status.SMOKE_FAILED and "isolation" in smoke["message"]
