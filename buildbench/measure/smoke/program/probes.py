"""What the program proves about its environment: the network's isolation, peak memory, and
which shared libraries the dynamic linker cannot find."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess


def network_probe() -> dict:
    """Prove the isolation from inside: which interfaces exist, and whether a connection fails."""
    try:
        interfaces = sorted(os.listdir("/sys/class/net"))
    except OSError:
        interfaces = []
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
        error = None
    except OSError as exc:
        error = f"{type(exc).__name__}: {exc}"
    return {"interfaces": interfaces, "connection_failed": error is not None, "error": error}


def peak_memory_bytes() -> int:
    for path in (
        "/sys/fs/cgroup/memory.peak",  # cgroup v2 (kernel 5.19+)
        "/sys/fs/cgroup/memory/memory.max_usage_in_bytes",  # cgroup v1
    ):
        try:
            with open(path) as handle:
                return int(handle.read())
        except (OSError, ValueError):
            continue
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


DRIVER = "libcuda.so.1"  # the GPU driver: only a host with a GPU (and its runtime) has it


def dynamic_loader() -> str | None:
    """This process's dynamic loader, as mapped: glibc's ld-linux only (musl's ignores
    LD_TRACE_LOADED_OBJECTS; its `ldd` is the fallback)."""
    with contextlib.suppress(OSError), open("/proc/self/maps") as maps:
        for line in maps:
            path = line.rstrip("\n").partition(" /")[2]
            if os.path.basename(path).startswith("ld-linux"):
                return "/" + path
    return None


def unresolved_libraries(library: str, search: list[str]) -> list[str]:
    """Sonames `library` links against that the dynamic linker cannot find.

    The loader lists them itself, as ldd has it do (ldd is a bash script, and a slim image
    keeps no shell; `ld.so --list` stops at the first missing library). Each library it did
    find is stat'ed: nothing maps them on a host without a GPU, and a trace of this process
    (--slim) must keep what the check proved is there, or the slim image fails the check."""
    env = {**os.environ, "LD_LIBRARY_PATH": ":".join(search)}
    loader = dynamic_loader()
    if loader is not None:
        env["LD_TRACE_LOADED_OBJECTS"] = "1"
    try:
        out = subprocess.run(
            [loader or "ldd", library],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return [f"ldd failed: {exc}"]
    missing = []
    for line in out.splitlines():
        name, _, found = line.strip().partition(" => ")
        if "not found" in found:
            missing.append(name)
        elif found.startswith("/"):
            with contextlib.suppress(OSError):
                os.stat(found.rpartition(" (")[0] or found)
    return missing
