"""`Engine` implemented with the Docker SDK for Python (classic builder), at any endpoint."""

from __future__ import annotations

import contextlib
import datetime
import functools
import inspect
import logging
import math
import os
import posixpath
import re
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from typing import Any, BinaryIO, TypeVar

import docker
import docker.errors
import docker.types
import docker.utils
import requests.exceptions
import urllib3.exceptions

from buildbench.engine.api import (
    BuildEvent,
    CacheRecord,
    ContainerInfo,
    ContainerOutcome,
    ContainerSpec,
    EngineInfo,
    ImageInfo,
    LineSink,
    ServiceOutcome,
)
from buildbench.engine.endpoint import Endpoint, default_endpoint
from buildbench.engine.registry import transfer
from buildbench.engine.wait import poll_until
from buildbench.errors import BuildFailed, EngineUnavailable, UsageError

log = logging.getLogger("buildbench")
_CONNECTION_ERRORS = (
    docker.errors.DockerException,
    requests.exceptions.ConnectionError,
    urllib3.exceptions.HTTPError,
    OSError,
)
_LOCK_GONE_WAIT = 10.0  # seconds the engine may take to remove a run's lock container
_DISK_USAGE_WAIT = 60.0  # seconds another client's `system df` may keep the engine counting
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # pip colours its errors


def plain(text: str) -> str:
    """Text without terminal colour codes."""
    return _ANSI.sub("", text)


_Class = TypeVar("_Class", bound=type)


def _lost_engine_checked(cls: _Class) -> _Class:
    """Every public method of `cls`: a connection error is EngineUnavailable when the engine
    no longer answers a ping (it went away), else itself. Generators are checked as they run.
    An API error is an answer from the engine: it asks nothing more."""

    def checked(method: Any) -> Any:
        if inspect.isgeneratorfunction(method):

            @functools.wraps(method)
            def generator(self: Any, *args: Any, **kwargs: Any) -> Any:
                try:
                    yield from method(self, *args, **kwargs)
                except docker.errors.APIError:
                    raise
                except _CONNECTION_ERRORS as exc:
                    self._raise_if_gone(exc)
                    raise

            return generator

        @functools.wraps(method)
        def function(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except docker.errors.APIError:
                raise
            except _CONNECTION_ERRORS as exc:
                self._raise_if_gone(exc)
                raise

        return function

    for name, value in list(vars(cls).items()):
        if inspect.isfunction(value) and not name.startswith("_"):
            setattr(cls, name, checked(value))
    return cls


@_lost_engine_checked
class DockerEngine:
    def __init__(self, endpoint: Endpoint | None = None) -> None:
        self._endpoint = endpoint or default_endpoint()
        url = self._endpoint.url
        if url.startswith("unix://") and not os.path.exists(url[len("unix://") :]):
            # No socket, no engine; docker-py would also leak the socket it failed to connect.
            raise self._unreachable(FileNotFoundError(url))
        try:
            self.client = self._endpoint.client()
            self.client.ping()
        except _CONNECTION_ERRORS as exc:
            raise self._unreachable(exc) from None
        self.api = self.client.api

    @property
    def endpoint(self) -> str:
        return self._endpoint.masked

    def close(self) -> None:
        """Close the connections to the engine (the SDK keeps them open)."""
        self.client.close()

    @property
    def address(self) -> Endpoint:
        return self._endpoint

    def _unreachable(self, exc: BaseException) -> EngineUnavailable:
        log.debug("engine unreachable: %r", exc)
        return EngineUnavailable(f"no Docker engine answers at {self._endpoint.masked}")

    def _answers(self) -> bool:
        """Whether the engine answers a new connection: a pooled one outlives the socket of
        an engine that is shutting down."""
        try:
            probe = self._endpoint.client(version=self.api.api_version, timeout=10)
        except Exception:  # e.g. the ssh client cannot start: no engine either
            return False
        try:
            return bool(probe.ping())
        except Exception:  # any failure to ping means the same: no engine
            return False
        finally:
            probe.close()

    def _raise_if_gone(self, exc: BaseException) -> None:
        """EngineUnavailable, from `exc`, if the engine stopped answering."""
        if not self._answers():
            raise self._unreachable(exc) from None

    def _reconnect(self) -> None:
        """Drop every open connection, which makes the engine cancel a running build (it
        removes the build's container too), then connect afresh. Asks the engine nothing:
        it may be the engine that went away."""
        version = self.api.api_version
        self.client.close()
        self.client = self._endpoint.client(version=version)
        self.api = self.client.api

    def info(self) -> EngineInfo:
        version, info = self.api.version(), self.api.info()
        return EngineInfo(
            server_version=version.get("Version", ""),
            api_version=version.get("ApiVersion", ""),
            os=version.get("Os", ""),
            arch=version.get("Arch", ""),
            kernel=version.get("KernelVersion", ""),
            storage_driver=info.get("Driver", ""),
            name=info.get("Name", ""),
            cpus=info.get("NCPU"),
            memory_bytes=info.get("MemTotal"),
            runtimes=tuple(sorted(info.get("Runtimes") or {})),
        )

    # -----------------------------------------------------------------------------------------
    # Images

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
        return ImageInfo(
            id=data["Id"],
            size_bytes=int(data["Size"]),
            layers=tuple(data.get("RootFS", {}).get("Layers") or ()),
            tags=tuple(data.get("RepoTags") or ()),
            labels=(data.get("Config") or {}).get("Labels") or {},
            user=(data.get("Config") or {}).get("User") or "",
        )

    def pull(self, ref: str, on_progress: LineSink | None = None) -> float:
        return transfer.pull(self.api, ref, on_progress)

    def push(self, ref: str, on_progress: LineSink | None = None) -> float:
        return transfer.push(self.api, ref, on_progress)

    def tag(self, image: str, ref: str) -> None:
        transfer.tag(self.api, image, ref)

    def import_image(self, tarball: BinaryIO, ref: str, changes: list[str]) -> str:
        repository, tag = docker.utils.parse_repository_tag(ref)
        self.api.import_image(src=tarball, repository=repository, tag=tag, changes=changes)
        info = self.image(ref)
        if info is None:
            raise EngineUnavailable(f"the engine did not keep the imported image {ref}")
        return info.id

    def remove_image(self, ref: str) -> bool:
        try:
            self.api.remove_image(ref, force=False, noprune=False)
        except (docker.errors.APIError, *_CONNECTION_ERRORS):
            return False  # gone already, still in use, or no engine to ask
        return True

    def image_children(self, ref: str) -> list[str]:
        info = self.image(ref)
        if info is None:
            return []
        return [
            image["Id"] for image in self.api.images(all=True) if image.get("ParentId") == info.id
        ]

    def dangling_images(self) -> list[str]:
        return list(self.api.images(filters={"dangling": True}, quiet=True))

    def images_labelled(self, label: str) -> list[str]:
        return list(self.api.images(all=True, filters={"label": label}, quiet=True))

    def image_archive(self, ref: str) -> Iterator[bytes]:
        yield from self.api.get_image(ref, chunk_size=1024 * 1024)

    # -----------------------------------------------------------------------------------------
    # Builds (classic builder) and BuildKit's cache

    def build(
        self,
        context: Iterable[bytes],
        *,
        dockerfile: str,
        tag: str,
        buildargs: Mapping[str, str],
        labels: Mapping[str, str],
    ) -> Iterator[BuildEvent]:
        tail: list[str] = []
        try:
            stream = self.api.build(
                fileobj=context,  # type: ignore[arg-type]  # sent chunked, as the CLI does
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
                    raise BuildFailed(plain(chunk["error"]).strip(), tail)
                if "aux" in chunk and "ID" in chunk["aux"]:
                    yield BuildEvent("image", chunk["aux"]["ID"])
                    continue
                text = plain(chunk.get("stream") or chunk.get("status") or "")
                for line in text.splitlines():
                    if line.strip():
                        tail.append(line)
                        yield BuildEvent("log", line)
        except BuildFailed:
            raise
        except (docker.errors.APIError, docker.errors.BuildError) as exc:
            raise BuildFailed(str(exc), tail) from None
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError) as exc:
            self._raise_if_gone(exc)
            raise BuildFailed(f"the build stream broke: {exc}", tail) from None
        except BaseException:  # Ctrl-C, SIGTERM, or the consumer gave up on the build
            self._reconnect()
            raise

    def containers_using(self, image: str) -> list[str]:
        try:
            found = self.api.containers(all=True, filters={"ancestor": image})
        except docker.errors.APIError:  # the image is gone already
            return []
        return [container["Id"] for container in found]

    def build_cache(self) -> list[CacheRecord]:
        return [
            CacheRecord(
                id=record["ID"],
                parent=record.get("Parent") or None,
                size_bytes=int(record.get("Size") or 0),
                in_use=bool(record.get("InUse")),
                description=record.get("Description") or "",
            )
            for record in self._disk_usage().get("BuildCache") or []
        ]

    def _disk_usage(self) -> dict[str, Any]:
        """`system df`. Docker 20.10 answers 500 to a second client while one is counting
        ("a disk usage operation is already running", e.g. a run beside ours on a shared CI
        engine): wait for that count to end and ask again; newer engines share it."""
        busy = "disk usage operation is already running"
        answers: list[dict[str, Any]] = []

        def answered() -> bool:
            try:
                answers.append(dict(self.api.df()))
            except docker.errors.APIError as exc:
                if exc.status_code == 500 and busy in str(exc.explanation or ""):
                    return False
                raise
            return True

        if poll_until(answered, timeout=_DISK_USAGE_WAIT, interval=0.2):
            return answers[-1]
        return dict(self.api.df())  # still counting: its error

    def prune_cache_records(self, ids: list[str]) -> int:
        """One prune per record (the API takes one `id` filter at a time), children first: a
        record whose children remain is kept by BuildKit, so passes repeat until none go."""
        left, freed = list(ids), 0
        while left:
            for record in left:
                # The stubs know only `until` and `dangling`; the Engine API takes `id` too.
                by_id: Any = {"id": record}
                answer = self.api.prune_builds(filters=by_id, all=True)
                freed += int(answer.get("SpaceReclaimed") or 0)
            existing = {r.id for r in self.build_cache()}
            still = [record for record in left if record in existing]
            if len(still) == len(left):  # no progress: in use, or owned by another build
                break
            left = still
        return freed

    # -----------------------------------------------------------------------------------------
    # Containers and volumes

    def containers_labelled(self, label: str) -> list[ContainerInfo]:
        return [
            ContainerInfo(c["Id"], c.get("ImageID", ""), c.get("State", ""), c.get("Labels") or {})
            for c in self.api.containers(all=True, filters={"label": label})
        ]

    def remove_container(self, ref: str) -> bool:
        try:
            self.api.remove_container(ref, v=True, force=True)
        except (docker.errors.APIError, *_CONNECTION_ERRORS):  # NotFound included
            return False
        return True

    def create_volume(self, name: str, labels: Mapping[str, str]) -> None:
        self.api.create_volume(name, labels=dict(labels))

    def fill_volume(self, volume: str, archive: bytes, image: str) -> None:
        with self._volume_helper(volume, image) as helper:
            self.api.put_archive(helper, "/fill", archive)

    def read_volume(self, volume: str, path: str, image: str) -> bytes:
        with self._volume_helper(volume, image) as helper:
            try:
                chunks, _ = self.api.get_archive(helper, posixpath.join("/fill", path))
                return b"".join(chunks)
            except docker.errors.NotFound:
                return b""

    @contextlib.contextmanager
    def _volume_helper(self, volume: str, image: str) -> Iterator[str]:
        """A never-started container of `image` with `volume` at /fill: the engine copies in
        and out of a container only; removed again."""
        mount = docker.types.Mount("/fill", volume, type="volume")
        helper = self.api.create_container(
            image,
            ["true"],
            network_disabled=True,
            labels={"buildbench.helper": "fill-volume"},
            host_config=self.api.create_host_config(mounts=[mount], network_mode="none"),
        )
        try:
            yield helper["Id"]
        finally:
            self.remove_container(helper["Id"])

    def volumes_labelled(self, label: str) -> list[str]:
        found = self.api.volumes(filters={"label": label}).get("Volumes") or []
        return [volume["Name"] for volume in found]

    def remove_volume(self, name: str) -> bool:
        try:
            self.api.remove_volume(name, force=True)
        except (docker.errors.APIError, *_CONNECTION_ERRORS):
            return False
        return True

    def run(
        self, image: str, spec: ContainerSpec, on_stderr: LineSink | None = None
    ) -> ContainerOutcome:
        container = self.api.create_container(
            image,
            spec.command,
            user=spec.user,
            environment=dict(spec.environment),
            labels=dict(spec.labels),
            entrypoint=list(spec.entrypoint),
            network_disabled=not spec.network and spec.network_of is None,
            use_config_proxy=False,  # the client's ~/.docker proxies are not the container's
            host_config=self.api.create_host_config(**lockdown(spec)),
        )["Id"]
        timed_out = False
        try:
            for directory, archive in spec.inputs:
                self.api.put_archive(container, directory, archive)
            started = time.perf_counter()
            try:
                self.api.start(container)
            except docker.errors.APIError as exc:  # e.g. the command does not exist in the image
                return ContainerOutcome(None, "", exc.explanation or str(exc), seconds=0.0)
            start_request = time.perf_counter() - started
            last_line = [started]
            follower = None
            if on_stderr or spec.timeout_from_last_line:

                def on_line(line: str) -> None:
                    last_line[0] = time.perf_counter()
                    if on_stderr:
                        on_stderr(line)

                follower = self._follow_stderr(container, on_line)
            exit_code = self._wait(container, spec, last_line)
            if exit_code is None:
                timed_out = True
                with contextlib.suppress(docker.errors.APIError):
                    self.api.kill(container)
            seconds = time.perf_counter() - started
            if follower:
                follower.join(timeout=10)
            state = self.api.inspect_container(container)["State"]
            out = self.api.logs(container, stdout=True, stderr=False).decode(errors="replace")
            err = self.api.logs(container, stdout=False, stderr=True).decode(errors="replace")
        finally:
            self.remove_container(container)
        return ContainerOutcome(
            exit_code,
            out,
            err,
            timed_out,
            bool(state.get("OOMKilled")),
            seconds,
            start_request,
            _epoch(state.get("StartedAt")),
        )

    def _wait(self, container: str, spec: ContainerSpec, last_line: list[float]) -> int | None:
        """The container's exit code, or None once its timeout passed: from its start, or from
        its last stderr line (`last_line[0]`, moved on as lines come) where the spec says so."""
        start = last_line[0]
        while True:
            since = last_line[0] if spec.timeout_from_last_line else start
            left = since + spec.timeout_seconds - time.perf_counter()
            if left <= 0:
                return None
            try:  # in steps, so that a line coming meanwhile moves the deadline on
                return int(self.api.wait(container, timeout=math.ceil(min(left, 30)))["StatusCode"])
            except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError) as exc:
                self._raise_if_gone(exc)  # else the step's time passed

    def _follow_stderr(self, container: str, on_line: LineSink) -> threading.Thread:
        """Pass the container's stderr on, line by line, while it runs (a smoke test's
        progress); the stream ends when the container stops."""

        def follow() -> None:
            with contextlib.suppress(Exception):  # progress only: the outcome reads the logs
                buffer = b""
                stream = self.api.logs(container, stdout=False, stderr=True, stream=True)
                with contextlib.closing(stream):  # its socket, once the container stopped
                    for chunk in stream:
                        buffer += chunk
                        *lines, buffer = buffer.split(b"\n")
                        for line in lines:
                            on_line(line.decode(errors="replace"))

        thread = threading.Thread(target=follow, daemon=True, name="buildbench-stderr")
        thread.start()
        return thread

    def serve(
        self,
        image: str,
        service: ContainerSpec,
        client_image: str,
        client: ContainerSpec,
        on_stderr: LineSink | None = None,
    ) -> ServiceOutcome:
        container = self.api.create_container(
            image,
            None,  # the image's own CMD and ENTRYPOINT start the service
            user=service.user,
            environment=dict(service.environment),
            labels=dict(service.labels),
            network_disabled=True,
            use_config_proxy=False,
            host_config=self.api.create_host_config(**lockdown(service)),  # no port bindings
        )["Id"]
        gone = threading.Event()  # set once the client ended: the watchers stop
        try:
            started = time.perf_counter()
            try:
                self.api.start(container)
            except docker.errors.APIError as exc:  # e.g. the image has no CMD
                why = (exc.explanation or str(exc),)
                return ServiceOutcome(ContainerOutcome(None, "", ""), started=False, log_tail=why)
            start_request = time.perf_counter() - started
            stats = _StatsSampler(self.api, container)
            stats.start()
            labels = {**client.labels, SERVICE_OF: container}
            joined = replace(client, network_of=container, labels=labels)
            watcher = self._stop_client_when_service_dies(
                container, client.timeout_seconds + 60, gone
            )
            outcome = self.run(client_image, joined, on_stderr)
            gone.set()
            stats.final()
            state = self.api.inspect_container(container)["State"]
            logs = self.api.logs(container, stdout=True, stderr=True, tail=SERVICE_LOG_LINES)
        finally:
            gone.set()
            self.remove_container(container)
        watcher.join(timeout=10)
        stats.join(timeout=10)
        running = bool(state.get("Running"))
        return ServiceOutcome(
            outcome,
            start_request_seconds=start_request,
            engine_started_epoch=_epoch(state.get("StartedAt")),
            exit_code=None if running else state.get("ExitCode"),
            oom_killed=bool(state.get("OOMKilled")),
            log_tail=tuple(plain(logs.decode(errors="replace")).splitlines()),
            peak_memory_bytes=stats.peak_memory_bytes,
            cpu_seconds=stats.cpu_seconds,
        )

    def _stop_client_when_service_dies(
        self, service: str, timeout: float, gone: threading.Event
    ) -> threading.Thread:
        """SIGTERM to the client once the service exits while the client runs (or before it
        started): the client then reports at once what it measured."""

        def watch() -> None:
            with contextlib.suppress(Exception):  # the service removed: nothing to stop
                self.api.wait(service, timeout=math.ceil(timeout))
                while not gone.is_set():  # the client may not have started yet: again
                    for found in self.api.containers(filters={"label": f"{SERVICE_OF}={service}"}):
                        with contextlib.suppress(docker.errors.APIError):
                            self.api.kill(found["Id"], signal="SIGTERM")
                    gone.wait(0.5)

        thread = threading.Thread(target=watch, daemon=True, name="buildbench-service")
        thread.start()
        return thread

    @contextlib.contextmanager
    def hold(self, image: str, labels: Mapping[str, str]) -> Iterator[None]:
        """A `cat` container whose stdin is attached here: when this process ends (even by
        SIGKILL) the socket closes, `cat` reads EOF, the container exits and removes itself."""
        config = self.api.create_container_config(
            image,
            ["cat"],
            stdin_open=True,
            labels=dict(labels),
            user="65534:65534",
            network_disabled=True,
            host_config=self.api.create_host_config(
                auto_remove=True,
                **lockdown(ContainerSpec(command=["cat"], memory_bytes=32 * 1024**2, pids_limit=4)),
            ),
        )
        config["StdinOnce"] = True  # the first attached client's EOF closes the stdin
        container = self.api.create_container_from_config(config)["Id"]
        sock: Any = self.api.attach_socket(container, params={"stdin": 1, "stream": 1})
        try:
            try:
                self.api.start(container)
            except docker.errors.APIError as exc:  # an image without `cat`: run unlocked
                log.warning("no lock for this run (%s): `buildbench clean` may not see it", exc)
            yield
        finally:
            with contextlib.suppress(OSError):
                _close_socket(sock)
            self.remove_container(container)
            # With stdin closed the engine may be removing it already (auto_remove), and then
            # answers the removal at once: the run ends when the container is gone.
            with contextlib.suppress(*_CONNECTION_ERRORS):
                poll_until(lambda: self._gone(container), timeout=_LOCK_GONE_WAIT, interval=0.1)

    def _gone(self, container: str) -> bool:
        try:
            self.api.inspect_container(container)
        except docker.errors.NotFound:
            return True
        return False


SERVICE_LOG_LINES = 30
SERVICE_OF = "buildbench.service-of"  # on a service's client: the service container's id


class _StatsSampler(threading.Thread):
    """The engine's stats stream of a container (about one sample a second): the highest
    memory use seen (cgroup v1 reports its own peak, `max_usage`) and the CPU time used."""

    def __init__(self, api: Any, container: str) -> None:
        super().__init__(daemon=True, name="buildbench-stats")
        self.api, self.container = api, container
        self.peak_memory_bytes: int | None = None
        self.cpu_seconds: float | None = None

    def take(self, sample: Mapping[str, Any]) -> None:
        memory = sample.get("memory_stats") or {}
        seen = max(int(memory.get("max_usage") or 0), int(memory.get("usage") or 0))
        if seen:
            self.peak_memory_bytes = max(self.peak_memory_bytes or 0, seen)
        used = ((sample.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage")
        if used:
            self.cpu_seconds = round(int(used) / 1e9, 3)

    def run(self) -> None:
        with contextlib.suppress(Exception):  # the stream ends when the container goes
            for sample in self.api.stats(self.container, stream=True, decode=True):
                self.take(sample)

    def final(self) -> None:
        """One more sample now: the stream's last may be a second old."""
        with contextlib.suppress(docker.errors.APIError):
            self.take(self.api.stats(self.container, stream=False, one_shot=True))


def _epoch(timestamp: str | None) -> float | None:
    """The engine's RFC 3339 time (nanoseconds, `Z`) as epoch seconds."""
    if not timestamp or timestamp.startswith("0001-"):
        return None
    try:
        return datetime.datetime.fromisoformat(timestamp).timestamp()
    except ValueError:
        return None


def lockdown(spec: ContainerSpec) -> dict[str, Any]:
    """The host config of a throwaway container: what `ContainerSpec` says, as the engine
    takes it. Everything is dropped that the spec does not ask for."""
    network = "bridge" if spec.network else "none"
    config: dict[str, Any] = {
        "network_mode": f"container:{spec.network_of}" if spec.network_of else network,
        "read_only": spec.read_only,
        "tmpfs": dict(spec.tmpfs),
        "mem_limit": spec.memory_bytes,
        "memswap_limit": spec.memory_bytes,
        "pids_limit": spec.pids_limit,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "mounts": [
            docker.types.Mount(v.target, v.volume, type="volume", read_only=v.read_only)
            for v in spec.volumes
        ],
    }
    if spec.gpus:
        config["device_requests"] = [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])]
    return config


def _close_socket(sock: Any) -> None:
    """docker-py hands back a socket, or a file object over one (SocketIO, on unix sockets):
    closing the file object alone leaves the socket open."""
    raw = getattr(sock, "_sock", sock)
    if isinstance(raw, socket.socket):
        raw.shutdown(socket.SHUT_RDWR)
        raw.close()
    sock.close()
