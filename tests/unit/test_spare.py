"""Work for later, where a run waits anyway: a thread that stops between steps when asked,
then steps taken in a quiet window until its deadline."""

from __future__ import annotations

import threading
import time

import pytest

from buildbench.run.spare import SpareWork


def test_paused_the_thread_ends_its_step_and_the_rest_is_taken_in_a_window() -> None:
    inside, release = threading.Event(), threading.Event()
    ran: list[tuple[str, threading.Thread]] = []

    def first() -> None:
        inside.set()
        release.wait(5)
        ran.append(("first", threading.current_thread()))

    def later(name: str) -> None:
        ran.append((name, threading.current_thread()))

    spare = SpareWork([first, lambda: later("second"), lambda: later("third")]).start()
    assert inside.wait(5)
    pauser = threading.Thread(target=spare.pause)
    pauser.start()
    time.sleep(0.02)
    assert pauser.is_alive()  # waiting for the step in progress, not cutting it short
    release.set()
    pauser.join(5)
    assert [name for name, _ in ran] == ["first"] and spare.left() == 2
    spare.until(time.monotonic() - 1)  # a window already over takes nothing
    assert spare.left() == 2
    spare.until(time.monotonic() + 5)
    assert [name for name, _ in ran] == ["first", "second", "third"]
    assert ran[0][1] is not threading.current_thread()
    assert all(thread is threading.current_thread() for _, thread in ran[1:])


def test_a_window_takes_no_step_once_its_deadline_has_passed() -> None:
    ran: list[int] = []
    spare = SpareWork([lambda: (time.sleep(0.03), ran.append(1)), lambda: ran.append(2)])
    spare.until(time.monotonic() + 0.01)  # the first step overruns it: the second waits
    assert ran == [1] and spare.left() == 1


def _busy(seconds: float) -> None:
    """A step's work: CPU time, as an import's."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_a_window_takes_no_step_that_may_not_end_by_its_deadline() -> None:
    """A step may take as long as the longest so far (in CPU time: a step in the thread may
    wait for the interpreter meanwhile): one that would overrun the window waits for the run's
    next wait instead of delaying what the window comes before."""
    ran: list[int] = []
    spare = SpareWork([lambda: (_busy(0.05), ran.append(1)), lambda: ran.append(2)])
    spare.until(time.monotonic() + 0.06)  # 10 ms left after a 50 ms step: the next waits
    assert ran == [1] and spare.left() == 1
    spare.until(time.monotonic() + 0.2)
    assert ran == [1, 2]


def test_a_step_that_waited_in_the_thread_counts_its_work_only() -> None:
    inside, gate = threading.Event(), threading.Event()
    ran: list[int] = []

    def first() -> None:
        inside.set()
        gate.wait(5)
        ran.append(1)

    spare = SpareWork([first, lambda: ran.append(2)]).start()
    assert inside.wait(5)
    pauser = threading.Thread(target=spare.pause)  # asked to stop after its step, at once
    pauser.start()
    time.sleep(0.1)  # the first step waits, as one waits for the interpreter beside a run
    gate.set()
    pauser.join(5)
    assert ran == [1] and spare.left() == 1
    spare.until(time.monotonic() + 0.05)  # 100 ms of wall, but no work: the next fits
    assert ran == [1, 2]


def test_a_failing_step_is_dropped_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    ran: list[str] = []

    def broken() -> None:
        raise ImportError("no matplotlib here")

    spare = SpareWork([broken, lambda: ran.append("next")])
    with caplog.at_level("DEBUG", logger="buildbench"):
        spare.until(time.monotonic() + 5)
    assert ran == ["next"] and spare.left() == 0
    assert "spare work" in caplog.text and "no matplotlib here" in caplog.text


def test_started_again_it_goes_on_in_one_thread_at_a_time() -> None:
    entered, gate = threading.Event(), threading.Event()
    threads: list[threading.Thread] = []

    def step() -> None:
        threads.append(threading.current_thread())
        entered.set()
        gate.wait(5)

    spare = SpareWork([step, step, step]).start()
    assert entered.wait(5)
    spare.start()  # while its thread is in a step: no second thread
    assert sum(t.name == "buildbench-spare" for t in threading.enumerate()) == 1
    gate.set()
    spare.pause()
    for _ in range(3):  # started again after a pause: the rest, in its thread
        if spare.left():
            spare.start().pause()
    assert len(threads) == 3 and threading.current_thread() not in threads
