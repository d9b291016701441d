"""The load generator against a real HTTP server on 127.0.0.1 in this process: it waits for
ready, checks the first answer, keeps every sample, counts errors by kind, and stops by itself
within its bounds (or at once on SIGTERM)."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from buildbench.measure.smoke.kinds.http import loadgen


class Service(BaseHTTPRequestHandler):
    """/health is ready after `ready_after` s; POST /predict answers per the server's mode."""

    protocol_version = "HTTP/1.1"  # keep-alive, as uvicorn

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        server: Any = self.server
        ready = time.monotonic() - server.started >= server.ready_after
        self.answer(200 if ready else 503, b"ok" if ready else b"starting")

    def do_POST(self) -> None:
        server: Any = self.server
        length = int(self.headers.get("Content-Length") or 0)
        server.bodies.append(self.rfile.read(length))
        server.headers.append(dict(self.headers))
        if server.mode == "slow":
            time.sleep(0.5)
        time.sleep(server.delay)
        if server.mode == "fail":
            self.answer(500, b"Internal Server Error: model not loaded")
        else:
            self.answer(200, b'{"embedding": [0.1, 0.2]}')


@pytest.fixture
def service() -> Iterator[Any]:
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), Service)
    server.daemon_threads = True
    server.started, server.ready_after, server.mode = time.monotonic(), 0.0, "good"
    server.bodies, server.headers, server.delay = [], [], 0.0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def _no_stop() -> Iterator[None]:
    loadgen.STOP.clear()
    yield
    loadgen.STOP.clear()


def spec(port: int, **overrides: Any) -> dict[str, Any]:
    base = {
        "port": port,
        "ready": "/health",
        "ready_timeout": 5.0,
        "method": "POST",
        "path": "/predict",
        "body_file": None,
        "headers": {"Content-Type": "application/json"},
        "expect_status": 200,
        "expect": "embedding",
        "concurrency": [1, 4],
        "seconds": 0.4,
        "warmup_seconds": 0.1,
        "request_timeout": 2.0,
        "max_requests": 100_000,
    }
    return {**base, **overrides}


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_good_service_is_measured_per_level_and_stops_by_itself(service: Any, tmp_path: Path):
    body = tmp_path / "request.json"
    body.write_bytes(b'{"text": "hello"}')
    service.ready_after = 0.3
    began = time.perf_counter()
    found = loadgen.measure(spec(service.server_port, body_file=str(body)))
    elapsed = time.perf_counter() - began
    assert found["ready"]["ready"] is True and found["ready"]["attempts"] > 1  # it waited
    assert found["first_response"]["ok"] is True and found["first_response"]["status"] == 200
    assert [level["concurrency"] for level in found["levels"]] == [1, 4]
    for level in found["levels"]:
        assert level["good"] == len(level["samples"]) > 0
        assert level["errors"] == {"status": 0, "body": 0, "timeout": 0, "connection": 0}
        assert level["statuses"] == {"200": level["requests"]}
        assert level["seconds"] == pytest.approx(0.4, abs=0.05)
        assert all(0 < sample < 2.0 for sample in level["samples"])
    assert set(service.bodies) == {b'{"text": "hello"}'}
    assert service.headers[0]["Content-Type"] == "application/json"
    # ready ~0.3 s, two levels of 0.1 + 0.4 s: bounded by its own deadlines
    assert elapsed < 0.3 + 2 * 0.5 + 1.0


def test_a_service_that_never_listens_is_not_ready_within_its_timeout():
    began = time.perf_counter()
    found = loadgen.measure(spec(free_port(), ready_timeout=0.5))
    assert time.perf_counter() - began < 1.5
    assert found["ready"]["ready"] is False
    assert found["ready"]["last_error"].startswith("connection: ConnectionRefusedError")
    assert found["levels"] == [] and "first_response" not in found


def test_a_ready_path_that_never_answers_2xx_says_what_it_answered(service: Any):
    service.ready_after = 60.0
    found = loadgen.measure(spec(service.server_port, ready_timeout=0.3))
    assert found["ready"]["ready"] is False
    assert found["ready"]["last_error"] == "GET /health: status 503: starting"


def test_without_a_ready_path_a_tcp_connect_is_ready(service: Any):
    found = loadgen.wait_ready(spec(service.server_port, ready=None))
    assert found["ready"] is True and found["attempts"] == 1


def test_a_wrong_status_stops_before_the_load_with_the_status_and_body(service: Any):
    service.mode = "fail"
    found = loadgen.measure(spec(service.server_port))
    first = found["first_response"]
    assert (first["ok"], first["kind"], first["status"]) == (False, "status", 500)
    assert first["body_start"] == "Internal Server Error: model not loaded"
    assert found["levels"] == []
    assert len(service.bodies) == 1  # one request, no load


def test_missing_expected_text_is_a_body_error(service: Any):
    first = loadgen.first_response(spec(service.server_port, expect="label"), None)
    assert (first["ok"], first["kind"], first["status"]) == (False, "body", 200)


def test_the_request_budget_bounds_a_level(service: Any):
    level = loadgen.Level(spec(service.server_port, max_requests=5, seconds=5.0), None, 4)
    began = time.perf_counter()
    found = level.run()
    assert time.perf_counter() - began < 2.0  # the budget, not the 5 s, ended it
    assert found["budget_spent"] is True
    assert found["requests"] <= 5


def test_slow_answers_are_timeouts_and_the_level_still_ends(service: Any):
    service.mode = "slow"
    level = loadgen.Level(
        spec(service.server_port, request_timeout=0.1, seconds=0.3, warmup_seconds=0.0), None, 2
    )
    began = time.perf_counter()
    found = level.run()
    assert time.perf_counter() - began < 0.3 + 0.1 + 1.0
    assert found["errors"]["timeout"] >= 2 and found["good"] == 0
    assert found["first_bad"]["kind"] == "timeout"
    assert found["first_bad"]["body_start"] == "TimeoutError: timed out"


def test_a_service_gone_mid_level_counts_connection_errors(service: Any):
    port = service.server_port
    service.shutdown()
    service.server_close()
    found = loadgen.Level(spec(port, seconds=0.2, warmup_seconds=0.0), None, 2).run()
    assert found["errors"]["connection"] > 0 and found["good"] == 0


def _run_main(tmp_path: Path, the_spec: dict[str, Any]) -> subprocess.Popen[str]:
    """The program alone in a folder, as in its volume (next to its package's http.py, a
    script would import that instead of the standard library's http)."""
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(the_spec))
    program = tmp_path / "loadgen.py"
    shutil.copy(loadgen.__file__, program)
    return subprocess.Popen(
        [sys.executable, str(program), str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _result(stdout: str) -> dict[str, Any]:
    (line,) = [line for line in stdout.splitlines() if line.startswith(loadgen.RESULT_PREFIX)]
    found: dict[str, Any] = json.loads(line.removeprefix(loadgen.RESULT_PREFIX))
    return found


def test_the_program_prints_one_result_line_and_progress(service: Any, tmp_path: Path):
    process = _run_main(tmp_path, spec(service.server_port, concurrency=[2], seconds=0.2))
    stdout, stderr = process.communicate(timeout=20)
    assert process.returncode == 0, stderr
    found = _result(stdout)
    assert found["levels"][0]["good"] > 0 and found["stopped"] is False
    assert found["started_epoch"] <= found["ready"]["epoch"] <= found["first_response"]["epoch"]
    assert f"{loadgen.PROGRESS_PREFIX}load at concurrency 2" in stderr.splitlines()


def test_sigterm_makes_it_report_what_it_has_at_once(service: Any, tmp_path: Path):
    process = _run_main(tmp_path, spec(service.server_port, concurrency=[2], seconds=60.0))
    assert process.stderr is not None
    for line in process.stderr:
        if "load at concurrency" in line:
            break
    time.sleep(0.3)
    process.send_signal(signal.SIGTERM)
    stdout, _ = process.communicate(timeout=5)
    found = _result(stdout)
    assert found["stopped"] is True and found["levels"][0]["stopped"] is True
    assert found["levels"][0]["seconds"] < 5.0


def test_a_broken_spec_is_reported_as_an_error(tmp_path: Path):
    process = _run_main(tmp_path, {"port": 1})
    stdout, _ = process.communicate(timeout=20)
    assert process.returncode == 4
    assert _result(stdout)["error"].startswith("KeyError")


def test_with_an_slo_the_open_loop_sweep_follows_the_levels(service: Any):
    """20 ms answers or more: the closed loop at concurrency 1 gives its rate, the sweep starts
    at half of it and doubles; every step sends at its rate, each latency from its scheduled
    time (so never below the service's 20 ms), and the first step is well within a 200 ms SLO."""
    service.delay = 0.02
    found = loadgen.measure(
        spec(
            service.server_port,
            concurrency=[1],
            seconds=0.4,
            slo_p95_seconds=0.2,
            rate_steps=3,
            open_connections=4,
        )
    )
    (level,) = found["levels"]
    start = level["good"] / level["seconds"] / 2
    rates = [step["rate"] for step in found["rates"]]
    assert rates[0] == pytest.approx(start, rel=0.01) and 1 < rates[0] < 30
    assert rates[1:] == [rates[0] * 2, rates[0] * 4] or not found["rates"][1]["within_slo"]
    for step in found["rates"]:
        assert abs(step["scheduled"] - step["rate"] * 0.4) <= 1  # the measured part's share
        assert len(step["samples"]) + sum(step["errors"].values()) == step["scheduled"]
        assert min(step["samples"]) >= 0.02
    assert found["rates"][0]["within_slo"] is True
    assert found["rates"][0]["errors"] == dict.fromkeys(
        ("status", "body", "timeout", "connection", "late"), 0
    )
