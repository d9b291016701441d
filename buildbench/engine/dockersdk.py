"""`Engine` implemented with the Docker SDK for Python (classic builder)."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

import docker
import docker.errors
import docker.types
import requests.exceptions
import urllib3.exceptions

from buildbench.engine import (
    BuildEvent,
    ContainerInfo,
    ContainerOutcome,
    ContainerSpec,
    EngineInfo,
    ImageInfo,
)
from buildbench.errors import BuildFailed, EngineUnavailable, UsageError

log = logging.getLogger("buildbench")
_CONNECTION_ERRORS = (docker.errors.DockerException, requests.exceptions.ConnectionError)
_LOG_TAIL = 40
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # pip colours its errors


def _address() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def _unreachable(exc: Exception) -> EngineUnavailable:
    where = _address()
    log.debug("engine unreachable: %r", exc)
    return EngineUnavailable(
        f"no Docker engine answers at {where}",
        tip="start the engine (`dockerd`, or Docker Desktop) or point DOCKER_HOST at one",
    )


class DockerEngine:
    def __init__(self, client: docker.DockerClient | None = None) -> None:
        address = _address()
        if client is None and address.startswith("unix://") and not os.path.exists(address[7:]):
            # No socket, no engine; docker-py would also leak the socket it failed to connect.
            raise _unreachable(FileNotFoundError(address))
        try:
            self.client = client or docker.from_env(timeout=600)
            self.client.ping()
        except _CONNECTION_ERRORS as exc:
            raise _unreachable(exc) from None
        self.api = self.client.api

    def info(self) -> EngineInfo:
        try:
            version, info = self.api.version(), self.api.info()
        except _CONNECTION_ERRORS as exc:
            raise _unreachable(exc) from None
        return EngineInfo(
            server_version=version.get("Version", ""),
            api_version=version.get("ApiVersion", ""),
            os=f"{version.get('Os', '')}/{version.get('Arch', '')}",
            kernel=version.get("KernelVersion", ""),
            storage_driver=info.get("Driver", ""),
            runtimes=tuple(sorted(info.get("Runtimes") or {})),
        )

    def image(self, ref: str) -> ImageInfo | None:
        try:
            data = self.api.inspect_image(ref)
        except docker.errors.ImageNotFound:
            return None
        except docker.errors.APIError as exc:
            if exc.status_code == 400:  # e.g. upper case or a stray character in the name
                raise UsageError(
                    f"{ref!r} is not a valid image reference ({exc.explanation})",
                    tip="image names are lower case: [registry/]name[:tag]",
                ) from None
            raise
        except requests.exceptions.ConnectionError as exc:
            raise _unreachable(exc) from None
        return ImageInfo(
            id=data["Id"],
            size_bytes=int(data["Size"]),
            layers=tuple(data.get("RootFS", {}).get("Layers") or ()),
            tags=tuple(data.get("RepoTags") or ()),
            labels=(data.get("Config") or {}).get("Labels") or {},
        )

    def pull(self, ref: str) -> None:
        self.client.images.pull(ref)

    def import_image(self, tarball: Path, ref: str, changes: list[str]) -> str:
        repository, _, tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, "", "")
        self.api.import_image(
            src=str(tarball), repository=repository, tag=tag or None, changes=changes
        )
        info = self.image(ref)
        if info is None:
            raise EngineUnavailable(f"the engine did not keep the imported image {ref}")
        return info.id

    def build(
        self,
        context: BinaryIO,
        *,
        dockerfile: str,
        tag: str,
        buildargs: Mapping[str, str],
        labels: Mapping[str, str],
    ) -> Iterator[BuildEvent]:
        tail: list[str] = []
        try:
            stream = self.api.build(
                fileobj=context,
                custom_context=True,
                dockerfile=dockerfile,
                tag=tag,
                nocache=True,
                pull=False,
                rm=True,
                forcerm=True,
                buildargs=dict(buildargs),
                labels=dict(labels),
                decode=True,
            )
            for chunk in stream:
                if "error" in chunk:
                    raise BuildFailed(chunk["error"].strip(), tail[-_LOG_TAIL:])
                if "aux" in chunk and "ID" in chunk["aux"]:
                    yield BuildEvent("image", chunk["aux"]["ID"])
                    continue
                text = _ANSI.sub("", chunk.get("stream") or chunk.get("status") or "")
                for line in text.splitlines():
                    if line.strip():
                        tail = [*tail[-_LOG_TAIL:], line]
                        yield BuildEvent("log", line)
        except BuildFailed:
            raise
        except (docker.errors.APIError, docker.errors.BuildError) as exc:
            raise BuildFailed(str(exc), tail[-_LOG_TAIL:]) from None
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError) as exc:
            if not self._answers():
                raise _unreachable(exc) from None
            raise BuildFailed(f"the build stream broke: {exc}", tail[-_LOG_TAIL:]) from None
        except BaseException:  # Ctrl-C, SIGTERM, or the consumer gave up on the build
            self._reconnect()
            raise

    def _reconnect(self) -> None:
        """Drop every open connection, which makes the engine cancel a running build
        (it removes the build's container too), then connect afresh. Asks the engine nothing:
        it may be the engine that went away."""
        version = self.api.api_version
        self.client.close()
        self.client = docker.from_env(timeout=600, version=version)
        self.api = self.client.api

    def _answers(self) -> bool:
        try:
            return bool(self.api.ping())
        except Exception:  # any failure to ping means the same: no engine
            return False

    def remove_image(self, ref: str) -> bool:
        try:
            self.api.remove_image(ref, force=False, noprune=False)
        except (docker.errors.APIError, requests.exceptions.ConnectionError):
            return False  # gone already, still in use, or no engine to ask
        return True

    def images_labelled(self, label: str) -> list[str]:
        return self.api.images(all=True, filters={"label": label}, quiet=True)

    def containers_labelled(self, label: str) -> list[ContainerInfo]:
        return [
            ContainerInfo(c["Id"], c.get("ImageID", ""), c.get("State", ""), c.get("Labels") or {})
            for c in self.api.containers(all=True, filters={"label": label})
        ]

    def remove_container(self, ref: str) -> bool:
        try:
            self.api.remove_container(ref, v=True, force=True)
        except docker.errors.APIError:  # NotFound included
            return False
        return True

    def prune_build_cache(self) -> int:
        return int(self.api.prune_builds().get("SpaceReclaimed") or 0)

    def image_archive(self, ref: str) -> Iterator[bytes]:
        yield from self.api.get_image(ref, chunk_size=1024 * 1024)

    def run(self, image: str, spec: ContainerSpec) -> ContainerOutcome:
        kwargs: dict = {}
        if spec.gpus:
            kwargs["device_requests"] = [
                docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])
            ]
        container = self.client.containers.create(
            image,
            spec.command,
            user=spec.user,
            network_mode="bridge" if spec.network else "none",
            read_only=spec.read_only,
            tmpfs=dict(spec.tmpfs),
            mem_limit=spec.memory_bytes,
            memswap_limit=spec.memory_bytes,
            pids_limit=spec.pids_limit,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            mounts=[
                docker.types.Mount(m.target, m.source, type="bind", read_only=m.read_only)
                for m in spec.mounts
            ],
            environment=dict(spec.environment),
            labels=dict(spec.labels),
            entrypoint=list(spec.entrypoint),
            **kwargs,
        )
        timed_out = False
        started, started_at = time.perf_counter(), time.time()
        try:
            try:
                container.start()
            except docker.errors.APIError as exc:  # e.g. the command does not exist in the image
                return ContainerOutcome(None, "", exc.explanation or str(exc), seconds=0.0)
            try:
                exit_code = container.wait(timeout=spec.timeout_seconds)["StatusCode"]
            except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError) as exc:
                if not self._answers():  # not a timeout: the engine went away
                    raise _unreachable(exc) from None
                timed_out, exit_code = True, None
                container.kill()
            seconds = time.perf_counter() - started
            container.reload()
            oom = bool(container.attrs["State"].get("OOMKilled"))
            out = container.logs(stdout=True, stderr=False).decode(errors="replace")
            err = container.logs(stdout=False, stderr=True).decode(errors="replace")
        finally:
            with contextlib.suppress(docker.errors.APIError, requests.exceptions.ConnectionError):
                container.remove(force=True)
        return ContainerOutcome(exit_code, out, err, timed_out, oom, seconds, started_at)
