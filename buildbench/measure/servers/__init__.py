"""The serving frameworks buildbench builds an image of and measures as a service serving the
run's model (`--server NAME`): one module each, a `Server` value, named once in `SERVERS`.

Adding one: its module here (a `Server`: Dockerfile, encoding, ready and request paths, the
tmpfs mounts and environment it needs locked down), its `dockerfiles/serve-NAME.dockerfile`
(CPU with `CUDA` empty, CUDA with it set; the service is its CMD, run as a non-root user),
and one line in `SERVERS`. Its cells run on the http kind (measure/servers/smoke.py): ready,
first answer, latency and throughput per concurrency, and the answer's values checked against
the host's reference outputs; a server that batches on its own (`batching`) runs again, from
the same image, with its batching on, set beside the first run.
"""

from __future__ import annotations

from buildbench.errors import UsageError
from buildbench.measure.servers.base import Encoding, Request, Server, Tensor
from buildbench.measure.servers.bentoml import BENTOML
from buildbench.measure.servers.fastapi import FASTAPI
from buildbench.measure.servers.litserve import LITSERVE
from buildbench.measure.servers.mlserver import MLSERVER
from buildbench.measure.servers.rayserve import RAYSERVE
from buildbench.measure.servers.torchserve import TORCHSERVE
from buildbench.measure.servers.triton import TRITON

SERVERS: tuple[Server, ...] = (
    FASTAPI,
    LITSERVE,
    TRITON,
    TORCHSERVE,
    MLSERVER,
    BENTOML,
    RAYSERVE,
)
NAMES = tuple(s.name for s in SERVERS)
ALL = "all"


def server(name: str) -> Server:
    """The server of that name (a KeyError for another: names are checked where typed)."""
    return {s.name: s for s in SERVERS}[name]


def server_names(given: tuple[str, ...]) -> tuple[str, ...]:
    """`--server`'s values, `all` for every server, each once, in `SERVERS`' order where
    `all`; an unknown name is refused."""
    for name in given:
        if name != ALL and name not in NAMES:
            raise UsageError(
                f"--server {name}: no such server", tip=f"servers: {', '.join(NAMES)}, or all"
            )
    if ALL in given:
        return NAMES
    return tuple(dict.fromkeys(given))


__all__ = ["ALL", "NAMES", "SERVERS", "Encoding", "Request", "Server", "Tensor", "server"]
