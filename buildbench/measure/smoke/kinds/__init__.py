"""The kinds of smoke test, one package each, and the one list that names them.

A config's `smoke` value picks the kind: text is the kind that reads text (`"onnx"`: the model
kind), a table is the kind whose keys it has (`command`: the command kind, `http`: the http
kind). Adding a kind: its package here (config, smoke, `KIND`), and one line in `KINDS`.
"""

from __future__ import annotations

from typing import Any

from buildbench.measure.smoke.kinds import command, http, model
from buildbench.measure.smoke.options import SmokeOptions
from buildbench.measure.smoke.runner import Kind, SmokeConfig
from buildbench.measure.smoke.table import Where, type_name

KINDS: tuple[Kind, ...] = (model.KIND, command.KIND, http.KIND)


def kind_named(name: str) -> Kind:
    return next(kind for kind in KINDS if kind.name == name)


def read_smoke(value: Any, image: Where) -> SmokeConfig | None:
    """An image's `smoke` value, read by the kind it names; None: no smoke test."""
    if value is None:
        return None
    if isinstance(value, str):
        (reader,) = (kind for kind in KINDS if not kind.keys)
        return reader.read(value, image)
    at = image.inner("smoke")
    if not isinstance(value, dict):
        raise at.error(f"must be a table, not {type_name(value)}", "see the README's config")
    keys = [key for kind in KINDS for key in kind.keys]
    unknown = [key for key in value if key not in keys]
    if unknown:
        raise at.error(f'unknown key "{unknown[0]}"', f"valid keys: {', '.join(keys)}")
    tables = [kind for kind in KINDS if kind.keys]
    given = [kind for kind in tables if value.keys() & set(kind.keys)] or tables[:1]
    if len(given) > 1:
        *others, last = given
        beside = " or ".join(f'"{key}"' for kind in others for key in kind.keys)
        raise at.error(f'"{last.keys[0]}" takes no {beside} beside it', last.tip)
    return given[0].read(value, at)


def check_run(options: SmokeOptions) -> None:
    """The run's smoke options, each kind's part refused now if wrong: before any engine is
    asked anything, so a mistake costs no build and leaves no run behind."""
    for kind in KINDS:
        kind.check_run(options)
