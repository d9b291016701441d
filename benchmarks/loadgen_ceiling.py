"""The load generator's own ceiling and cost: how fast it can send against an endpoint that does
nothing, so that a server's throughput it reports is the server's, not its own.

    .venv/bin/python benchmarks/loadgen_ceiling.py [--seconds 3] [--slo-ms 5]

A trivial endpoint (asyncio, in its own process: a fixed 2-byte answer to every request on a
keep-alive connection) and the load generator run as in its container (`python3 loadgen.py
spec.json`, its own process, standard library only) on this machine's cores, shared as the
service and client share the engine's. Printed as JSON:

- closed loop: requests per second and p50/p95 at each concurrency (the most any service
  measured here can show);
- open loop: the sweep's highest arrival rate whose p95 (from scheduled times) stays within
  --slo-ms against the trivial endpoint, and the latest any request left after its time;
- overhead: the load generator's CPU seconds (user and system) per request it sent, every
  phase included, and the trivial endpoint's, for scale.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LOADGEN = ROOT / "buildbench" / "measure" / "smoke" / "kinds" / "http" / "loadgen.py"
ENDPOINT = """
import asyncio, resource, signal, sys

ANSWER = b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok"

class Answer(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buffer = transport, b""
    def data_received(self, data):
        self.buffer += data
        count = self.buffer.count(b"\\r\\n\\r\\n")  # GET requests: no body
        if count:
            self.buffer = self.buffer[self.buffer.rfind(b"\\r\\n\\r\\n") + 4:]
            self.transport.write(ANSWER * count)

async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Answer, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    used = resource.getrusage(resource.RUSAGE_SELF)
    print(used.ru_utime + used.ru_stime, flush=True)

asyncio.run(main())
"""


def _cpu_of_children() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _quantile(samples: list[float], share: float) -> float | None:
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def measure(seconds: float, slo_ms: float, concurrency: list[int]) -> dict[str, Any]:
    endpoint = subprocess.Popen([sys.executable, "-c", ENDPOINT], stdout=subprocess.PIPE, text=True)
    assert endpoint.stdout is not None
    port = int(endpoint.stdout.readline())
    spec = {
        "port": port,
        "ready": None,
        "method": "GET",
        "path": "/",
        "body_file": None,
        "headers": {},
        "expect_status": 200,
        "expect": "ok",
        "concurrency": concurrency,
        "seconds": seconds,
        "warmup_seconds": 0.5,
        "max_requests": 10_000_000,
        "ready_timeout": 10.0,
        "request_timeout": 5.0,
        "slo_p95_seconds": slo_ms / 1000,
        "rate_steps": 10,
        "open_connections": max(16, *concurrency),
    }
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "spec.json"
        path.write_text(json.dumps(spec))
        before = _cpu_of_children()
        began = time.perf_counter()
        ran = subprocess.run(
            [sys.executable, str(LOADGEN), str(path)], capture_output=True, text=True, check=True
        )
        wall = time.perf_counter() - began
        client_cpu = _cpu_of_children() - before
    endpoint.terminate()
    endpoint_cpu = float(endpoint.communicate(timeout=10)[0].split()[-1])
    (line,) = [x for x in ran.stdout.splitlines() if x.startswith("BUILDBENCH_SMOKE_RESULT ")]
    found = json.loads(line.split(" ", 1)[1])
    levels = found["levels"]
    rates = found.get("rates") or []
    # every request sent: the measured ones, their warm-ups' at the same pace, the first
    sent = 1 + sum(
        lv["requests"] * (lv["seconds"] + lv["warmup_seconds"]) / lv["seconds"] for lv in levels
    )
    sent += sum(s["scheduled"] * (s["seconds"] + s["warmup_seconds"]) / s["seconds"] for s in rates)
    within = [s for s in rates if s["within_slo"]]
    best = max(within, key=lambda s: s["rate"]) if within else None
    return {
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "load_average_before": None,
        "closed_loop": [
            {
                "concurrency": lv["concurrency"],
                "requests_per_second": round(lv["good"] / lv["seconds"]),
                "p50_ms": round(1000 * (_quantile(lv["samples"], 0.5) or 0), 3),
                "p95_ms": round(1000 * (_quantile(lv["samples"], 0.95) or 0), 3),
                "errors": sum(lv["errors"].values()),
            }
            for lv in levels
        ],
        "open_loop": {
            "slo_p95_ms": slo_ms,
            "rate_at_slo": best["rate"] if best else None,
            "steps": [
                {
                    "rate": s["rate"],
                    "within_slo": s["within_slo"],
                    "p95_ms": round(1000 * (_quantile(s["samples"], 0.95) or 0), 3),
                    "late": s["errors"]["late"],
                    "max_lag_ms": round(1000 * s["max_lag_seconds"], 3),
                }
                for s in rates
            ],
        },
        "overhead": {
            "requests_sent": round(sent),
            "wall_seconds": round(wall, 2),
            "loadgen_cpu_us_per_request": round(1e6 * client_cpu / sent, 1),
            "endpoint_cpu_us_per_request": round(1e6 * endpoint_cpu / sent, 1),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per level and rate step")
    parser.add_argument("--slo-ms", type=float, default=5.0, help="the open loop's p95 target")
    parser.add_argument("--concurrency", default="1,4,16,64")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    found = measure(args.seconds, args.slo_ms, [int(c) for c in args.concurrency.split(",")])
    found["load_average_before"] = round(load, 2)
    found["load_average_after"] = round(os.getloadavg()[0], 2)
    print(json.dumps(found, indent=2))


if __name__ == "__main__":
    main()
