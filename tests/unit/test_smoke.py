"""The smoke test: its verdicts, its containers (locked down, as the engine is asked), the
artifacts volume, cold starts, and the config's own smoke commands."""

from __future__ import annotations

import json
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.types
import pytest

from buildbench.analyze.derived import cold_start_summary, quantiles, ran_on_cpu, worst_parity
from buildbench.engine.api import ContainerOutcome, ContainerSpec, VolumeMount
from buildbench.engine.dockersdk import DockerEngine, lockdown
from buildbench.engine.endpoint import Endpoint
from buildbench.measure.smoke import program
from buildbench.measure.smoke.kinds.command.smoke import CommandSmoke
from buildbench.measure.smoke.kinds.model.config import ModelConfig
from buildbench.measure.smoke.kinds.model.smoke import InferenceSmoke
from buildbench.measure.smoke.options import SmokeOptions, wants_gpus
from buildbench.measure.smoke.runner import MOUNT, SmokeContext
from buildbench.record import CellRecord, CommandDetail, Parity, SmokeResult, model_of
from buildbench.run.matrix import Cell
from buildbench.run.smokes import smoke_kind
from buildbench.run.stages import apply
from buildbench.status import Status
from tests.fakes import FakeEngine

CPU = Cell("onnx", "cpu", Path("d"), Path("."), framework="onnx", smoke=ModelConfig("onnx"))
CUDA = Cell("onnx", "cuda", Path("d"), Path("."), framework="onnx", smoke=ModelConfig("onnx"))


def _kind(cell: Cell, **options: Any) -> Any:  # InferenceSmoke or CommandSmoke
    found = smoke_kind(cell, SmokeOptions(**options))
    assert isinstance(found, InferenceSmoke | CommandSmoke)
    return found


def _context(engine: FakeEngine, options: SmokeOptions, **kw: Any) -> SmokeContext:
    fields: dict[str, Any] = {"labels": {"l": "1"}, "gpus": False, "volume": VOLUME, **kw}
    return SmokeContext(engine=engine, image="img", options=options, **fields)


def judge(cell: Cell, found: ContainerOutcome, gpus: bool) -> SmokeResult:
    return _kind(cell).judge(found, gpus)


def verdict(cell: Cell, smoke: SmokeResult) -> tuple[Status, str]:
    return _kind(cell).verdict(model_of(smoke))


def model_spec(
    cell: Cell, options: SmokeOptions, volume: str, gpus: bool, labels: dict[str, str]
) -> ContainerSpec:
    context = _context(FakeEngine(), options, volume=volume, gpus=gpus, labels=labels)
    return _kind(cell).spec(context)


VOLUME = "buildbench-smoke-r1"
ENGINE_STARTED = 1000.0  # the engine's clock: when the container's process started


def report(**overrides: Any) -> dict[str, Any]:
    """What the smoke program prints in `full` mode (raw samples; the host does statistics)."""
    base = {
        "python_version": "3.11.2",
        "mode": "full",
        "network": {"interfaces": ["lo"], "connection_failed": True, "error": "gaierror"},
        "framework_version": "1.32.0",
        "cuda_build": False,
        "gpu_used": False,
        "parity": {"1": {"max_abs_diff": 1e-7, "max_rel_diff": 1e-6, "ok": True}},
        "latency": {"1": {"samples": [0.01, 0.03, 0.02], "seconds": 2.1, "warmup": 3}},
        "started_epoch": ENGINE_STARTED + 0.4,  # the program's first line, its own clock
        "import_seconds": 1.0,
        "load_seconds": 0.5,
        "first_inference_seconds": 0.5,
        "first_output_epoch": ENGINE_STARTED + 2.4,
        "peak_memory_bytes": 10,
    }
    return {**base, **overrides}


def outcome(result: dict[str, Any] | None, **kw: Any) -> ContainerOutcome:
    stdout = "" if result is None else program.RESULT_PREFIX + json.dumps(result) + "\n"
    return ContainerOutcome(
        kw.pop("exit_code", 0),
        stdout,
        kw.pop("stderr", ""),
        seconds=3.0,
        start_request_seconds=0.1,
        engine_started_epoch=kw.pop("engine_started_epoch", ENGINE_STARTED),
        **kw,
    )


def test_a_good_report_is_ok_with_cold_start_split_by_phase() -> None:
    smoke = judge(CPU, outcome(report()), gpus=False)
    assert (smoke.status, smoke.message, smoke.kind) == (Status.OK, "ok", "model")
    # Start request (client clock) + engine start -> program start, then the program's phases.
    (startup,) = model_of(smoke).startup
    assert startup.container_start == pytest.approx(0.5)
    assert (startup.framework_import, startup.model_load, startup.first_inference) == (
        1.0,
        0.5,
        0.5,
    )
    assert smoke.cold_start_seconds == [2.5]
    assert worst_parity(model_of(smoke)) == Parity(1e-7, 1e-6, True)
    assert smoke.seconds == 3.0 and smoke.peak_memory_bytes == 10


def test_latency_is_computed_here_from_the_raw_samples() -> None:
    smoke = judge(CPU, outcome(report()), gpus=False)
    latency = model_of(smoke).latency["1"]
    assert latency.samples == [0.01, 0.03, 0.02]
    assert (latency.warmup, latency.seconds) == (3, 2.1)
    found = quantiles(latency)
    assert found.p50 == pytest.approx(0.02)
    assert found.p95 == pytest.approx(0.029)  # type 7: between the two largest
    assert found.p99 == pytest.approx(0.0298)
    assert found.n == 3
    assert found.p50_ci is not None


def test_without_the_engines_start_time_there_is_no_cold_start() -> None:
    smoke = judge(CPU, outcome(report(), engine_started_epoch=None), gpus=False)
    assert smoke.status == Status.OK
    assert (model_of(smoke).startup, smoke.cold_start_seconds) == ([], [])


@pytest.mark.parametrize(
    ("cell", "result", "kw", "expected", "message"),
    [
        (CUDA, report(), {}, Status.INVALID_VARIANT, "labelled CUDA"),
        (CPU, report(cuda_build=True), {}, Status.INVALID_VARIANT, "labelled CPU"),
        (
            CPU,
            report(parity={"1": {"max_abs_diff": 0.5, "max_rel_diff": 1.0, "ok": False}}),
            {},
            Status.SMOKE_FAILED,
            "differ from the reference",
        ),
        (CPU, report(parity={}), {}, Status.SMOKE_FAILED, "no parity reported"),
        (
            CPU,
            report(network={"interfaces": [], "connection_failed": False}),
            {},
            Status.SMOKE_FAILED,
            "reached the network",
        ),
        (CPU, report(network=None), {}, Status.SMOKE_FAILED, "reached the network"),
        (
            CPU,
            {"error": "the framework does not import: ModuleNotFoundError"},
            {"exit_code": 3},
            Status.SMOKE_FAILED,
            "does not import",
        ),
        (
            CPU,
            None,
            {"exit_code": 127, "stderr": "exec: python: not found"},
            Status.SMOKE_FAILED,
            "did not run",
        ),
        (CPU, None, {"exit_code": None, "timed_out": True}, Status.SMOKE_TIMEOUT, "killed"),
        (CPU, None, {"exit_code": 137, "oom_killed": True}, Status.SMOKE_FAILED, "memory"),
    ],
)
def test_each_failure_gets_its_status_and_reason(
    cell: Cell, result: dict[str, Any] | None, kw: dict[str, Any], expected: Status, message: str
) -> None:
    smoke = judge(cell, outcome(result, **kw), gpus=False)
    assert smoke.status == expected
    assert message in smoke.message


def test_a_failure_keeps_the_output_tail_without_the_protocol_lines() -> None:
    stderr = "\n".join(
        [f"{program.PROGRESS_PREFIX}loading the model", *(f"line {i}" for i in range(20))]
    )
    smoke = judge(CPU, outcome(None, exit_code=1, stderr=stderr), gpus=False)
    assert smoke.output_tail == [f"line {i}" for i in range(5, 20)]


def test_a_container_with_a_network_interface_fails_even_if_dns_failed() -> None:
    net = {"interfaces": ["eth0", "lo"], "connection_failed": True, "error": "gaierror"}
    smoke = judge(CPU, outcome(report(network=net)), gpus=False)
    assert smoke.status == Status.SMOKE_FAILED and "isolation" in smoke.message


def test_verdict_of_a_result_without_findings() -> None:
    assert verdict(CPU, SmokeResult(Status.OK, "ok", "model"))[0] == Status.SMOKE_FAILED


# ---------------------------------------------------------------------------------------------
# The container: what the spec asks for, and what the engine is really sent


def test_the_model_container_is_locked_down() -> None:
    spec = model_spec(CPU, SmokeOptions(timeout_seconds=7), VOLUME, False, {"l": "1"})
    assert spec.network is False and spec.read_only is True
    assert not spec.user.startswith("0")
    assert spec.volumes == (VolumeMount(VOLUME, MOUNT, read_only=True),)
    assert spec.timeout_seconds == 7 and spec.memory_bytes > 0 and spec.pids_limit > 0
    assert spec.timeout_from_last_line  # its progress lines: slow is not a hang
    assert spec.command[:2] == ["python", "/buildbench/program.py"]
    assert "--mode=full" in spec.command and spec.gpus is False and spec.labels == {"l": "1"}
    assert spec.inputs == () and spec.entrypoint == ()


def test_lockdown_is_the_host_config_the_engine_gets() -> None:
    spec = model_spec(CPU, SmokeOptions(memory_bytes=2 * 1024**3), VOLUME, False, {})
    config = lockdown(spec)
    assert config["network_mode"] == "none"
    assert config["read_only"] is True
    assert config["cap_drop"] == ["ALL"]
    assert config["security_opt"] == ["no-new-privileges"]
    assert config["mem_limit"] == config["memswap_limit"] == 2 * 1024**3  # no swap on top
    assert config["pids_limit"] == 256
    assert config["tmpfs"] == {"/tmp": "size=256m"}
    assert config["mounts"] == [docker.types.Mount(MOUNT, VOLUME, type="volume", read_only=True)]
    assert "device_requests" not in config and "binds" not in config and "privileged" not in config


def test_gpus_are_the_only_device_a_container_gets() -> None:
    config = lockdown(ContainerSpec(command=["true"], gpus=True))
    assert config["device_requests"] == [
        docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])
    ]
    assert lockdown(ContainerSpec(command=["true"], network=True))["network_mode"] == "bridge"


class RecordingAPI(docker.APIClient):
    """The Docker SDK's own API client (it builds the request bodies), with the HTTP calls
    replaced by records: what `DockerEngine` sends is what an engine would receive."""

    def __init__(self) -> None:
        super().__init__(base_url="unix:///nonexistent.sock", version="1.41")
        self.created: list[dict[str, Any]] = []
        self.calls: list[tuple[Any, ...]] = []

    def create_container_from_config(
        self, config: dict[str, Any], name: str | None = None, platform: str | None = None
    ) -> dict[str, str]:
        self.created.append(config)
        return {"Id": f"c{len(self.created)}"}

    def put_archive(self, container: str, path: str, data: bytes) -> bool:
        self.calls.append(("put_archive", container, path, data))
        return True

    def start(self, container: str) -> None:
        self.calls.append(("start", container))

    def wait(self, container: str, timeout: int | None = None, **kwargs: Any) -> dict[str, int]:
        self.calls.append(("wait", container, timeout))
        return {"StatusCode": 0}

    def inspect_container(self, container: str) -> dict[str, Any]:
        return {"State": {"OOMKilled": False, "StartedAt": "2026-11-25T10:00:00.250000000Z"}}

    def logs(
        self,
        container: str,
        stdout: bool = True,
        stderr: bool = True,
        stream: bool = False,
        **kw: Any,
    ) -> bytes | Iterator[bytes]:
        if stream:
            return iter([b"BUILDBENCH_PROGRESS timing", b" batch size 1\nlast\n"])
        return b"out\n" if stdout else b"BUILDBENCH_PROGRESS timing batch size 1\nlast\n"

    def remove_container(self, container: str, v: bool = False, force: bool = False) -> None:
        self.calls.append(("remove_container", container, v, force))

    def attach_socket(self, container: str, params: Any = None, ws: bool = False) -> Any:
        self.calls.append(("attach_socket", container, params))
        return self.socket

    class Socket:
        closed = False

        def close(self) -> None:
            self.closed = True

    socket = Socket()


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> RecordingAPI:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))  # no proxy settings of this machine
    return RecordingAPI()


def _engine(api: RecordingAPI) -> DockerEngine:
    engine = DockerEngine.__new__(DockerEngine)  # connected to nothing: the API is recorded
    engine.api = api
    engine._endpoint = Endpoint("unix:///nonexistent.sock")
    return engine


def test_docker_engine_run_sends_the_locked_down_request(api: RecordingAPI) -> None:
    spec = model_spec(CPU, SmokeOptions(memory_bytes=2 * 1024**3), VOLUME, False, {"l": "1"})
    lines: list[str] = []
    found = _engine(api).run("img", spec, on_stderr=lines.append)
    (config,) = api.created
    assert config["Image"] == "img" and config["Cmd"] == spec.command
    assert config["User"] == "65534:65534"
    assert config["NetworkDisabled"] is True
    assert config["Labels"] == {"l": "1"}
    assert config["Env"] == ["HOME=/tmp", "PYTHONDONTWRITEBYTECODE=1"]
    host = config["HostConfig"]
    assert host["NetworkMode"] == "none"
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["Memory"] == host["MemorySwap"] == 2 * 1024**3
    assert host["PidsLimit"] == 256
    assert host["Tmpfs"] == {"/tmp": "size=256m"}
    assert host["Mounts"] == [
        {"Target": MOUNT, "Source": VOLUME, "Type": "volume", "ReadOnly": True}
    ]
    assert not {"Binds", "Privileged", "DeviceRequests", "CapAdd"} & set(host)  # no host path
    # Started, waited for (in steps of 30 s at most, so that progress can move the timeout
    # on), and removed with its anonymous volumes.
    assert api.calls[0] == ("start", "c1")
    assert ("wait", "c1", 30) in api.calls
    assert api.calls[-1] == ("remove_container", "c1", True, True)
    assert (found.exit_code, found.stdout, found.timed_out, found.oom_killed) == (
        0,
        "out\n",
        False,
        False,
    )
    assert found.engine_started_epoch == pytest.approx(1795600800.25)
    assert lines == ["BUILDBENCH_PROGRESS timing batch size 1", "last"]  # followed, by line


def test_docker_engine_run_copies_inputs_in_before_the_start(api: RecordingAPI) -> None:
    spec = ContainerSpec(command=["python3", "-c", "1"], read_only=False, inputs=(("/tmp", b"T"),))
    _engine(api).run("img", spec)
    assert [call[0] for call in api.calls[:2]] == ["put_archive", "start"]
    assert api.calls[0] == ("put_archive", "c1", "/tmp", b"T")
    assert api.created[0]["HostConfig"]["ReadonlyRootfs"] is False


def test_a_volume_is_filled_through_a_never_started_helper(api: RecordingAPI) -> None:
    _engine(api).fill_volume(VOLUME, b"archive", "base:1")
    (config,) = api.created
    assert config["Image"] == "base:1" and config["NetworkDisabled"] is True
    assert config["HostConfig"]["Mounts"] == [
        {"Target": "/fill", "Source": VOLUME, "Type": "volume", "ReadOnly": False}
    ]
    assert api.calls == [
        ("put_archive", "c1", "/fill", b"archive"),
        ("remove_container", "c1", True, True),
    ]


def test_the_run_lock_is_a_locked_down_container_that_dies_with_this_process(
    api: RecordingAPI,
) -> None:
    api.socket = RecordingAPI.Socket()
    with _engine(api).hold("base:1", {"buildbench.lock": "1"}):
        assert api.calls[-1] == ("start", "c1")
        assert not api.socket.closed
    (config,) = api.created
    assert config["Cmd"] == ["cat"] and config["Labels"] == {"buildbench.lock": "1"}
    assert config["OpenStdin"] is True and config["StdinOnce"] is True  # our EOF ends it
    host = config["HostConfig"]
    assert host["AutoRemove"] is True and host["NetworkMode"] == "none"
    assert host["ReadonlyRootfs"] is True and host["CapDrop"] == ["ALL"]
    assert (host["Memory"], host["PidsLimit"]) == (32 * 1024**2, 4)
    assert api.socket.closed
    assert api.calls[-1] == ("remove_container", "c1", True, True)


# ---------------------------------------------------------------------------------------------
# A cell's whole smoke test, against the fake engine


def _record(cell: Cell) -> CellRecord:
    return CellRecord(cell.name, cell.variant, cell.framework, "d", {}, "h", image_id="img")


def _smoke(engine: FakeEngine, cell: Cell, **options: Any) -> SmokeResult:
    chosen = SmokeOptions(**options)
    context = _context(engine, chosen, gpus=wants_gpus(engine.info(), chosen.gpus))
    return _kind(cell, **options).run(context)


def test_a_cuda_image_without_gpu_runs_and_says_so() -> None:
    engine = FakeEngine(run_result=lambda image, spec: outcome(report(cuda_build=True)))
    record = _record(CUDA)
    result = _smoke(engine, CUDA)
    assert result is not None
    apply(record, result)
    assert record.status == Status.OK
    assert "--gpu" not in engine.runs[0][1].command  # auto: no NVIDIA runtime in the engine
    assert record.smoke is not None and ran_on_cpu(record.smoke)
    assert record.warnings == []  # derived from the smoke fields where it is shown


def test_gpus_auto_requests_them_where_the_engine_has_an_nvidia_runtime() -> None:
    engine = FakeEngine(
        runtimes=("nvidia", "runc"), run_result=lambda image, spec: outcome(report(cuda_build=True))
    )
    _smoke(engine, CUDA)
    assert engine.runs[0][1].gpus is True and "--gpu" in engine.runs[0][1].command
    assert not wants_gpus(engine.info(), "none") and wants_gpus(FakeEngine().info(), "all")


def test_cold_start_is_one_fresh_container_each() -> None:
    starts = iter([0.4, 0.9, 0.6])

    def result(image: str, spec: ContainerSpec) -> ContainerOutcome:
        mode = "full" if "--mode=full" in spec.command else "startup"
        found = report(started_epoch=ENGINE_STARTED + next(starts), mode=mode)
        return outcome(found if mode == "full" else {**found, "parity": {}, "latency": {}})

    engine = FakeEngine(run_result=result)
    smoke = _smoke(engine, CPU, cold_starts=3)
    assert smoke is not None and smoke.status == Status.OK
    modes = [next(a for a in spec.command if a.startswith("--mode=")) for _, spec in engine.runs]
    assert modes == ["--mode=full", "--mode=startup", "--mode=startup"]
    assert all(spec.volumes == (VolumeMount(VOLUME, MOUNT),) for _, spec in engine.runs)
    assert smoke.cold_start_seconds == [2.5, 3.0, 2.7]
    assert len(model_of(smoke).startup) == 3 and cold_start_summary(smoke).median == 2.7
    assert smoke.seconds == 9.0  # every container's time
    assert list(model_of(smoke).latency) == ["1"]  # from the full run only


def test_a_cold_start_that_fails_fails_the_smoke_test() -> None:
    answers = iter([outcome(report()), outcome(None, exit_code=139, stderr="Segmentation fault")])
    engine = FakeEngine(run_result=lambda image, spec: next(answers))
    smoke = _smoke(engine, CPU, cold_starts=3)
    assert smoke is not None and smoke.status == Status.SMOKE_FAILED
    assert len(engine.runs) == 2  # no third container after a failed one
    assert smoke.output_tail == ["Segmentation fault"]


def test_a_failed_full_run_starts_no_cold_starts() -> None:
    engine = FakeEngine(run_result=lambda image, spec: outcome(report(cuda_build=True)))
    smoke = _smoke(engine, CPU, cold_starts=3)
    assert smoke is not None and smoke.status == Status.INVALID_VARIANT
    assert len(engine.runs) == 1


def test_progress_lines_are_passed_on() -> None:
    stderr = f"{program.PROGRESS_PREFIX}timing batch size 1\nsome warning\n"
    engine = FakeEngine(run_result=lambda image, spec: outcome(report(), stderr=stderr))
    seen: list[str] = []
    _kind(CPU).run(_context(engine, SmokeOptions(cold_starts=1), on_progress=seen.append))
    assert seen == ["timing batch size 1"]


def test_a_cell_without_a_model_framework_or_command_has_no_smoke_test() -> None:
    plain = Cell("mine", "cpu", Path("d"), Path("."))
    assert smoke_kind(plain, SmokeOptions()) is None
    assert isinstance(smoke_kind(CPU, SmokeOptions()), InferenceSmoke)
    assert isinstance(smoke_kind(COMMAND_CELL, SmokeOptions()), CommandSmoke)


def test_cells_share_one_payload_per_batch_sizes() -> None:
    one, other = _kind(CPU).payload(), _kind(CUDA).payload()
    assert one.key == other.key and _kind(CPU, batch_sizes=(1, 2)).payload().key != one.key
    assert _kind(COMMAND_CELL).payload() is None


def test_program_parity() -> None:
    result = program.parity([1.0, 2.0005], array("f", [1.0, 2.0]), rtol=1e-3, atol=1e-4)
    assert result["ok"] is True and result["max_abs_diff"] == pytest.approx(5e-4, rel=1e-3)
    assert program.parity([1.01], array("f", [1.0]), rtol=1e-3, atol=1e-4)["ok"] is False


COMMAND_CELL = Cell(
    "mine", "cpu", Path("d"), Path("."), smoke=CommandSmoke(("serve", "--check"), "ready")
)


@pytest.mark.parametrize(
    ("result", "expected", "message"),
    [
        (ContainerOutcome(0, "model ready\n", ""), Status.OK, "ok"),
        (ContainerOutcome(0, "starting\n", ""), Status.SMOKE_FAILED, "lacks 'ready'"),
        (ContainerOutcome(2, "", "boom"), Status.SMOKE_FAILED, "exited with 2"),
        (ContainerOutcome(None, "", "", timed_out=True), Status.SMOKE_TIMEOUT, "killed"),
    ],
)
def test_a_config_smoke_command_must_exit_zero_and_print_what_is_expected(
    result: ContainerOutcome, expected: Status, message: str
) -> None:
    engine = FakeEngine(run_result=lambda image, spec: result)
    record = _record(COMMAND_CELL)
    smoke = _smoke(engine, COMMAND_CELL)
    assert smoke is not None
    apply(record, smoke)
    spec = engine.runs[0][1]
    assert spec.command == ["serve", "--check"]
    assert spec.network is False and spec.read_only is True and spec.volumes == ()
    assert spec.labels == {"l": "1"}
    assert record.smoke is not None
    assert record.smoke.status == expected and message in record.smoke.message
    assert record.smoke.kind == "command"
    assert record.smoke.detail == CommandDetail(["serve", "--check"])
    assert record.status == expected
    assert len(engine.runs) == 1  # no cold starts for a command


def test_a_smoke_command_without_expectation_needs_only_exit_zero() -> None:
    cell = Cell("mine", "cpu", Path("d"), Path("."), smoke=CommandSmoke(("true",)))
    assert _kind(cell).judge(ContainerOutcome(0, "", "")).status == Status.OK
