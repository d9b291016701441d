"""What pip in the builder stage is given: by default the host's own pip configuration.

A machine behind a TLS proxy, with a private index or a directory of wheels, already tells its
pip so (`PIP_INDEX_URL`, `PIP_EXTRA_INDEX_URL`, `PIP_FIND_LINKS`, `PIP_CERT`, `pip config`);
the images buildbench builds should install the same way. Options override each setting. What
only exists on this machine (a `file://` index, a constraints file) cannot reach the engine and
is left out, and the run header says so.
"""

from __future__ import annotations

import configparser
import io
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from buildbench.errors import UsageError
from buildbench.labels import mask_url

# `pip config list` lines: `global.find-links='/opt/wheels'`, `:env:.cert='...'`.
_CONFIG_LINE = re.compile(r"^(?P<section>[^.]*)\.(?P<key>[\w-]+)='(?P<value>.*)'$")
_SECTIONS = (":env:", "install", "global")  # pip's precedence, highest first (as `pip install`)
_CPU_TORCH = re.compile(r"^torch-(?P<version>[^-+]+)\+cpu-", re.IGNORECASE)


@dataclass(frozen=True)
class PipInputs:
    """pip's settings for the builder stage; folders of wheels travel in the build context."""

    ca_bundle: Path | None = None
    index_url: str = ""
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[Path, ...] = ()  # folders on this machine: their wheels are uploaded
    find_links_urls: tuple[str, ...] = ()
    trusted_hosts: tuple[str, ...] = ()
    origin: dict[str, str] = field(default_factory=dict, compare=False)  # setting -> source
    left_out: tuple[str, ...] = ()  # host-only settings, with the reason

    def validate(self) -> None:
        if self.ca_bundle is not None and not self.ca_bundle.is_file():
            raise UsageError(
                f"CA bundle {self.ca_bundle} is not a file",
                tip="give --ca-bundle an existing PEM file, or unset PIP_CERT",
            )
        for folder in self.find_links:
            if not folder.is_dir():
                raise UsageError(
                    f"find-links {folder} is not a directory",
                    tip="give --pip-find-links a directory of wheels (see `pip config list`)",
                )

    def wheels(self) -> list[Path]:
        """Every wheel in the find-links folders."""
        return sorted(
            p for folder in self.find_links for p in folder.iterdir() if p.suffix == ".whl"
        )

    def local_cpu_torch(self) -> str | None:
        """The version of a CPU torch wheel in find-links (`torch-2.13.0+cpu-...`), if any."""
        for wheel in self.wheels():
            if match := _CPU_TORCH.match(wheel.name):
                return match.group("version")
        return None

    def pip_conf(self, wheels: bool, no_index: bool = False) -> str:
        """pip.conf for the builder stage; `wheels`: the context carries build-inputs/wheels;
        `no_index`: they are all it needs (--prefetch)."""
        section: dict[str, str] = {}
        if self.ca_bundle:
            section["cert"] = "/build-inputs/ca.pem"
        links = [*(["/build-inputs/wheels"] if wheels else []), *self.find_links_urls]
        if links:
            section["find-links"] = " ".join(links)
        if no_index:
            section["no-index"] = "true"
        else:
            if self.index_url:
                section["index-url"] = self.index_url
            if self.extra_index_urls:
                section["extra-index-url"] = " ".join(self.extra_index_urls)
        if self.trusted_hosts:
            section["trusted-host"] = " ".join(self.trusted_hosts)
        conf = configparser.ConfigParser()
        conf["global"] = section
        out = io.StringIO()
        conf.write(out)
        return "# written by buildbench for this build only\n" + out.getvalue()

    def describe(self) -> list[str]:
        """What pip in the builder stage gets, and from where: the run header's lines."""
        found = [
            ("index", mask_url(self.index_url) if self.index_url else "PyPI (pip's default)"),
            ("extra index", " ".join(map(mask_url, self.extra_index_urls))),
            ("find-links", " ".join([*map(str, self.find_links), *self.find_links_urls])),
            ("CA bundle", str(self.ca_bundle or "")),
        ]
        lines = [
            f"{name}: {value}" + (f" ({self.origin[name]})" if name in self.origin else "")
            for name, value in found
            if value
        ]
        return lines + [f"left out: {reason}" for reason in self.left_out]

    def to_json(self) -> dict[str, Any]:
        return {
            "index_url": mask_url(self.index_url),
            "extra_index_urls": [mask_url(url) for url in self.extra_index_urls],
            "find_links": [*map(str, self.find_links), *self.find_links_urls],
            "ca_bundle": str(self.ca_bundle) if self.ca_bundle else None,
            "origin": dict(self.origin),
            "left_out": list(self.left_out),
        }


def host_pip_config() -> dict[str, tuple[str, str]]:
    """pip's own view of its configuration here: setting -> (value, where it came from)."""
    try:
        listed = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        ).stdout
    except (OSError, subprocess.SubprocessError):
        listed = ""
    found: dict[str, tuple[str, str]] = {}
    entries = [m for line in listed.splitlines() if (m := _CONFIG_LINE.match(line))]
    for section in reversed(_SECTIONS):  # lowest precedence first, so the winner writes last
        for match in entries:
            if match["section"] == section:
                where = "environment" if section == ":env:" else f"pip config {section}"
                found[match["key"]] = (match["value"], where)
    for key in ("index-url", "extra-index-url", "find-links", "cert", "trusted-host"):
        value = os.environ.get("PIP_" + key.upper().replace("-", "_"))
        if value:  # without pip on this interpreter, the environment still counts
            found[key] = (value, "environment")
    return found


def pip_inputs(
    *,
    ca_bundle: Path | None = None,
    index_url: str | None = None,
    extra_index_url: str | None = None,
    find_links: Path | None = None,
    host: dict[str, tuple[str, str]] | None = None,
) -> PipInputs:
    """The builder stage's pip settings: each option given wins, else the host's setting."""
    host = host_pip_config() if host is None else host
    origin: dict[str, str] = {}
    left_out: list[str] = []

    def setting(name: str, key: str, given: str | None) -> str:
        if given is not None:
            origin[name] = "option"
            return given
        value, where = host.get(key, ("", ""))
        if value:
            origin[name] = where
        return value

    index = setting("index", "index-url", index_url)
    if index.startswith("file:"):
        left_out.append(f"index {index}: a folder on this machine, not reachable by the engine")
        index = ""
    extras = []
    for url in setting("extra index", "extra-index-url", extra_index_url).split():
        if url.startswith("file:"):
            left_out.append(f"extra index {url}: a folder on this machine")
        else:
            extras.append(url)
    folders, urls = [], []
    links = str(find_links) if find_links is not None else None
    for link in setting("find-links", "find-links", links).split():
        if "://" in link and not link.startswith("file:"):
            urls.append(link)
        else:
            folders.append(Path(link.removeprefix("file://")).expanduser().resolve())
    cert = setting("CA bundle", "cert", str(ca_bundle) if ca_bundle else None)
    if not cert:
        cert = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE") or ""
        if cert:
            origin["CA bundle"] = "environment (REQUESTS_CA_BUNDLE/SSL_CERT_FILE)"
    if "constraint" in host:
        left_out.append(f"constraints {host['constraint'][0]}: pip's cap here, not the image's")
    trusted = tuple(host.get("trusted-host", ("", ""))[0].split())
    return PipInputs(
        ca_bundle=Path(cert).expanduser().resolve() if cert else None,
        index_url=index,
        extra_index_urls=tuple(extras),
        find_links=tuple(folders),
        find_links_urls=tuple(urls),
        trusted_hosts=trusted,
        origin=origin,
        left_out=tuple(left_out),
    )
