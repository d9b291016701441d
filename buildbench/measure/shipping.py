"""What an image's size costs to ship: push it to a registry, read what the registry stores (the
manifest's layer sizes: exact, where the local figure is an estimate), and pull it back onto the
engine after removing it, the base image's layers kept (as a node that runs the base already
would). `cold_pulls` then pulls each image with nothing local, base included."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import replace

from buildbench.engine.api import Engine, ImageInfo
from buildbench.engine.registry.address import registry_reference
from buildbench.engine.registry.manifests import manifest_size
from buildbench.record import CellRecord, Shipping

log = logging.getLogger("buildbench")
Progress = Callable[[str], None]


def base_reference(registry: str, run_id: str, base: str) -> str:
    """Where a run keeps a base image in the registry (its name made a tag)."""
    name = re.sub(r"[^a-z0-9_.-]+", "-", base.lower()).strip("-.")
    return registry_reference(registry, "buildbench/base", f"{name}-{run_id.lower()}"[:128])


def push_base(engine: Engine, registry: str, run_id: str, ref: str, base: ImageInfo) -> float:
    """A base image goes first, so that no cell's push time includes its layers."""
    reference = base_reference(registry, run_id, ref)
    engine.tag(base.id, reference)
    try:
        return engine.push(reference)
    finally:
        engine.remove_image(reference)  # an untag: the base keeps its own names


def ship(
    engine: Engine,
    image_id: str,
    image_tag: str,
    *,
    registry: str,
    repository: str,
    tag: str,
    on_progress: Progress = lambda text: None,
) -> Shipping:
    reference = registry_reference(registry, repository, tag)
    engine.tag(image_id, reference)
    on_progress("pushing to the registry")
    push_seconds = engine.push(reference)
    stored = manifest_size(registry, repository, tag)
    # The engine must lack the image: both its names go, and with them its own layers.
    engine.remove_image(image_tag)
    engine.remove_image(reference)
    note = None
    if engine.image(image_id) is not None:
        note = "the image stayed in the engine (in use?): the pull moved no layers"
    on_progress("pulling it back")
    pull_seconds = engine.pull(reference)
    engine.tag(reference, image_tag)
    engine.remove_image(reference)
    pulled = engine.image(image_tag)
    if pulled is None or pulled.id != image_id:
        note = f"the pulled image is {pulled.id if pulled else 'missing'}, not {image_id}"
    return Shipping(
        registry=registry,
        reference=reference,
        push_seconds=round(push_seconds, 3),
        stored_bytes=stored.layers_bytes,
        config_bytes=stored.config_bytes,
        pull_seconds=round(pull_seconds, 3),
        note=note,
    )


def cold_pulls(
    engine: Engine,
    records: Sequence[CellRecord],
    *,
    registry: str,
    run_id: str,
    base_ref: str,
    keep_images: bool,
    on_progress: Progress = lambda text: None,
) -> list[tuple[CellRecord, Shipping]]:
    """Pull every shipped image with nothing local: the base image set aside (it went to the
    registry first) and put back afterwards under its own name. Where the engine will not let
    the base go (other images or containers use it), each cell says so instead."""
    shipped = [r for r in records if r.registry is not None and r.image_tag]
    if not shipped:
        return []
    base = engine.image(base_ref)
    if base is None:
        return []
    stored_base = base_reference(registry, run_id, base_ref)
    for record in shipped:
        assert record.image_tag
        engine.remove_image(record.image_tag)
    updated: list[tuple[CellRecord, Shipping]] = []
    try:
        for tag in base.tags:
            engine.remove_image(tag)
        if engine.image(base.id) is not None:
            note = (
                "no cold pull: other images or containers use the base image, e.g. earlier"
                " runs' kept images (`buildbench clean` removes those)"
            )
            return [(r, replace(_shipping(r), note=note)) for r in shipped]
        for record in shipped:
            shipping = _shipping(record)
            on_progress(f"{record.key}: cold pull")
            seconds = engine.pull(shipping.reference)
            engine.remove_image(shipping.reference)  # and the base layers it brought
            updated.append((record, replace(shipping, cold_pull_seconds=round(seconds, 3))))
    finally:
        _restore(engine, base, stored_base, shipped if keep_images else [])
    return updated


def _shipping(record: CellRecord) -> Shipping:
    assert record.registry is not None
    return record.registry


def _restore(engine: Engine, base: ImageInfo, stored_base: str, keep: Sequence[CellRecord]) -> None:
    """The base under all its names again, and the run's images where they are kept."""
    if engine.image(base.id) is None:
        engine.pull(stored_base)
    for tag in base.tags:
        engine.tag(base.id, tag)
    with contextlib.suppress(Exception):
        engine.remove_image(stored_base)
    for record in keep:
        shipping = _shipping(record)
        assert record.image_tag
        if engine.image(record.image_tag) is None:
            engine.pull(shipping.reference)
            engine.tag(shipping.reference, record.image_tag)
            engine.remove_image(shipping.reference)
