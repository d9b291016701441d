"""poll_until: asks until yes or the time is up, and the last ask comes at the deadline."""

from __future__ import annotations

import pytest

from buildbench.engine import wait


class Clock:
    """time.monotonic and time.sleep, with sleep moving the clock (nothing really waits)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(wait.time, "monotonic", fake.monotonic)
    monkeypatch.setattr(wait.time, "sleep", fake.sleep)
    return fake


def test_the_first_true_answer_is_returned(clock: Clock) -> None:
    answers = iter([None, 0, "ready", "never asked"])
    assert wait.poll_until(lambda: next(answers), timeout=10, interval=0.5) == "ready"
    assert clock.sleeps == [0.5, 0.5]


def test_a_true_answer_at_once_never_sleeps(clock: Clock) -> None:
    assert wait.poll_until(lambda: True, timeout=10) is True
    assert clock.sleeps == []


def test_time_up_returns_the_last_answer_asked_at_the_deadline(clock: Clock) -> None:
    asked_at: list[float] = []

    def never() -> bool:
        asked_at.append(clock.now)
        return False

    assert wait.poll_until(never, timeout=2.5, interval=1.0) is False
    assert asked_at == [100.0, 101.0, 102.0, 102.5]  # the last sleep stops at the deadline


def test_a_shared_deadline_already_past_still_asks_once(clock: Clock) -> None:
    calls: list[int] = []
    assert wait.poll_until(lambda: calls.append(1), deadline=clock.now - 1) is None
    assert calls == [1] and clock.sleeps == []


def test_exactly_one_bound_is_given() -> None:
    with pytest.raises(TypeError, match="a timeout or a deadline"):
        wait.poll_until(lambda: True)
    with pytest.raises(TypeError, match="a timeout or a deadline"):
        wait.poll_until(lambda: True, timeout=1, deadline=1)
