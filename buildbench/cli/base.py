"""`buildbench base`: make a base image without a registry."""

from __future__ import annotations

from pathlib import Path

import click

from buildbench.cli.options import engine_options, one_engine, option
from buildbench.engine.baseimage import DEFAULT_MIRROR, DEFAULT_SUITE, DEFAULT_TAG, make_base_image


@click.command()
@option("--tag", default=DEFAULT_TAG, show_default=True, help="Name of the image to create.")
@option(
    "--suite",
    default=DEFAULT_SUITE,
    show_default=True,
    help="Debian release (bookworm has Python 3.11).",
)
@option("--mirror", default=DEFAULT_MIRROR, show_default=True, help="Debian mirror.")
@option(
    "--ca-bundle",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A CA bundle the image trusts system-wide (pip and requests included), as corporate "
    "base images do: unmodified Dockerfiles that pip install then work behind a TLS proxy.",
)
@option("--force", is_flag=True, help="Replace an existing image called --tag.")
@engine_options
def base(
    tag: str,
    suite: str,
    mirror: str,
    ca_bundle: Path | None,
    force: bool,
    engines: tuple[str, ...],
    contexts: tuple[str, ...],
) -> None:
    """Make a python:3.11-slim-like base image from Debian packages (root and debootstrap).

    Refuses to take the name of an image that exists unless --force.

    Example: buildbench base --tag python:3.11-slim --ca-bundle "$PIP_CERT"   (as root)
    """
    image_id = make_base_image(
        one_engine(engines, contexts),
        tag=tag,
        suite=suite,
        mirror=mirror,
        ca_bundle=ca_bundle,
        force=force,
    )
    click.echo(f"{tag} {image_id}")
