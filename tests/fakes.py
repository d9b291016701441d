"""A scripted in-memory Engine for unit tests of the logic around Docker.

`FakeEngine` implements `buildbench.engine.api.Engine` and records every call that changes the
engine, so tests can assert what was asked of it. Its default answers are those of a healthy
engine: the preflight probe and the version probe get sensible JSON, other containers exit 0.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import posixpath
import tarfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO, Literal

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
from buildbench.labels import LABEL_LOCK

FREE_BYTES = 500 * 1000**3  # what the preflight probe finds free on the engine's disk
PROBE_ANSWER = {
    "cpu_model": "Fake CPU @ 3.0GHz",
    "free_bytes": FREE_BYTES,
    "python": "3.11.2",
    "machine": "x86_64",
    "libc": "glibc 2.36",
}
VERSIONS_ANSWER = {"python": "3.11.2", "framework": "9.9"}
LAYER_FILE_BYTES = 4000  # each layer of `image_archive` holds one file this big


def classic_stream(image_id: str, stage_result: str = "aaaaaaaaaaaa") -> list[BuildEvent]:
    """What the classic builder prints for a two-stage Dockerfile."""
    lines = [
        "Step 1/5 : ARG BASE_IMAGE=python:3.11-slim",
        "Step 2/5 : FROM ${BASE_IMAGE} AS builder",
        " ---> 06f71f00d074",
        "Step 3/5 : RUN pip install thing",
        " ---> Running in 0123456789ab",
        "Successfully installed thing",
        " ---> " + stage_result,
        "Step 4/5 : FROM ${BASE_IMAGE}",
        " ---> 06f71f00d074",
        "Step 5/5 : COPY --from=builder /opt/venv /opt/venv",
        " ---> " + image_id[7:19],
    ]
    return [BuildEvent("log", line) for line in lines] + [BuildEvent("image", image_id)]


# ---------------------------------------------------------------------------------------------
# `docker save` archives


def layer_tar(files: Mapping[str, bytes]) -> bytes:
    """One layer: a tar of `files` (path -> content)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class TarContext:
    """A build context as the builders take it (`BuildContext`): a fixed tar of `files`, packed
    again for every build that sends it; `pack_seconds` is how long packing takes (a large
    context's), `fail`: an error raised halfway through packing."""

    def __init__(
        self,
        files: Mapping[str, bytes] | None = None,
        pack_seconds: float = 0.0,
        fail: BaseException | None = None,
    ) -> None:
        self.data = layer_tar(files if files is not None else {"Dockerfile": b"FROM base\n"})
        self.pack_seconds = pack_seconds
        self.fail = fail
        self.packed = 0  # how many times it was packed

    def pack(self, out: BinaryIO) -> None:
        self.packed += 1
        half = len(self.data) // 2
        out.write(self.data[:half])
        time.sleep(self.pack_seconds)
        if self.fail is not None:
            raise self.fail
        out.write(self.data[half:])


def entries_tar(entries: Sequence[tuple[str, str, bytes | str]]) -> bytes:
    """One layer of any entries: (path, kind, content) where kind is file (content: bytes),
    dir, symlink or hardlink (content: the target), or whiteout (`.wh.` + name is written)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, kind, content in entries:
            if kind == "whiteout":
                folder, _, name = path.rpartition("/")
                path = f"{folder}/.wh.{name}" if folder else f".wh.{name}"
            info = tarfile.TarInfo(path)
            info.mode, info.uid, info.gid = 0o644, 1000, 1000
            data = content if isinstance(content, bytes) else b""
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o750
            elif kind in ("symlink", "hardlink"):
                info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
                info.linkname = str(content)
            else:
                info.size = len(data)
                if kind == "file" and path.endswith(".so"):
                    info.mode = 0o755
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buffer.getvalue()


def docker_save(
    layers: Sequence[bytes],
    *,
    layout: Literal["legacy", "oci"] = "legacy",
    instructions: Sequence[str] | None = None,
    link_repeats: bool = True,
    config: Mapping[str, Any] | None = None,
) -> bytes:
    """A `docker save` archive of `layers`. Legacy (engine 20.10): `<id>/layer.tar`, a config
    `<sha>.json` with `rootfs` and `history`, `manifest.json` last; a layer listed again is
    saved as a symlink to its first copy (`link_repeats`). OCI: blobs by digest, listed in
    `manifest.json` once per use."""
    steps = instructions or [f"RUN step {i}" for i in range(len(layers))]
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": ["PATH=/usr/bin"], **(config or {})},
            "rootfs": {
                "type": "layers",
                "diff_ids": [f"sha256:{hashlib.sha256(data).hexdigest()}" for data in layers],
            },
            "history": [{"created_by": f"/bin/sh -c #(nop)  {text}"} for text in steps],
        }
    ).encode()
    config_name = f"{hashlib.sha256(config).hexdigest()}.json"
    members: list[tuple[str, bytes | str]] = []
    names: list[str] = []
    if layout == "legacy":
        members.append((config_name, config))
        first: dict[bytes, str] = {}
        for index, data in enumerate(layers):
            name = f"{hashlib.sha256(str(index).encode() + data).hexdigest()}/layer.tar"
            if link_repeats and data in first:
                members.append((name, f"../{first[data]}"))
            else:
                first.setdefault(data, name)
                members.append((name, data))
            names.append(name)
    else:
        config_name = f"blobs/sha256/{hashlib.sha256(config).hexdigest()}"
        members.append((config_name, config))
        for data in layers:
            name = f"blobs/sha256/{hashlib.sha256(data).hexdigest()}"
            if name not in names:
                members.append((name, data))
            names.append(name)
    manifest = [{"Config": config_name, "RepoTags": [], "Layers": names}]
    members.append(("manifest.json", json.dumps(manifest).encode()))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, member in members:
            info = tarfile.TarInfo(name)
            if isinstance(member, str):
                info.type, info.linkname = tarfile.SYMTYPE, member
                tar.addfile(info)
            else:
                info.size = len(member)
                tar.addfile(info, io.BytesIO(member))
    return buffer.getvalue()


def fake_layer(layer_id: str) -> bytes:
    """The content the fake engine gives a layer: one file named after it."""
    data = (layer_id.encode() * (LAYER_FILE_BYTES // max(len(layer_id), 1) + 1))[:LAYER_FILE_BYTES]
    return layer_tar({f"opt/{layer_id}.bin": data})


# ---------------------------------------------------------------------------------------------
# The engine


def _context_files(context: Iterable[bytes]) -> tuple[list[str], dict[str, str]]:
    """Names in the build context (read to its end, as the engine reads the request body), and
    the text of its config files and Dockerfiles."""
    data = b"".join(context)
    if not data:
        return [], {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = tar.getnames()
        files = {
            n: tar.extractfile(n).read().decode(errors="replace")  # type: ignore[union-attr]
            for n in names
            if n.endswith((".conf", ".dockerfile"))
        }
    return names, files


def matches(labels: Mapping[str, str], label: str) -> bool:
    """Whether `labels` carry `label` as the engine's filter reads it: `key` or `key=value`."""
    key, sep, value = label.partition("=")
    return key in labels and (not sep or labels[key] == value)


def default_outcome(image: str, spec: ContainerSpec) -> ContainerOutcome:
    """A healthy engine's answer: the preflight probe and the version probe get their JSON,
    anything else exits 0 without output."""
    script = spec.command[2] if spec.command[1:2] == ["-c"] and len(spec.command) > 2 else ""
    if "statvfs" in script:  # run/preflight.py's engine probe
        return ContainerOutcome(0, json.dumps(PROBE_ANSWER) + "\n", "", seconds=0.5)
    if "python_version" in script:  # measure/image.py's version probe
        return ContainerOutcome(0, json.dumps(VERSIONS_ANSWER) + "\n", "", seconds=0.5)
    return ContainerOutcome(0, "", "", seconds=0.5)


@dataclass
class FakeEngine:
    address: str = "unix:///var/run/fake.sock"
    images: dict[str, ImageInfo] = field(default_factory=dict)
    builds: list[dict[str, Any]] = field(default_factory=list)
    # Each build pops the next script: a list of events, or an exception to raise.
    scripts: list[list[BuildEvent] | BaseException] = field(default_factory=list)
    runs: list[tuple[str, ContainerSpec]] = field(default_factory=list)
    run_result: Callable[[str, ContainerSpec], ContainerOutcome] | None = None
    runtimes: tuple[str, ...] = ("runc",)
    containers: dict[str, ContainerInfo] = field(default_factory=dict)
    volumes: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> labels
    cache: list[CacheRecord] = field(default_factory=list)
    # Refs `pull` finds in its "registry"; any other pull fails as with no registry at all.
    pullable: set[str] = field(default_factory=set)
    # `docker save` archives by image id; any other image gets one made from its layers.
    archives: dict[str, bytes] = field(default_factory=dict)
    # What was asked of it, in order: ("remove_image", ref), ("fill_volume", volume, image)...
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # refs of remove_image calls
    filled: dict[str, bytes] = field(default_factory=dict)  # volume -> the archive put into it
    # What containers wrote into volumes: volume -> {path in it: bytes}; `read_volume` reads it.
    volume_files: dict[str, dict[str, bytes]] = field(default_factory=dict)
    # The files a service writes while it runs: its spec -> {path in the container: bytes},
    # kept in `volume_files` when a writable volume is mounted there (else lost, as a write to
    # a read-only mount is).
    service_writes: Callable[[ContainerSpec], Mapping[str, bytes]] | None = None
    imported: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    holds: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    # Services started with `serve`: (image, service spec); their clients go through `run`.
    served: list[tuple[str, ContainerSpec]] = field(default_factory=list)
    service_outcome: ServiceOutcome = field(
        default_factory=lambda: ServiceOutcome(
            ContainerOutcome(0, "", ""),
            start_request_seconds=0.05,
            engine_started_epoch=1000.0,
            peak_memory_bytes=50_000_000,
            cpu_seconds=1.5,
        )
    )
    _containers_made: int = 0

    # -----------------------------------------------------------------------------------------
    # Setting it up

    def add_image(
        self,
        ref: str,
        size: int = 100,
        tags: tuple[str, ...] = (),
        layers: int = 1,
        labels: Mapping[str, str] | None = None,
        user: str = "",
    ) -> ImageInfo:
        layer_ids = tuple(f"layer{i}" for i in range(layers))
        info = ImageInfo(ref, size, layer_ids, tags, labels or {}, user)
        self.images[ref] = info
        for tag in tags:
            self.images[tag] = info
        return info

    def add_container(
        self, cid: str, image_id: str, state: str, labels: Mapping[str, str] | None = None
    ) -> ContainerInfo:
        """A container of `image_id`; it inherits the image's labels, as in a real engine."""
        image = self.images.get(image_id)
        merged = {**(dict(image.labels) if image else {}), **(labels or {})}
        info = ContainerInfo(cid, image_id, state, merged)
        self.containers[cid] = info
        return info

    # -----------------------------------------------------------------------------------------
    # The Engine protocol

    @property
    def endpoint(self) -> str:
        return self.address

    def info(self) -> EngineInfo:
        return EngineInfo(
            server_version="20.10.24",
            api_version="1.41",
            os="linux",
            arch="amd64",
            kernel="6.1",
            storage_driver="overlay2",
            name="fake-engine",
            cpus=4,
            memory_bytes=16 * 1000**3,
            runtimes=self.runtimes,
        )

    def image(self, ref: str) -> ImageInfo | None:
        return self.images.get(ref)

    def pull(self, ref: str, on_progress: LineSink | None = None) -> float:
        self.calls.append(("pull", ref))
        if ref not in self.pullable:
            raise RuntimeError("no registry")
        self.add_image("sha256:" + hashlib.sha256(ref.encode()).hexdigest(), 50, (ref,))
        return 1.5

    def push(self, ref: str, on_progress: LineSink | None = None) -> float:
        self.calls.append(("push", ref))
        return 2.5

    def tag(self, image: str, ref: str) -> None:
        self.calls.append(("tag", image, ref))
        info = self.images[image]
        tagged = ImageInfo(info.id, info.size_bytes, info.layers, (*info.tags, ref), info.labels)
        for key in [k for k, v in self.images.items() if v.id == info.id]:
            self.images[key] = tagged
        self.images[ref] = tagged

    def import_image(self, tarball: BinaryIO, ref: str, changes: list[str]) -> str:
        self.calls.append(("import_image", ref))
        self.imported.append((ref, list(changes), tarball.read()))
        self.add_image(ref, tags=(ref,))
        return ref

    def build(
        self,
        context: Iterable[bytes],
        *,
        dockerfile: str,
        tag: str,
        buildargs: Mapping[str, str],
        labels: Mapping[str, str],
    ) -> Iterator[BuildEvent]:
        names, files = _context_files(context)
        self.builds.append(
            {
                "dockerfile": dockerfile,
                "tag": tag,
                "buildargs": dict(buildargs),
                "labels": dict(labels),
                "names": names,
                "files": files,
            }
        )
        script = self.scripts.pop(0)
        if isinstance(script, BaseException):
            raise script
        for event in script:
            if event.kind == "image":
                self.add_image(event.text, size=300, tags=(tag,), layers=3, labels=labels)
            yield event

    def containers_using(self, image: str) -> list[str]:
        self.calls.append(("containers_using", image))
        return []

    def close(self) -> None:
        self.calls.append(("close",))

    def dangling_images(self) -> list[str]:
        return [ref for ref, info in self.images.items() if ref == info.id and not info.tags]

    def image_children(self, ref: str) -> list[str]:
        """The fake keeps no parent chain: a step chain has no children it did not report."""
        return []

    def remove_image(self, ref: str) -> bool:
        self.calls.append(("remove_image", ref))
        self.removed.append(ref)
        info = self.images.pop(ref, None)
        if info is None:
            return False
        for key in [k for k, v in self.images.items() if v.id == info.id]:
            del self.images[key]
        return True

    def images_labelled(self, label: str) -> list[str]:
        ids = (info.id for info in self.images.values() if matches(info.labels, label))
        return list(dict.fromkeys(ids))

    def containers_labelled(self, label: str) -> list[ContainerInfo]:
        return [c for c in self.containers.values() if matches(c.labels, label)]

    def remove_container(self, ref: str) -> bool:
        self.calls.append(("remove_container", ref))
        return self.containers.pop(ref, None) is not None

    def create_volume(self, name: str, labels: Mapping[str, str]) -> None:
        self.calls.append(("create_volume", name))
        self.volumes[name] = dict(labels)

    def fill_volume(self, volume: str, archive: bytes, image: str) -> None:
        self.calls.append(("fill_volume", volume, image))
        if volume not in self.volumes:
            raise RuntimeError(f"no such volume: {volume}")
        self.filled[volume] = archive

    def read_volume(self, volume: str, path: str, image: str) -> bytes:
        self.calls.append(("read_volume", volume, path, image))
        if volume not in self.volumes:
            raise RuntimeError(f"no such volume: {volume}")
        folder = path.rstrip("/") + "/"
        top = posixpath.basename(folder.rstrip("/"))  # `docker cp` names them from there
        inside = [
            (top + "/" + name[len(folder) :], "file", data)
            for name, data in self.volume_files.get(volume, {}).items()
            if name.startswith(folder)
        ]
        return entries_tar([(top, "dir", b""), *inside]) if inside else b""

    def volumes_labelled(self, label: str) -> list[str]:
        return [name for name, labels in self.volumes.items() if matches(labels, label)]

    def remove_volume(self, name: str) -> bool:
        self.calls.append(("remove_volume", name))
        return self.volumes.pop(name, None) is not None

    def build_cache(self) -> list[CacheRecord]:
        return list(self.cache)

    def prune_cache_records(self, ids: list[str]) -> int:
        self.calls.append(("prune_cache_records", tuple(ids)))
        pruned = [record for record in self.cache if record.id in ids]
        self.cache = [record for record in self.cache if record.id not in ids]
        return sum(record.size_bytes for record in pruned)

    def image_archive(self, ref: str) -> Iterator[bytes]:
        info = self.images.get(ref)
        if info is None:
            raise LookupError(f"no such image: {ref}")
        data = self.archives.get(info.id)
        if data is None:
            data = docker_save([fake_layer(layer) for layer in info.layers])
        for start in range(0, len(data), 4096):  # in chunks, as the engine streams it
            yield data[start : start + 4096]

    def run(
        self, image: str, spec: ContainerSpec, on_stderr: LineSink | None = None
    ) -> ContainerOutcome:
        self.runs.append((image, spec))
        outcome = (self.run_result or default_outcome)(image, spec)
        if on_stderr is not None:
            for line in outcome.stderr.splitlines():
                on_stderr(line)
        return outcome

    def serve(
        self,
        image: str,
        service: ContainerSpec,
        client_image: str,
        client: ContainerSpec,
        on_stderr: LineSink | None = None,
    ) -> ServiceOutcome:
        """`service_outcome` (what the service did), with the client run through `run` in its
        network namespace; nothing runs when the service was refused a start."""
        self.served.append((image, service))
        if not self.service_outcome.started:
            return self.service_outcome
        for target, data in (self.service_writes(service) if self.service_writes else {}).items():
            for mount in service.volumes:
                if not mount.read_only and target.startswith(mount.target.rstrip("/") + "/"):
                    relative = target[len(mount.target.rstrip("/")) + 1 :]
                    self.volume_files.setdefault(mount.volume, {})[relative] = data
        joined = replace(client, network_of=f"service{len(self.served)}")
        return replace(self.service_outcome, client=self.run(client_image, joined, on_stderr))

    @contextlib.contextmanager
    def hold(self, image: str, labels: Mapping[str, str]) -> Iterator[None]:
        """A running container with `labels` while the context lasts, as the real lock."""
        self.holds.append((image, dict(labels)))
        self._containers_made += 1
        cid = f"lock{self._containers_made:060d}"
        self.containers[cid] = ContainerInfo(cid, image, "running", dict(labels))
        try:
            yield
        finally:
            self.containers.pop(cid, None)

    # -----------------------------------------------------------------------------------------
    # Asking what happened

    def held_now(self) -> list[ContainerInfo]:
        """The lock containers that are running now."""
        return [c for c in self.containers.values() if LABEL_LOCK in c.labels and c.running]
