"""Options the commands share, spelled once: every option is also settable as BUILDBENCH_<NAME>.

`run` and `list` take the same matrix options (a `list` shows the exact cells and build-args the
same `run` would build); `run`, `clean` and `base` take the same engine options.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click

from buildbench.cli import host_pip
from buildbench.engine import factory
from buildbench.engine.api import Engine
from buildbench.engine.endpoint import Endpoint, resolve
from buildbench.errors import UsageError
from buildbench.measure.runtimes import DEFAULT_NAMES, NAMES
from buildbench.measure.servers import NAMES as SERVER_NAMES
from buildbench.measure.servers import server_names
from buildbench.measure.smoke.options import ModelRequest
from buildbench.run.config import CONFIG_NAME, load_matrix, load_models, missing_cells
from buildbench.run.matrix import (
    DEFAULT_BASE_IMAGE,
    DEFAULT_TORCH_CPU_INDEX,
    Cell,
    MatrixOptions,
    variants_for,
)
from buildbench.run.pipconfig import PipInputs, pip_inputs

F = TypeVar("F", bound=Callable[..., Any])
AUTO = "auto"
ALL = "all"  # --framework all: every runtime


class EnvOption(click.Option):
    """An option whose error names its environment variable only when the value came from it:
    `Invalid value for '--cuda' (from BUILDBENCH_CUDA)`, else just `--cuda`."""

    def get_error_hint(self, ctx: click.Context | None) -> str:
        hint = " / ".join(f"'{name}'" for name in self.opts)
        source = ctx.get_parameter_source(self.name) if ctx and self.name else None
        if source == click.core.ParameterSource.ENVIRONMENT and self.envvar:
            hint += f" (from {self.envvar})"
        return hint


def option(*names: str, **kwargs: Any) -> Callable[[F], F]:
    long = next(n for n in names if n.startswith("--")).split("/")[0]
    kwargs.setdefault("envvar", "BUILDBENCH_" + long[2:].upper().replace("-", "_"))
    kwargs.setdefault("show_envvar", True)
    kwargs.setdefault("cls", EnvOption)
    return click.option(*names, **kwargs)


def compose(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    def apply(function: F) -> F:
        for decorator in reversed(decorators):
            function = decorator(function)
        return function

    return apply


# ---------------------------------------------------------------------------------------------
# The matrix: what to build, with which build-args


matrix_options = compose(
    option(
        "--config",
        type=click.Path(dir_okay=False, path_type=Path),
        help=f"Matrix config file [default: ./{CONFIG_NAME}, or [tool.buildbench] in "
        "./pyproject.toml; without either, the built-in images].",
    ),
    option(
        "--only",
        multiple=True,
        metavar="NAME/VARIANT",
        help="Only this cell (repeatable; NAME alone: all its variants).",
    ),
    option(
        "--cuda",
        type=click.Choice(["cpu", "cuda", "both"]),
        default="both",
        show_default=True,
        help="Which variants to build.",
    ),
    option(
        "--framework",
        "frameworks",
        multiple=True,
        metavar="NAME",
        help=f"Runtime to build: {', '.join(NAMES)}, or all (repeatable; default: "
        f"{' and '.join(DEFAULT_NAMES)}).",
    ),
    option(
        "--server",
        "servers",
        multiple=True,
        metavar="NAME",
        help=f"A serving framework to build, serving the run's model (repeatable; all: every "
        f"one: {', '.join(SERVER_NAMES)}); alone, without --framework, only servers are built.",
    ),
    option(
        "--base-image",
        default=DEFAULT_BASE_IMAGE,
        show_default=True,
        help="BASE_IMAGE build-arg of the built-in images; pulled before timing if not local.",
    ),
    option(
        "--torch-cpu-index-url",
        default=AUTO,
        show_default=True,
        help="Index of CPU-only torch wheels for the CPU image; empty for none. auto: none "
        f"when find-links holds a CPU torch wheel, else {DEFAULT_TORCH_CPU_INDEX}.",
    ),
    option(
        "--torch-version",
        default=AUTO,
        show_default=True,
        help="torch version for both images; auto: the CPU wheel's in find-links, else the newest.",
    ),
    option(
        "--ca-bundle",
        type=click.Path(dir_okay=False, path_type=Path),
        help="CA bundle for pip in the builder stage only [default: pip's `cert`, PIP_CERT, "
        "REQUESTS_CA_BUNDLE or SSL_CERT_FILE].",
    ),
    option("--pip-index-url", help="pip index URL in the builder stage [default: pip's own]."),
    option(
        "--pip-extra-index-url",
        help="pip extra index URLs in the builder stage [default: pip's own].",
    ),
    option(
        "--pip-find-links",
        type=click.Path(file_okay=False, path_type=Path),
        help="A directory of wheels, sent to the builder stage only [default: pip's own].",
    ),
)


@dataclass(frozen=True)
class Matrix:
    source: Path | None  # the config file; None: the built-in images
    cells: list[Cell]
    pip: PipInputs
    base_image: str
    not_built: dict[str, str] = field(default_factory=dict)  # cell key -> why: no such variant


def chosen_frameworks(given: tuple[str, ...]) -> tuple[str, ...]:
    """`--framework`'s runtimes in the order given (`all`: every one); a name no runtime has
    is refused here, before anything is built."""
    for name in given:
        if name != ALL and name not in NAMES:
            close = difflib.get_close_matches(name, NAMES, n=1)
            raise UsageError(
                f'--framework "{name}" is not a runtime buildbench has'
                + (f' (did you mean "{close[0]}"?)' if close else ""),
                tip=f"--framework takes {', '.join(NAMES)}, or {ALL} for every one",
            )
    if ALL in given:
        return NAMES
    return tuple(dict.fromkeys(given)) or DEFAULT_NAMES


def resolve_matrix(
    *,
    config: Path | None,
    only: tuple[str, ...],
    cuda: str,
    frameworks: tuple[str, ...],
    servers: tuple[str, ...],
    base_image: str,
    torch_cpu_index_url: str,
    torch_version: str,
    ca_bundle: Path | None,
    pip_index_url: str | None,
    pip_extra_index_url: str | None,
    pip_find_links: Path | None,
) -> Matrix:
    """The cells `run` builds (and `list` shows) for these options, with the builder stage's
    pip settings: the host's pip configuration unless an option overrides it."""
    pip = pip_inputs(
        host=host_pip.result(),
        ca_bundle=ca_bundle,
        index_url=pip_index_url,
        extra_index_url=pip_extra_index_url,
        find_links=pip_find_links,
    )
    pip.validate()
    local_torch = pip.local_cpu_torch()
    if torch_cpu_index_url == AUTO:
        torch_cpu_index_url = "" if local_torch else DEFAULT_TORCH_CPU_INDEX
    if torch_version == AUTO:
        torch_version = local_torch or ""
    server_names(servers)  # an unknown one is refused before anything else
    options = MatrixOptions(
        frameworks=chosen_frameworks(frameworks) if frameworks or not servers else (),
        servers=servers,
        variants=variants_for(cuda),
        base_image=base_image,
        torch_version=torch_version,
        torch_cpu_index_url=torch_cpu_index_url,
    )
    source, cells = load_matrix(options, config=config, only=only)
    missing = missing_cells(options, config=config, only=only)
    return Matrix(source, cells, pip, base_image, missing)


# ---------------------------------------------------------------------------------------------
# The smoke test's models: which cells can use them decides what is built


model_options = compose(
    option(
        "--model",
        "models",
        multiple=True,
        metavar="SPEC",
        help="The smoke test's model (repeatable): PATH.onnx (external data beside it), PATH.pt2, "
        "a TorchScript file, or module:callable returning (torch.nn.Module, example_inputs) "
        "[default: ResNet-18, random weights; [[model]] tables in the config add to these]. "
        "A cell whose framework runs none of the models is not built.",
    ),
    option(
        "--input",
        "inputs",
        multiple=True,
        metavar="NAME=DIMS[:DTYPE][:LOW-HIGH]",
        help="A model input's shape, dtype and value range (repeatable), e.g. "
        "input_ids=1x128:int64:0-30521; the first dimension is the batch axis --batch-sizes "
        "sweeps.",
    ),
)


def model_requests(
    models: tuple[str, ...], inputs: tuple[str, ...], source: Path | None
) -> tuple[ModelRequest, ...]:
    """Each --model with the --inputs, then the [[model]] tables of the config at `source`."""
    return (*(ModelRequest(m, inputs) for m in models), *load_models(source))


# ---------------------------------------------------------------------------------------------
# Engines and results


engine_options = compose(
    option(
        "--engine",
        "engines",
        multiple=True,
        metavar="URL",
        help="Docker engine address (repeatable): unix:///path, tcp://host:2376 (TLS from "
        "DOCKER_TLS_VERIFY/DOCKER_CERT_PATH), ssh://user@host [default: DOCKER_HOST, else the "
        "current docker context].",
    ),
    option(
        "--context",
        "contexts",
        multiple=True,
        metavar="NAME",
        help="A `docker context` to use (repeatable).",
    ),
)


# ---------------------------------------------------------------------------------------------
# What inference needs (--slim)


slim_options = compose(
    option(
        "--slim",
        is_flag=True,
        help="Trace what each smoke test touches, build a slim image of only that (the "
        "original's config, no host paths) and run the same smoke test on it: a saving counts "
        "only when it passes with parity.",
    ),
    option(
        "--slim-exclude",
        "slim_exclude",
        multiple=True,
        metavar="GLOB",
        help="Leave these paths out of the slim image even when touched (repeatable), e.g. "
        "'/usr/share/*': the smoke test then says whether they were needed.",
    ),
)


def format_option(command: str, formats: tuple[str, ...], format_help: str) -> Callable[[F], F]:
    """--format, one choice for every command that reads results (`compare`, `history`,
    `report`, `list`): formats drawn from text, markdown, json and csv, the first the default."""
    return option(
        "--format",
        "format_",
        type=click.Choice(formats),
        default=formats[0],
        show_default=True,
        envvar=f"BUILDBENCH_{command.upper()}_FORMAT",
        help=format_help,
    )


def document_options(command: str, formats: tuple[str, ...], format_help: str) -> Callable[[F], F]:
    """-o/--output and --format, as `report` and `history` take them."""
    return compose(
        option(
            "-o",
            "--output",
            type=click.Path(dir_okay=False, path_type=Path),
            envvar=f"BUILDBENCH_{command.upper()}_OUTPUT",
            help="Write it here, with its charts next to it [default: stdout, no charts].",
        ),
        format_option(command, formats, format_help),
    )


results_dir_option = option(
    "--results-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default="results",
    show_default=True,
    help="Where each run's <run-id>/ folder goes.",
)


def endpoints(engines: tuple[str, ...], contexts: tuple[str, ...]) -> list[Endpoint]:
    return resolve(engines, contexts)


def one_engine(engines: tuple[str, ...], contexts: tuple[str, ...]) -> Engine:
    """The single engine a command works on (`clean`, `base`)."""
    found = endpoints(engines, contexts)
    if len(found) > 1:
        raise UsageError(
            "this command works on one engine at a time",
            tip="give one --engine or --context (run it once per engine)",
        )
    return factory.make_engine(found[0])
