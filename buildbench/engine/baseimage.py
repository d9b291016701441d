"""`buildbench base`: a python:3.11-slim-like base image made from Debian packages, no registry.

For machines that reach a Debian mirror but no container registry. Python, pip and venv work as
in the official image (pip installs system-wide as root). With a CA bundle, the image trusts it
system-wide and points pip and requests at the system bundle, as corporate base images do.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from buildbench.engine.api import Engine
from buildbench.errors import UsageError

log = logging.getLogger("buildbench")

DEFAULT_TAG = "buildbench/python:3.11-bookworm"
DEFAULT_SUITE = "bookworm"  # Debian 12: Python 3.11, as python:3.11-slim
DEFAULT_MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("python3", "python3-venv", "python3-pip", "python-is-python3", "ca-certificates")
SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _check_host() -> str:
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        raise UsageError(
            "debootstrap is not installed", tip="apt-get install debootstrap (Debian/Ubuntu)"
        )
    if os.geteuid() != 0:
        raise UsageError(
            "buildbench base needs root (debootstrap does)", tip="run it as root, e.g. with sudo"
        )
    return debootstrap


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        raise UsageError(
            f"`{' '.join(command[:3])} ...` failed: {' / '.join(tail)}",
            tip="check that the Debian mirror is reachable (--mirror)",
        )


def image_changes(trusts_extra_ca: bool) -> list[str]:
    changes = [f"ENV PATH={_PATH}", "ENV LANG=C.UTF-8", 'CMD ["python3"]']
    if trusts_extra_ca:
        changes += [
            f"ENV PIP_CERT={SYSTEM_BUNDLE}",
            f"ENV REQUESTS_CA_BUNDLE={SYSTEM_BUNDLE}",
            f"ENV SSL_CERT_FILE={SYSTEM_BUNDLE}",
        ]
    return changes


def make_base_image(
    engine: Engine,
    *,
    tag: str = DEFAULT_TAG,
    suite: str = DEFAULT_SUITE,
    mirror: str = DEFAULT_MIRROR,
    ca_bundle: Path | None = None,
    force: bool = False,
) -> str:
    """Bootstrap Debian with Python into a folder, import it as `tag`; returns the image id.

    An image already called `tag` (a real python:3.11-slim, say) is a UsageError unless
    `force`: importing would silently take its name.
    """
    existing = engine.image(tag)
    if existing is not None and not force:
        raise UsageError(
            f"image {tag} exists; pass --force to replace it",
            tip=f"{tag} is {existing.id[:19]}: to keep it, name the new base with --tag NAME",
        )
    debootstrap = _check_host()
    if ca_bundle is not None and not ca_bundle.is_file():
        raise UsageError(f"CA bundle {ca_bundle} is not a file", tip="give a PEM file")
    with tempfile.TemporaryDirectory(prefix="buildbench-base-") as tmp:
        root = Path(tmp) / "root"
        log.info("debootstrap %s into %s (about a minute)", suite, root)
        _run(
            [
                debootstrap,
                "--variant=minbase",
                f"--include={','.join(PACKAGES)}",
                suite,
                str(root),
                mirror,
            ]
        )
        # As in the official image, pip may install into the system Python.
        for marker in root.glob("usr/lib/python3*/EXTERNALLY-MANAGED"):
            marker.unlink()
        if ca_bundle is not None:
            shutil.copyfile(
                ca_bundle, root / "usr/local/share/ca-certificates/buildbench-extra.crt"
            )
            _run(["chroot", str(root), "update-ca-certificates"])
        for junk in ("var/lib/apt/lists", "var/cache/apt", "var/log"):
            for path in (root / junk).glob("*"):
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        tarball = Path(tmp) / "rootfs.tar"
        _run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(tarball), "."])
        with tarball.open("rb") as upload:  # through the API: the engine may be remote
            return engine.import_image(upload, tag, image_changes(ca_bundle is not None))
