"""The README's main command, run as a new user types it (`buildbench run --cuda both` in a fresh
directory, default options), checked against the engine and the images' contents."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import os
import re
from pathlib import Path

import docker
import pytest

from tests.integration.conftest import Ran, buildbench

pytestmark = pytest.mark.integration
CELLS = ["pytorch/cpu", "pytorch/cuda", "onnx/cpu", "onnx/cuda"]


def sh(client: docker.DockerClient, image: str, script: str) -> str:
    """Run a shell script in the image (no network) and return its output."""
    out = client.containers.run(
        image, ["sh", "-c", script], network_mode="none", remove=True, entrypoint=[], user="0"
    )
    return out.decode()


def test_every_cell_builds_and_the_run_exits_zero(matrix_run: Ran):
    process = matrix_run.process
    assert process.returncode == 0, process.stderr[-3000:]
    assert sorted(matrix_run.cells()) == sorted(CELLS)
    assert all(cell["status"] == "ok" for cell in matrix_run.cells().values())
    for key in CELLS:  # the summary table
        framework, variant = key.split("/")
        assert re.search(rf"^{framework}\s+{variant}\s+ok\s", process.stdout, re.MULTILINE)


def test_the_default_results_dir_is_relative_to_where_the_user_ran_it(matrix_run: Ran):
    run_dir = matrix_run.results[0].parent
    assert run_dir.parent == matrix_run.cwd / "results"
    for name in ("results.csv", "report.md", "report-build-time.png", "report-size-cold-start.png"):
        assert (run_dir / name).is_file()
    assert f"results: {matrix_run.results[0]}" in matrix_run.process.stdout


def test_the_header_says_what_pip_was_given(matrix_run: Ran):
    stderr = matrix_run.process.stderr
    assert "engine: unix:///var/run/docker.sock" in stderr
    if os.environ.get("PIP_FIND_LINKS"):
        assert f"find-links: {os.environ['PIP_FIND_LINKS']}" in stderr


@pytest.mark.parametrize("key", CELLS)
def test_recorded_id_and_size_are_what_the_engine_says(matrix_run: Ran, client, key):
    cell = matrix_run.cells()[key]
    image = cell["image"]
    attrs = client.api.inspect_image(cell["image_tag"])
    assert cell["image_id"] == attrs["Id"]
    assert image["size_bytes"] == attrs["Size"]
    assert image["layers"] == len(attrs["RootFS"]["Layers"])
    base = client.api.inspect_image(matrix_run.data()["run"]["base_image"])
    assert image["bytes_over_base"] == attrs["Size"] - base["Size"]
    assert 0 < image["compressed_size_bytes"] < image["size_bytes"]
    build = cell["build"]
    assert build["seconds"][0] > 0 and len(build["steps"]) >= 10
    assert sum(step["seconds"][0] for step in build["steps"]) <= build["seconds"][0]
    assert image["python_version"].startswith("3.11")


@pytest.mark.parametrize("key", CELLS)
def test_the_size_attribution_adds_up_to_the_bytes_over_base(matrix_run: Ran, key):
    cell = matrix_run.cells()[key]
    split = cell["contents"]["attribution"]
    owned = sum(d["bytes"] for d in split["distributions"]) + sum(
        p["bytes"] for p in split["packages"]
    )
    other = split["deleted_or_overwritten_bytes"] + split["unowned_bytes"]
    assert owned + other == cell["image"]["bytes_over_base"]
    names = {d["name"].lower() for d in split["distributions"]}
    assert (
        "torch"
        if key.startswith("pytorch")
        else "onnxruntime-gpu"
        if key == "onnx/cuda"
        else "onnxruntime"
    ) in names
    nvidia = sum(d["bytes"] for d in split["distributions"] if d["name"].startswith("nvidia"))
    assert (nvidia > 1e9) if key.endswith("/cuda") else nvidia == 0


def test_the_cpu_torch_image_has_no_nvidia_packages(matrix_run: Ran, client):
    cell = matrix_run.cells()["pytorch/cpu"]
    listing = sh(client, cell["image_tag"], "ls /opt/venv/lib/python3*/site-packages")
    assert "torch" in listing
    assert "nvidia" not in listing
    assert cell["image"]["framework_version"].endswith("+cpu")


@pytest.mark.parametrize(
    ("key", "library"),
    [
        ("pytorch/cuda", "libcudart.so"),
        ("pytorch/cuda", "libcudnn.so"),
        ("onnx/cuda", "libcudart.so"),
        ("onnx/cuda", "libcudnn.so"),
        ("onnx/cuda", "libonnxruntime_providers_cuda.so"),
    ],
)
def test_cuda_images_carry_cuda_libraries(matrix_run: Ran, client, key, library):
    found = sh(
        client, matrix_run.cells()[key]["image_tag"], f"find /opt/venv -name '{library}*' | head -1"
    )
    assert library in found


@pytest.mark.parametrize("key", CELLS)
def test_no_build_time_input_reaches_a_final_image(matrix_run: Ran, client, key):
    """Not /build-inputs, no pip cache, no wheel and no copy of pip's CA bundle that the base
    image does not hold itself."""
    bundle = Path(os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt")
    digest = hashlib.sha256(bundle.read_bytes()).hexdigest()
    size = bundle.stat().st_size
    copies = f"find / -xdev -type f -size {size}c -exec sha256sum {{}} + 2>/dev/null | sort"
    image, base = matrix_run.cells()[key]["image_tag"], matrix_run.data()["run"]["base_image"]
    out = sh(client, image, "test ! -e /build-inputs && echo no-build-inputs")
    assert out.splitlines()[0] == "no-build-inputs"
    mine = {line for line in sh(client, image, copies).splitlines() if digest in line}
    theirs = {line for line in sh(client, base, copies).splitlines() if digest in line}
    assert mine <= theirs, "the CA bundle given to pip is in the final image"
    caches = "find / -xdev -type d -name 'pip' -path '*cache*' 2>/dev/null"
    assert "cache" not in sh(client, image, caches)
    wheels = "find / -xdev -name '*.whl' 2>/dev/null | sort"
    assert sh(client, image, wheels) == sh(client, base, wheels)


@pytest.mark.parametrize("key", CELLS)
def test_images_run_as_a_non_root_user(matrix_run: Ran, client, key):
    user = client.api.inspect_image(matrix_run.cells()[key]["image_tag"])["Config"]["User"]
    assert user and not user.startswith(("0", "root"))


@pytest.mark.parametrize("key", CELLS)
def test_smoke_parity_latency_and_cuda_verdicts(matrix_run: Ran, key):
    header = matrix_run.cells()[key]["smoke"]
    assert header["status"] == "ok", header.get("message")
    smoke = {**header, **header["detail"]}  # what every kind reports, and the model's
    assert smoke["parity_summary"]["ok"] is True
    assert smoke["parity_summary"]["max_abs_diff"] <= 1e-4
    assert set(smoke["latency"]) == {"1", "8", "32"}
    for batch in smoke["latency"].values():  # p95 from at least 30 samples, by default
        quantiles = batch["quantiles"]
        assert len(batch["samples"]) >= 30 and quantiles["n"] == len(batch["samples"])
        assert 0 < quantiles["p50"] <= quantiles["p95"] <= quantiles["p99"]
        assert quantiles["p50_ci_low"] <= quantiles["p50"] <= quantiles["p50_ci_high"]
    assert len(smoke["cold_start_seconds"]) == 3  # three fresh containers
    assert all(0 < s < 300 for s in smoke["cold_start_seconds"])
    for startup in smoke["startup"]:
        parts = [
            startup[k]
            for k in ("container_start", "framework_import", "model_load", "first_inference")
        ]
        assert all(p > 0 for p in parts)
    assert smoke["peak_memory_bytes"] > 0
    assert smoke["cuda_build"] is key.endswith("/cuda")
    assert smoke["gpu_used"] is False  # no GPU on these machines


@pytest.mark.parametrize("key", CELLS)
def test_the_smoke_container_had_no_network(matrix_run: Ran, key):
    network = matrix_run.cells()[key]["smoke"]["detail"]["network"]
    assert network["interfaces"] == ["lo"]
    assert network["connection_failed"] is True and network["error"]


def test_cuda_images_say_that_no_gpu_was_used(matrix_run: Ran):
    for key in ("pytorch/cuda", "onnx/cuda"):
        smoke = matrix_run.cells()[key]["smoke"]["detail"]
        assert smoke["cuda_build"] is True and smoke["gpu_used"] is False
    report = (matrix_run.results[0].parent / "report.md").read_text()
    assert "CUDA images ran on CPU (`pytorch/cuda`, `onnx/cuda`)" in report


def test_the_report_answers_the_course_and_what_is_inside(matrix_run: Ran):
    report = (matrix_run.results[0].parent / "report.md").read_text()
    for section in (
        "## Runtimes against PyTorch",
        "## Smoke tests",
        "## Time to first inference",
        "## What is in each image",
        "## What could go",
        "## Method",
    ):
        assert section in report
    assert "nvidia-" in report  # the CUDA images' biggest distributions


def test_nothing_is_left_running_and_the_smoke_volume_is_gone(matrix_run: Ran, client):
    run_id = matrix_run.data()["run"]["run_id"]
    label = f"buildbench.run-id={run_id}"
    assert client.containers.list(all=True, filters={"label": label}) == []
    assert client.volumes.list(filters={"label": label}) == []


def test_the_timeline_adds_up_to_the_runs_wall_time(matrix_run: Ran):
    run = matrix_run.data()["run"]
    phases, wall = run["timeline"], run["wall_seconds"]
    assert sum(p["seconds"] for p in phases) == pytest.approx(wall, abs=0.001 * len(phases))
    for before, after in itertools.pairwise(phases):
        assert after["start"] == pytest.approx(before["start"] + before["seconds"], abs=0.002)
    started = dt.datetime.fromisoformat(run["started_at"])
    finished = dt.datetime.fromisoformat(run["finished_at"])
    assert abs((finished - started).total_seconds() - wall) <= 2  # the clock's 1 s resolution
    for key in CELLS:
        names = {p["name"] for p in phases if p["cell"] == key}
        assert {"build", "measure", "smoke", "clean-up"} <= names, key
    report = (matrix_run.results[0].parent / "report.md").read_text()
    assert "## Where the time went" in report and "report-timeline.png" in report


# The other commands on the user's run, in the folder it left


def test_report_of_the_users_run(matrix_run: Ran):
    run_dir = matrix_run.results[0].parent
    ran = buildbench("report", str(run_dir.relative_to(matrix_run.cwd)), cwd=matrix_run.cwd)
    assert ran.process.returncode == 0, ran.process.stderr
    assert ran.process.stdout.startswith("# buildbench report")
    csv = buildbench("report", "results", "--format", "csv", cwd=matrix_run.cwd)
    assert csv.process.stdout.startswith("run_id,machine,engine,name")
    assert len(csv.process.stdout.splitlines()) == 5  # a header and four cells


def test_history_of_the_users_results(matrix_run: Ran):
    ran = buildbench("history", "-o", "history.md", cwd=matrix_run.cwd)
    assert ran.process.returncode == 0, ran.process.stderr
    text = (matrix_run.cwd / "history.md").read_text()
    assert text.startswith("# buildbench history: no regression at the newest run")
    # Sizes: a time series whose every run was busy (a loaded CI machine) has no line to draw.
    assert (matrix_run.cwd / "history-image_size_bytes.png").is_file()


def test_clean_dry_run_lists_the_users_images(matrix_run: Ran):
    ran = buildbench("clean", "--dry-run", cwd=matrix_run.cwd)
    assert ran.process.returncode == 0, ran.process.stderr
    assert ran.process.stdout.count("would remove image") >= 4
