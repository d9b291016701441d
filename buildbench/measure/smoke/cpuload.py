"""How much of the machine's CPU others used while something was timed: the interference check
hyperfine makes, so that a busy machine's slow numbers are named as such, not as a regression.

Standard library only: the in-container smoke program imports it, and the host side uses it
around build samples. In a container `/proc/stat` is the whole host's (it is not namespaced)
and the container's own cgroup is its own CPU time, so

    others = host busy time - own time,  share = others / host CPU time available

between two snapshots. On the host itself (no cgroup of our own) `busy_share` is what there is:
every process's share, ours included.

    before = cpuload.snapshot()
    ... timed loop ...
    share = cpuload.others_share(before, cpuload.snapshot())  # None where unknown
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

PROC_STAT = Path("/proc/stat")
CGROUP = Path("/sys/fs/cgroup")
# /proc/stat's cpu line: user nice system idle iowait irq softirq steal (guest time is already
# inside user and nice), in clock ticks.
_IDLE_FIELDS = (3, 4)
_COUNTED_FIELDS = 8
QUIET_SECONDS = 0.25  # a quiet window: 2 CPUs tick 50 times in it (a 2% step)


def _ticks_per_second() -> float:
    try:
        return float(os.sysconf("SC_CLK_TCK"))
    except (ValueError, OSError, AttributeError):
        return 100.0


def read_host(proc_stat: Path = PROC_STAT) -> tuple[float, float] | None:
    """(busy, total) CPU seconds of the whole host since boot, from /proc/stat's `cpu` line."""
    try:
        with proc_stat.open() as handle:
            first = handle.readline().split()
    except OSError:
        return None
    if not first or first[0] != "cpu":
        return None
    try:
        ticks = [float(value) for value in first[1 : 1 + _COUNTED_FIELDS]]
    except ValueError:
        return None
    idle = sum(ticks[i] for i in _IDLE_FIELDS if i < len(ticks))
    total = sum(ticks)
    per_second = _ticks_per_second()
    return (total - idle) / per_second, total / per_second


def read_own(cgroup: Path = CGROUP) -> float | None:
    """CPU seconds this cgroup (the container) used: cgroup v2's cpu.stat usage_usec, else
    cgroup v1's cpuacct.usage (nanoseconds); None where neither can be read."""
    try:
        for line in (cgroup / "cpu.stat").read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == "usage_usec":
                return int(value) / 1e6
    except (OSError, ValueError):
        pass
    for v1 in ("cpuacct/cpuacct.usage", "cpu,cpuacct/cpuacct.usage", "cpuacct.usage"):
        try:
            return int((cgroup / v1).read_text().strip()) / 1e9
        except (OSError, ValueError):
            continue
    return None


def snapshot(proc_stat: Path = PROC_STAT, cgroup: Path = CGROUP) -> dict[str, float | None]:
    """The counters `others_share` and `busy_share` compare: host busy and total CPU seconds,
    this cgroup's own CPU seconds, and a monotonic clock. Plain JSON values."""
    host = read_host(proc_stat)
    return {
        "monotonic": time.monotonic(),
        "host_busy_seconds": host[0] if host else None,
        "host_total_seconds": host[1] if host else None,
        "own_seconds": read_own(cgroup),
    }


def _delta(before: dict[str, float | None], after: dict[str, float | None], key: str) -> float:
    old, new = before.get(key), after.get(key)
    if old is None or new is None:
        raise KeyError(key)
    return new - old


def busy_share(before: dict[str, float | None], after: dict[str, float | None]) -> float | None:
    """Share of the host's CPU time that was busy between the snapshots, everyone's included;
    None where /proc/stat was not readable or no tick passed."""
    try:
        busy = _delta(before, after, "host_busy_seconds")
        total = _delta(before, after, "host_total_seconds")
    except KeyError:
        return None
    return None if total <= 0 else min(1.0, max(0.0, busy / total))


def others_share(before: dict[str, float | None], after: dict[str, float | None]) -> float | None:
    """Share of the host's CPU time used by others than this cgroup between the snapshots:
    (host busy - own) / host total, clipped to [0, 1]; None where either counter is missing
    (on the host itself, use `busy_share`)."""
    share = busy_share(before, after)
    try:
        own = _delta(before, after, "own_seconds")
        total = _delta(before, after, "host_total_seconds")
    except KeyError:
        return None
    if share is None or total <= 0:
        return None
    return min(1.0, max(0.0, share - own / total))


def quiet_share(
    seconds: float = QUIET_SECONDS, meanwhile: Callable[[], object] | None = None
) -> float | None:
    """The host's busy share over the next `seconds` (at least), less this process's own CPU
    time: the load of everyone else at that moment (between build samples). `meanwhile` is
    work of this process's own to do inside the window rather than after it (untimed, and no
    engine calls: the engine's CPU would count as others')."""
    # This process's own CPU time stands where a container's cgroup time does in `others_share`.
    began, before = time.monotonic(), {**snapshot(), "own_seconds": time.process_time()}
    if meanwhile is not None:
        meanwhile()
    time.sleep(max(0.0, seconds - (time.monotonic() - began)))
    return others_share(before, {**snapshot(), "own_seconds": time.process_time()})


def larger(*shares: float | None) -> float | None:
    """The largest of the shares that were measured; None if none was."""
    known = [share for share in shares if share is not None]
    return max(known) if known else None
