"""The tracer: sitecustomize's line, the engine proxy that injects it and strips it, and what a
trace keeps of an image's final filesystem."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from buildbench.engine.api import ContainerOutcome, ContainerSpec, ServiceOutcome, VolumeMount
from buildbench.measure.archive import analyse_archive
from buildbench.measure.trace import (
    MOUNT,
    PREFIX,
    SITECUSTOMIZE,
    TracingEngine,
    select,
    split_trace,
    touched,
)
from tests.fakes import FakeEngine, docker_save, entries_tar

LIB = b"\x7fELF" + b"l" * 996


def trace_line(*paths: str, **more: Any) -> str:
    return PREFIX + json.dumps({"paths": list(paths), **more})


def analysis_of(*layers: bytes, config: dict[str, Any] | None = None) -> Any:
    return analyse_archive([docker_save(list(layers), config=config)], base_layers=0)


# --- sitecustomize, for real --------------------------------------------------------------------


def traced_python(program: str) -> subprocess.CompletedProcess[str]:
    """`python -c program` with the tracer's sitecustomize (and program.py) importable."""
    env = {**os.environ, "PYTHONPATH": str(SITECUSTOMIZE.parent)}
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


def test_a_service_is_traced_from_its_last_trace_line() -> None:
    engine = FakeEngine()
    engine.service_outcome = ServiceOutcome(
        ContainerOutcome(0, "", ""),
        log_tail=("listening", trace_line("/old"), trace_line("/old", "/new"), "bye"),
    )
    engine.run_result = lambda image, spec: ContainerOutcome(
        0, '{"levels": []}\n', trace_line("/client") + "\n"
    )
    tracer = TracingEngine(engine, "vol")
    outcome = tracer.serve("svc", ContainerSpec([]), "svc", ContainerSpec(["load"]))
    assert outcome.log_tail == ("listening", "bye")
    assert (outcome.client.stdout, outcome.client.stderr) == ('{"levels": []}\n', "")
    # The client runs in the service's image: what it needs is the candidate's too.
    assert sorted(t["paths"] for t in tracer.traces) == [["/client"], ["/old", "/new"]]
    assert engine.runs[0][1].environment["PYTHONPATH"] == MOUNT
    service = engine.served[0][1]
    assert service.environment["BUILDBENCH_TRACE_EVERY"] and VolumeMount("vol", MOUNT) in (
        service.volumes
    )


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
