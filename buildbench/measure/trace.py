"""What a smoke test touches in its image: traced without changing the smoke kinds.

`TracingEngine` is the engine a kind gets in its `SmokeContext` when `--slim` is on: every
container it runs (the full run, each cold start, a service and its client) gets
`sitecustomize.py` on a volume and on its PYTHONPATH, and every outcome comes back with the
trace lines taken out, so the kind parses exactly what it always did. The union of the lines is
the trace. A service is different: only its log's tail is read, and a service that logs each
request fills it, so its processes write their traces into the volume's `out/` folder instead
(mounted writable for it alone), read back through the engine once it is gone.

`touched` then reads the trace against the image's final filesystem (the layers stacked by
measure/contents/, whiteouts and all): the files kept are every traced path that exists, the
symlinks on the way to it and their targets, the directories leading to them, the dynamic
loader's own files, and the programs the containers start. Bytes are attributed to the owners
contents.py finds (Python distributions first, then Debian packages), and to layers.
"""

from __future__ import annotations

import fnmatch
import io
import json
import posixpath
import tarfile
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from buildbench.engine.api import (
    ContainerOutcome,
    ContainerSpec,
    Engine,
    LineSink,
    ServiceOutcome,
    VolumeMount,
)
from buildbench.measure.archive import ArchiveAnalysis, EntryKind, LayerInfo
from buildbench.measure.contents.distributions import distribution_shares
from buildbench.measure.contents.dpkg import package_shares
from buildbench.measure.contents.filesystem import Filesystem, Placed, clean, final_metadata
from buildbench.record import TouchedShare, Trace, Untouched

PREFIX = "BUILDBENCH_TRACE "
MOUNT = "/buildbench-trace"
SITECUSTOMIZE = Path(__file__).with_name("smoke") / "sitecustomize.py"
SERVICE_EVERY_SECONDS = 2.0  # a service is not stopped before it is removed: it writes often
OUT = "out"  # the volume's folder a service's processes write their traces into
TRACE_FILE = "BUILDBENCH_TRACE_FILE"  # sitecustomize's: the prefix of its files there
# Not the image's: the container's own mounts and kernel filesystems.
_NOT_IMAGE = ("proc", "sys", "dev", "tmp", "buildbench", MOUNT.strip("/"))
_LOADER_FILES = ("etc/ld.so.cache", "etc/ld.so.conf")
_LOADER_DIR = "etc/ld.so.conf.d/"
_SHELLS = frozenset({"sh", "bash", "dash"})
_SYMLINK_HOPS = 40
_UNTOUCHED_SHOWN = 8
_EVIDENCE = 3


def payload_archive() -> bytes:
    """The tracer's volume: sitecustomize.py, readable by any user (and root's), and `out/`,
    where any user may write a file and replace only its own (sticky, as /tmp)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        data = SITECUSTOMIZE.read_bytes()
        info = tarfile.TarInfo("sitecustomize.py")
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))
        folder = tarfile.TarInfo(OUT)
        folder.type, folder.mode = tarfile.DIRTYPE, 0o1777
        tar.addfile(folder)
    return out.getvalue()


def traces_written(archive: bytes, prefix: str) -> list[dict[str, Any]]:
    """The traces in `archive` (the `out/` folder as the engine gives it back) whose file names
    start with `prefix`: one per process (a half-written one is never there: each is renamed
    into place whole)."""
    found: list[dict[str, Any]] = []
    if not archive:
        return found
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for member in tar:
            name = posixpath.basename(member.name)
            if not (member.isfile() and name.startswith(prefix) and name.endswith(".json")):
                continue
            handle = tar.extractfile(member)
            try:
                trace = json.loads(handle.read()) if handle else None
            except ValueError:
                continue
            if isinstance(trace, dict):
                found.append(trace)
    return found


def split_trace(text: str) -> tuple[str, list[dict[str, Any]]]:
    """`text` without its trace lines, and the traces those lines carry (a broken one is
    dropped: a process killed while printing)."""
    kept, traces = [], []
    for line in text.splitlines(keepends=True):
        if not line.startswith(PREFIX):
            kept.append(line)
            continue
        try:
            found = json.loads(line[len(PREFIX) :])
        except ValueError:
            continue
        if isinstance(found, dict):
            traces.append(found)
    return "".join(kept), traces


@dataclass
class TracingEngine:
    """An `Engine` that traces every container it runs and hands back clean outcomes."""

    inner: Engine
    volume: str  # holds sitecustomize.py (see `payload_archive`)
    image_env: Mapping[str, str] = field(default_factory=dict)  # the image's ENV
    traces: list[dict[str, Any]] = field(default_factory=list)
    containers: int = 0
    silent: int = 0  # containers that printed no trace (no Python, or killed)
    commands: list[list[str]] = field(default_factory=list)  # what the containers started
    mounts: set[str] = field(default_factory=set)  # tmpfs targets: the image's own dirs count

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def traced(self, spec: ContainerSpec, to_file: str | None = None) -> ContainerSpec:
        """`spec` with the tracer; `to_file`: the prefix of its trace files in `out/`, written
        every few seconds while it runs (a service), instead of a line at its exit."""
        environment = dict(spec.environment)
        inherited = environment.get("PYTHONPATH", self.image_env.get("PYTHONPATH", ""))
        environment["PYTHONPATH"] = MOUNT + (f":{inherited}" if inherited else "")
        if to_file is not None:
            environment["BUILDBENCH_TRACE_EVERY"] = str(SERVICE_EVERY_SECONDS)
            environment[TRACE_FILE] = f"{MOUNT}/{OUT}/{to_file}"
        self.containers += 1
        self.commands.append([*spec.entrypoint, *spec.command])
        self.mounts.update(spec.tmpfs)
        mount = VolumeMount(self.volume, MOUNT, read_only=to_file is None)
        return replace(spec, environment=environment, volumes=(*spec.volumes, mount))

    def take(self, outcome: ContainerOutcome) -> ContainerOutcome:
        stdout, from_stdout = split_trace(outcome.stdout)
        stderr, from_stderr = split_trace(outcome.stderr)
        found = from_stdout + from_stderr
        self.traces.extend(found)
        self.silent += not found
        return replace(outcome, stdout=stdout, stderr=stderr)

    def run(
        self, image: str, spec: ContainerSpec, on_stderr: LineSink | None = None
    ) -> ContainerOutcome:
        return self.take(self.inner.run(image, self.traced(spec), _without_trace(on_stderr)))

    def serve(
        self,
        image: str,
        service: ContainerSpec,
        client_image: str,
        client: ContainerSpec,
        on_stderr: LineSink | None = None,
    ) -> ServiceOutcome:
        self.commands.append(["(the image's own ENTRYPOINT and CMD)"])
        prefix = f"service{self.containers + 1}-"  # this service's files, not an earlier one's
        # The client runs in the service's image too (its Python): what it needs is traced.
        outcome = self.inner.serve(
            image,
            self.traced(service, prefix),
            client_image,
            self.traced(client),
            _without_trace(on_stderr),
        )
        # Each process rewrote its whole trace every few seconds: its file's last one has it
        # all. A process that could not write printed it (its last line has it all).
        found = traces_written(self.inner.read_volume(self.volume, OUT, image), prefix)
        tail, printed = split_trace("\n".join(outcome.log_tail))
        found = found or printed[-1:]
        self.traces.extend(found)
        self.silent += not found
        return replace(outcome, client=self.take(outcome.client), log_tail=tuple(tail.splitlines()))


def _without_trace(on_stderr: LineSink | None) -> LineSink | None:
    """A live stderr sink that never sees a trace line."""
    if on_stderr is None:
        return None
    relay = on_stderr

    def sink(line: str) -> None:
        if not line.startswith(PREFIX):
            relay(line)

    return sink


# ---------------------------------------------------------------------------------------------
# The trace against the image


@dataclass(frozen=True)
class Selection:
    """The final filesystem's entries a slim candidate keeps."""

    files: dict[str, Placed]  # non-directories, by path (relative to /)
    directories: set[str]
    untraced: list[str]
    found_nothing: bool


class _Resolver:
    """Paths resolved in the final filesystem as the kernel would, keeping every symlink met."""

    def __init__(self, fs: Filesystem, existing: set[str]) -> None:
        self.fs = fs
        self.existing = existing  # the image's directories
        self.kept: dict[str, Placed] = {}
        self.directories: set[str] = set()

    def keep(self, path: str, directory: bool = False) -> str | None:
        real = self._resolve(clean(path), 0)
        if real is None:
            return None
        placed = self.fs.files.get(real)
        if placed is not None:
            self.kept[real] = placed
            if placed.entry.kind is EntryKind.HARDLINK and placed.entry.link:
                self.keep(placed.entry.link)
        elif directory and real in self.existing:
            self.directories.add(real)
        return real

    def _resolve(self, path: str, hops: int) -> str | None:
        if hops > _SYMLINK_HOPS:
            return None
        current = ""
        for part in path.split("/") if path else []:
            candidate = posixpath.join(current, part) if current else part
            placed = self.fs.files.get(candidate)
            if placed is not None and placed.entry.kind is EntryKind.SYMLINK:
                self.kept[candidate] = placed
                target = placed.entry.link or ""
                base = "" if target.startswith("/") else current
                resolved = self._resolve(clean(posixpath.join(base, target)), hops + 1)
                if resolved is None:
                    return None
                current = resolved
            else:
                current = candidate
        return current


def _in_image(path: str) -> bool:
    top = clean(path).split("/", 1)[0]
    return bool(top) and top not in _NOT_IMAGE


def _program(name: str, env: Mapping[str, str], fs: Filesystem) -> str | None:
    """Where a started program is: as given with a slash, else on the image's PATH."""
    if "/" in name:
        return name
    for folder in env.get("PATH", "/usr/local/bin:/usr/bin:/bin").split(":"):
        candidate = posixpath.join(folder or "/", name)
        if fs.lookup(clean(candidate)) is not None:
            return candidate
    return None


def select(
    analysis: ArchiveAnalysis,
    traces: Sequence[Mapping[str, Any]],
    commands: Iterable[Sequence[str]] = (),
    exclude: Sequence[str] = (),
    mounts: Iterable[str] = (),
) -> Selection:
    """What to keep: the traced paths, their symlinks and directories, the loader's files and
    the programs started; `exclude`: glob patterns (on /paths) left out on purpose; `mounts`:
    the containers' tmpfs targets, kept as the image has them (the engine gives a tmpfs the
    mode of the directory under it: without the image's 1777 /tmp, /tmp is root's alone)."""
    fs = Filesystem(analysis.layers)
    resolver = _Resolver(fs, _directories(analysis.layers, fs))
    env = analysis.env
    untraced: list[str] = []
    for trace in traces:
        for path in trace.get("paths") or []:
            if _in_image(path):
                resolver.keep(path, directory=True)
    traced_any = bool(resolver.kept)  # a file of the image, not only directories
    for trace in traces:
        for path in trace.get("directories") or []:
            if _in_image(path):
                resolver.keep(path, directory=True)
        if trace.get("loader"):
            resolver.keep(trace["loader"])
        for program in trace.get("execs") or []:
            where = _program(program, env, fs)
            if where is not None:
                resolver.keep(where)
            untraced.append(f"{program}: a program the smoke test started (its own files unseen)")
    if traced_any:
        for path in mounts:
            resolver.keep(path, directory=True)
        for path in _LOADER_FILES:
            resolver.keep(path)
        for path in fs.files:
            if path.startswith(_LOADER_DIR):
                resolver.keep(path)
        workdir = clean((analysis.config.get("config") or {}).get("WorkingDir") or "")
        if workdir:
            for path in fs.files:
                if path.startswith(workdir + "/"):
                    resolver.keep(path)
            untraced.append(
                f"/{workdir} (the working directory): kept whole, as an app reads its own "
                "files there, often from native code the trace does not see"
            )
        for command in [*commands, *_config_commands(analysis)]:
            if command and not command[0].startswith("("):
                where = _program(command[0], env, fs)
                if where is not None:
                    resolver.keep(where)
                if posixpath.basename(command[0]) in _SHELLS:
                    untraced.append(f"{command[0]}: a shell (its own files unseen)")
        _keep_links_to_kept(fs, resolver)
    files = {
        path: placed
        for path, placed in resolver.kept.items()
        if not any(fnmatch.fnmatch("/" + path, pattern) for pattern in exclude)
    }
    directories = set(resolver.directories)
    for path in [*files, *resolver.directories]:
        directories.update(_parents(path))
    return Selection(files, directories, list(dict.fromkeys(untraced)), not traced_any)


def _keep_links_to_kept(fs: Filesystem, resolver: _Resolver) -> None:
    """Every symlink that leads to a kept file or directory: the loader opens a library by its
    soname (libz.so.1 -> libz.so.1.2.13), a path maps never shows; and symlinks are tiny."""
    kept_dirs = set(resolver.directories)
    for path in resolver.kept:
        kept_dirs.update(_parents(path))
    scratch = _Resolver(fs, resolver.existing)
    for path, placed in fs.files.items():
        if placed.entry.kind is not EntryKind.SYMLINK or path in resolver.kept:
            continue
        real = scratch.keep(path)
        if real is not None and (real in resolver.kept or real in kept_dirs):
            resolver.kept.update(scratch.kept)  # the link and every link on its way
        scratch.kept.clear()


def _directories(layers: list[LayerInfo], fs: Filesystem) -> set[str]:
    """The final filesystem's directories: those a layer writes that no file replaced, and
    every parent of a file (a directory a later layer deletes may be left in: harmless)."""
    found = {
        entry.path
        for layer in layers
        for entry in layer.files
        if entry.kind is EntryKind.DIR and entry.path not in fs.files
    }
    for path in fs.files:
        found.update(_parents(path))
    return found


def _config_commands(analysis: ArchiveAnalysis) -> list[list[str]]:
    """The image's own ENTRYPOINT + CMD: what a service starts with."""
    config = analysis.config.get("config") or {}
    command = [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]
    return [command] if command else []


def _parents(path: str) -> Iterator[str]:
    parent = posixpath.dirname(path)
    while parent:
        yield parent
        parent = posixpath.dirname(parent)


# ---------------------------------------------------------------------------------------------
# What was touched, by owner


def touched(
    analysis: ArchiveAnalysis,
    selection: Selection,
    *,
    containers: int,
    processes: int,
    silent: int,
    file: str | None = None,
) -> Trace:
    """The trace's record: touched bytes by distribution, package and layer, and the largest
    distributions and directories never touched."""
    fs = Filesystem(analysis.layers)
    metadata = final_metadata(analysis.layers, fs)
    image_bytes = sum(placed.size for placed in fs.files.values())
    kept = selection.files
    untraced = list(selection.untraced)
    if silent:
        untraced.append(
            f"{silent} of {containers} containers printed no trace (not Python, or killed)"
        )
    if selection.found_nothing:
        return Trace(
            containers=containers,
            processes=processes,
            image_bytes=image_bytes,
            untraced=untraced,
            file=file,
            note="trace found nothing: no Python process reported what it touched, so no "
            "slim candidate is built",
        )
    # The owners as contents.py finds them (distributions first, packages get the rest), once
    # over the whole image and once over the kept files only.
    claimed: set[str] = set()
    all_distributions = distribution_shares(fs, metadata, 0, claimed)
    all_packages = package_shares(fs, metadata, {}, 0, claimed)
    kept_fs = _kept_fs(analysis.layers, kept)
    claimed_kept: set[str] = set()
    dist_touched = {
        d.name: d.bytes for d in distribution_shares(kept_fs, metadata, 0, claimed_kept)
    }
    package_touched = {
        p.name: p.bytes for p in package_shares(kept_fs, metadata, {}, 0, claimed_kept)
    }
    by_layer: dict[int, int] = defaultdict(int)
    for placed in kept.values():
        by_layer[placed.layer] += placed.size
    distributions = [
        TouchedShare(d.name, d.bytes, dist_touched.get(d.name, 0), d.version)
        for d in sorted(all_distributions, key=lambda d: -d.bytes)
    ]
    packages = [
        TouchedShare(p.name, p.bytes, package_touched.get(p.name, 0), p.version)
        for p in sorted(all_packages, key=lambda p: -p.bytes)
    ]
    layers = [
        TouchedShare(layer.instruction or f"layer {layer.index}", layer.size_bytes, by_layer[i])
        for i, layer in enumerate(analysis.layers)
    ]
    return Trace(
        containers=containers,
        processes=processes,
        image_bytes=image_bytes,
        touched_bytes=sum(placed.size for placed in kept.values()),
        touched_files=len(kept),
        untraced=untraced,
        distributions=distributions,
        packages=packages,
        layers=layers,
        untouched=_untouched(fs, selection, distributions),
        file=file,
    )


def _kept_fs(layers: list[LayerInfo], kept: Mapping[str, Placed]) -> Filesystem:
    """The final filesystem of only the kept files (each at the layer that wins)."""
    by_layer: dict[int, list[Any]] = defaultdict(list)
    for placed in kept.values():
        by_layer[placed.layer].append(placed.entry)
    return Filesystem([replace(layer, files=by_layer[layer.index]) for layer in layers])


def _untouched(
    fs: Filesystem,
    selection: Selection,
    distributions: Sequence[TouchedShare],
) -> list[Untouched]:
    """Distributions with no byte touched, and the top-most directories nothing under which
    was touched, largest first."""
    found = [
        Untouched("distribution", f"{d.name} {d.version}".strip(), d.bytes, [])
        for d in distributions
        if d.bytes and not d.touched_bytes
    ]
    touched_dirs = set(selection.directories)
    roots: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for path, placed in fs.files.items():
        if path in selection.files or not placed.size:
            continue
        root = None
        for parent in _parents(path):
            if parent in touched_dirs:
                break
            root = parent
        if root is not None:
            roots[root].append((placed.size, path))
    for root, items in roots.items():
        items.sort(reverse=True)
        evidence = ["/" + p for _, p in items[:_EVIDENCE]]
        found.append(Untouched("directory", "/" + root, sum(s for s, _ in items), evidence))
    found.sort(key=lambda u: -u.bytes)
    return found[:_UNTOUCHED_SHOWN]


def write_paths(path: Path, selection: Selection, traces: Sequence[Mapping[str, Any]]) -> None:
    """The trace as evidence next to the results: what was traced, and what is kept."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "traced": sorted({p for t in traces for p in t.get("paths") or []}),
        "kept": sorted("/" + p for p in selection.files),
        "directories": sorted("/" + d for d in selection.directories),
        "untraced": selection.untraced,
    }
    path.write_text(json.dumps(document, indent=1) + "\n")
