"""A config table read into a dataclass that declares it once: its keys, their types and
defaults, and per key the example, rule and tip a mistake's message gives.

cattrs structures the table with strict hooks (a TOML string is no integer, a boolean is no
number) and refuses unknown keys; the first problem becomes one `UsageError` naming the file,
the table and the key, with a tip.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import cattrs
from cattrs.errors import ForbiddenExtraKeysError

from buildbench.errors import UsageError

T = TypeVar("T")

TOML_TYPES: dict[type, str] = {
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a float",
    list: "an array",
    tuple: "an array",
    dict: "a table",
}
_EXAMPLES: dict[type, str] = {str: '"..."', dict: '{ NAME = "value" }'}


def type_name(value: object) -> str:
    return TOML_TYPES.get(type(value), type(value).__name__)


@dataclass(frozen=True)
class Where:
    """A table of a config file: where its problems are, and what its paths are relative to."""

    source: Path
    where: str

    def error(self, problem: str, tip: str) -> UsageError:
        return UsageError(f"{self.source}: {self.where}: {problem}", tip=tip)

    def inner(self, key: str) -> Where:
        return Where(self.source, f"{self.where}: {key}")

    def path(self, value: str) -> Path:
        """`value` relative to the config file's folder."""
        path = Path(value).expanduser()
        return (path if path.is_absolute() else self.source.parent / path).resolve()


@dataclass(frozen=True)
class Rule:
    """What a key's value must be beyond its type, and what to say when it is not. `problem`
    may name `{value!r}`; `typed`: a value of another type gets this message too (else the
    generic "must be an integer, not a string")."""

    ok: Callable[[Any], bool]
    problem: str | Callable[[Any], str]
    tip: str
    typed: bool = False

    def error(self, at: Where, value: Any) -> UsageError:
        problem = self.problem(value) if callable(self.problem) else self.problem
        return at.error(problem.format(value=value), self.tip.format(value=value))


def key(
    default: Any = dataclasses.MISSING,
    *,
    example: str | None = None,
    rule: Rule | None = None,
    required_tip: str | None = None,
) -> Any:
    """A key of a table: its default (none: required), the example a wrong type's tip shows,
    its rule."""
    metadata = {"example": example, "rule": rule, "required_tip": required_tip}
    return dataclasses.field(default=default, metadata=metadata)


class _WrongType(TypeError):
    def __init__(self, value: object, expected: type) -> None:
        super().__init__(f"{type_name(value)} is not {TOML_TYPES[expected]}")
        self.value, self.expected = value, expected


def _strict(expected: type) -> Callable[[Any, Any], Any]:
    def structure(value: Any, _: Any) -> Any:
        number = expected is float and type(value) is int
        if type(value) is not expected and not number:  # `is`: a bool is not an int here
            raise _WrongType(value, expected)
        return float(value) if number else value

    return structure


def _sequence(converter: cattrs.Converter) -> Callable[[Any, Any], Any]:
    def structure(value: Any, wanted: Any) -> Any:
        if not isinstance(value, list):
            raise _WrongType(value, list)
        (item, *_) = typing.get_args(wanted)
        return tuple(converter.structure(v, item) for v in value)

    return structure


def _mapping(converter: cattrs.Converter) -> Callable[[Any, Any], Any]:
    def structure(value: Any, wanted: Any) -> Any:
        if not isinstance(value, dict):
            raise _WrongType(value, dict)
        _, item = typing.get_args(wanted)
        found = {}
        for name, v in value.items():
            try:
                found[name] = converter.structure(v, item)
            except _WrongType as exc:
                exc.add_note(name)
                raise
        return found

    return structure


_converter = cattrs.Converter(forbid_extra_keys=True)
for _type in (str, int, float, bool):
    _converter.register_structure_hook(_type, _strict(_type))
_converter.register_structure_hook(Any, lambda value, _: value)
_converter.register_structure_hook_func(
    lambda t: typing.get_origin(t) is tuple, _sequence(_converter)
)
_converter.register_structure_hook_func(
    lambda t: typing.get_origin(t) in (dict, Mapping), _mapping(_converter)
)


def read_table(cls: type[T], data: object, at: Where) -> T:
    """`data` (a TOML table) as `cls`, every key checked; the first problem is a UsageError."""
    if not isinstance(data, dict):
        raise at.error(f"must be a table, not {type_name(data)}", "see the README's config")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = [name for name in data if name not in fields]
    if unknown:
        raise at.error(f'unknown key "{unknown[0]}"', f"valid keys: {', '.join(fields)}")
    for name, found in fields.items():  # in the order the table declares them
        rule = found.metadata.get("rule")
        if name in data and rule and rule.typed and not rule.ok(data[name]):
            raise rule.error(at, data[name])
    try:
        table = _converter.structure(data, cls)
    except cattrs.ClassValidationError as exc:
        raise _first_problem(exc, fields, at) from None
    for name, found in fields.items():
        rule = found.metadata.get("rule")
        value = getattr(table, name)
        if name in data and rule and not rule.typed and not rule.ok(value):
            raise rule.error(at, value)
    return table


def _first_problem(
    error: cattrs.ClassValidationError, fields: Mapping[str, dataclasses.Field[Any]], at: Where
) -> UsageError:
    order = list(fields)
    found = []
    for exc in error.exceptions:
        if isinstance(exc, ForbiddenExtraKeysError):  # checked above; kept for safety
            return at.error(f'unknown key "{sorted(exc.extra_fields)[0]}"', "see the README")
        names = [n.name for n in getattr(exc, "__notes__", []) if hasattr(n, "name")]
        found.append((order.index(names[0]) if names else len(order), names, exc))
    _, names, exc = min(found, key=lambda f: f[0])
    name = names[0] if names else "?"
    meta = fields[name].metadata if name in fields else {}
    if isinstance(exc, KeyError):
        tip = meta.get("required_tip") or f'add {name} = "..." to this table'
        return at.error(f'"{name}" is required', tip)
    if isinstance(exc, _WrongType):
        item = [n for n in getattr(exc, "__notes__", []) if not hasattr(n, "name")]
        if item:  # a table's value: headers = { X = 1 }
            return at.error(
                f'"{name}.{item[0]}" must be {TOML_TYPES[exc.expected]}, not '
                f"{type_name(exc.value)}",
                f'quote the value: {item[0]} = "{exc.value}"',
            )
        example = meta.get("example") or _EXAMPLES.get(exc.expected, "...")
        return at.error(
            f'"{name}" must be {TOML_TYPES[exc.expected]}, not {type_name(exc.value)}',
            f"e.g. {name} = {example}",
        )
    return at.error(f'"{name}" is not valid: {exc}', "see the README's config")
