"""What buildbench reads from a Dockerfile's text: its stages, the build-args it declares, and
the base image its final stage builds on (ARG defaults and build-args substituted)."""

from __future__ import annotations

import re
from collections.abc import Mapping

_FROM = re.compile(r"^\s*FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?\s*$", re.IGNORECASE)
_ARG = re.compile(r"^\s*ARG\s+(.+)$", re.IGNORECASE)
# Build-args every Dockerfile accepts without declaring them (the classic builder's list).
_PREDEFINED_ARGS = {
    name
    for base in ("HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY")
    for name in (base, base.lower())
}
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def stage_names(dockerfile_text: str) -> list[str]:
    """Stage names as BuildKit prints them: `AS name`, else `stage-N`; one stage has none."""
    froms = filter(None, map(_FROM.match, dockerfile_text.splitlines()))
    names = [(m.group(2) or f"stage-{i}").lower() for i, m in enumerate(froms)]
    return names if len(names) > 1 else [""]


def declared_args(dockerfile_text: str) -> set[str]:
    """Names of every `ARG` (in any stage, or before the first FROM)."""
    names: set[str] = set()
    for line in dockerfile_text.splitlines():
        if match := _ARG.match(line):
            names.update(token.split("=", 1)[0] for token in match.group(1).split())
    return names


def unconsumed_warnings(dockerfile_text: str, buildargs: Mapping[str, str]) -> list[str]:
    """The classic builder's "build-args were not consumed" warning, which BuildKit lacks."""
    unused = sorted(set(buildargs) - declared_args(dockerfile_text) - _PREDEFINED_ARGS)
    if not unused:
        return []
    return [f"build-args never consumed by the Dockerfile: {' '.join(unused)}"]


def final_base(dockerfile_text: str, buildargs: Mapping[str, str]) -> str | None:
    """The image the final stage builds on: a stage it names is followed to that stage's own
    base; None for `scratch` or a FROM that cannot be resolved."""
    defaults: dict[str, str] = {}
    stages: dict[str, str] = {}
    base: str | None = None
    for line in dockerfile_text.splitlines():
        if base is None and (arg := _ARG.match(line)):  # ARGs before the first FROM
            for token in arg.group(1).split():
                name, _, value = token.partition("=")
                defaults[name] = value.strip("\"'")
        elif found := _FROM.match(line):
            image = _expand(found.group(1), {**defaults, **buildargs})
            image = stages.get(image.lower(), image)
            if found.group(2):
                stages[found.group(2).lower()] = image
            base = image
    return None if base in (None, "", "scratch") or "$" in (base or "") else base


def _expand(text: str, values: Mapping[str, str]) -> str:
    """`${NAME}` and `$NAME` replaced by their values (empty when unknown)."""
    return _VARIABLE.sub(lambda m: values.get(m.group(1) or m.group(2), ""), text)
