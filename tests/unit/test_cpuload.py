"""The interference check's counters: /proc/stat and the cgroup's own CPU time, and the share of
the host's CPU others used between two snapshots."""

from __future__ import annotations

from pathlib import Path

import pytest

from buildbench.measure.smoke import cpuload

TICK = cpuload._ticks_per_second()


def proc_stat(path: Path, busy: float, idle: float) -> Path:
    """A /proc/stat whose cpu line holds `busy` and `idle` seconds (as clock ticks)."""
    user, system = busy * 0.75 * TICK, busy * 0.25 * TICK
    path.write_text(
        f"cpu  {user:.0f} 0 {system:.0f} {idle * TICK:.0f} 0 0 0 0 0 0\n"
        "cpu0 1 2 3 4 5 6 7 8 9 10\nintr 1\n"
    )
    return path


def cgroup_v2(folder: Path, seconds: float) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "cpu.stat").write_text(
        f"usage_usec {seconds * 1e6:.0f}\nuser_usec 1\nsystem_usec 1\n"
    )
    return folder


def snap(tmp_path: Path, busy: float, idle: float, own: float | None) -> dict[str, float | None]:
    cgroup = tmp_path / "cgroup"
    if own is not None:
        cgroup_v2(cgroup, own)
    return cpuload.snapshot(proc_stat(tmp_path / "stat", busy, idle), cgroup)


def test_others_share_is_host_busy_minus_own_over_host_total(tmp_path: Path) -> None:
    """2 cores for 10 s: 20 CPU seconds; busy 15 of them, 5 ours: others used 10 / 20."""
    before = snap(tmp_path, busy=100.0, idle=300.0, own=50.0)
    after = snap(tmp_path, busy=115.0, idle=305.0, own=55.0)
    assert cpuload.busy_share(before, after) == pytest.approx(0.75)
    assert cpuload.others_share(before, after) == pytest.approx(0.5)


def test_a_quiet_host_shows_no_others(tmp_path: Path) -> None:
    before = snap(tmp_path, busy=100.0, idle=300.0, own=50.0)
    after = snap(tmp_path, busy=110.0, idle=310.0, own=60.0)  # every busy second was ours
    assert cpuload.others_share(before, after) == pytest.approx(0.0)


def test_shares_are_clipped_to_zero_and_one(tmp_path: Path) -> None:
    before = snap(tmp_path, busy=100.0, idle=300.0, own=50.0)
    after = snap(tmp_path, busy=101.0, idle=309.0, own=53.0)  # accounting skew: own > busy
    assert cpuload.others_share(before, after) == 0.0


def test_without_a_cgroup_only_the_busy_share_is_known(tmp_path: Path) -> None:
    before = snap(tmp_path, busy=100.0, idle=300.0, own=None)
    after = snap(tmp_path, busy=105.0, idle=305.0, own=None)
    assert before["own_seconds"] is None
    assert cpuload.others_share(before, after) is None
    assert cpuload.busy_share(before, after) == pytest.approx(0.5)


def test_no_time_passed_or_no_proc_stat_is_unknown(tmp_path: Path) -> None:
    same = snap(tmp_path, busy=100.0, idle=300.0, own=50.0)
    assert cpuload.busy_share(same, same) is None
    missing = cpuload.snapshot(tmp_path / "nothing", tmp_path / "nothing")
    assert missing["host_busy_seconds"] is None and missing["own_seconds"] is None
    assert cpuload.others_share(missing, missing) is None


def test_cgroup_v1_usage_is_in_nanoseconds(tmp_path: Path) -> None:
    (tmp_path / "cpuacct").mkdir()
    (tmp_path / "cpuacct" / "cpuacct.usage").write_text("2500000000\n")
    assert cpuload.read_own(tmp_path) == pytest.approx(2.5)


def test_a_malformed_proc_stat_is_unknown(tmp_path: Path) -> None:
    (tmp_path / "stat").write_text("intr 1 2 3\n")
    assert cpuload.read_host(tmp_path / "stat") is None


def test_this_machine_can_be_read() -> None:
    """Linux here: /proc/stat answers and the counters only grow."""
    before = cpuload.snapshot()
    sum(i * i for i in range(200_000))
    after = cpuload.snapshot()
    assert before["host_total_seconds"] is not None
    share = cpuload.busy_share(before, after)
    assert share is None or 0.0 <= share <= 1.0


def test_a_quiet_window_reads_this_machine_and_larger_skips_the_unknown() -> None:
    share = cpuload.quiet_share(0.05)
    assert share is None or 0.0 <= share <= 1.0
    assert cpuload.larger(None, 0.2, 0.1) == 0.2
    assert cpuload.larger(None, None) is None


def test_a_quiet_window_takes_out_its_own_work_and_lasts_at_least_its_seconds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The window's own work (the report's imports) is not others' load: 1 s busy of 2 s is
    0.5, less this process's 0.6 s of CPU over the host's 2 s."""
    snapshots = iter([snap(tmp_path, 0.0, 0.0, None), snap(tmp_path, 1.0, 1.0, None)])
    monkeypatch.setattr(cpuload, "snapshot", lambda: next(snapshots))
    own = iter([10.0, 10.6])
    monkeypatch.setattr(cpuload.time, "process_time", lambda: next(own))
    done: list[float] = []
    began = cpuload.time.monotonic()
    share = cpuload.quiet_share(0.05, meanwhile=lambda: done.append(cpuload.time.monotonic()))
    assert share == pytest.approx(0.2)
    assert len(done) == 1 and done[0] - began < 0.05  # inside the window, not after it
    assert cpuload.time.monotonic() - began >= 0.05


def test_a_window_whose_own_work_exceeds_the_busy_time_shows_no_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshots = iter([snap(tmp_path, 0.0, 0.0, None), snap(tmp_path, 0.2, 1.8, None)])
    monkeypatch.setattr(cpuload, "snapshot", lambda: next(snapshots))
    own = iter([0.0, 0.5])  # ticks are coarser than the process clock
    monkeypatch.setattr(cpuload.time, "process_time", lambda: next(own))
    assert cpuload.quiet_share(0.0) == 0.0
