"""buildbench's load generator: runs in a container that shares the service container's network
namespace (and nothing else), so the service is at 127.0.0.1:PORT. Standard library only: any
image with Python 3.8+ runs it (the base image, or the service's own).

It waits until the service is ready (GET the ready path until a 2xx, or a TCP connect when there
is none), sends one request and checks it (status, expected text), then per concurrency level
runs that many threads, each with its own keep-alive connection: a warm-up, then `seconds` of
requests. Every latency of a good response is kept; errors are counted by kind. It is bounded
in time (each phase has a deadline, each request a timeout) and in requests, and stops by
itself; SIGTERM (the host saw the service die) makes it report what it has at once.

With an SLO (`slo_p95_seconds`), open-loop load follows: requests at a fixed arrival rate, their
send times fixed in advance, each latency measured from its *scheduled* time, so that a stalled
service shows as the queue behind it instead of a client that politely waits (the
coordinated-omission correction of wrk2 and perf_analyzer's request-rate mode). The rate is swept
(`next_rate`) for the highest one whose p95 stays within the SLO.

Reads one JSON spec (a file path argument; a JSON object of overrides may follow), prints
progress on stderr (`BUILDBENCH_PROGRESS <text>`) and its findings as one stdout line:
`BUILDBENCH_SMOKE_RESULT <json>`. Raw samples only: the host does the statistics. Times are
perf_counter seconds, and epochs from this machine's clock (the engine's, as the service
container's start time is).
"""

from __future__ import annotations

import base64
import http.client
import json
import math
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

RESULT_PREFIX = "BUILDBENCH_SMOKE_RESULT "
PROGRESS_PREFIX = "BUILDBENCH_PROGRESS "
BODY_START = 200  # characters of a bad response's body kept in the report
POLL_SECONDS = 0.05  # between readiness probes
MAX_ANSWER = 16 * 1024**2  # bytes of the first answer kept whole where the spec asks for it
STOP = threading.Event()  # SIGTERM, or a deadline passed: every loop checks it
ERROR_KINDS = ("status", "body", "timeout", "connection")
LATE = "late"  # open loop: a scheduled request not sent before its step's stop
SWEEP_RATIO = 1.15  # the sweep ends when the rates within and over the SLO are this close
MIN_RATE, MAX_RATE = 0.5, 50_000.0  # requests per second the sweep tries, at most and least


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


if TYPE_CHECKING:  # Python 3.8 reads this file: no runtime generics
    Sent = tuple[str | None, int | None, bytes]  # error kind (None: good), status, body or error


def attempt(spec: dict[str, Any], client: Client) -> Sent:
    """One request, judged."""
    try:
        status, data = client.send()
    except (OSError, http.client.HTTPException) as exc:
        return error_kind(exc), None, f"{type(exc).__name__}: {exc}".encode()
    return judge(spec, status, data), status, data


def first_bad(kind: str, status: int | None, data: bytes) -> dict[str, Any]:
    return {
        "kind": kind,
        "status": status,
        "body_start": data[:BODY_START].decode(errors="replace"),
    }


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
    elif spec.get("keep_answer"):  # a built-in server's: the host checks its values
        found["answer_bytes"] = len(data)
        if len(data) <= MAX_ANSWER:
            found["answer"] = base64.b64encode(data).decode()
    return found


class Level:
    """One concurrency level: its threads share a request budget and two deadlines."""

    def __init__(self, spec: dict[str, Any], body: bytes | None, concurrency: int) -> None:
        self.spec, self.body, self.concurrency = spec, body, concurrency
        self.lock = threading.Lock()
        self.budget = spec["max_requests"]
        self.samples: list[float] = []
        self.errors = dict.fromkeys(ERROR_KINDS, 0)
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
            kind, status, data = attempt(self.spec, client)
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
                self.first_bad = first_bad(kind, status, data)

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


# ---------------------------------------------------------------------------------------------
# Open loop: a fixed arrival rate, swept against the SLO


def schedule(rate: float, seconds: float, start: float) -> list[float]:
    """Send times fixed in advance: one every 1/rate seconds from `start`, for `seconds`."""
    return [start + i / rate for i in range(max(1, round(rate * seconds)))]


def slo_p95(samples: list[float], failed: int) -> float:
    """The nearest-rank p95 of every measured request, a failed or unsent one counted as
    infinitely slow: more than 5% failures put the p95 past any SLO."""
    ordered = sorted(samples) + [math.inf] * failed
    if not ordered:
        return math.inf
    return ordered[math.ceil(0.95 * len(ordered)) - 1]


def _sleep(seconds: float) -> None:
    if seconds > 0:
        STOP.wait(seconds)  # SIGTERM wakes it


class RateStep:
    """One arrival rate: a pool of connections sends each scheduled request at its time (or as
    soon as a connection is free, when the service lags), and its latency counts from the
    scheduled time: queueing behind a slow answer is part of what a user waits."""

    def __init__(
        self,
        spec: dict[str, Any],
        rate: float,
        now: Callable[[], float] = time.perf_counter,
        sleep: Callable[[float], None] = _sleep,
    ) -> None:
        self.spec, self.rate, self.now, self.sleep = spec, rate, now, sleep
        warmup, seconds = spec["warmup_seconds"], spec["seconds"]
        began = now()
        self.times = schedule(rate, warmup + seconds, began)
        self.measure_from = began + warmup
        # Nothing leaves after the step's time: a backlog is not drained (as wrk2), its
        # requests count as late, and every step lasts its time however slow the service.
        self.stop_at = began + warmup + seconds
        self.lock = threading.Lock()
        self.next = 0
        self.samples: list[float] = []
        self.errors = dict.fromkeys((*ERROR_KINDS, LATE), 0)
        self.first_bad: dict[str, Any] | None = None
        self.max_lag = 0.0

    def take(self) -> int | None:
        """The next scheduled request's index; None when all are taken or the step is over."""
        with self.lock:
            if self.next >= len(self.times) or self.now() > self.stop_at:
                return None
            self.next += 1
            return self.next - 1

    def worker(self, send: Callable[[], Sent]) -> None:
        while not STOP.is_set() and (index := self.take()) is not None:
            due = self.times[index]
            self.sleep(due - self.now())
            lag = self.now() - due  # how late it left: the service's queue, or the client's
            kind, status, data = send()
            latency = self.now() - due  # from the scheduled time: the correction
            if due < self.measure_from:
                continue
            with self.lock:
                self.max_lag = max(self.max_lag, lag)
                if kind is None:
                    self.samples.append(round(latency, 6))
                    continue
                self.errors[kind] += 1
                if self.first_bad is None:
                    self.first_bad = first_bad(kind, status, data)

    def run(self, body: bytes | None, connections: int) -> dict[str, Any]:
        def work() -> None:
            client = Client(self.spec, body)
            try:
                self.worker(lambda: attempt(self.spec, client))
            finally:
                client.close()

        threads = [threading.Thread(target=work, daemon=True) for _ in range(connections)]
        for thread in threads:
            thread.start()
        hard_stop = self.stop_at + self.spec["request_timeout"] + 5
        for thread in threads:
            while thread.is_alive() and time.perf_counter() < hard_stop:
                thread.join(timeout=0.2)
        return self.result()

    def result(self) -> dict[str, Any]:
        """What the step measured; the measured requests never sent count as late."""
        with self.lock:
            measured = [i for i, due in enumerate(self.times) if due >= self.measure_from]
            self.errors[LATE] = sum(1 for i in measured if i >= self.next)
            failed = sum(self.errors.values())
            p95 = slo_p95(self.samples, failed)
            return {
                "rate": self.rate,
                "warmup_seconds": self.spec["warmup_seconds"],
                "seconds": self.spec["seconds"],
                "scheduled": len(measured),
                "samples": list(self.samples),
                "errors": dict(self.errors),
                "first_bad": self.first_bad,
                "max_lag_seconds": round(self.max_lag, 6),
                "within_slo": p95 <= self.spec["slo_p95_seconds"],
                "stopped": STOP.is_set(),
            }


def next_rate(
    steps: list[tuple[float, bool]], start: float, max_steps: int, ratio: float = SWEEP_RATIO
) -> float | None:
    """The next arrival rate to try given (rate, within the SLO) so far; None: the sweep is done.
    Doubling from `start` while the SLO holds, halving while it does not, then bisecting
    (geometrically) between the highest rate within and the lowest over it, down to `ratio`."""
    if not steps:
        return _rounded(min(max(start, MIN_RATE), MAX_RATE))
    if len(steps) >= max_steps:
        return None
    within = max((rate for rate, ok in steps if ok), default=None)
    over = min(
        (rate for rate, ok in steps if not ok and (within is None or rate > within)), default=None
    )
    if within is None:
        assert over is not None
        found = over / 2
        return None if found < MIN_RATE else _rounded(found)
    if over is None:
        return None if within >= MAX_RATE else _rounded(min(within * 2, MAX_RATE))
    if over / within <= ratio:
        return None
    return _rounded(math.sqrt(within * over))


def _rounded(rate: float) -> float:
    """Three significant digits: rates a reader can say."""
    return float(f"{rate:.3g}")


def sweep_start(levels: list[dict[str, Any]]) -> float:
    """Half the best closed-loop throughput: below saturation, where the sweep doubles up."""
    best = max((lv["good"] / lv["seconds"] for lv in levels if lv["seconds"] > 0), default=0.0)
    return best / 2 if best > 0 else 10.0


def sweep(spec: dict[str, Any], body: bytes | None, start: float) -> list[dict[str, Any]]:
    """Open-loop steps until `next_rate` says done, STOP is set, or a step stopped early."""
    steps: list[dict[str, Any]] = []
    connections = spec["open_connections"]
    while not STOP.is_set():
        rate = next_rate([(s["rate"], s["within_slo"]) for s in steps], start, spec["rate_steps"])
        if rate is None:
            break
        progress(f"open loop at {rate:g} requests/s")
        steps.append(RateStep(spec, rate).run(body, connections))
    return steps


def read_body(spec: dict[str, Any]) -> bytes | None:
    if spec.get("body_file"):
        with open(spec["body_file"], "rb") as handle:
            return handle.read()
    return None


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    body = read_body(spec)
    progress("waiting for the service to be ready")
    slo = spec.get("slo_p95_seconds")
    result: dict[str, Any] = {"ready": wait_ready(spec), "levels": [], "slo_p95_seconds": slo}
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
    if slo is not None and not STOP.is_set():
        result["rates"] = sweep(spec, body, sweep_start(result["levels"]))
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
        if len(argv) > 2:  # this run's bounds and SLO: ready_timeout, request_timeout, ...
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
