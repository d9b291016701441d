"""What pip in the builder stage gets: the host's own pip configuration unless an option says
else, without what only exists on this machine."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from buildbench.run import pipconfig
from buildbench.run.pipconfig import PipInputs, pip_inputs
from buildbench.run.pipconfig import host_pip_config as real_host_pip_config  # before conftest

LISTING = """\
:env:.cert='/env/ca.pem'
:env:.find-links='/opt/wheels'
global.cert='/etc/ssl/certs/ca-certificates.crt'
global.constraint='/etc/xdg/pip/constraints.txt'
global.extra-index-url='file:///opt/pypi/simple https://extra.example/simple'
global.index-url='https://global.example/simple'
install.index-url='https://install.example/simple'
"""


def test_host_pip_config_reads_pip_config_list_in_pips_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_CERT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PIP_TRUSTED_HOST", "mirror.example")

    def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        assert command[1:] == ["-m", "pip", "config", "list"]
        return subprocess.CompletedProcess(command, 0, LISTING, "")

    monkeypatch.setattr(pipconfig.subprocess, "run", run)
    assert real_host_pip_config() == {
        "cert": ("/env/ca.pem", "environment"),  # the environment beats the files
        "find-links": ("/opt/wheels", "environment"),
        "constraint": ("/etc/xdg/pip/constraints.txt", "pip config global"),
        "extra-index-url": (
            "file:///opt/pypi/simple https://extra.example/simple",
            "pip config global",
        ),
        "index-url": ("https://install.example/simple", "pip config install"),
        "trusted-host": ("mirror.example", "environment"),
    }


def test_without_pip_the_environment_still_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("no pip")

    monkeypatch.setattr(pipconfig.subprocess, "run", broken)
    for name in ("PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_CERT", "PIP_TRUSTED_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PIP_INDEX_URL", "https://env.example/simple")
    assert real_host_pip_config() == {"index-url": ("https://env.example/simple", "environment")}


def test_nothing_configured_is_pips_defaults() -> None:
    pip = pip_inputs(host={})
    assert pip == PipInputs()
    assert pip.describe() == ["index: PyPI (pip's default)"]


def test_the_hosts_settings_are_used_and_options_win(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    ca = tmp_path / "ca.pem"
    ca.write_text("pem")
    host = {
        "index-url": ("https://global.example/simple", "pip config global"),
        "find-links": (f"{wheels} https://wheels.example/", "environment"),
        "cert": (str(ca), "pip config global"),
        "trusted-host": ("a.example b.example", "pip config global"),
    }
    pip = pip_inputs(host=host)
    assert pip.index_url == "https://global.example/simple"
    assert (pip.find_links, pip.find_links_urls) == ((wheels,), ("https://wheels.example/",))
    assert (pip.ca_bundle, pip.trusted_hosts) == (ca, ("a.example", "b.example"))
    assert pip.origin == {
        "index": "pip config global",
        "find-links": "environment",
        "CA bundle": "pip config global",
    }
    given = pip_inputs(index_url="https://option.example/simple", find_links=tmp_path, host=host)
    assert given.index_url == "https://option.example/simple"
    assert (given.find_links, given.find_links_urls) == ((tmp_path,), ())
    assert given.origin["index"] == given.origin["find-links"] == "option"
    assert pip_inputs(index_url="", host=host).index_url == ""  # an empty option: pip's default


def test_what_only_exists_here_is_left_out_and_said(tmp_path: Path) -> None:
    host = {
        "index-url": ("file:///opt/pypi/simple", "pip config global"),
        "extra-index-url": ("file:///opt/more https://extra.example/simple", "environment"),
        "constraint": ("/etc/xdg/pip/constraints.txt", "pip config global"),
        "find-links": (f"file://{tmp_path}", "environment"),
    }
    pip = pip_inputs(host=host)
    assert pip.index_url == "" and pip.extra_index_urls == ("https://extra.example/simple",)
    assert pip.find_links == (tmp_path,)  # a file:// folder is uploaded as wheels
    assert pip.left_out == (
        "index file:///opt/pypi/simple: a folder on this machine, not reachable by the engine",
        "extra index file:///opt/more: a folder on this machine",
        "constraints /etc/xdg/pip/constraints.txt: pip's cap here, not the image's",
    )
    assert pip.describe()[-3:] == [f"left out: {reason}" for reason in pip.left_out]


def test_a_requests_bundle_in_the_environment_is_the_fallback_ca(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = tmp_path / "proxy.pem"
    ca.write_text("pem")
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    pip = pip_inputs(host={})
    assert pip.ca_bundle == ca
    assert pip.origin["CA bundle"] == "environment (REQUESTS_CA_BUNDLE/SSL_CERT_FILE)"
    assert pip_inputs(ca_bundle=tmp_path / "own.pem", host={}).ca_bundle == tmp_path / "own.pem"


def test_credentials_are_masked_where_pip_settings_are_shown_or_recorded() -> None:
    pip = PipInputs(
        index_url="https://user:s3cret@mirror.example/simple",
        extra_index_urls=("https://token@extra.example/simple",),
        origin={"index": "option"},
    )
    assert pip.describe()[:2] == [
        "index: https://***@mirror.example/simple (option)",
        "extra index: https://***@extra.example/simple",
    ]
    recorded = pip.to_json()
    assert recorded["index_url"] == "https://***@mirror.example/simple"
    assert recorded["extra_index_urls"] == ["https://***@extra.example/simple"]
    assert "s3cret" not in str(recorded) and "token" not in str(recorded)
    # The builder stage itself needs the credentials: pip.conf keeps them.
    assert "https://user:s3cret@mirror.example/simple" in pip.pip_conf(wheels=False)


def test_a_local_cpu_torch_wheel_is_found(tmp_path: Path) -> None:
    (tmp_path / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"w")
    (tmp_path / "notes.txt").write_text("not a wheel")
    pip = PipInputs(find_links=(tmp_path,))
    assert pip.local_cpu_torch() == "2.13.0"
    assert [p.name for p in pip.wheels()] == [
        "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"
    ]
    assert PipInputs().local_cpu_torch() is None
