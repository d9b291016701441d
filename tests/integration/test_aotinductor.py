"""`--framework aotinductor` as a new user runs it: the installed console script in a fresh
directory, a small model (two inputs, float32 and int64; two outputs) compiled here by
AOTInductor, loaded in PyTorch's CPU image (which has no compiler) locked down, and proven by
the smoke test: parity per output and batch size, latency, start-up, memory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.conftest import Ran, buildbench, remove_runs
from tests.unit.test_serving_binary import TINY_FACTORY

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def aoti_run(
    base_image: str, engine: object, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Ran]:
    cwd = tmp_path_factory.mktemp("user")
    (cwd / "tinyfactory.py").write_text(TINY_FACTORY)
    ran = buildbench(
        *("run", "--framework", "aotinductor", "--cuda", "cpu"),
        *("--model", "tinyfactory:make", "--batch-sizes", "1,3"),
        *("--latency-seconds", "0.2", "--latency-runs", "5", "--cold-starts", "1"),
        *("--no-read-images", "--base-image", base_image),
        cwd=cwd,
        timeout=1500,
    )
    assert ran.results, f"no results:\n{ran.process.stdout}\n{ran.process.stderr[-3000:]}"
    yield ran
    remove_runs(engine, cwd / "results")  # type: ignore[arg-type]


def test_the_compiled_package_runs_in_pytorch_s_image_with_parity(aoti_run: Ran) -> None:
    assert aoti_run.process.returncode == 0, aoti_run.process.stderr[-3000:]
    cells = aoti_run.cells()
    assert set(cells) == {"aotinductor/cpu"}
    cell = cells["aotinductor/cpu"]
    assert cell["status"] == "ok" and cell["framework"] == "aotinductor"
    assert cell["dockerfile"].endswith("pytorch.dockerfile")
    smoke = {**cell["smoke"], **cell["smoke"]["detail"]}
    assert smoke["status"] == "ok" and not smoke["not_applicable"], smoke["message"]
    assert smoke["cuda_build"] is False and smoke["gpu_used"] is False
    for batch in ("1", "3"):  # one package, its batch axis dynamic
        assert smoke["parity"][batch]["ok"], smoke["parity"][batch]
        assert set(smoke["outputs"][batch]) == {"scores", "top"}
        assert all(o["ok"] for o in smoke["outputs"][batch].values())
        assert len(smoke["latency"][batch]["samples"]) >= 5
    (startup,) = smoke["startup"]
    assert startup["framework_import"] > 0 and startup["model_load"] > 0
    assert smoke["peak_memory_bytes"] > 0
    (setting,) = smoke["settings"]
    assert setting["note"].startswith("AOTInductor package compiled on the host in ")
    report = next(aoti_run.cwd.glob("results/*/report.md")).read_text()
    assert "- aotinductor/cpu: AOTInductor package compiled on the host in " in report
