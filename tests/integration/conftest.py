"""Fixtures that build real images on real engines, and remove what they made afterwards.

Commands run the way users run them: the installed `buildbench` console script, in a fresh
temporary working directory, with default options. This machine has no registry: its
`python:3.11-slim` is made from Debian packages (`scripts/setup`, or here when missing), and
pip's own configuration here (a CPU torch wheel in find-links, the proxy's CA bundle) reaches
the builder stages by default.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

from buildbench.engine.dockersdk import DockerEngine
from buildbench.engine.endpoint import from_url
from buildbench.labels import LABEL_RUN
from buildbench.run.cleanup import clean, runs_in

ROOT = Path(__file__).resolve().parents[2]
BASE_IMAGE = os.environ.get("BUILDBENCH_TEST_BASE_IMAGE", "python:3.11-slim")
BUILDBENCH = str(Path(sys.executable).with_name("buildbench"))  # the installed console script


@dataclass
class Ran:
    """A finished `buildbench` command: its process and where it ran."""

    process: subprocess.CompletedProcess[str]
    cwd: Path

    @property
    def results(self) -> list[Path]:
        return sorted(self.cwd.glob("results/**/results.json"))

    def data(self, index: int = 0) -> dict:
        return json.loads(self.results[index].read_text())

    def cells(self, index: int = 0) -> dict[str, dict]:
        return {f"{r['name']}/{r['variant']}": r for r in self.data(index)["results"]}


def buildbench(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 3600
) -> Ran:
    """Run the installed console script as a user types it, in `cwd`."""
    process = subprocess.run(
        [BUILDBENCH, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    return Ran(process, cwd)


def watched(
    client: docker.DockerClient, *args: str, cwd: Path, timeout: float
) -> tuple[Ran, dict[str, dict[str, Any]]]:
    """`buildbench run ...` with every container it starts inspected while it runs: the run
    and its own containers' inspections by id (all of them gone once it ended)."""
    seen: dict[str, dict[str, Any]] = {}
    done = threading.Event()

    def look() -> None:
        while not done.is_set():
            for found in client.api.containers(filters={"label": LABEL_RUN}):
                if found["Id"] not in seen:
                    with contextlib.suppress(docker.errors.NotFound):
                        seen[found["Id"]] = client.api.inspect_container(found["Id"])
            time.sleep(0.2)

    watcher = threading.Thread(target=look, daemon=True)
    watcher.start()
    try:
        ran = buildbench(*args, cwd=cwd, timeout=timeout)
    finally:
        done.set()
        watcher.join(timeout=10)
    assert ran.results, f"no results:\n{ran.process.stdout}\n{ran.process.stderr[-3000:]}"
    run_id = ran.data()["run"]["run_id"]
    ours = {k: c for k, c in seen.items() if c["Config"]["Labels"].get(LABEL_RUN) == run_id}
    assert client.api.containers(all=True, filters={"label": f"{LABEL_RUN}={run_id}"}) == []
    return ran, ours


def start(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [BUILDBENCH, *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(autouse=True)
def sigint_at_its_default() -> Iterator[None]:
    """Children start with Ctrl-C at its default, however this suite was started.

    A background job of a non-interactive shell (`nohup pytest ... &`, a CI step's `cmd &`)
    starts with SIGINT ignored, and an ignored signal stays ignored across exec: the run would
    never see the Ctrl-C these tests send. A handled signal is reset to its default on exec, so
    with a handler here every child starts as from a terminal."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture(scope="session")
def engine() -> Iterator[DockerEngine]:
    engine = DockerEngine()
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def client(engine: DockerEngine) -> docker.DockerClient:
    return engine.client


@pytest.fixture(scope="session")
def base_image(engine: DockerEngine, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The default base image; made with `buildbench base` (as scripts/setup does) if missing."""
    if engine.image(BASE_IMAGE) is None:
        bundle = os.environ.get("PIP_CERT")
        ca = ["--ca-bundle", bundle] if bundle else []
        made = buildbench("base", "--tag", BASE_IMAGE, *ca, cwd=tmp_path_factory.mktemp("base"))
        assert made.process.returncode == 0, made.process.stderr
    return BASE_IMAGE


def remove_runs(engine: DockerEngine, results_dir: Path) -> None:
    """Remove what the runs of `results_dir` made, with `buildbench clean`'s own code, and check
    that nothing was left behind."""
    result = clean(engine, runs=runs_in(results_dir))
    assert result.kept == [], result.kept


def objects(client: docker.DockerClient) -> dict[str, set[str]]:
    """Everything an engine holds that a run could leave: images (untagged ones too),
    containers, volumes and build cache records."""
    usage = client.api.df()
    return {
        "images": set(client.api.images(all=True, quiet=True)),
        "containers": {c["Id"] for c in client.api.containers(all=True)},
        "volumes": {v["Name"] for v in usage.get("Volumes") or []},
        "cache": {r["ID"] for r in usage.get("BuildCache") or []},
    }


def left_behind(before: dict[str, set[str]], after: dict[str, set[str]]) -> dict[str, set[str]]:
    return {kind: after[kind] - before[kind] for kind in after if after[kind] - before[kind]}


def cache_details(client: docker.DockerClient, left: dict[str, set[str]]) -> list[dict]:
    """The build cache records among what was left, as the engine describes them: what a
    failure needs to say whose they are (type, description, parent, when made and used)."""
    records = client.api.df().get("BuildCache") or []
    return [record for record in records if record["ID"] in left.get("cache", set())]


@pytest.fixture(scope="session")
def matrix_run(
    base_image: str, engine: DockerEngine, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Ran]:
    """The README's main command, as a new user types it: `scripts/benchmark` (set up, then
    `buildbench run --cuda both`) from a fresh directory, every option at its default.

    Only test_matrix.py uses it: scripts/test runs each test file on one worker
    (`--dist loadfile`), and a session fixture is made once per worker."""
    cwd = tmp_path_factory.mktemp("user")
    process = subprocess.run(
        [str(ROOT / "scripts/benchmark")], cwd=cwd, capture_output=True, text=True, check=False
    )
    ran = Ran(process, cwd)
    assert ran.results, f"no results written:\n{ran.process.stdout}\n{ran.process.stderr[-3000:]}"
    yield ran
    remove_runs(engine, cwd / "results")


# ---------------------------------------------------------------------------------------------
# A second engine that sees neither this machine's files nor its network


@pytest.fixture(scope="session")
def second_engine(base_image: str) -> Iterator[str]:
    """Its address: BUILDBENCH_TEST_ENGINE2 (scripts/test starts it), else one started here.
    It gets the base image through `docker save | docker load`: it has no registry either."""
    address = os.environ.get("BUILDBENCH_TEST_ENGINE2")
    if address is None:
        with engine_of_its_own("buildbench-test-engine", base_image) as own:
            yield own.address
        return
    other = DockerEngine(from_url(address))
    if other.image(base_image) is None:
        copy_image(base_image, address)
    other.close()
    yield address


@dataclass
class OwnEngine:
    """An engine no other test uses: a test may check everything it holds, beside the others."""

    address: str
    engine: DockerEngine

    @property
    def client(self) -> docker.DockerClient:
        return self.engine.client

    @property
    def env(self) -> dict[str, str]:
        """What points the console script at it, as a user points it at a remote engine."""
        return {"DOCKER_HOST": self.address}


@contextlib.contextmanager
def engine_of_its_own(name: str, base_image: str) -> Iterator[OwnEngine]:
    """A fresh engine like the second one (no shared files, no network), holding only the base
    image; stopped and its data root removed afterwards."""
    script = str(ROOT / "scripts/second-engine")
    started = subprocess.run([script, "start", name], capture_output=True, text=True, check=True)
    try:
        address = started.stdout.strip()
        copy_image(base_image, address)
        own = OwnEngine(address, DockerEngine(from_url(address)))
        try:
            yield own
        finally:
            own.engine.close()
    finally:
        subprocess.run([script, "stop", name], capture_output=True, check=False)


@pytest.fixture(scope="module")
def own_engine(request: pytest.FixtureRequest, base_image: str) -> Iterator[OwnEngine]:
    """An engine of the test file's own (`buildbench-<file>`), for tests that check the whole
    engine: they run beside the others instead of after them (scripts/test)."""
    name = "buildbench-" + request.module.__name__.rsplit(".", 1)[-1].replace("_", "-")
    with engine_of_its_own(name, base_image) as own:
        yield own


def copy_image(image: str, address: str) -> None:
    """`docker save | docker load` into the engine at `address`: it has no registry either."""
    with subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE) as save:
        subprocess.run(
            ["docker", "load"],
            stdin=save.stdout,
            check=True,
            capture_output=True,
            env={**os.environ, "DOCKER_HOST": address},
        )
    assert save.returncode == 0


def wait_for_lines(process: subprocess.Popen[str], needles: Sequence[str]) -> None:
    """Read the process's stderr until each of `needles` has been in a line."""
    assert process.stderr is not None
    waiting = list(needles)
    for line in process.stderr:
        waiting = [needle for needle in waiting if needle not in line]
        if not waiting:
            return
    raise AssertionError(f"the run ended before {waiting} (exit {process.wait()})")
