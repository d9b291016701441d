"""The whole matrix, built for real: results against the engine and the images' contents."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import docker
import pytest

pytestmark = pytest.mark.integration
CELLS = ["pytorch/cpu", "pytorch/cuda", "onnx/cpu", "onnx/cuda"]


def sh(client: docker.DockerClient, image: str, script: str) -> str:
    """Run a shell script in the image (no network) and return its output."""
    out = client.containers.run(
        image, ["sh", "-c", script], network_mode="none", remove=True, entrypoint=[], user="0"
    )
    return out.decode()


def test_every_cell_builds_and_the_run_exits_zero(matrix_run):
    process = matrix_run["process"]
    assert process.returncode == 0, process.stderr[-3000:]
    assert sorted(matrix_run["cells"]) == sorted(CELLS)
    assert all(cell["status"] == "ok" for cell in matrix_run["cells"].values())
    for key in CELLS:  # the summary table
        framework, variant = key.split("/")
        assert re.search(rf"^{framework}\s+{variant}\s+ok\s", process.stdout, re.MULTILINE)
    assert (matrix_run["run_dir"] / "results.csv").is_file()


@pytest.mark.parametrize("key", CELLS)
def test_recorded_id_and_size_are_what_the_engine_says(matrix_run, client, key):
    cell = matrix_run["cells"][key]
    attrs = client.api.inspect_image(cell["image_tag"])
    assert cell["image_id"] == attrs["Id"]
    assert cell["image_size_bytes"] == attrs["Size"]
    assert cell["layers"] == len(attrs["RootFS"]["Layers"])
    base = client.api.inspect_image(matrix_run["data"]["run"]["base_image"])
    assert cell["bytes_over_base"] == attrs["Size"] - base["Size"]
    assert 0 < cell["compressed_size_bytes"] < cell["image_size_bytes"]
    assert cell["build_seconds"][0] > 0 and len(cell["steps"]) >= 10
    assert (
        sum(cell["steps"][i]["seconds"][0] for i in range(len(cell["steps"])))
        <= (cell["build_seconds"][0])
    )
    assert cell["python_version"].startswith("3.11")


def test_the_cpu_torch_image_has_no_nvidia_packages(matrix_run, client):
    listing = sh(
        client,
        matrix_run["cells"]["pytorch/cpu"]["image_tag"],
        "ls /opt/venv/lib/python3*/site-packages",
    )
    assert "torch" in listing
    assert "nvidia" not in listing
    assert matrix_run["cells"]["pytorch/cpu"]["framework_version"].endswith("+cpu")


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
def test_cuda_images_carry_cuda_libraries(matrix_run, client, key, library):
    found = sh(
        client,
        matrix_run["cells"][key]["image_tag"],
        f"find /opt/venv -name '{library}*' | head -1",
    )
    assert library in found


@pytest.mark.parametrize("key", CELLS)
def test_no_build_time_input_reaches_a_final_image(matrix_run, client, key):
    bundle = Path(os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt")
    digest = hashlib.sha256(bundle.read_bytes()).hexdigest()
    size = bundle.stat().st_size
    script = (
        "test ! -e /build-inputs && echo no-build-inputs; "
        f"find / -xdev -type f -size {size}c -exec sha256sum {{}} + 2>/dev/null; "
        "find / -xdev -type d -name 'pip' -path '*cache*' 2>/dev/null"
    )
    out = sh(client, matrix_run["cells"][key]["image_tag"], script)
    assert out.splitlines()[0] == "no-build-inputs"
    assert digest not in out, "the CA bundle given to pip is in the final image"
    assert "cache" not in out
    # Wheel files: none beyond those the base image ships (Debian's python3-venv has some).
    wheels = "find / -xdev -name '*.whl' 2>/dev/null | sort"
    base = matrix_run["data"]["run"]["base_image"]
    assert sh(client, matrix_run["cells"][key]["image_tag"], wheels) == sh(client, base, wheels)


@pytest.mark.parametrize("key", CELLS)
def test_images_run_as_a_non_root_user(matrix_run, client, key):
    user = client.api.inspect_image(matrix_run["cells"][key]["image_tag"])["Config"]["User"]
    assert user and not user.startswith(("0", "root"))


@pytest.mark.parametrize("key", CELLS)
def test_smoke_parity_latency_and_cuda_verdicts(matrix_run, key):
    smoke = matrix_run["cells"][key]["smoke"]
    assert smoke["status"] == "ok", smoke.get("message")
    assert smoke["parity_summary"]["ok"] is True
    assert smoke["parity_summary"]["max_abs_diff"] <= 1e-4
    assert set(smoke["latency"]) == {"1", "8", "32"}
    assert 0 < smoke["latency"]["1"]["p50"] <= smoke["latency"]["1"]["p95"]
    assert len(smoke["latency"]["32"]["samples"]) == 10
    assert 0 < smoke["cold_start_seconds"] < 300
    assert smoke["peak_memory_bytes"] > 0
    assert smoke["cuda_build"] is key.endswith("/cuda")
    assert smoke["gpu_used"] is False  # no GPU on these machines


@pytest.mark.parametrize("key", CELLS)
def test_the_smoke_container_had_no_network(matrix_run, key):
    network = matrix_run["cells"][key]["smoke"]["network"]
    assert network["interfaces"] == ["lo"]
    assert network["connection_failed"] is True and network["error"]


def test_cuda_images_warn_that_no_gpu_was_used(matrix_run):
    for key in ("pytorch/cuda", "onnx/cuda"):
        assert (
            "no GPU: this CUDA image ran its inference on the CPU"
            in (matrix_run["cells"][key]["warnings"])
        )
