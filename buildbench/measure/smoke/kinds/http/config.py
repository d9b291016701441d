"""The http kind's part of a config: `[image.smoke.http]`, checked whole before any build.

[image.smoke.http]           # the image is an HTTP service, measured under load
port = 8000                  # required; the others have defaults
ready = "/health"            # GET until a 2xx; omitted: until the port accepts connections
method = "POST"
path = "/predict"
body_file = "request.json"   # or json = { ... }; headers = { NAME = "value" }
expect_status = 200
expect = "embedding"         # text the body must contain
concurrency = [1, 4, 16]
seconds = 10                 # per concurrency level, after a warm-up
error_budget = 0.01          # the share of a level's requests that may fail (default 1%)
batching = { enabled = true, pair = "svc", max_batch = 8, max_delay_ms = 5 }  # the service's own
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from buildbench.measure.smoke.kinds.http.smoke import ERROR_BUDGET, MAX_CONCURRENCY, HttpSmoke
from buildbench.measure.smoke.table import Rule, Where, key, read_table
from buildbench.record import Batching

log = logging.getLogger("buildbench")

TIP = 'e.g. [image.smoke.http] with port = 8000 (see the README\'s "Your service")'
_PORT_TIP = "the port the service listens on inside its container, e.g. port = 8000"
_METHOD = re.compile(r"^[A-Z]+$")


def _absolute(name: str) -> Rule:
    return Rule(
        lambda path: path is None or path.startswith("/"),
        f'"{name}" must start with "/", not {{value!r}}',
        f'e.g. {name} = "/{{value}}"',
    )


def _number(value: Any, low: float, high: float, *, low_open: bool) -> bool:
    if type(value) not in (int, float):  # `type`: a boolean is no number here
        return False
    return (low < value if low_open else low <= value) and value <= high


def _levels(levels: tuple[Any, ...]) -> bool:
    good = all(type(n) is int and 0 < n <= MAX_CONCURRENCY for n in levels)
    return bool(levels) and good and sorted(set(levels)) == list(levels)


@dataclass(frozen=True)
class HttpTable:
    port: int = key(
        example="8000",
        rule=Rule(lambda port: 0 < port < 65536, "port {value} is not from 1 to 65535", _PORT_TIP),
        required_tip=_PORT_TIP,
    )
    ready: str | None = key(None, rule=_absolute("ready"))
    method: str = key(
        "GET",
        rule=Rule(
            lambda method: bool(_METHOD.match(method.upper())),
            lambda method: f"method {method.upper()!r} is not an HTTP method",
            'e.g. method = "POST"',
        ),
    )
    path: str = key("/", rule=_absolute("path"))
    body_file: str | None = None
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    expect_status: int = key(
        200,
        example="200",
        rule=Rule(
            lambda status: 100 <= status <= 599,
            "expect_status {value} is no HTTP status",
            "e.g. expect_status = 200",
        ),
    )
    expect: str | None = None  # text the body must contain
    concurrency: tuple[Any, ...] = key(
        HttpSmoke.concurrency,
        example="[1, 4, 16]",
        rule=Rule(
            _levels,
            f'"concurrency" must be increasing whole numbers from 1 to {MAX_CONCURRENCY}',
            "e.g. concurrency = [1, 4, 16]",
        ),
    )
    seconds: float = key(
        HttpSmoke.seconds,
        rule=Rule(
            lambda value: _number(value, 0, 600, low_open=True),
            '"seconds" must be a number of seconds from 0 to 600, not {value!r}',
            "e.g. seconds = 10 (per concurrency level)",
            typed=True,
        ),
    )
    error_budget: float = key(
        ERROR_BUDGET,
        rule=Rule(
            lambda value: _number(value, 0, 1, low_open=False),
            '"error_budget" must be a share from 0 to 1, not {value!r}',
            "e.g. error_budget = 0.05 (5% of each level's requests may fail)",
            typed=True,
        ),
    )
    batching: dict[str, Any] | None = None  # the service's own batching, as it was built


def read(smoke: dict[str, Any], at: Where) -> HttpSmoke:
    """`smoke.http` of an image's `smoke` table; paths relative to the config's folder."""
    at = Where(at.source, f"{at.where}.http")
    table = read_table(HttpTable, smoke["http"], at)
    body, headers = _body(table, at)
    method = table.method.upper()
    if body is not None and method in ("GET", "HEAD"):
        log.warning(
            "WARNING: %s: %s: %s gives a body for a %s request, which many services ignore: "
            'set method = "POST" if the service reads it',
            at.source,
            at.where,
            "json" if table.json is not None else "body_file",
            method,
        )
    return HttpSmoke(
        port=table.port,
        ready=table.ready,
        method=method,
        path=table.path,
        body=body,
        headers=headers,
        expect_status=table.expect_status,
        expect=table.expect,
        concurrency=tuple(table.concurrency),
        seconds=float(table.seconds),
        error_budget=float(table.error_budget),
        batching=None if table.batching is None else _batching(table.batching, at),
    )


def _body(table: HttpTable, at: Where) -> tuple[bytes | None, dict[str, str]]:
    """The request body (`body_file` read now, or `json` serialised) and the headers: JSON
    gets its Content-Type unless the headers name one."""
    headers = dict(table.headers)
    if table.body_file is not None and table.json is not None:
        raise at.error('"body_file" and "json" both given', "keep one of them")
    if table.json is not None:
        body = json.dumps(table.json).encode()
    elif table.body_file is not None:
        path = at.path(table.body_file)
        try:
            body = path.read_bytes()
        except OSError as exc:
            raise at.error(
                f"cannot read body_file {path}: {exc.strerror}",
                "paths are relative to the config file's folder",
            ) from None
        if path.suffix != ".json":
            return body, headers
    else:
        return None, headers
    if not any(name.lower() == "content-type" for name in headers):
        headers["Content-Type"] = "application/json"
    return body, headers


_BATCHING_TIP = (
    'e.g. batching = { enabled = true, pair = "my-service", max_batch = 8, max_delay_ms = 5 } '
    "(the same pair on the image with it off)"
)


def _batching(table: dict[str, Any], at: Where) -> Batching:
    """`batching`: the service's own batching, for the report to set off and on side by side."""
    unknown = sorted(set(table) - {"enabled", "pair", "max_batch", "max_delay_ms"})
    enabled, pair = table.get("enabled"), table.get("pair")
    max_batch, delay = table.get("max_batch"), table.get("max_delay_ms")
    if unknown:
        raise at.error(f"batching has no key {unknown[0]!r}", _BATCHING_TIP)
    if type(enabled) is not bool or not isinstance(pair, str) or not pair:
        raise at.error("batching needs enabled (true or false) and a pair name", _BATCHING_TIP)
    if max_batch is not None and not (type(max_batch) is int and max_batch > 0):
        raise at.error(f"batching's max_batch {max_batch!r} is not a whole number", _BATCHING_TIP)
    if delay is not None and not _number(delay, 0, 60_000, low_open=False):
        raise at.error(f"batching's max_delay_ms {delay!r} is not milliseconds", _BATCHING_TIP)
    return Batching(enabled, pair, max_batch, None if delay is None else float(delay))
