"""Work for later (the report's imports), done where a run waits anyway: in a thread while the
preflight waits on the engine, then inside the quiet windows around build samples (whose own
CPU time is not counted as others'), in the thread again beside engine waits nothing times (the
version probe of an image that is not read, the clean-up), and never while anything is timed.

    spare = SpareWork([step, ...]).start()  # the thread takes steps in turn
    spare.pause()                            # before a timed build: it ends its current step
    spare.until(deadline)                    # in a quiet window: steps that fit, here
    spare.start()                            # beside what nothing times: the thread again

A step left over runs nowhere: what it would have loaded is loaded when it is used. A step that
fails is logged and dropped (its work is only a head start).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterable

log = logging.getLogger("buildbench")

SpareStep = Callable[[], object]


class SpareWork:
    def __init__(self, steps: Iterable[SpareStep]) -> None:
        self._steps = collections.deque(steps)
        self._guard = threading.Lock()
        self._paused = threading.Event()
        self._thread: threading.Thread | None = None
        # CPU seconds of the longest step taken: what the next may take. CPU, not wall: a step
        # in the thread beside the run's own work waits for the interpreter's lock meanwhile.
        self._longest = 0.0

    def start(self) -> SpareWork:
        """The thread takes steps until paused (again, after a pause; one thread at a time)."""
        self._paused.clear()
        if self._thread is not None and self._thread.is_alive():
            return self
        self._thread = threading.Thread(target=self._work, daemon=True, name="buildbench-spare")
        self._thread.start()
        return self

    def pause(self) -> None:
        """The thread stops after its current step and is waited for."""
        self._paused.set()
        if self._thread is not None:
            self._thread.join()

    def until(self, deadline: float) -> None:
        """Steps here, one after another, while the next may end by `deadline` (time.monotonic):
        as long as the longest step so far. A step that overran a window would delay what
        follows it (a timed build) for work the run's later waits could have hidden."""
        while time.monotonic() + self._longest < deadline and self._take():
            pass

    def left(self) -> int:
        with self._guard:
            return len(self._steps)

    def _work(self) -> None:
        while not self._paused.is_set() and self._take():
            pass

    def _take(self) -> bool:
        """Run the next step; False when none was left."""
        with self._guard:
            if not self._steps:
                return False
            step = self._steps.popleft()
        began = time.thread_time()
        try:
            step()
        except Exception:  # a head start only: the real use reports its own failure
            log.debug("spare work %r failed", step, exc_info=True)
        self._longest = max(self._longest, time.thread_time() - began)
        return True
