"""The HTTP smoke test: an image that serves over HTTP, measured as a service.

The image's own CMD/ENTRYPOINT starts the service in a locked-down container with no network
and no port published; buildbench's load generator (`loadgen.py`, standard library only) runs
in a second container that joins the service's network namespace, so it reaches
127.0.0.1:PORT and nothing else. The load generator and the request body travel in a volume
filled through the API, as the model smoke test's files do: any engine works, remote ones too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MOUNT = "/buildbench"
LOADGEN = "loadgen.py"
SPEC = "spec.json"
BODY = "body"
NOBODY = "65534:65534"
# One thread per connection in the load generator: its pids limit must leave room for them.
MAX_CONCURRENCY = 128


@dataclass(frozen=True)
class HttpSmoke:
    """`[image.smoke.http]`: where the service listens, what to send it and what it must answer."""

    port: int
    ready: str | None = None  # GET this path until a 2xx; None: until the port accepts
    method: str = "GET"
    path: str = "/"
    body: bytes | None = None  # `body_file`'s content, or `json` serialised
    headers: Mapping[str, str] = field(default_factory=dict)
    expect_status: int = 200
    expect: str | None = None  # text the body must contain
    concurrency: tuple[int, ...] = (1, 4, 16)
    seconds: float = 10.0  # per concurrency level, after its warm-up

    @property
    def warmup_seconds(self) -> float:
        """Each level's warm-up: a fifth of its time, between 0.5 and 2 s."""
        return round(min(2.0, max(0.5, self.seconds / 5)), 3)

    def describe(self) -> str:
        return f"{self.method} {self.path} on port {self.port}"


def loadgen_spec(
    http: HttpSmoke, ready_timeout: float, request_timeout: float, max_requests: int
) -> dict[str, Any]:
    """What the load generator reads (`spec.json` in the volume)."""
    return {
        "port": http.port,
        "ready": http.ready,
        "ready_timeout": ready_timeout,
        "method": http.method,
        "path": http.path,
        "body_file": f"{MOUNT}/{BODY}" if http.body is not None else None,
        "headers": dict(http.headers),
        "expect_status": http.expect_status,
        "expect": http.expect,
        "concurrency": list(http.concurrency),
        "seconds": http.seconds,
        "warmup_seconds": http.warmup_seconds,
        "request_timeout": request_timeout,
        "max_requests": max_requests,
    }


def loadgen_files(spec: Mapping[str, Any], body: bytes | None) -> dict[str, bytes]:
    """The volume's files: the load generator, its spec and the request body."""
    files = {
        LOADGEN: (Path(__file__).with_name(LOADGEN)).read_bytes(),
        SPEC: json.dumps(spec).encode(),
    }
    if body is not None:
        files[BODY] = body
    return files


def service_user(image_user: str) -> str:
    """The image's own user when it is not root, else nobody: a service never runs as root."""
    name = image_user.partition(":")[0]
    return NOBODY if name in ("", "0", "root") else image_user
