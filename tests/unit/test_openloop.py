"""The load generator's open loop, on a fake clock and a fake server: requests scheduled in
advance at a fixed rate, each latency from its scheduled time (the coordinated-omission
correction), the p95 that counts a failure as infinitely slow, and the sweep's search for the
highest rate within the SLO."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from buildbench.measure.smoke.kinds.http import loadgen
from buildbench.measure.smoke.kinds.http.loadgen import (
    MAX_RATE,
    MIN_RATE,
    RateStep,
    next_rate,
    schedule,
    slo_p95,
    sweep_start,
)


class FakeClock:
    """Time that moves only when someone sleeps or the fake server works."""

    def __init__(self) -> None:
        self.t = 100.0

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)


def server(clock: FakeClock, service: Callable[[int], float]) -> Callable[[], Any]:
    """A one-connection server: the n-th request takes service(n) seconds of the clock."""
    served = [0]

    def send() -> tuple[None, int, bytes]:
        clock.t += service(served[0])
        served[0] += 1
        return None, 200, b"ok"

    return send


def step_spec(**overrides: Any) -> dict[str, Any]:
    spec = {"warmup_seconds": 0.0, "seconds": 1.0, "request_timeout": 2.0}
    return {**spec, "slo_p95_seconds": 0.05, **overrides}


def run_step(rate: float, service: Callable[[int], float], **spec: Any) -> dict[str, Any]:
    """One step with one connection, worked in this thread on the fake clock."""
    clock = FakeClock()
    step = RateStep(step_spec(**spec), rate, now=clock.now, sleep=clock.sleep)
    step.worker(server(clock, service))
    return step.result()


def test_requests_are_scheduled_in_advance_at_the_rate() -> None:
    times = schedule(200.0, 0.5, start=10.0)
    assert len(times) == 100
    assert times[0] == 10.0 and times[1] == pytest.approx(10.005)
    assert times[-1] == pytest.approx(10.0 + 99 / 200)
    assert len(schedule(0.5, 0.5, start=0.0)) == 1  # always at least one


def test_a_fast_server_keeps_the_schedule_and_its_latency_is_its_service_time() -> None:
    found = run_step(100.0, lambda n: 0.002)
    assert found["scheduled"] == 100 and len(found["samples"]) == 100
    assert all(sample == pytest.approx(0.002) for sample in found["samples"])
    assert found["max_lag_seconds"] == pytest.approx(0.0)
    assert found["within_slo"] is True and found["errors"]["late"] == 0


def test_a_stall_is_counted_for_every_request_scheduled_behind_it() -> None:
    """One 0.5 s stall at 100 requests/s: a closed-loop client waiting for it would record
    one slow answer in 100 (p95 2 ms); measured from scheduled times, the ~50 requests due
    during the stall waited for it too, and the p95 shows it."""
    found = run_step(100.0, lambda n: 0.5 if n == 10 else 0.002)
    samples = sorted(found["samples"])
    assert len(samples) == 100
    # uncorrected (service time) p95 would be 2 ms; corrected it is hundreds of ms
    assert slo_p95(samples, 0) > 0.2
    assert sum(1 for s in samples if s > 0.05) >= 45
    assert found["max_lag_seconds"] == pytest.approx(0.49, abs=0.01)
    assert found["within_slo"] is False


def test_a_server_slower_than_the_rate_falls_ever_further_behind() -> None:
    """10 ms answers at 200/s (one every 5 ms) on one connection: each request waits for all
    before it, its latency from its scheduled time grows linearly; the end of the step's
    time cuts off the rest, counted late."""
    found = run_step(200.0, lambda n: 0.010)
    samples = found["samples"]
    assert samples == sorted(samples)  # ever further behind
    assert samples[1] - samples[0] == pytest.approx(0.005)
    assert len(samples) == 100 and found["errors"]["late"] == 100  # half never left
    assert found["scheduled"] == 200 and found["within_slo"] is False


def test_the_warm_up_is_sent_at_the_rate_but_not_counted() -> None:
    found = run_step(100.0, lambda n: 0.001, warmup_seconds=0.5)
    assert found["scheduled"] == 100 and len(found["samples"]) == 100


def test_failed_answers_are_counted_by_kind_and_the_first_kept() -> None:
    clock = FakeClock()
    step = RateStep(step_spec(), 20.0, now=clock.now, sleep=clock.sleep)
    answers = iter([(None, 200, b"ok"), ("status", 500, b"overloaded")] * 10)
    step.worker(lambda: next(answers))
    found = step.result()
    assert found["errors"]["status"] == 10 and len(found["samples"]) == 10
    assert found["first_bad"] == {"kind": "status", "status": 500, "body_start": "overloaded"}
    assert found["within_slo"] is False  # half failed: the p95 is past any SLO


def test_the_slo_p95_counts_failures_as_infinitely_slow() -> None:
    good = [0.01] * 95
    assert slo_p95(good, 5) == 0.01  # 5% failed: still within
    assert slo_p95(good, 6) == math.inf
    assert slo_p95([], 0) == math.inf
    assert slo_p95([0.001 * i for i in range(1, 101)], 0) == pytest.approx(0.095)


def sweep_with(capacity: float, start: float, max_steps: int = 12) -> list[float]:
    """The rates a sweep tries against a server whose p95 holds below `capacity` requests/s."""
    tried: list[tuple[float, bool]] = []
    while (rate := next_rate(tried, start, max_steps)) is not None:
        tried.append((rate, rate <= capacity))
    return [rate for rate, _ in tried]


@pytest.mark.parametrize(("capacity", "start"), [(430.0, 100.0), (430.0, 2000.0), (3.3, 50.0)])
def test_the_sweep_finds_the_highest_rate_within_the_slo(capacity: float, start: float) -> None:
    tried = sweep_with(capacity, start)
    within = max(rate for rate in tried if rate <= capacity)
    over = min(rate for rate in tried if rate > capacity)
    assert within <= capacity < over and over / within <= loadgen.SWEEP_RATIO
    assert len(tried) <= 10


def test_the_sweep_doubles_up_then_bisects() -> None:
    assert sweep_with(430.0, 100.0)[:4] == [100.0, 200.0, 400.0, 800.0]
    assert sweep_with(430.0, 100.0)[4] == pytest.approx(math.sqrt(400 * 800), rel=0.01)


def test_the_sweep_stops_at_its_bounds() -> None:
    assert len(sweep_with(430.0, 1.0, max_steps=3)) == 3
    nothing = sweep_with(0.0, 10.0)  # never within: halves down to the least rate
    assert min(nothing) >= MIN_RATE and len(nothing) == 5
    assert max(sweep_with(math.inf, MAX_RATE / 3)) == MAX_RATE
    # a failure below a rate within (noise) does not pull the bisection down
    assert next_rate([(100.0, True), (50.0, False), (200.0, False)], 100.0, 10) == 141.0


def test_the_sweep_starts_at_half_the_best_closed_loop_throughput() -> None:
    levels = [{"good": 300, "seconds": 1.0}, {"good": 900, "seconds": 2.0}]
    assert sweep_start(levels) == 225.0
    assert sweep_start([]) == 10.0
