"""Build one cell with BuildKit, through the Docker CLI: the same contract as `build.build_once`.

The Docker SDK for Python only drives the classic builder, so BuildKit builds go through a
`docker` CLI: `docker buildx build` where a buildx plugin exists, else `docker build` with
`DOCKER_BUILDKIT=1` on a CLI that still supports that (Debian's 20.10; 23.0 and later refuse it
without buildx). The build is timed from starting the CLI to its exit, when the image exists;
the context goes to the CLI's standard input as it is packed (inside that time, as a user's
`docker build .` packs it). Per-instruction times are BuildKit's own, parsed from
`--progress=plain`:

    #7 [builder 3/5] RUN pip install onnxruntime
    #7 12.30 Collecting onnxruntime
    #7 DONE 12.3s

BuildKit leaves no builder-stage images behind: intermediate stages live in its build cache,
not in the image store. That cache grows by every build, `--no-cache` ones included, and is not
labelled per build: the records a build created are told by listing the cache before and after
it (records another client creates on the same engine meanwhile would count too).
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from buildbench.engine.api import Engine, LineSink
from buildbench.engine.builders import (
    BuildContext,
    BuilderName,
    BuildRequest,
    BuildSample,
    CreatedSink,
)
from buildbench.engine.dockerfile import stage_names, unconsumed_warnings
from buildbench.engine.endpoint import Endpoint
from buildbench.engine.upload import ContextUpload
from buildbench.engine.wait import poll_until
from buildbench.errors import LOG_TAIL_LINES, BuildFailed, EngineUnavailable, UsageError

_PROBE_SECONDS = 20
_CANCEL_GRACE = 30.0  # seconds BuildKit may take to wind a cancelled build down
# After a build: how often, and how long at most, its cache records are read until they settle.
_SETTLE_INTERVAL = 0.3
_SETTLE_WAIT = 3.0
_EXTRA_DIRS = ("/usr/bin",)  # Debian's 20.10 CLI, often shadowed on PATH by a newer one
_VERTEX = re.compile(r"^#(\d+) (.*)$")
_STEP = re.compile(r"^\[(?:(\S+) )?(\d+)/(\d+)\] (.*)$")
_DONE = re.compile(r"^DONE (\d+(?:\.\d+)?)s$")


@dataclass(frozen=True)
class BuildkitCli:
    """How to start a BuildKit build: the command up to its options, and extra environment."""

    command: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def docker(self) -> str:
        return self.command[0]


def _works(command: Sequence[str], env: Mapping[str, str] | None = None) -> bool:
    try:
        probe = subprocess.run(
            command,
            env={**os.environ, **(env or {})},
            capture_output=True,
            timeout=_PROBE_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def docker_clis() -> list[str]:
    """Every `docker` executable on PATH, then Debian's /usr/bin/docker, each once."""
    found: dict[str, str] = {}
    dirs = [*os.environ.get("PATH", "").split(os.pathsep), *_EXTRA_DIRS]
    for directory in dirs:
        path = shutil.which("docker", path=directory) if directory else None
        if path:
            found.setdefault(os.path.realpath(path), path)
    return list(found.values())


@functools.cache
def find_buildkit_cli() -> BuildkitCli:
    """The first docker CLI that can build with BuildKit: with buildx, else DOCKER_BUILDKIT=1.

    Tried by running it (`buildx version`, `build --help`): no engine is needed for either, and
    a 23.0+ CLI without buildx fails the second with "BuildKit is enabled but the buildx
    component is missing". Cached: the answer does not change during a run.
    """
    legacy = {"DOCKER_BUILDKIT": "1"}
    clis = docker_clis()
    for docker in clis:
        if _works([docker, "buildx", "version"]):
            return BuildkitCli((docker, "buildx", "build", "--load"))
        if _works([docker, "build", "--help"], legacy):
            return BuildkitCli((docker, "build"), legacy)
    raise UsageError(
        f"no Docker CLI here can build with BuildKit (tried: {', '.join(clis) or 'none on PATH'})",
        tip="install the docker-buildx plugin (or Debian's docker.io 20.10 CLI), "
        "or use the classic builder",
    )


def build_command(cli: BuildkitCli, request: BuildRequest, iidfile: Path) -> list[str]:
    """The CLI's arguments: no cache, no pull, plain progress, the context as a tar on stdin."""
    command = [*cli.command, "--progress=plain", "--no-cache", "--pull=false"]
    command += ["--iidfile", str(iidfile), "-t", request.tag, "-f", request.dockerfile]
    for name, value in request.labels.items():
        command += ["--label", f"{name}={value}"]
    for name, value in request.buildargs.items():
        command += ["--build-arg", f"{name}={value}"]
    return [*command, "-"]


@dataclass
class _Vertex:
    stage: str
    position: int
    instruction: str
    seconds: float | None = None


class ProgressParser:
    """Reads `--progress=plain` lines: instruction steps by vertex, with BuildKit's durations.

    Vertices of parallel stages interleave, so everything is keyed by the vertex number (`#7`).
    Internal vertices ("[internal] load ...", "exporting to image") are not instructions.
    """

    def __init__(self) -> None:
        self.vertices: dict[int, _Vertex] = {}

    def line(self, text: str) -> None:
        vertex = _VERTEX.match(text)
        if not vertex:
            return
        number, rest = int(vertex.group(1)), vertex.group(2)
        if step := _STEP.match(rest):
            stage, position, _, instruction = step.groups()
            self.vertices.setdefault(number, _Vertex(stage or "", int(position), instruction))
        elif number in self.vertices:
            if done := _DONE.match(rest):
                self.vertices[number].seconds = float(done.group(1))
            elif rest == "CACHED":
                self.vertices[number].seconds = 0.0

    def steps(self, stages: Sequence[str] = ()) -> list[tuple[int, str, float]]:
        """Finished steps, numbered from 1: the FROMs first, then stage by stage in order.

        `stages`: the Dockerfile's stage names in order; unknown stages go last, as they came.
        Stages on the same base share one FROM vertex, named after whichever stage BuildKit
        picks (it varies between builds): FROMs sort by their text, so that samples line up.
        """
        order = {name: index for index, name in enumerate(stages)}
        for vertex in self.vertices.values():  # in arrival order
            order.setdefault(vertex.stage, len(order))
        finished = [v for v in self.vertices.values() if v.seconds is not None]

        def key(vertex: _Vertex) -> tuple[int, int, int, str]:
            if vertex.position == 1:  # FROM
                return (0, 0, 0, vertex.instruction)
            return (1, order[vertex.stage], vertex.position, "")

        finished.sort(key=key)
        return [(i, v.instruction, v.seconds or 0.0) for i, v in enumerate(finished, 1)]


def _failure(cli: BuildkitCli, env: Mapping[str, str], tail: Sequence[str]) -> Exception:
    """EngineUnavailable when no engine answers the CLI, else BuildFailed with the log tail."""
    last = next((line for line in reversed(tail) if line.strip()), "")
    if not _works([cli.docker, "version", "--format", "{{.Server.Version}}"], env):
        return EngineUnavailable(f"no Docker engine answers the docker CLI ({last or 'no output'})")
    message = last.removeprefix("ERROR: ") or "the docker CLI failed without output"
    return BuildFailed(message, list(tail))


@dataclass
class _Outcome:
    returncode: int
    seconds: float
    first_output: float | None
    parser: ProgressParser
    tail: list[str]
    upload: ContextUpload


def _stop(process: subprocess.Popen) -> None:
    """After an interrupt (Ctrl-C, SIGTERM): stop the CLI, which cancels the build."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout:
        process.stdout.close()


def _run(
    command: list[str], env: Mapping[str, str], context: BuildContext, on_log: LineSink
) -> _Outcome:
    """Start the CLI with the context packing into its standard input, pass each output line
    on, and stop it if anything interrupts us."""
    parser, tail = ProgressParser(), deque[str](maxlen=LOG_TAIL_LINES)
    first_output: float | None = None
    started = time.perf_counter()
    upload = ContextUpload(context, started)
    stdin = upload.start()
    try:
        process = subprocess.Popen(
            command,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # --progress=plain writes to stderr
            env={**os.environ, **env},
        )
    except BaseException:
        os.close(stdin)
        upload.finish()
        raise
    os.close(stdin)  # the CLI's now: packing stops (a broken pipe) when the CLI goes
    assert process.stdout is not None
    try:
        with io.TextIOWrapper(process.stdout, encoding="utf-8", errors="replace") as output:
            for raw in output:
                if first_output is None:
                    first_output = time.perf_counter() - started
                line = raw.rstrip("\n")
                parser.line(line)
                if line.strip():
                    tail.append(line)
                    on_log(line)
        returncode = process.wait()
        seconds = time.perf_counter() - started
    finally:
        _stop(process)
        upload.finish()  # a context that failed to pack says so, not the CLI's short tar
    return _Outcome(returncode, seconds, first_output, parser, list(tail), upload)


class BuildkitBuilder:
    """BuildKit through the docker CLI, at the run's engine (the endpoint's CLI environment)."""

    name: BuilderName = "buildkit"

    def __init__(self, engine: Engine, endpoint: Endpoint) -> None:
        self.engine = engine
        self.cli = find_buildkit_cli()  # a UsageError at the start of the run, not in a cell
        self.env = {**self.cli.env, **endpoint.cli_env}

    def build(
        self,
        context: BuildContext,
        request: BuildRequest,
        on_log: LineSink,
        on_created: CreatedSink,
    ) -> BuildSample:
        """One no-cache BuildKit build, timed from starting the CLI to the final image id, the
        context packed into the CLI meanwhile. Raises BuildFailed (with the log tail) when the
        build fails, EngineUnavailable when no engine answers.
        """
        text = request.dockerfile_text
        before = {record.id for record in self.engine.build_cache()}
        built = False
        try:
            with tempfile.TemporaryDirectory(prefix="buildbench-") as tmp:
                iidfile = Path(tmp) / "iid"  # written by the CLI, on this machine
                command = build_command(self.cli, request, iidfile)
                outcome = _run(command, self.env, context, on_log)
                image_id = iidfile.read_text().strip() if iidfile.is_file() else ""
            built = outcome.returncode == 0 and bool(image_id)
        finally:
            if built:
                created = self._created_records(before, on_created)
            else:  # a failed or interrupted build's records go with it
                with contextlib.suppress(Exception):  # the engine may be what went away
                    self._prune_cancelled(before, on_created)
        if outcome.returncode != 0:
            raise _failure(self.cli, self.env, outcome.tail)
        if not image_id:
            raise BuildFailed("the docker CLI finished the build without an image id", outcome.tail)
        return BuildSample(
            image_id=image_id,
            seconds=outcome.seconds,
            first_output_seconds=outcome.first_output,
            context_seconds=outcome.upload.seconds,
            context_bytes=outcome.upload.bytes,
            steps=outcome.parser.steps(stage_names(text)),
            warnings=unconsumed_warnings(text, request.buildargs),
            cache_records=created,
        )

    def _prune_cancelled(self, before: set[str], on_created: CreatedSink) -> None:
        """BuildKit winds a cancelled build down after the CLI has gone, and may still create
        or use records meanwhile: prune what is new until nothing new is left (or a bound)."""
        journalled = set(before)

        def nothing_new_left() -> bool:
            created = [r.id for r in self.engine.build_cache() if r.id not in before]
            for record in set(created) - journalled:
                on_created("cache", record)
                journalled.add(record)
            if created:
                self.engine.prune_cache_records(created)
            return not created

        poll_until(nothing_new_left, timeout=_CANCEL_GRACE)

    def _created_records(self, before: set[str], on_created: CreatedSink) -> list[str]:
        """The records the build left, once they settle: BuildKit finalises some after the CLI
        has gone, swapping a record for a new one (seen 0.2 s after the exit on a busy engine,
        and a leaked 1 MB record in CI), so the list is read until two readings agree."""
        journalled: list[str] = []  # in the order first seen (the engine lists in any order)
        last: list[set[str]] = []

        def settled() -> bool:
            created = {r.id for r in self.engine.build_cache() if r.id not in before}
            for record in sorted(created - set(journalled)):
                on_created("cache", record)  # a record that goes meanwhile: clean skips it
                journalled.append(record)
            agree = bool(last) and created == last[-1]
            last.append(created)
            return agree

        try:
            poll_until(settled, timeout=_SETTLE_WAIT, interval=_SETTLE_INTERVAL)
        except Exception:  # the engine went away: the build's own error says so
            return []
        return [record for record in journalled if last and record in last[-1]]
