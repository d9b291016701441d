"""BuildKit through the Docker CLI, without an engine: the progress parser on recorded output
of real builds (tests/unit/data/, from Docker 20.10 with DOCKER_BUILDKIT=1), and the build
driven against a fake `docker` executable that replays such a recording."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from buildbench.engine import buildkit
from buildbench.engine.api import CacheRecord
from buildbench.engine.builders import BuildRequest, BuildSample
from buildbench.engine.buildkit import (
    BuildkitBuilder,
    BuildkitCli,
    ProgressParser,
    build_command,
    find_buildkit_cli,
)
from buildbench.engine.dockerfile import declared_args, stage_names, unconsumed_warnings
from buildbench.engine.endpoint import Endpoint, from_url
from buildbench.engine.factory import choose_builder
from buildbench.errors import BuildFailed, EngineUnavailable, UsageError
from tests.fakes import FakeEngine, TarContext

DATA = Path(__file__).parent / "data"
MULTISTAGE = (DATA / "buildkit_multistage.dockerfile").read_text()
IMAGE_ID = "sha256:3fc3cb0d207ea98d6d1706050bdccc5bab949d0e66b0c4f5a9755a239c936ff2"
ENDPOINT = from_url("tcp://engine.example:2375")

# A `docker` that behaves as the env says: which probes pass, what a build prints and returns.
FAKE_DOCKER = """#!{python}
import os, sys
args = sys.argv[1:]
env = os.environ
if args[:2] == ["buildx", "version"]:
    sys.exit(0 if env.get("FAKE_BUILDX") else 1)
if args[:1] == ["version"]:
    sys.exit(1 if env.get("FAKE_ENGINE") == "down" else 0)
if args[:2] == ["build", "--help"]:
    sys.exit(0 if env.get("DOCKER_BUILDKIT") == "1" and env.get("FAKE_LEGACY") else 1)
with open(env["FAKE_ARGV"], "w") as out:
    out.write("\\n".join(args))
with open(env["FAKE_ENV"], "w") as out:
    out.write(env.get("DOCKER_HOST", "-") + " " + env.get("DOCKER_BUILDKIT", "-"))
with open(env["FAKE_STDIN"], "wb") as out:
    out.write(sys.stdin.buffer.read())
with open(env["FAKE_LOG"]) as log:
    sys.stderr.write(log.read())
rc = int(env.get("FAKE_RC", "0"))
if rc == 0:
    with open(args[args.index("--iidfile") + 1], "w") as iid:
        iid.write(env["FAKE_IID"])
sys.exit(rc)
"""


def _lines(name: str) -> list[str]:
    return (DATA / name).read_text().splitlines()


def _fake_docker(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "docker"
    path.write_text(FAKE_DOCKER.format(python=sys.executable))
    path.chmod(0o755)
    return path


@pytest.fixture
def fake_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Only the fake `docker` on PATH, as a legacy (20.10-like) CLI; returns the scratch dir."""
    docker = _fake_docker(tmp_path / "bin")
    monkeypatch.setenv("PATH", str(docker.parent))
    monkeypatch.setattr(buildkit, "_EXTRA_DIRS", ())
    for name, value in {
        "FAKE_LEGACY": "1",
        "FAKE_ARGV": tmp_path / "argv",
        "FAKE_ENV": tmp_path / "env",
        "FAKE_STDIN": tmp_path / "stdin.tar",
        "FAKE_LOG": DATA / "buildkit_multistage.log",
        "FAKE_IID": IMAGE_ID,
    }.items():
        monkeypatch.setenv(name, str(value))
    find_buildkit_cli.cache_clear()
    yield tmp_path
    find_buildkit_cli.cache_clear()


def _context(text: str = MULTISTAGE, pack_seconds: float = 0.0) -> TarContext:
    """A context holding the Dockerfile, packed for each build (the CLI reads it as stdin)."""
    return TarContext({"Dockerfile": text.encode()}, pack_seconds)


def _builder(engine: FakeEngine | None = None) -> BuildkitBuilder:
    return BuildkitBuilder(engine or FakeEngine(), ENDPOINT)


def _build(
    context: TarContext | None = None, engine: FakeEngine | None = None, **buildargs: str
) -> BuildSample:
    request = BuildRequest(
        dockerfile="Dockerfile",
        tag="buildbench/test:cpu-run",
        buildargs=buildargs or {"CUDA": "true"},
        labels={"buildbench.run-id": "run"},
        dockerfile_text=MULTISTAGE,
    )
    return _builder(engine).build(
        context or _context(), request, lambda line: None, lambda kind, ref: None
    )


def test_parser_orders_interleaved_stages_and_takes_buildkits_durations() -> None:
    parser = ProgressParser()
    for line in _lines("buildkit_multistage.log"):
        parser.line(line)
    assert parser.steps(stage_names(MULTISTAGE)) == [
        (1, "FROM docker.io/buildbench/python:3.11-bookworm", 0.0),  # shared by all stages
        (2, 'RUN echo "cuda=true" > /variant && sleep 1', 9.2),
        (3, "RUN python3 -c \"print('built', 6 * 7)\" > /answer", 1.1),
        (4, 'RUN sleep 1 && echo "read me" > /README', 9.2),
        (5, "COPY --from=builder /variant /answer /opt/", 0.1),
        (6, "COPY --from=docs /README /opt/README", 0.0),
        (7, "RUN cat /opt/variant /opt/answer /opt/README", 0.9),
    ]


def test_parser_keeps_only_finished_steps_of_a_failed_build() -> None:
    parser = ProgressParser()
    for line in _lines("buildkit_failing.log"):
        parser.line(line)
    assert parser.steps([""]) == [
        (1, "FROM docker.io/buildbench/python:3.11-bookworm", 0.0),
        (2, "RUN echo start", 1.9),
    ]


def test_parser_puts_unknown_stages_last_in_arrival_order() -> None:
    parser = ProgressParser()
    for line in ["#2 [b 2/2] RUN two", "#1 [a 2/2] RUN one", "#2 DONE 2.0s", "#1 DONE 1.0s"]:
        parser.line(line)
    assert parser.steps() == [(1, "RUN two", 2.0), (2, "RUN one", 1.0)]
    assert parser.steps(["a"]) == [(1, "RUN one", 1.0), (2, "RUN two", 2.0)]


@pytest.mark.parametrize(
    ("text", "names"),
    [
        (MULTISTAGE, ["builder", "docs", "stage-2"]),
        ("FROM python:3.11-slim\nRUN true\n", [""]),
        ("FROM --platform=$BUILDPLATFORM a AS Build\nFROM b\n", ["build", "stage-1"]),
    ],
)
def test_stage_names_as_buildkit_prints_them(text: str, names: list[str]) -> None:
    assert stage_names(text) == names


def test_unconsumed_build_args_warned_as_the_classic_builder_does() -> None:
    text = "ARG BASE_IMAGE=x\nFROM ${BASE_IMAGE}\n  arg CUDA TORCH_VERSION=2\n"
    assert declared_args(text) == {"BASE_IMAGE", "CUDA", "TORCH_VERSION"}
    assert unconsumed_warnings(text, {"CUDA": "1", "http_proxy": "p"}) == []
    assert unconsumed_warnings("FROM x\n", {"CUDA": "true", "A": ""}) == [
        "build-args never consumed by the Dockerfile: A CUDA"
    ]


def test_build_command_asks_for_no_cache_no_pull_and_the_context_on_stdin() -> None:
    cli = BuildkitCli(("/usr/bin/docker", "build"), {"DOCKER_BUILDKIT": "1"})
    request = BuildRequest(
        dockerfile=".buildbench.dockerfile",
        tag="buildbench/onnx:cpu-r1",
        buildargs={"CUDA": "", "BASE_IMAGE": "python:3.11-slim"},
        labels={"buildbench.run-id": "r1"},
    )
    assert build_command(cli, request, Path("/tmp/iid")) == [
        *("/usr/bin/docker", "build", "--progress=plain", "--no-cache", "--pull=false"),
        *("--iidfile", "/tmp/iid", "-t", "buildbench/onnx:cpu-r1", "-f", ".buildbench.dockerfile"),
        *("--label", "buildbench.run-id=r1"),
        *("--build-arg", "CUDA=", "--build-arg", "BASE_IMAGE=python:3.11-slim"),
        "-",
    ]


def test_no_cli_that_can_do_buildkit_is_a_usage_error(
    fake_cli: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refusing = str(fake_cli / "bin" / "docker")  # like a 28.x CLI without buildx
    monkeypatch.setattr(buildkit, "docker_clis", lambda: [refusing, "/nonexistent/docker"])
    monkeypatch.delenv("FAKE_LEGACY")
    with pytest.raises(UsageError, match="no Docker CLI here can build with BuildKit"):
        find_buildkit_cli()


def test_docker_clis_lists_each_executable_once(
    fake_cli: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = _fake_docker(fake_cli / "other")
    bin_dir = fake_cli / "bin"
    monkeypatch.setenv("PATH", f"{bin_dir}:{fake_cli / 'empty'}:{other.parent}:{bin_dir}")
    assert buildkit.docker_clis() == [str(bin_dir / "docker"), str(other)]


def test_legacy_cli_gets_docker_buildkit_1(fake_cli: Path) -> None:
    cli = find_buildkit_cli()
    assert cli == BuildkitCli((str(fake_cli / "bin" / "docker"), "build"), {"DOCKER_BUILDKIT": "1"})


def test_buildx_is_preferred(fake_cli: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_BUILDX", "1")
    docker = str(fake_cli / "bin" / "docker")
    assert find_buildkit_cli() == BuildkitCli((docker, "buildx", "build", "--load"))


def test_build_returns_the_iidfile_id_steps_and_warnings(fake_cli: Path) -> None:
    lines: list[str] = []
    engine = FakeEngine()
    context = _context()
    request = BuildRequest(
        dockerfile="Dockerfile",
        tag="buildbench/test:cuda-run",
        buildargs={"CUDA": "true", "UNUSED": "1"},
        labels={"buildbench.run-id": "run"},
        dockerfile_text=MULTISTAGE,
    )
    sample = _builder(engine).build(context, request, lines.append, lambda k, r: None)
    assert sample.image_id == IMAGE_ID
    kinds = [instruction.split()[0] for _, instruction, _ in sample.steps]
    assert kinds == ["FROM", "RUN", "RUN", "RUN", "COPY", "COPY", "RUN"]
    assert sample.warnings == ["build-args never consumed by the Dockerfile: UNUSED"]
    assert sample.cache_records == []  # the engine's build cache did not change
    assert engine.removed == []  # BuildKit leaves no stage images to remove
    assert sample.seconds > 0 and sample.first_output_seconds is not None
    assert lines[0] == "#1 [internal] load remote build context" and "" not in lines
    assert (fake_cli / "stdin.tar").read_bytes() == context.data
    argv = (fake_cli / "argv").read_text().splitlines()
    assert argv[:4] == ["build", "--progress=plain", "--no-cache", "--pull=false"]
    # The CLI builds at the run's engine, not whatever its own environment points at.
    assert (fake_cli / "env").read_text() == "tcp://engine.example:2375 1"


def test_the_cache_records_a_build_created_are_reported_and_returned(fake_cli: Path) -> None:
    old = CacheRecord("old", None, 10, False)
    new = [CacheRecord("new1", "old", 20, False), CacheRecord("new2", "new1", 30, False)]
    # Before the build, then after it, twice: the engine lists its records in any order.
    answers = iter([[old], [old, *new], [new[1], old, new[0]]])
    engine = FakeEngine()
    engine.build_cache = lambda: next(answers)  # type: ignore[method-assign]
    created: list[tuple[str, str]] = []
    request = BuildRequest("Dockerfile", "t", {"CUDA": "true"}, {})
    sample = _builder(engine).build(
        _context(), request, lambda line: None, lambda kind, ref: created.append((kind, ref))
    )
    assert sample.cache_records == ["new1", "new2"]
    assert created == [("cache", "new1"), ("cache", "new2")]


def test_a_record_buildkit_swaps_after_the_build_is_the_one_returned(
    fake_cli: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BuildKit finalises a record after the CLI has gone under a new id (seen on a busy
    engine): the records are read until two readings agree, and each one seen is journalled."""
    monkeypatch.setattr(buildkit, "_SETTLE_INTERVAL", 0.0)
    old, kept = CacheRecord("old", None, 10, False), CacheRecord("kept", "old", 20, False)
    mutable = CacheRecord("mutable", "old", 30, False)
    final = CacheRecord("final", "old", 30, False)
    answers = iter([[old], [old, kept, mutable], [old, kept, final], [old, kept, final]])
    engine = FakeEngine()
    engine.build_cache = lambda: next(answers)  # type: ignore[method-assign]
    created: list[tuple[str, str]] = []
    request = BuildRequest("Dockerfile", "t", {"CUDA": "true"}, {})
    sample = _builder(engine).build(
        _context(), request, lambda line: None, lambda kind, ref: created.append((kind, ref))
    )
    assert sample.cache_records == ["kept", "final"]
    assert created == [("cache", "kept"), ("cache", "mutable"), ("cache", "final")]


def test_a_failed_build_still_reports_its_cache_records(
    fake_cli: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_LOG", str(DATA / "buildkit_failing.log"))
    monkeypatch.setenv("FAKE_RC", "1")
    answers = iter([[], [CacheRecord("half", None, 5, False)]])
    engine = FakeEngine()
    engine.build_cache = lambda: next(answers)  # type: ignore[method-assign]
    created: list[tuple[str, str]] = []
    request = BuildRequest("Dockerfile", "t", {"CUDA": "true"}, {})
    with pytest.raises(BuildFailed):
        _builder(engine).build(
            _context(), request, lambda line: None, lambda kind, ref: created.append((kind, ref))
        )
    assert created == [("cache", "half")]  # journalled, so that `clean` finds it


def test_choose_builder_gives_buildkit_at_the_endpoint(fake_cli: Path) -> None:
    builder = choose_builder("buildkit", FakeEngine(), ENDPOINT)
    assert isinstance(builder, BuildkitBuilder) and builder.name == "buildkit"
    assert builder.env["DOCKER_HOST"] == "tcp://engine.example:2375"
    assert builder.env["DOCKER_BUILDKIT"] == "1"  # the legacy CLI's switch


def test_choosing_buildkit_without_a_cli_fails_before_any_build(
    fake_cli: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(buildkit, "docker_clis", lambda: [])
    with pytest.raises(UsageError, match="no Docker CLI here can build with BuildKit"):
        choose_builder("buildkit", FakeEngine(), Endpoint("unix:///var/run/docker.sock"))


def test_packing_the_context_into_the_cli_is_timed_anew_for_every_sample(
    fake_cli: Path,
) -> None:
    """As `time docker build` sees it: the context is packed while the CLI reads it, inside
    the timed build; a second sample packs it again and sends it whole."""
    context = _context(pack_seconds=0.3)
    for n in (1, 2):
        sample = _build(context)
        assert context.packed == n
        assert (fake_cli / "stdin.tar").read_bytes() == context.data
        assert sample.context_seconds is not None and sample.context_seconds >= 0.3
        assert sample.seconds >= sample.context_seconds
        assert sample.context_bytes == len(context.data)


def test_a_context_that_fails_to_pack_says_so_not_the_clis_short_tar(fake_cli: Path) -> None:
    unreadable = UsageError("cannot pack the build context ctx: [Errno 13] Permission denied")
    with pytest.raises(UsageError, match="cannot pack the build context"):
        _build(TarContext(fail=unreadable))


def test_build_context_tars_start_with_a_plain_header_the_cli_recognises(
    fake_cli: Path, tmp_path: Path
) -> None:
    from buildbench.run.context import build_context
    from buildbench.run.matrix import Cell
    from buildbench.run.pipconfig import PipInputs

    (tmp_path / "Dockerfile").write_text(MULTISTAGE)
    cell = Cell("tiny", "cpu", tmp_path / "Dockerfile", tmp_path)
    context = build_context(cell, PipInputs())
    packed = io.BytesIO()
    context.pack(packed)
    head = packed.getvalue()[:512]
    assert head[156:157] == b"5"  # a directory entry, not a PAX header (20.10 needs this)
    request = BuildRequest(context.dockerfile, "t", {}, {}, context.dockerfile_text)
    sample = _builder().build(context, request, lambda line: None, lambda k, r: None)
    assert sample.warnings == []
    assert (fake_cli / "stdin.tar").read_bytes() == packed.getvalue()


def test_failed_build_raises_with_the_clis_last_line_and_tail(
    fake_cli: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_LOG", str(DATA / "buildkit_failing.log"))
    monkeypatch.setenv("FAKE_RC", "1")
    with pytest.raises(BuildFailed) as failed:
        _build()
    assert str(failed.value) == (
        "executor failed running [/bin/sh -c echo to-stderr >&2 && exit 3]: exit code: 3"
    )
    assert "#6 1.239 to-stderr" in failed.value.log_tail
    assert "" not in failed.value.log_tail


def test_engine_down_raises_engine_unavailable(
    fake_cli: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = fake_cli / "down.log"
    log.write_text("Cannot connect to the Docker daemon at unix:///nowhere.sock.\n")
    monkeypatch.setenv("FAKE_LOG", str(log))
    monkeypatch.setenv("FAKE_RC", "1")
    monkeypatch.setenv("FAKE_ENGINE", "down")
    with pytest.raises(EngineUnavailable, match="Cannot connect to the Docker daemon"):
        _build()


def test_success_without_an_image_id_is_a_failed_build(
    fake_cli: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_IID", "")
    with pytest.raises(BuildFailed, match="without an image id"):
        _build()


def test_a_shared_from_sorts_the_same_whichever_stage_buildkit_names_it() -> None:
    orders = []
    for stage in ("builder", "stage-1"):
        parser = ProgressParser()
        for line in [
            "#4 [builder 2/2] RUN make",
            f"#3 [{stage} 1/2] FROM docker.io/library/python:3.11-slim",
            "#5 [stage-1 2/2] COPY --from=builder /out /out",
            "#3 DONE 0.0s",
            "#4 DONE 3.0s",
            "#5 DONE 0.1s",
        ]:
            parser.line(line)
        orders.append(parser.steps(["builder", "stage-1"]))
    assert (
        orders[0]
        == orders[1]
        == [
            (1, "FROM docker.io/library/python:3.11-slim", 0.0),
            (2, "RUN make", 3.0),
            (3, "COPY --from=builder /out /out", 0.1),
        ]
    )
