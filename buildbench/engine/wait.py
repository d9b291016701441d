"""One way to wait: ask again and again until the answer is yes or the time is up."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll_until(
    check: Callable[[], T],
    *,
    timeout: float | None = None,
    deadline: float | None = None,
    interval: float = 1.0,
) -> T:
    """Call `check` every `interval` seconds until it answers something true, for `timeout`
    seconds or until `deadline` (a `time.monotonic()` value, for several waits sharing one
    bound); its last answer either way. It is always called once, and once more at the end
    (at or after the deadline), so a check that does its work when the time is up runs."""
    if (timeout is None) == (deadline is None):
        raise TypeError("poll_until takes a timeout or a deadline")
    end = deadline if deadline is not None else time.monotonic() + (timeout or 0.0)
    while True:
        answer = check()
        remaining = end - time.monotonic()
        if answer or remaining <= 0:
            return answer
        time.sleep(min(interval, remaining))
