"""Debian's reference registry (`docker-registry`) on 127.0.0.1, for `--registry local`."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Self

import requests

from buildbench.engine.wait import poll_until
from buildbench.errors import RegistryError, UsageError

log = logging.getLogger("buildbench")

LOCAL = "local"  # the `--registry` value that asks for a LocalRegistry
BINARY = "docker-registry"
INSTALL_TIP = "install the reference registry: `apt-get install docker-registry`"

_MARKER_HEADER = "X-Buildbench-Registry"
_PORT_ATTEMPTS = 5
_TAIL_BYTES = 4000
_LOCAL_TIP = "give --registry HOST[:PORT] of a registry that runs, or reinstall docker-registry"


def registry_config(
    port: int, storage: Path, secret: str, marker: str, *, read_only: bool = False
) -> str:
    """The reference registry's YAML: loopback only, storage in `storage`, deletes allowed;
    `read_only`: it serves pulls and refuses every push (405), as a mirror does.

    Strings are written as JSON, which YAML reads as double-quoted scalars.
    """
    maintenance = ["  maintenance:", "    readonly:", "      enabled: true"] if read_only else []
    return "\n".join(
        [
            "version: 0.1",
            "log:",
            "  level: warn",
            "  accesslog:",
            "    disabled: true",
            "http:",
            f"  addr: {json.dumps(f'127.0.0.1:{port}')}",
            # Shared by nobody, but without one the registry warns at every start.
            f"  secret: {json.dumps(secret)}",
            "  headers:",
            # Tells our registry's answers from another program's that took the port first.
            f"    {_MARKER_HEADER}: [{json.dumps(marker)}]",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {json.dumps(str(storage))}",
            "  delete:",
            "    enabled: true",
            *maintenance,
            "",
        ]
    )


def find_binary(binary: str | None = None) -> str:
    """The path of the reference registry, or a UsageError that says how to install it."""
    name = binary or BINARY
    path = shutil.which(name)
    if path is None:
        raise UsageError(
            f"`{name}` (the reference container registry) is not installed; "
            "`--registry local` runs it",
            tip=INSTALL_TIP,
        )
    return path


def free_port() -> int:
    """A port that nothing listens on at 127.0.0.1 now (another program may take it later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalRegistry:
    """Debian's reference registry on 127.0.0.1, for the length of a `with` block.

    Its storage is a temporary directory, removed on exit with everything pushed into it.
    """

    def __init__(
        self,
        binary: str | None = None,
        *,
        start_timeout: float = 30.0,
        grace: float = 5.0,
        read_only: bool = False,
    ) -> None:
        self._binary = binary
        self._read_only = read_only
        self._start_timeout = start_timeout
        self._grace = grace
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir: Path | None = None
        self._port: int | None = None
        self._marker = secrets.token_hex(8)

    @property
    def address(self) -> str:
        if self._port is None:
            raise RuntimeError("the local registry is not running")
        return f"127.0.0.1:{self._port}"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def storage(self) -> Path:
        if self._workdir is None:
            raise RuntimeError("the local registry is not running")
        return self._workdir / "storage"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        binary = find_binary(self._binary)
        self._workdir = Path(tempfile.mkdtemp(prefix="buildbench-registry-"))
        try:  # Ctrl-C while it starts must not leave it running either
            for _ in range(_PORT_ATTEMPTS):
                port = free_port()
                self._launch(binary, port)
                if self._wait_ready(port):
                    self._port = port
                    log.debug("local registry %s answers (pid %s)", self.address, self.pid)
                    return
                self._stop_process()  # lost the port to another program: try another
            raise RegistryError(f"{BINARY} found no free port on 127.0.0.1", tip=_LOCAL_TIP)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the registry (SIGTERM, then SIGKILL after the grace period), remove its storage."""
        try:
            self._stop_process()
        finally:
            self._port = None
            if self._workdir is not None:
                shutil.rmtree(self._workdir, ignore_errors=True)
                self._workdir = None

    def _launch(self, binary: str, port: int) -> None:
        assert self._workdir is not None
        config = self._workdir / "config.yml"
        config.write_text(
            registry_config(
                port,
                self._workdir / "storage",
                secrets.token_hex(16),
                self._marker,
                read_only=self._read_only,
            )
        )
        # REGISTRY_* variables override the config (REGISTRY_HTTP_ADDR could open it to the LAN).
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        with open(self._workdir / "registry.log", "wb") as stderr:  # one attempt's log only
            self._process = subprocess.Popen(
                [binary, "serve", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env=env,
                # Its own session: a terminal's Ctrl-C reaches buildbench, which stops it in order.
                start_new_session=True,
            )

    def _wait_ready(self, port: int) -> bool:
        """True once our registry answers; False if it lost the port; RegistryError otherwise."""
        process = self._process
        assert process is not None
        with requests.Session() as session:
            session.trust_env = False

            def started() -> str | None:
                code = process.poll()
                if code is not None:
                    tail = self._stderr_tail()
                    if "address already in use" in tail:
                        return "lost the port"
                    raise RegistryError(
                        f"{BINARY} exited with status {code} at start: {tail}", tip=_LOCAL_TIP
                    )
                return "answers" if self._answers(session, port) else None

            state = poll_until(started, timeout=self._start_timeout, interval=0.05)
        if state is not None:
            return state == "answers"
        raise RegistryError(
            f"{BINARY} did not answer on 127.0.0.1:{port} within {self._start_timeout:g} s; "
            f"its log ends: {self._stderr_tail()}",
            tip=_LOCAL_TIP,
        )

    def _answers(self, session: requests.Session, port: int) -> bool:
        try:
            response = session.get(f"http://127.0.0.1:{port}/v2/", timeout=1.0)
        except requests.RequestException:
            return False
        return response.status_code == 200 and response.headers.get(_MARKER_HEADER) == self._marker

    def _stderr_tail(self) -> str:
        assert self._workdir is not None
        with contextlib.suppress(OSError), open(self._workdir / "registry.log", "rb") as log_file:
            log_file.seek(0, os.SEEK_END)
            log_file.seek(max(0, log_file.tell() - _TAIL_BYTES))
            lines = log_file.read().decode(errors="replace").strip().splitlines()
            return "\n".join(lines[-10:]) or "(empty)"
        return "(no log)"

    def _stop_process(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        try:
            if process.poll() is None:
                process.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(self._grace)
        finally:
            # Also reached by a second Ctrl-C during the grace period: never leave it running.
            if process.poll() is None:
                log.debug("%s ignored SIGTERM for %g s: killing it", BINARY, self._grace)
                process.kill()
            process.wait()
