"""`--slim`: an image of only what the smoke test touched, proven by the same smoke test.

`Slimmer` is the cell's slim step. Made before the smoke test, with the measure phase's read of
the image (`analyse_archive`: its layers, config and compressed size; it reads the image itself
only when that phase did not), it holds a `TracingEngine` for the smoke test to run on. Then
`candidate` selects what to keep (measure/trace.py), reads those files out of the image's own
layers in a second pass, as the selection is known only after the smoke test
(`Engine.image_archive`: modes, owners, symlinks and directories as the layers have them,
whiteouts already applied by the stacking), imports them as one layer with the original's
config (`Engine.import_image`: no host path), reads the candidate once for its compressed size,
and runs the same smoke test on it. A candidate is a saving only when that smoke test passes
with parity; else it is recorded as failed, with the error, and the cell stays as measured.
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import io
import json
import logging
import posixpath
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from buildbench.engine.api import Engine, ImageInfo
from buildbench.errors import EngineUnavailable
from buildbench.labels import SMOKE_VOLUME_PREFIX
from buildbench.measure.archive import (
    ArchiveAnalysis,
    ChunkStream,
    EntryKind,
    LayerFormat,
    normalise_path,
    sniff_format,
)
from buildbench.measure.image import read_archive
from buildbench.measure.sizecache import DiskLayerSizes
from buildbench.measure.trace import (
    Selection,
    TracingEngine,
    payload_archive,
    select,
    touched,
    write_paths,
)
from buildbench.record import SlimCandidate, SmokeResult, Trace
from buildbench.status import Status

log = logging.getLogger("buildbench")

UNPROVEN = (  # after "unproven: " in the report
    "without a GPU: its smoke test passed on the CPU, but the trace covers only what CPU "
    "inference loads"
)
_CONFIG_CHANGES = ("User", "WorkingDir", "StopSignal")  # one line each, as written
_DIRECTORY_MODE = 0o755
_HINT_WORDS = ("Error", "error", "No such file", "not found", "cannot open")

Phase = Callable[[str], None]


@dataclass(frozen=True)
class Slimmed:
    """The slim step's value: what was touched, and the candidate (None when none was built)."""

    trace: Trace
    candidate: SlimCandidate | None


@dataclass
class Slimmer:
    """One cell's slim step: a context that holds the tracer's volume while the smoke test
    runs (see the module's doc)."""

    engine: Engine
    image: str
    labels: Mapping[str, str]
    run_id: str
    on_phase: Phase = lambda text: None
    analysis: ArchiveAnalysis | None = None
    tracer: TracingEngine | None = None
    volume: str | None = None

    def __enter__(self) -> Slimmer:
        if self.analysis is None:  # not read by the measure phase (--no-read-images, say)
            self.on_phase("reading the image")
            self.analysis = self._read(self.image, self.engine.image(self.image))
        self.volume = f"{SMOKE_VOLUME_PREFIX}{self.run_id}-trace-{self.image[-12:]}"
        self.engine.create_volume(self.volume, self.labels)
        self.engine.fill_volume(self.volume, payload_archive(), self.image)
        self.tracer = TracingEngine(self.engine, self.volume, self.analysis.env)
        return self

    def _read(self, image: str, info: ImageInfo | None) -> ArchiveAnalysis:
        """One pass over `docker save` of `image` (`info`: as the engine inspected it), with the
        sizes known from earlier reads: a candidate's big files are the original's."""
        return read_archive(
            self.engine,
            image,
            base_layers=0,
            on_progress=lambda done: None,
            sizes=DiskLayerSizes(info.layers if info is not None else []),
        )

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.volume is not None:
            self.engine.remove_volume(self.volume)

    def smoke_engine(self) -> Engine:
        assert self.tracer is not None, "entered"
        return self.tracer  # a proxy: what it does not trace passes on to the engine

    def candidate(
        self,
        original: SmokeResult | None,
        run_smoke: Callable[[str], SmokeResult | None],
        *,
        tag: str,
        cuda_without_gpu: bool,
        keep: bool,
        exclude: Sequence[str] = (),
        trace_path: Path | None = None,
        trace_file: str | None = None,
    ) -> Slimmed:
        """What the smoke test touched and, unless it found nothing or the smoke test failed,
        a candidate built from it and smoke-tested; removed again unless `keep`."""
        assert self.analysis is not None and self.tracer is not None, "entered"
        tracer = self.tracer
        selection = select(
            self.analysis, tracer.traces, tracer.commands, exclude, sorted(tracer.mounts)
        )
        if trace_path is not None:
            write_paths(trace_path, selection, tracer.traces)
        trace = touched(
            self.analysis,
            selection,
            containers=tracer.containers,
            processes=len(tracer.traces),
            silent=tracer.silent,
            file=trace_file,
        )
        if trace.note is not None:
            return Slimmed(trace, None)
        if original is None or original.status != Status.OK:
            why = "the original's smoke test did not pass: there is nothing to prove against"
            return Slimmed(replace(trace, note=why), None)
        self.on_phase("building the candidate")
        started = time.perf_counter()
        try:
            image_id = build_candidate(
                self.engine, self.image, self.analysis, selection, tag, self.labels
            )
        except EngineUnavailable:
            raise
        except Exception as exc:  # the candidate's own failure: the cell stays as measured
            log.debug("%s: the slim candidate failed to build", tag, exc_info=True)
            return Slimmed(
                trace,
                SlimCandidate(
                    "failed",
                    f"the candidate could not be built: {type(exc).__name__}: {exc}",
                    tag=tag,
                    files=len(selection.files),
                    excluded=list(exclude),
                ),
            )
        built = round(time.perf_counter() - started, 3)
        try:
            info = self.engine.image(image_id)
            compressed = self._read(image_id, info).compressed_size_bytes
            self.on_phase("smoke test of the candidate")
            smoke = run_smoke(image_id)
        finally:
            if not keep:
                self.engine.remove_image(image_id)
        status, message = _verdict(smoke, cuda_without_gpu)
        return Slimmed(
            trace,
            SlimCandidate(
                status,
                message,
                tag=tag,
                image_id=image_id,
                size_bytes=info.size_bytes if info else None,
                compressed_size_bytes=compressed,
                files=len(selection.files),
                build_seconds=built,
                smoke=smoke,
                excluded=list(exclude),
                kept=keep,
            ),
        )


def _verdict(smoke: SmokeResult | None, cuda_without_gpu: bool) -> tuple[Any, str]:
    if smoke is None:
        return "failed", "no smoke test ran on the candidate"
    if smoke.status != Status.OK:
        hint = next(
            (line for line in reversed(smoke.output_tail) if any(w in line for w in _HINT_WORDS)),
            None,
        )
        return "failed", f"its smoke test failed: {smoke.message}" + (f" ({hint})" if hint else "")
    if cuda_without_gpu:
        return "unproven", UNPROVEN
    checks = "with parity" if smoke.kind == "model" else "with the original's checks"
    return "proven", f"its smoke test passed {checks}"


# ---------------------------------------------------------------------------------------------
# Building the candidate


def build_candidate(
    engine: Engine,
    image: str,
    analysis: ArchiveAnalysis,
    selection: Selection,
    tag: str,
    labels: Mapping[str, str],
) -> str:
    """Import the selected files, read from `image`'s layers, with its config; the new id."""
    with tempfile.TemporaryFile() as spool, tempfile.TemporaryFile() as rootfs:
        layers = _read_layers(engine.image_archive(image), _wanted(selection), spool)
        _write_rootfs(rootfs, analysis, selection, layers, spool)
        rootfs.seek(0)
        return engine.import_image(rootfs, tag, config_changes(analysis.config, labels))


def _wanted(selection: Selection) -> set[str]:
    """Paths to read out of the layers: the kept files and, for hard links, their targets."""
    wanted = set(selection.files)
    for placed in selection.files.values():
        if placed.entry.kind is EntryKind.HARDLINK and placed.entry.link:
            wanted.add(placed.entry.link)
    return wanted


@dataclass
class _Layer:
    """What one layer of the archive holds of the wanted paths, and all its directories."""

    entries: dict[str, tuple[tarfile.TarInfo, int]] = field(default_factory=dict)  # + offset
    directories: dict[str, tarfile.TarInfo] = field(default_factory=dict)


class _Hashing(io.RawIOBase):
    """A layer tar as `tarfile` reads it, hashed on the way: its diff id, to know which it is."""

    def __init__(self, source: IO[bytes], head: bytes) -> None:
        super().__init__()
        self._source, self._head = source, head
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1, /) -> bytes:
        if self._head:
            data, self._head = self._head[: size if size >= 0 else None], b""
            if size >= 0 and len(data) < size:
                data += self._source.read(size - len(data))
        else:
            data = self._source.read(size)
        self.digest.update(data)
        return data

    def drain(self) -> str:
        while self.read(1024 * 1024):
            pass
        return "sha256:" + self.digest.hexdigest()


def _read_layers(chunks: Iterable[bytes], wanted: set[str], spool: IO[bytes]) -> dict[str, _Layer]:
    """Every layer of a `docker save` stream, by diff id: the wanted entries (their data in
    `spool`) and the directories. The manifest may come last: layers are known by their hash."""
    found: dict[str, _Layer] = {}
    with tarfile.open(fileobj=ChunkStream(chunks, None), mode="r|", bufsize=1024 * 1024) as tar:
        for member in tar:
            handle = tar.extractfile(member) if member.isfile() else None
            if handle is None:  # a repeated layer saved as a link: read at its first copy
                continue
            head = handle.read(512)
            kind = sniff_format(head)
            if kind not in (LayerFormat.TAR, LayerFormat.GZIP):
                continue  # configs and manifests (the analysis has them), zstd layers
            source: IO[bytes] = handle
            if kind is LayerFormat.GZIP:  # the diff id is the uncompressed tar's hash
                source = gzip.GzipFile(fileobj=_Hashing(handle, head))  # type: ignore[assignment]
                head = b""
            stream = _Hashing(source, head)
            layer = _Layer()
            with tarfile.open(fileobj=stream, mode="r|") as entries:
                for entry in entries:
                    _take(entries, entry, layer, wanted, spool)
            found[stream.drain()] = layer
    return found


def _take(
    entries: tarfile.TarFile,
    entry: tarfile.TarInfo,
    layer: _Layer,
    wanted: set[str],
    spool: IO[bytes],
) -> None:
    path = normalise_path(entry.name)
    if not path:
        return
    if entry.isdir():
        layer.directories[path] = entry
        return
    if path not in wanted:
        return
    offset = spool.tell()
    if entry.isreg():
        data = entries.extractfile(entry)
        if data is not None:
            shutil.copyfileobj(data, spool, 1024 * 1024)
    layer.entries[path] = (entry, offset)


def _write_rootfs(
    out: IO[bytes],
    analysis: ArchiveAnalysis,
    selection: Selection,
    layers: Mapping[str, _Layer],
    spool: IO[bytes],
) -> None:
    """The candidate's one layer: directories (each as its top-most layer has it), then the
    files and symlinks, each from the layer the final filesystem shows it from."""
    diff_ids = [layer.diff_id for layer in analysis.layers]
    directories: dict[str, tarfile.TarInfo] = {}
    for diff_id in diff_ids:
        for path, info in layers.get(diff_id, _Layer()).directories.items():
            if path in selection.directories:
                directories[path] = info
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(selection.directories):
            found = directories.get(path)
            if found is None:  # no layer wrote it (a tar may imply its parents): root's, 0755
                found = tarfile.TarInfo(path)
                found.type, found.mode = tarfile.DIRTYPE, _DIRECTORY_MODE
            tar.addfile(_renamed(found, path))
        for path in sorted(selection.files):
            placed = selection.files[path]
            layer = layers.get(diff_ids[placed.layer])
            if layer is None or path not in layer.entries:
                raise LookupError(f"/{path} was not found in its layer of the image archive")
            info, offset = layer.entries[path]
            if info.islnk():  # a copy of its target: its target may not be kept, or not here
                target = layer.entries.get(normalise_path(info.linkname))
                if target is None:
                    raise LookupError(f"/{path}: its hard link target is not in its layer")
                info, offset = target
            if info.isreg():
                spool.seek(offset)
                tar.addfile(_renamed(info, path), _Slice(spool, info.size))
            else:
                tar.addfile(_renamed(info, path))


def _renamed(info: tarfile.TarInfo, path: str) -> tarfile.TarInfo:
    """`info` at `path` (a hard link's copy, a directory made by us) with its mode, owner and
    extended attributes; pax's own path headers would override the new name."""
    renamed = copy.copy(info)
    renamed.name = path
    renamed.pax_headers = {
        k: v for k, v in info.pax_headers.items() if k not in ("path", "linkpath")
    }
    if renamed.isdir():
        renamed.size = 0
    return renamed


class _Slice(io.RawIOBase):
    """`size` bytes of the spool from where it stands."""

    def __init__(self, source: IO[bytes], size: int) -> None:
        super().__init__()
        self._source, self._left = source, size

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1, /) -> bytes:
        wanted = self._left if size < 0 else min(size, self._left)
        data = self._source.read(wanted)
        self._left -= len(data)
        return data


def config_changes(config: Mapping[str, Any], labels: Mapping[str, str]) -> list[str]:
    """The image config as Dockerfile instructions for `import_image`: user, environment,
    working directory, entrypoint, command, labels (the original's and the run's), ports."""
    found = config.get("config") or {}
    changes = []
    for pair in found.get("Env") or []:
        name, _, value = pair.partition("=")
        changes.append(f"ENV {name}={_quoted(value)}")
    for key in _CONFIG_CHANGES:
        if found.get(key):
            changes.append(f"{key.upper().replace('WORKINGDIR', 'WORKDIR')} {found[key]}")
    for key in ("Entrypoint", "Cmd"):
        if found.get(key):
            changes.append(f"{key.upper()} {json.dumps(found[key])}")
    for port in found.get("ExposedPorts") or {}:
        changes.append(f"EXPOSE {port}")
    for name, value in {**(found.get("Labels") or {}), **labels}.items():
        changes.append(f"LABEL {json.dumps(name)}={_quoted(value)}")
    return changes


def _quoted(value: str) -> str:
    """A value as the Dockerfile parser reads it back unchanged: quoted, `$` not expanded."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


def candidate_tag(image_tag: str) -> str:
    """The candidate's name: the cell's image tag with `-slim`."""
    repository, _, tag = image_tag.rpartition(":")
    if not repository or "/" in tag:
        return f"{image_tag}:slim"
    return f"{repository}:{tag}-slim"


def trace_file(cell_key: str) -> str:
    """Where a cell's trace lies, relative to its run's folder."""
    return posixpath.join("traces", cell_key.replace("/", "-") + ".json")
