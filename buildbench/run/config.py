"""The matrix from a config file: `buildbench.toml`, or `[tool.buildbench]` in `pyproject.toml`.

Without `--config`, buildbench looks in the current directory: `buildbench.toml` first, then a
`pyproject.toml` that has a `[tool.buildbench]` table. With no config, the built-in PyTorch and
ONNX Runtime images are the matrix. The format: one `[[image]]` table per image
(`[[tool.buildbench.image]]` in `pyproject.toml`), each becoming one cell per variant:

    [[image]]
    builtin = "pytorch"          # a built-in image ("pytorch", "onnx", ...); takes no other key

    [[image]]
    name = "course-onnx"         # required: lowercase letters and digits, with . _ - inside;
                                 # not a built-in image's name ("pytorch", "onnx", ...)
    dockerfile = "inference_onnx.dockerfile"  # required; relative to the config file's folder
    context = "."                # default: the Dockerfile's folder (relative as dockerfile)
    cuda_arg = "CUDA"            # the build-arg that selects the variant (default "CUDA")
    variants = { cpu = "", cuda = "true" }    # its value per variant (this is the default);
                                 # name only `cpu` for an image without a CUDA variant (with
                                 # no value and no ARG of it, the build-arg is not passed)
    build_args = { PIP_DEFAULT_TIMEOUT = "60" }  # more build-args: strings only
    smoke = "onnx"               # the smoke test, read by its kind (measure/smoke/kinds/):
                                 # "pytorch" or "onnx" (also the image's framework for
                                 # `--framework`), { command = [...], expect = "text" }, or an
                                 # [image.smoke.http] table; default: no smoke test
    build_inputs = false         # whether the context gets buildbench's build-inputs/ folder
                                 # (pip.conf, CA bundle, wheels), as the built-in images do

The smoke test's models (`--model` adds to them): one `[[model]]` table each, read by the
model kind (measure/smoke/kinds/model/config.py); with no `[[image]]` table, the built-in
images run them.

Every mistake (unknown key, wrong type, missing file) is a `UsageError` naming file and key.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from buildbench.engine.dockerfile import declared_args
from buildbench.errors import UsageError
from buildbench.measure.runtimes import DEFAULT_NAMES, NAMES
from buildbench.measure.smoke.kinds import read_smoke
from buildbench.measure.smoke.kinds.model.config import read_model
from buildbench.measure.smoke.options import ModelRequest
from buildbench.measure.smoke.runner import SmokeConfig
from buildbench.measure.smoke.table import TOML_TYPES, Where, type_name
from buildbench.render import fmt
from buildbench.run.matrix import (
    CUDA_VALUES,
    VARIANTS,
    Cell,
    MatrixOptions,
    builtin_matrix,
    missing_variants,
    read_dockerfile,
    server_cells,
)

CONFIG_NAME = "buildbench.toml"
PYPROJECT_NAME = "pyproject.toml"
IMAGE_KEYS = (
    "name",
    "dockerfile",
    "context",
    "cuda_arg",
    "variants",
    "build_args",
    "smoke",
    "build_inputs",
)
# Image names end up in tags (`buildbench/<name>:<variant>-<run id>`): Docker's repository rules.
_NAME = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")


@dataclass(frozen=True)
class BuiltinImage:
    """`builtin = "pytorch"`: one of buildbench's own images, with its options from the CLI."""

    framework: str

    @property
    def name(self) -> str:
        return self.framework

    def cells(self, options: MatrixOptions) -> list[Cell]:
        if self.framework not in options.frameworks:
            return []
        return builtin_matrix(replace(options, frameworks=(self.framework,)))

    def missing(self, options: MatrixOptions) -> dict[str, str]:
        if self.framework not in options.frameworks:
            return {}
        return missing_variants(replace(options, frameworks=(self.framework,)))


@dataclass(frozen=True)
class UserImage:
    """A user's own Dockerfile, built once per variant it declares."""

    name: str
    dockerfile: Path
    context: Path
    cuda_arg: str = "CUDA"
    variants: Mapping[str, str] = field(default_factory=lambda: dict(CUDA_VALUES))
    build_args: Mapping[str, str] = field(default_factory=dict)
    build_inputs: bool = False
    smoke: SmokeConfig | None = None

    @property
    def framework(self) -> str | None:
        return self.smoke.framework if self.smoke else None

    def cells(self, options: MatrixOptions) -> list[Cell]:
        return [
            Cell(
                name=self.name,
                variant=variant,
                dockerfile=self.dockerfile,
                context=self.context,
                build_args={**self.variant_arg(variant), **self.build_args},
                framework=self.framework,
                build_inputs=self.build_inputs,
                smoke=self.smoke,
            )
            for variant in options.variants
            if variant in self.variants
        ]

    def variant_arg(self, variant: str) -> dict[str, str]:
        """The build-arg that selects `variant`. None for an image whose variants give it no
        value (CPU only: `{ cpu = "" }`) and whose Dockerfile declares no ARG of that name: it
        could change nothing, and would only be warned about as never consumed. A value the
        Dockerfile ignores is still passed, and warned about on every cell of the image: that
        is the course exercise's flaw (its "cuda" image is a CPU image)."""
        if any(self.variants.values()) or self.cuda_arg in declared_args(
            read_dockerfile(self.dockerfile)
        ):
            return {self.cuda_arg: self.variants[variant]}
        return {}


Image = BuiltinImage | UserImage


@dataclass(frozen=True)
class MatrixConfig:
    source: Path
    images: tuple[Image, ...]

    def cells(self, options: MatrixOptions) -> list[Cell]:
        """The cells of the variants and frameworks in `options`; built-in images also take its
        other fields. An image's framework is its builtin, or its `smoke` framework: with fewer
        than the default frameworks (`--framework`), images of none are left out too."""
        every = set(DEFAULT_NAMES) <= set(options.frameworks)
        return [
            cell
            for image in self.images
            if every or image.framework in options.frameworks
            for cell in image.cells(options)
        ]

    def missing(self, options: MatrixOptions) -> dict[str, str]:
        """The built-in images' cells asked for that their runtime lacks, with why."""
        return {
            key: why
            for image in self.images
            if isinstance(image, BuiltinImage)
            for key, why in image.missing(options).items()
        }


class _Table:
    """One TOML table being read; every problem becomes a UsageError naming the file and key."""

    def __init__(self, data: object, source: Path, where: str, allowed: tuple[str, ...]) -> None:
        self.source, self.where = source, where
        if not isinstance(data, dict):
            raise self.error(f"must be a table, not {type_name(data)}", "see the README's config")
        unknown = [key for key in data if key not in allowed]
        if unknown:
            raise self.error(f'unknown key "{unknown[0]}"', f"valid keys: {', '.join(allowed)}")
        self.data: dict[str, Any] = data

    def error(self, problem: str, tip: str) -> UsageError:
        return UsageError(f"{self.source}: {self.where}: {problem}", tip=tip)

    def typed(self, key: str, kind: type, example: str) -> Any:
        value = self.data.get(key)
        if value is not None and type(value) is not kind:  # `is`: a bool is not an int here
            raise self.error(
                f'"{key}" must be {TOML_TYPES[kind]}, not {type_name(value)}',
                f"e.g. {key} = {example}",
            )
        return value

    def string(self, key: str, default: str | None = None) -> str | None:
        value = self.typed(key, str, '"..."')
        return default if value is None else value

    def required(self, key: str) -> str:
        value = self.string(key)
        if not value:
            raise self.error(f'"{key}" is required', f'add {key} = "..." to this image')
        return value

    def strings(self, key: str, default: Mapping[str, str]) -> dict[str, str]:
        table = self.typed(key, dict, '{ NAME = "value" }')
        for name, value in (table or {}).items():
            if not isinstance(value, str):
                raise self.error(
                    f'"{key}.{name}" must be a string, not {type_name(value)}',
                    f'quote the value: {name} = "{value}"',
                )
        return dict(default if table is None else table)

    def path(self, key: str, default: Path | None = None) -> Path:
        """A path relative to the config file's folder; `default` when the key is absent."""
        value = self.string(key)
        if value is None and default is not None:
            return default
        path = Path(self.required(key)).expanduser()
        return (path if path.is_absolute() else self.source.parent / path).resolve()


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except OSError as exc:
        raise UsageError(
            f"cannot read config {path}: {exc.strerror}",
            tip="check the path given to --config",
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}", tip="fix the line it names") from None


def _buildbench_table(pyproject: dict[str, Any]) -> object | None:
    tool = pyproject.get("tool")
    return tool.get("buildbench") if isinstance(tool, dict) else None


def find_config(directory: Path) -> Path | None:
    """`buildbench.toml` in `directory`, else its `pyproject.toml` if that has [tool.buildbench]."""
    own = directory / CONFIG_NAME
    if own.is_file():
        return own
    pyproject = directory / PYPROJECT_NAME
    if pyproject.is_file() and _buildbench_table(_read_toml(pyproject)) is not None:
        return pyproject
    return None


def load_config(path: Path | None = None, directory: Path | None = None) -> MatrixConfig | None:
    """The config at `path`, or the one found in `directory` (default: here); None if none."""
    if path is None:
        path = find_config(directory or Path())
        if path is None:
            return None
    toml = _read_toml(path)
    if path.name != PYPROJECT_NAME:
        return _parse(toml, path, prefix="")
    table = _buildbench_table(toml)
    if table is None:
        raise UsageError(
            f"{path} has no [tool.buildbench] table",
            tip="add [[tool.buildbench.image]] tables, or point --config at a buildbench.toml",
        )
    return _parse(table, path, prefix="tool.buildbench.")


def _parse(data: object, source: Path, prefix: str) -> MatrixConfig:
    top = _Table(
        data, source, f"[{prefix.rstrip('.')}]" if prefix else "top level", ("image", "model")
    )
    entries = top.typed("image", list, "[...] (write [[image]] tables)")
    if not entries and top.data.get("model"):  # models only: the built-in images run them
        return MatrixConfig(source, tuple(BuiltinImage(f) for f in NAMES))
    if not entries:
        raise top.error(
            "declares no images", f"add an [[{prefix}image]] table per image (see the README)"
        )
    images: list[Image] = []
    for number, entry in enumerate(entries, 1):
        where = f"[[{prefix}image]] #{number}"
        image = _image(entry, source, where)
        if image.name in {other.name for other in images}:
            raise UsageError(
                f'{source}: {where}: the name "{image.name}" is already used',
                tip="give every image its own name",
            )
        images.append(image)
    return MatrixConfig(source, tuple(images))


def _image(entry: object, source: Path, where: str) -> Image:
    if isinstance(entry, dict) and "builtin" in entry:
        table = _Table(entry, source, where, ("builtin",))
        framework = table.string("builtin")
        if framework not in NAMES:
            raise table.error(
                f'unknown builtin "{framework}"', f"builtin is one of: {', '.join(NAMES)}"
            )
        return BuiltinImage(framework)
    table = _Table(entry, source, where, (*IMAGE_KEYS, "builtin"))
    name, dockerfile, cuda_arg = _name(table), _dockerfile(table), _cuda_arg(table)
    smoke = read_smoke(table.data.get("smoke"), Where(source, where))
    return UserImage(
        name=name,
        dockerfile=dockerfile,
        context=_context(table, dockerfile.parent),
        cuda_arg=cuda_arg,
        variants=_variants(table),
        build_args=_build_args(table, cuda_arg),
        build_inputs=bool(table.typed("build_inputs", bool, "true")),
        smoke=smoke,
    )


def _name(table: _Table) -> str:
    name = table.required("name")
    if not _NAME.match(name):
        raise table.error(
            f'name "{name}" cannot be part of an image tag',
            "use lowercase letters and digits, with . _ or - between them",
        )
    if name in NAMES:  # the report tells the built-in images by their names
        raise table.error(
            f'the name "{name}" is a built-in image\'s',
            f'write builtin = "{name}" for the built-in image, or give yours another name',
        )
    return name


def _dockerfile(table: _Table) -> Path:
    path = table.path("dockerfile")
    try:
        path.read_bytes()
    except OSError as exc:
        raise table.error(
            f"cannot read dockerfile {path}: {exc.strerror}",
            "paths are relative to the config file's folder",
        ) from None
    return path


def _context(table: _Table, default: Path) -> Path:
    path = table.path("context", default)
    if not path.is_dir():
        raise table.error(
            f"context {path} is not a directory", "paths are relative to the config file's folder"
        )
    return path


def _cuda_arg(table: _Table) -> str:
    name = table.string("cuda_arg", "CUDA")
    if not name:
        raise table.error('"cuda_arg" is empty', 'name the build-arg, e.g. cuda_arg = "CUDA"')
    return name


def _variants(table: _Table) -> dict[str, str]:
    variants = table.strings("variants", CUDA_VALUES)
    unknown = [name for name in variants if name not in VARIANTS]
    if unknown or not variants:
        raise table.error(
            f'unknown variant "{unknown[0]}"' if unknown else '"variants" is empty',
            f'variants has the keys {" and/or ".join(VARIANTS)}, e.g. {{ cpu = "" }}',
        )
    return variants


def _build_args(table: _Table, cuda_arg: str) -> dict[str, str]:
    args = table.strings("build_args", {})
    if cuda_arg in args:
        raise table.error(
            f'"build_args.{cuda_arg}" is the CUDA build-arg',
            "set its values with variants = { cpu = ..., cuda = ... } instead",
        )
    return args


def load_models(path: Path | None) -> tuple[ModelRequest, ...]:
    """The `[[model]]` tables of the config at `path` (None: no config, no models)."""
    if path is None:
        return ()
    data: Any = _read_toml(path)
    prefix = ""
    if path.name == PYPROJECT_NAME:
        data, prefix = _buildbench_table(data) or {}, "tool.buildbench."
    entries = data.get("model") if isinstance(data, dict) else None
    if entries is None:
        return ()
    if not isinstance(entries, list):
        raise UsageError(
            f"{path}: model must be [[{prefix}model]] tables, not {type_name(entries)}",
            tip=f'write [[{prefix}model]] with path = "model.onnx"',
        )
    return tuple(
        read_model(entry, Where(path, f"[[{prefix}model]] #{number}"))
        for number, entry in enumerate(entries, 1)
    )


def load_matrix(
    options: MatrixOptions,
    *,
    config: Path | None = None,
    only: tuple[str, ...] = (),
    directory: Path | None = None,
) -> tuple[Path | None, list[Cell]]:
    """The config file used (None: built-in matrix) and the selected cells."""
    loaded = load_config(config, directory)
    cells = (loaded.cells(options) if loaded else builtin_matrix(options)) + server_cells(options)
    if not cells:
        every = MatrixOptions(frameworks=NAMES, variants=VARIANTS)
        valid = loaded.cells(every) if loaded else builtin_matrix(every)
        missing = loaded.missing(options) if loaded else missing_variants(options)
        raise UsageError(
            "the selection leaves no cell to build"
            + "".join(f" ({line})" for line in fmt.grouped(missing)),
            tip=f"valid cells: {', '.join(cell.key for cell in valid)}",
        )
    return (loaded.source if loaded else None), select_cells(cells, only)


def missing_cells(
    options: MatrixOptions,
    *,
    config: Path | None = None,
    only: tuple[str, ...] = (),
    directory: Path | None = None,
) -> dict[str, str]:
    """The selected cells whose runtime has no such variant, with why (see
    `missing_variants`): listed as not built."""
    loaded = load_config(config, directory)
    missing = loaded.missing(options) if loaded else missing_variants(options)
    return {
        key: why
        for key, why in missing.items()
        if not only or key in only or key.split("/")[0] in only
    }


def select_cells(cells: list[Cell], only: tuple[str, ...]) -> list[Cell]:
    """The cells `--only` names (NAME/VARIANT, or NAME for all its variants), in matrix order."""
    if not only:
        return list(cells)
    known = {cell.key for cell in cells} | {cell.name for cell in cells}
    for wanted in only:
        if wanted not in known:
            valid = ", ".join(cell.key for cell in cells) or "none"
            raise UsageError(
                f'--only "{wanted}" names no cell of the matrix',
                tip=f"valid cells: {valid}",
            )
    return [cell for cell in cells if cell.key in only or cell.name in only]
