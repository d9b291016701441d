"""buildbench's load generator: runs in a container that shares the service container's network
namespace (and nothing else), so the service is at 127.0.0.1:PORT. Standard library only: any
image with Python 3.8+ runs it (the base image, or the service's own).

It waits until the service is ready (GET the ready path until a 2xx, or a TCP connect when there
is none), sends one request and checks it (status, expected text), then per concurrency level
runs that many threads, each with its own keep-alive connection: a warm-up, then `seconds` of
requests. Every latency of a good response is kept; errors are counted by kind. It is bounded
in time (each phase has a deadline, each request a timeout) and in requests, and stops by
itself; SIGTERM (the host saw the service die) makes it report what it has at once.

Reads one JSON spec (a file path argument; a JSON object of overrides may follow), prints
progress on stderr (`BUILDBENCH_PROGRESS <text>`) and its findings as one stdout line:
`BUILDBENCH_SMOKE_RESULT <json>`. Raw samples only: the host does the statistics. Times are
perf_counter seconds, and epochs from this machine's clock (the engine's, as the service
container's start time is).
"""

from __future__ import annotations

import http.client
import json
import signal
import socket
import sys
import threading
import time
from typing import Any

RESULT_PREFIX = "BUILDBENCH_SMOKE_RESULT "
PROGRESS_PREFIX = "BUILDBENCH_PROGRESS "
BODY_START = 200  # characters of a bad response's body kept in the report
POLL_SECONDS = 0.05  # between readiness probes
STOP = threading.Event()  # SIGTERM, or a deadline passed: every loop checks it


def progress(text: str) -> None:
    print(PROGRESS_PREFIX + text, file=sys.stderr, flush=True)


def error_kind(exc: BaseException) -> str:
    """timeout or connection: what a failed request is counted as."""
    return "timeout" if isinstance(exc, (socket.timeout, TimeoutError)) else "connection"


class Client:
    """One keep-alive connection to the service; reconnects after an error."""

    def __init__(self, spec: dict[str, Any], body: bytes | None) -> None:
        self.spec, self.body = spec, body
        self.headers = dict(spec.get("headers") or {})
        self.connection: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        """(status, body) of one request; raises OSError/HTTPException on a failure."""
        if self.connection is None:
            self.connection = http.client.HTTPConnection(
                "127.0.0.1", self.spec["port"], timeout=self.spec["request_timeout"]
            )
        try:
            self.connection.request(method, path, body=body, headers=self.headers)
            response = self.connection.getresponse()
            data = response.read()
        except BaseException:
            self.close()
            raise
        if response.will_close:
            self.close()
        return response.status, data

    def send(self) -> tuple[int, bytes]:
        return self.request(self.spec["method"], self.spec["path"], self.body)

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def judge(spec: dict[str, Any], status: int, data: bytes) -> str | None:
    """None for a good response, else its error kind: status, or body (the text is missing)."""
    if status != spec["expect_status"]:
        return "status"
    expect = spec.get("expect")
    if expect and expect.encode() not in data:
        return "body"
    return None


def wait_ready(spec: dict[str, Any]) -> dict[str, Any]:
    """Poll until ready or the ready deadline; what was seen, with this clock's epoch."""
    deadline = time.perf_counter() + spec["ready_timeout"]
    ready_path = spec.get("ready")
    client = Client({**spec, "headers": {}}, None)
    attempts, last = 0, "no attempt"
    while not STOP.is_set() and time.perf_counter() < deadline:
        attempts += 1
        try:
            if ready_path:
                status, data = client.request("GET", ready_path, None)
                if 200 <= status < 300:
                    client.close()
                    return {"ready": True, "epoch": time.time(), "attempts": attempts}
                text = data[:BODY_START].decode(errors="replace")
                last = f"GET {ready_path}: status {status}: {text}"
            else:
                socket.create_connection(("127.0.0.1", spec["port"]), timeout=2).close()
                return {"ready": True, "epoch": time.time(), "attempts": attempts}
        except (OSError, http.client.HTTPException) as exc:
            last = f"{error_kind(exc)}: {type(exc).__name__}: {exc}"
        time.sleep(POLL_SECONDS)
    client.close()
    return {"ready": False, "attempts": attempts, "last_error": last}


def first_response(spec: dict[str, Any], body: bytes | None) -> dict[str, Any]:
    """The first real request once ready: a cold service's first answer, checked."""
    client = Client(spec, body)
    began = time.perf_counter()
    try:
        status, data = client.send()
    except (OSError, http.client.HTTPException) as exc:
        return {"ok": False, "kind": error_kind(exc), "error": f"{type(exc).__name__}: {exc}"}
    finally:
        client.close()
    found: dict[str, Any] = {
        "ok": judge(spec, status, data) is None,
        "status": status,
        "epoch": time.time(),
        "seconds": time.perf_counter() - began,
    }
    if not found["ok"]:
        found["kind"] = judge(spec, status, data)
        found["body_start"] = data[:BODY_START].decode(errors="replace")
    return found


class Level:
    """One concurrency level: its threads share a request budget and two deadlines."""

    def __init__(self, spec: dict[str, Any], body: bytes | None, concurrency: int) -> None:
        self.spec, self.body, self.concurrency = spec, body, concurrency
        self.lock = threading.Lock()
        self.budget = spec["max_requests"]
        self.samples: list[float] = []
        self.errors = {"status": 0, "body": 0, "timeout": 0, "connection": 0}
        self.statuses: dict[str, int] = {}
        self.first_bad: dict[str, Any] | None = None
        self.requests = 0

    def take(self) -> bool:
        with self.lock:
            if self.budget <= 0:
                return False
            self.budget -= 1
            return True

    def worker(self, measure_from: float, until: float) -> None:
        client = Client(self.spec, self.body)
        samples: list[float] = []
        while not STOP.is_set() and time.perf_counter() < until and self.take():
            began = time.perf_counter()
            kind, status, data = None, None, b""
            try:
                status, data = client.send()
                kind = judge(self.spec, status, data)
            except (OSError, http.client.HTTPException) as exc:
                kind, data = error_kind(exc), f"{type(exc).__name__}: {exc}".encode()
            elapsed = time.perf_counter() - began
            if began < measure_from:  # warm-up: not counted
                continue
            if kind is None:
                samples.append(round(elapsed, 6))
            self.record(kind, status, data)
        client.close()
        with self.lock:
            self.samples.extend(samples)

    def record(self, kind: str | None, status: int | None, data: bytes) -> None:
        """Count one measured request; `data`: its body, or the error for a failed one."""
        with self.lock:
            self.requests += 1
            if status is not None:
                self.statuses[str(status)] = self.statuses.get(str(status), 0) + 1
            if kind is None:
                return
            self.errors[kind] += 1
            if self.first_bad is None:
                start = data[:BODY_START].decode(errors="replace")
                self.first_bad = {"kind": kind, "status": status, "body_start": start}

    def run(self) -> dict[str, Any]:
        warmup, seconds = self.spec["warmup_seconds"], self.spec["seconds"]
        began = time.perf_counter()
        measure_from, until = began + warmup, began + warmup + seconds
        threads = [
            threading.Thread(target=self.worker, args=(measure_from, until), daemon=True)
            for _ in range(self.concurrency)
        ]
        for thread in threads:
            thread.start()
        # Every request ends within its timeout after the deadline; joins wake for SIGTERM.
        hard_stop = until + self.spec["request_timeout"] + 5
        for thread in threads:
            while thread.is_alive() and time.perf_counter() < hard_stop:
                thread.join(timeout=0.2)
        measured = max(0.0, min(time.perf_counter(), until) - measure_from)
        return {
            "concurrency": self.concurrency,
            "warmup_seconds": warmup,
            "seconds": round(measured, 4),
            "requests": self.requests,
            "good": len(self.samples),
            "samples": self.samples,
            "errors": self.errors,
            "statuses": self.statuses,
            "first_bad": self.first_bad,
            "stopped": STOP.is_set(),
            "budget_spent": self.budget <= 0,
        }


def read_body(spec: dict[str, Any]) -> bytes | None:
    if spec.get("body_file"):
        with open(spec["body_file"], "rb") as handle:
            return handle.read()
    return None


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    body = read_body(spec)
    progress("waiting for the service to be ready")
    result: dict[str, Any] = {"ready": wait_ready(spec), "levels": []}
    if not result["ready"]["ready"]:
        return result
    progress("first request")
    result["first_response"] = first = first_response(spec, body)
    if not first["ok"]:
        return result
    for concurrency in spec["concurrency"]:
        if STOP.is_set():
            break
        progress(f"load at concurrency {concurrency}")
        result["levels"].append(Level(spec, body, concurrency).run())
    return result


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, lambda number, frame: STOP.set())
    result: dict[str, Any] = {
        "python_version": sys.version.split()[0],
        "started_epoch": time.time(),
    }
    try:
        with open(argv[1]) as handle:
            spec = json.load(handle)
        if len(argv) > 2:  # this run's bounds: ready_timeout, request_timeout
            spec.update(json.loads(argv[2]))
        result.update(measure(spec))
        code = 0
    except Exception as exc:  # reported the same way: the host records it
        result["error"] = f"{type(exc).__name__}: {exc}"
        code = 4
    result["stopped"] = STOP.is_set()
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
