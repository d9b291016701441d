"""What `--registry` names: `HOST[:PORT]` as the engine reads it, and references in it."""

from __future__ import annotations

import ipaddress
import re

from buildbench.errors import UsageError

_ADDRESS = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)(:[0-9]{1,5})?")


def parse_address(text: str) -> str:
    """`HOST[:PORT]` as the engine names a registry, or a UsageError saying what is wrong."""
    address = text.strip()
    if "://" in address:
        raise UsageError(
            f"registry {text!r} has a scheme",
            tip="give HOST[:PORT] only: the engine itself decides between https and http",
        )
    if not _ADDRESS.fullmatch(address):
        raise UsageError(f"registry {text!r} is not HOST[:PORT]", tip="e.g. registry.lan:5000")
    # The engine reads `myhost/buildbench/onnx` as a Docker Hub repository: a registry host must
    # show a dot or a port, or be localhost.
    if not ("." in address or ":" in address or _host(address) == "localhost"):
        raise UsageError(
            f"registry {text!r} would be read as a Docker Hub user name",
            tip=f"add the port ({address}:5000) or the domain",
        )
    return address


def registry_reference(address: str, repository: str, tag: str) -> str:
    """The reference the engine pushes to, e.g. `127.0.0.1:5000/buildbench/onnx:cpu-RUNID`."""
    return f"{parse_address(address)}/{repository.strip('/')}:{tag}"


def _host(address: str) -> str:
    if address.startswith("["):
        return address[1 : address.index("]")]
    return address.rsplit(":", 1)[0]


def is_loopback(address: str) -> bool:
    """localhost or a loopback IP: the engine allows plain http there, and no proxy reaches it."""
    host = _host(address)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
