"""The tracer: sitecustomize's line, the engine proxy that injects it and strips it, and what a
trace keeps of an image's final filesystem."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import docker.errors

from buildbench.engine.api import ContainerOutcome, ContainerSpec, ServiceOutcome, VolumeMount
from buildbench.measure.archive import analyse_archive
from buildbench.measure.trace import (
    MOUNT,
    PREFIX,
    SITECUSTOMIZE,
    TRACE_FILE,
    TracingEngine,
    payload_archive,
    select,
    split_trace,
    touched,
    traces_written,
)
from tests.fakes import FakeEngine, docker_save, entries_tar
from tests.unit.test_smoke import RecordingAPI, _engine

LIB = b"\x7fELF" + b"l" * 996


def trace_line(*paths: str, **more: Any) -> str:
    return PREFIX + json.dumps({"paths": list(paths), **more})


def analysis_of(*layers: bytes, config: dict[str, Any] | None = None) -> Any:
    return analyse_archive([docker_save(list(layers), config=config)], base_layers=0)


# --- sitecustomize, for real --------------------------------------------------------------------


def traced_python(
    program: str, more_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -c program` with the tracer's sitecustomize (and program.py) importable."""
    env = {**os.environ, "PYTHONPATH": str(SITECUSTOMIZE.parent), **(more_env or {})}
    return subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, env=env, check=True
    )


def test_sitecustomize_reports_what_python_opened_mapped_and_started(tmp_path: Any) -> None:
    data = tmp_path / "data.txt"
    data.write_text("x")
    program = (
        "import json, subprocess, sys;"
        f"open({str(data)!r}).read();"
        "subprocess.run(['true']);"
        f"import os; os.path.exists({str(tmp_path / 'probe')!r});"
        "print('done')"
    )
    ran = traced_python(program)
    assert ran.stdout == "done\n"
    rest, traces = split_trace(ran.stderr)
    assert rest == "" and len(traces) == 1
    trace = traces[0]
    assert str(data) in trace["paths"]
    assert str(tmp_path / "probe") in trace["paths"]  # an existence check: a stat, not audited
    assert json.__file__ in trace["paths"]  # imported before or after the hook: both seen
    assert os.path.realpath(sys.executable) == trace["executable"]
    assert any(".so" in p for p in trace["paths"])  # from /proc/self/maps
    assert trace["execs"] == ["true"]
    assert trace["loader"] and trace["loader"].startswith("/")
    assert os.path.join(sys.prefix, "pyvenv.cfg") in trace["paths"]  # read before any hook


def test_the_cuda_checks_libraries_are_traced_though_nothing_maps_them(tmp_path: Any) -> None:
    """The CUDA variant check lists a library's dependencies with the loader (no GPU: nothing
    loads them); a slim image keeps them only if the trace has them. Here: a copy of the ssl
    extension, never imported, that needs one library no one has (a renamed libssl)."""
    import _ssl

    library = tmp_path / "ext.so"
    data = Path(_ssl.__file__).read_bytes()
    assert data.count(b"libssl.so.3\0") == 1
    library.write_bytes(data.replace(b"libssl.so.3\0", b"libxyz.so.3\0"))
    listed = subprocess.run(["ldd", str(library)], capture_output=True, text=True, check=False)
    resolved = {
        line.split(" => ")[1].split(" (")[0]
        for line in listed.stdout.splitlines()
        if " => /" in line
    }
    assert resolved and "libxyz.so.3 => not found" in listed.stdout
    program = (
        "import program, sys;"
        f"missing = program.unresolved_libraries({str(library)!r}, []);"
        "print(missing, 'ssl' in sys.modules)"
    )
    ran = traced_python(program)
    assert ran.stdout == "['libxyz.so.3'] False\n"  # and what it found, not by importing it
    (trace,) = split_trace(ran.stderr)[1]
    assert resolved <= set(trace["paths"])
    # The loader lists them, not ldd (a bash script: a slim image has no bash).
    assert [os.path.realpath(p) for p in trace["execs"]] == [os.path.realpath(trace["loader"])]


def test_sitecustomize_runs_the_images_own_sitecustomize_too(tmp_path: Any) -> None:
    (tmp_path / "sitecustomize.py").write_text("import builtins; builtins.MARK = 'theirs'\n")
    env = {**os.environ, "PYTHONPATH": f"{SITECUSTOMIZE.parent}:{tmp_path}"}
    ran = subprocess.run(
        [sys.executable, "-c", "import builtins; print(builtins.MARK)"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert ran.stdout == "theirs\n"
    assert PREFIX in ran.stderr and "Error in sitecustomize" not in ran.stderr


# --- the proxy ----------------------------------------------------------------------------------


def test_the_proxy_adds_the_tracer_and_strips_its_lines() -> None:
    engine = FakeEngine()
    engine.run_result = lambda image, spec: ContainerOutcome(
        0, "RESULT {}\n" + trace_line("/a") + "\n", "progress\n" + trace_line("/b") + "\n"
    )
    tracer = TracingEngine(engine, "vol", {"PYTHONPATH": "/app"})
    seen: list[str] = []
    spec = ContainerSpec(["python", "x.py"], volumes=(VolumeMount("models", "/buildbench"),))
    outcome = tracer.run("img", spec, seen.append)
    assert (outcome.stdout, outcome.stderr) == ("RESULT {}\n", "progress\n")
    assert seen == ["progress"]  # the live sink never sees a trace line
    _, sent = engine.runs[0]
    assert sent.environment["PYTHONPATH"] == f"{MOUNT}:/app"  # the image's own path kept
    assert sent.volumes == (VolumeMount("models", "/buildbench"), VolumeMount("vol", MOUNT))
    assert tracer.mounts == {"/tmp"}
    assert [t["paths"] for t in tracer.traces] == [["/a"], ["/b"]]
    assert (tracer.containers, tracer.silent) == (1, 0)


def test_the_proxy_prefers_the_specs_pythonpath_and_counts_silent_containers() -> None:
    engine = FakeEngine()
    tracer = TracingEngine(engine, "vol", {"PYTHONPATH": "/app"})
    tracer.run("img", ContainerSpec(["sh"], environment={"PYTHONPATH": "/mine"}))
    assert engine.runs[0][1].environment["PYTHONPATH"] == f"{MOUNT}:/mine"
    assert (tracer.containers, tracer.silent, tracer.traces) == (1, 1, [])


def _service_writes(*traces: dict[str, Any]) -> Any:
    """What the service's processes write: one file per pid at the prefix it was given."""

    def writes(spec: ContainerSpec) -> dict[str, bytes]:
        prefix = spec.environment[TRACE_FILE]
        return {f"{prefix}{pid}.json": json.dumps(t).encode() for pid, t in enumerate(traces, 7)}

    return writes


def test_a_service_writes_its_trace_into_the_volume_whatever_it_logs() -> None:
    """A service that logs each request: its log tail is its own lines only, and the trace of
    each of its processes comes back from the volume, read through the engine (no host path)."""
    engine = FakeEngine()
    engine.create_volume("vol", {})
    requests = tuple(f"INFO: 127.0.0.1 - POST /predict 200 OK #{n}" for n in range(30))
    engine.service_outcome = ServiceOutcome(ContainerOutcome(0, "", ""), log_tail=requests)
    engine.service_writes = _service_writes({"paths": ["/app/main.py"]}, {"paths": ["/w.so"]})
    engine.run_result = lambda image, spec: ContainerOutcome(
        0, '{"levels": []}\n', trace_line("/client") + "\n"
    )
    tracer = TracingEngine(engine, "vol")
    outcome = tracer.serve("svc", ContainerSpec([]), "svc", ContainerSpec(["load"]))
    assert outcome.log_tail == requests  # the service's own lines, untouched
    assert (outcome.client.stdout, outcome.client.stderr) == ('{"levels": []}\n', "")
    # Both processes of the service, and the client (it runs in the service's image).
    assert sorted(t["paths"] for t in tracer.traces) == [["/app/main.py"], ["/client"], ["/w.so"]]
    assert (tracer.containers, tracer.silent) == (2, 0)
    service = engine.served[0][1]
    assert service.environment["BUILDBENCH_TRACE_EVERY"] == "2.0"
    assert service.environment[TRACE_FILE] == f"{MOUNT}/out/service1-"
    assert VolumeMount("vol", MOUNT, read_only=False) in service.volumes  # it writes there
    client = engine.runs[0][1]
    assert client.environment["PYTHONPATH"] == MOUNT and TRACE_FILE not in client.environment
    assert VolumeMount("vol", MOUNT) in client.volumes  # read-only: it prints its trace
    assert ("read_volume", "vol", "out", "svc") in engine.calls


def test_a_service_reads_back_only_its_own_files_and_falls_back_to_its_printed_line() -> None:
    engine = FakeEngine()
    engine.create_volume("vol", {})
    engine.volume_files["vol"] = {"out/service9-1.json": b'{"paths": ["/other"]}'}
    engine.service_outcome = ServiceOutcome(
        ContainerOutcome(0, "", ""),
        log_tail=("listening", trace_line("/old"), trace_line("/old", "/new"), "bye"),
    )
    tracer = TracingEngine(engine, "vol")
    outcome = tracer.serve("svc", ContainerSpec([]), "svc", ContainerSpec(["load"]))
    # It could not write (no file of its own): the last line it printed has it all.
    assert outcome.log_tail == ("listening", "bye")
    assert [t["paths"] for t in tracer.traces] == [["/old", "/new"]]
    assert (tracer.containers, tracer.silent) == (2, 1)  # the client printed nothing


def test_trace_files_are_read_whole_or_not_at_all() -> None:
    written = {
        "service1-7.json": b'{"paths": ["/a"]}',
        "service1-8.json.part": b'{"paths": ["/b"',  # being written
        "service1-9.json": b'{"paths": ["/c"',  # never whole: not read
        "service12-7.json": b'{"paths": ["/d"]}',  # another service's
    }
    files = [(f"out/{name}", "file", data) for name, data in written.items()]
    archive = entries_tar([("out", "dir", b""), *files])
    assert traces_written(archive, "service1-") == [{"paths": ["/a"]}]
    assert traces_written(b"", "service1-") == []


def test_the_volume_has_a_folder_any_user_may_write_its_own_files_in() -> None:
    with tarfile.open(fileobj=io.BytesIO(payload_archive())) as tar:
        found = {m.name: m for m in tar}
    assert found["sitecustomize.py"].mode == 0o644 and found["sitecustomize.py"].uid == 0
    assert found["out"].isdir() and found["out"].mode == 0o1777


def test_sitecustomize_writes_each_processs_trace_to_its_own_file(tmp_path: Path) -> None:
    program = "import os, subprocess, sys; print('done', os.getpid())"
    env = {TRACE_FILE: str(tmp_path / "service1-")}
    ran = traced_python(program, env)
    assert ran.stderr == ""  # nothing printed: the log is the program's own
    pid = ran.stdout.split()[1]
    (written,) = tmp_path.iterdir()
    assert written.name == f"service1-{pid}.json"
    trace = json.loads(written.read_text())
    assert trace["pid"] == int(pid) and subprocess.__file__ in trace["paths"]
    assert not any(str(tmp_path) in path for path in trace["paths"])  # not its own file
    unwritable = traced_python(program, {TRACE_FILE: str(tmp_path / "gone" / "service1-")})
    assert split_trace(unwritable.stderr)[1][0]["pid"] == int(unwritable.stdout.split()[1])


def test_a_volume_is_read_back_through_a_never_started_helper() -> None:
    api = ArchiveAPI()
    engine = _engine(api)
    assert engine.read_volume("vol", "out", "svc:1") == b"tar bytes"
    (config,) = api.created
    assert config["Image"] == "svc:1" and config["NetworkDisabled"] is True
    assert config["HostConfig"]["Mounts"][0]["Source"] == "vol"
    assert api.calls == [("get_archive", "c1", "/fill/out"), ("remove_container", "c1", True, True)]
    api.missing = True
    assert engine.read_volume("vol", "out", "svc:1") == b""
    assert api.calls[-1] == ("remove_container", "c2", True, True)


class ArchiveAPI(RecordingAPI):
    missing = False

    def get_archive(self, container: str, path: str, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(("get_archive", container, path))
        if self.missing:
            raise docker.errors.NotFound("Could not find the file /fill/out in container")
        return iter([b"tar ", b"bytes"]), {}


def test_a_broken_trace_line_is_dropped() -> None:
    assert split_trace(PREFIX + '{"paths": ["/a"\nok\n') == ("ok\n", [])


# --- what a trace keeps -------------------------------------------------------------------------


BASE = entries_tar(
    [
        ("usr", "dir", b""),
        ("tmp", "dir", b""),
        ("usr/lib", "dir", b""),
        ("usr/lib/libc.so", "file", LIB),
        ("usr/lib/libc.so.6", "symlink", "libc.so"),
        ("usr/lib/libdev.so", "symlink", "libc.so.6"),
        ("usr/lib/libother.so.1", "symlink", "libold.so.9"),
        ("usr/lib/libgone.so", "file", LIB),
        ("usr/lib/libold.so", "file", b"old"),
        ("lib", "symlink", "usr/lib"),
        ("etc", "dir", b""),
        ("etc/ld.so.cache", "file", b"cache"),
        ("etc/ld.so.conf.d", "dir", b""),
        ("etc/ld.so.conf.d/x.conf", "file", b"/opt"),
        ("usr/bin", "dir", b""),
        ("usr/bin/python3", "file", b"py" * 100),
        ("usr/bin/python", "symlink", "python3"),
        ("usr/share", "dir", b""),
        ("usr/share/doc", "dir", b""),
        ("usr/share/doc/big.txt", "file", b"d" * 5000),
    ]
)
TOP = entries_tar(
    [
        ("usr/lib/libgone.so", "whiteout", b""),
        ("usr/lib/libold.so", "file", b"new!"),
        ("site", "dir", b""),
        ("site/pkg", "dir", b""),
        ("site/pkg/__init__.py", "file", b"print(1)"),
        ("site/pkg/huge.bin", "file", b"h" * 3000),
        ("site/pkg-1.0.dist-info", "dir", b""),
        ("site/pkg-1.0.dist-info/METADATA", "file", b"Name: pkg\nVersion: 1.0\n"),
        (
            "site/pkg-1.0.dist-info/RECORD",
            "file",
            b"pkg/__init__.py,,\npkg/huge.bin,,\npkg-1.0.dist-info/RECORD,,\n",
        ),
        ("site/unused", "dir", b""),
        ("site/unused/a.so", "file", LIB * 4),
        ("site/unused-2.0.dist-info", "dir", b""),
        ("site/unused-2.0.dist-info/RECORD", "file", b"unused/a.so,,\n"),
    ]
)


def test_the_kept_files_follow_symlinks_and_keep_their_directories() -> None:
    analysis = analysis_of(BASE, TOP)
    traces = [
        {
            "paths": ["/lib/libc.so", "/lib/libold.so", "/site/pkg/__init__.py", "/proc/1/maps"],
            "directories": ["/site"],
            "loader": "/lib/libgone.so",
        }
    ]
    selection = select(analysis, traces, [["python", "x.py"]], mounts=["/tmp"])
    kept = set(selection.files)
    # Through /lib -> usr/lib: the symlink and the real files; the started program's symlink
    # chain on PATH; the loader's cache and configuration.
    assert {"lib", "usr/lib/libc.so", "usr/lib/libold.so", "site/pkg/__init__.py"} <= kept
    assert {"usr/bin/python", "usr/bin/python3", "etc/ld.so.cache"} <= kept
    assert "etc/ld.so.conf.d/x.conf" in kept
    # The loader opens libraries by soname: every link to a kept file goes too, no other.
    assert {"usr/lib/libc.so.6", "usr/lib/libdev.so"} <= kept
    assert "usr/lib/libother.so.1" not in kept
    assert selection.files["usr/lib/libold.so"].layer == 1  # the top layer's copy wins
    assert "usr/lib/libgone.so" not in kept  # a whiteout deleted it: nothing to keep
    assert not any(p.startswith("proc") for p in kept)
    assert {"usr", "usr/lib", "site", "site/pkg", "etc/ld.so.conf.d"} <= selection.directories
    assert "usr/share/doc" not in selection.directories
    assert "tmp" in selection.directories  # a tmpfs target: the image's own directory
    assert not selection.found_nothing


def test_the_working_directory_is_kept_whole_and_said_so() -> None:
    analysis = analysis_of(BASE, TOP, config={"WorkingDir": "/site/pkg"})
    selection = select(analysis, [{"paths": ["/lib/libc.so"]}])
    assert {"site/pkg/__init__.py", "site/pkg/huge.bin"} <= set(selection.files)
    assert any(line.startswith("/site/pkg (the working directory)") for line in selection.untraced)


def test_excluded_paths_are_left_out() -> None:
    analysis = analysis_of(BASE, TOP)
    selection = select(analysis, [{"paths": ["/lib/libc.so"]}], exclude=["*/libc.so"])
    assert "usr/lib/libc.so" not in selection.files and "lib" in selection.files


def test_a_trace_of_nothing_in_the_image_found_nothing() -> None:
    analysis = analysis_of(BASE, TOP)
    selection = select(analysis, [{"paths": ["/tmp/x", "/nowhere"]}], [["/server"]])
    assert selection.found_nothing and selection.files == {}
    trace = touched(analysis, selection, containers=2, processes=1, silent=1)
    assert trace.note is not None and "trace found nothing" in trace.note
    assert "1 of 2 containers printed no trace" in trace.untraced[0]


def test_touched_bytes_by_distribution_layer_and_what_was_never_touched() -> None:
    analysis = analysis_of(BASE, TOP)
    traces = [{"paths": ["/site/pkg/__init__.py", "/usr/lib/libc.so"], "execs": ["ldd"]}]
    selection = select(analysis, traces)
    trace = touched(analysis, selection, containers=1, processes=1, silent=0)
    pkg = next(d for d in trace.distributions if d.name == "pkg")
    assert (pkg.touched_bytes, pkg.version) == (len(b"print(1)"), "1.0")
    assert pkg.bytes > pkg.touched_bytes
    assert trace.touched_bytes == sum(p.size for p in selection.files.values())
    assert trace.image_bytes > trace.touched_bytes
    assert sum(layer.touched_bytes for layer in trace.layers) == trace.touched_bytes
    untouched = {(u.kind, u.name) for u in trace.untouched}
    assert ("distribution", "unused 2.0") in untouched
    assert ("directory", "/site/unused") in untouched
    assert ("directory", "/usr/share") in untouched
    assert any("ldd" in line for line in trace.untraced)  # a program it started: unseen inside
