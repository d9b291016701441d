"""The one converter between the values of this package and JSON: `to_json` writes plain
dicts and `from_json` reads them back (unknown keys ignored, missing ones defaulted). A smoke
result's detail is read as its kind's (`DETAILS`, by the result's `kind`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, TypeVar

import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from buildbench.record.command import CommandDetail
from buildbench.record.http import Served
from buildbench.record.model import ModelDetail
from buildbench.record.smoke import SmokeDetail, SmokeResult
from buildbench.record.stats import Interval, Quantiles

T = TypeVar("T")

# Each kind's detail, by the kind's name (measure/smoke/kinds names the same kinds).
DETAILS: dict[str, type[SmokeDetail]] = {
    "model": ModelDetail,
    "command": CommandDetail,
    "http": Served,
}
# Figures derived from a value, written beside its fields (see results.results_document).
Figures = Mapping[type, Callable[[Any], Mapping[str, Any]]]
_INTERVAL = ("low", "high", "level")


def _quantiles_json(q: Quantiles) -> dict[str, Any]:
    """Intervals flattened as the schema has them: `p95`, `p95_ci_low`, `p95_ci_high`, ..."""
    data: dict[str, Any] = {"n": q.n}
    for name in ("p50", "p95", "p99"):
        ci: Interval | None = getattr(q, f"{name}_ci")
        data[name] = getattr(q, name)
        data.update({f"{name}_ci_{k}": getattr(ci, k) if ci else None for k in _INTERVAL})
    return data


def _quantiles(data: dict[str, Any], _: type) -> Quantiles:
    def interval(name: str) -> Interval | None:
        low, high, level = (data.get(f"{name}_ci_{k}") for k in _INTERVAL)
        if low is None or high is None or level is None:
            return None
        return Interval(float(low), float(high), float(level))

    found = {name: data.get(name) for name in ("p50", "p95", "p99")}
    return Quantiles(
        n=int(data.get("n") or 0),
        **{k: None if v is None else float(v) for k, v in found.items()},
        p50_ci=interval("p50"),
        p95_ci=interval("p95"),
        p99_ci=interval("p99"),
    )


def make_converter(figures: Figures | None = None) -> cattrs.Converter:
    """The converter; with `figures`, each value of those types is written with its figures
    beside its fields (results.json's statistics)."""
    converter = cattrs.Converter()
    converter.register_unstructure_hook(Quantiles, _quantiles_json)
    converter.register_structure_hook(Quantiles, _quantiles)
    # A model's dimension: a size, or the name of a symbolic one.
    converter.register_structure_hook(int | str, lambda value, _: value)
    # A detail is written as what it is (its kind's), read as its result's kind says.
    converter.register_unstructure_hook_func(
        lambda cls: cls is SmokeDetail,
        lambda detail: converter.unstructure(detail, unstructure_as=type(detail)),
    )
    header = make_dict_structure_fn(SmokeResult, converter, detail=override(omit=True))

    def smoke(data: Mapping[str, Any], _: type) -> SmokeResult:
        result = header(data, SmokeResult)
        found, cls = data.get("detail"), DETAILS.get(result.kind)
        if found is None or cls is None:
            return result
        return replace(result, detail=converter.structure(found, cls))

    converter.register_structure_hook(SmokeResult, smoke)
    for cls, derive in (figures or {}).items():
        _with_figures(converter, cls, derive)
    return converter


def _with_figures(
    converter: cattrs.Converter, cls: type, derive: Callable[[Any], Mapping[str, Any]]
) -> None:
    fields: Callable[[Any], dict[str, Any]] = make_dict_unstructure_fn(cls, converter)

    def unstructure(value: Any) -> dict[str, Any]:
        return {**fields(value), **converter.unstructure(dict(derive(value)))}

    converter.register_unstructure_hook(cls, unstructure)


_converter = make_converter()


def to_json(value: Any) -> Any:
    """Plain JSON data (dicts, lists, strings, numbers) for any value of this package."""
    return _converter.unstructure(value)


def from_json(cls: type[T], data: Any) -> T:
    """The value `cls` from JSON data; unknown keys are ignored, missing ones defaulted.
    Raises ValueError (naming what is wrong) for data that does not fit."""
    try:
        return _converter.structure(data, cls)
    except cattrs.BaseValidationError as exc:
        raise ValueError("; ".join(cattrs.transform_error(exc))) from None
