"""The registry a run ships its images through (--registry), for as long as the run goes:
`local` is Debian's reference registry started on 127.0.0.1 and stopped after the run; any
other address is read and checked before the first build."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from buildbench.engine.registry.address import parse_address
from buildbench.engine.registry.local import LOCAL, LocalRegistry
from buildbench.engine.registry.manifests import check_registry


@contextlib.contextmanager
def run_registry(registry: str | None) -> Iterator[str | None]:
    """The registry's address for the run: `local` starts one for as long as the run goes."""
    if registry == LOCAL:
        with LocalRegistry() as local:
            yield local.address
        return
    if registry is not None:
        registry = parse_address(registry)
        check_registry(registry)
    yield registry
