"""What buildbench reads from a Dockerfile's text: its stages, the build-args it declares, and
the base image its final stage builds on (ARG defaults and build-args substituted).

The text is read by the engine's own parser (moby/buildkit's, through the `dockerfile`
package), so line continuations, comments inside them, the `# escape=` directive, heredocs and
several names in one `ARG` mean here what they mean to the build.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Mapping

# A compiled module without type information: its Command is a NamedTuple of str and tuples.
import dockerfile  # type: ignore[import-not-found]

log = logging.getLogger("buildbench")

# Build-args every Dockerfile accepts without declaring them (the classic builder's list).
_PREDEFINED_ARGS = {
    name
    for base in ("HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY")
    for name in (base, base.lower())
}
# `${NAME}`, `${NAME:-default}`, `${NAME:+alternative}` and `$NAME`, as in FROM and ARG values.
_VARIABLE = re.compile(
    r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([-+])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)"
)


@functools.lru_cache(maxsize=16)
def instructions(dockerfile_text: str) -> tuple[dockerfile.Command, ...]:
    """The instructions as the engine reads them; none for a text the engine refuses, whose
    build then fails with the engine's own message."""
    try:
        return tuple(dockerfile.parse_string(dockerfile_text))
    except dockerfile.GoParseError as exc:
        log.debug("the Dockerfile does not parse: %s", exc)
        return ()


def stage_names(dockerfile_text: str) -> list[str]:
    """Stage names as BuildKit prints them: `AS name`, else `stage-N`; one stage has none."""
    froms = [command for command in instructions(dockerfile_text) if _is(command, "FROM")]
    names = [(_stage_name(command) or f"stage-{i}").lower() for i, command in enumerate(froms)]
    return names if len(names) > 1 else [""]


def declared_args(dockerfile_text: str) -> set[str]:
    """Names of every `ARG` (in any stage, or before the first FROM)."""
    return {
        _name_and_default(token)[0]
        for command in instructions(dockerfile_text)
        if _is(command, "ARG")
        for token in command.value
    }


def unconsumed_warnings(dockerfile_text: str, buildargs: Mapping[str, str]) -> list[str]:
    """The classic builder's "build-args were not consumed" warning, which BuildKit lacks."""
    unused = sorted(set(buildargs) - declared_args(dockerfile_text) - _PREDEFINED_ARGS)
    if not unused:
        return []
    return [f"build-args never consumed by the Dockerfile: {' '.join(unused)}"]


def final_base(dockerfile_text: str, buildargs: Mapping[str, str]) -> str | None:
    """The image the final stage builds on: a stage it names is followed to that stage's own
    base; None for `scratch` or a FROM that cannot be resolved.

    As in the engine, a FROM sees only the ARGs declared before the first FROM (a build-arg
    replaces its default), and each default may use the ARGs declared before it.
    """
    meta: dict[str, str] = {}
    stages: dict[str, str] = {}
    base: str | None = None
    for command in instructions(dockerfile_text):
        if base is None and _is(command, "ARG"):
            for token in command.value:
                name, default = _name_and_default(token)
                meta[name] = buildargs.get(name, _expand(default, meta))
        elif _is(command, "FROM") and command.value:
            image = _expand(command.value[0], meta)
            image = stages.get(image.lower(), image)
            if stage := _stage_name(command):
                stages[stage.lower()] = image
            base = image
    return None if base in (None, "", "scratch") or "$" in (base or "") else base


def _is(command: dockerfile.Command, instruction: str) -> bool:
    # The parser keeps the instruction's case as written (`from`, `From`); ONBUILD ARG is
    # `ONBUILD` here, and declares nothing for this build.
    return bool(command.cmd.upper() == instruction)


def _stage_name(command: dockerfile.Command) -> str | None:
    value = command.value
    return str(value[2]) if len(value) >= 3 and value[1].upper() == "AS" else None


def _name_and_default(token: str) -> tuple[str, str]:
    """`NAME=value` (quotes around the value removed, as the engine's word rules do) or `NAME`."""
    name, _, default = token.partition("=")
    if len(default) >= 2 and default[0] == default[-1] and default[0] in "\"'":
        default = default[1:-1]
    return name, default


def _expand(text: str, values: Mapping[str, str]) -> str:
    """Variables replaced by their values (empty when unknown), with `:-` and `:+` forms."""

    def value(match: re.Match[str]) -> str:
        name, form, word = match.group(1) or match.group(4), match.group(2), match.group(3)
        found = values.get(name, "")
        if form == "-":
            return found or word
        if form == "+":
            return word if found else ""
        return found

    return _VARIABLE.sub(value, text)
