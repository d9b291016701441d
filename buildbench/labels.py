"""The labels buildbench puts on everything it creates in an engine, and how build-args are
recorded: the vocabulary that the pipeline, `clean` and `list` share."""

from __future__ import annotations

import re
from collections.abc import Mapping

LABEL_RUN = "buildbench.run-id"  # on every image, container and volume of a run
LABEL_CELL = "buildbench.cell"  # name/variant
LABEL_LOCK = "buildbench.lock"  # on the container that lives as long as its run
SMOKE_VOLUME_PREFIX = "buildbench-smoke-"  # + run id: the smoke test's files in the engine


def smoke_volume(run_id: str, n: int = 0) -> str:
    """The name of a run's n-th smoke-test volume (one per kind of files the tests need)."""
    return SMOKE_VOLUME_PREFIX + run_id + (f"-{n}" if n else "")


_SECRET_ARG_WORDS = ("TOKEN", "PASSWORD", "SECRET", "KEY")
_URL_CREDENTIALS = re.compile(r"(\w+://)[^/@\s]+@")


def run_labels(run_id: str, cell: str | None = None) -> dict[str, str]:
    return {LABEL_RUN: run_id, **({LABEL_CELL: cell} if cell else {})}


def mask_url(url: str) -> str:
    """A URL with its credentials masked: https://***@mirror.example/simple."""
    return _URL_CREDENTIALS.sub(r"\1***@", url)


def masked_build_args(args: Mapping[str, str]) -> dict[str, str]:
    """Build-args as written to results and shown: credentials in URLs and secret-looking values
    masked."""
    return {
        name: "***" if any(word in name.upper() for word in _SECRET_ARG_WORDS) else mask_url(value)
        for name, value in args.items()
    }
