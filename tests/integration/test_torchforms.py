"""`--torch-forms eager,torchscript,export` as a new user runs it: the installed console script
in a fresh directory, two tiny factories of the user's own, one whose module imports only torch
(its headline is eager) and one whose module imports what the PyTorch image lacks (its headline
falls back to the export, saying why); each form's start-up in its own fresh containers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.conftest import Ran, buildbench, remove_runs

pytestmark = pytest.mark.integration

TINY = """import torch

def make():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU()).eval(), torch.randn(1, 8)
"""
# transformers is installed here (the model extra), never in the PyTorch image.
LACKING = "import transformers  # noqa: F401\n" + TINY


@pytest.fixture(scope="module")
def forms_run(
    base_image: str, engine: object, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Ran]:
    cwd = tmp_path_factory.mktemp("user")
    (cwd / "tiny.py").write_text(TINY)
    (cwd / "lacking.py").write_text(LACKING)
    ran = buildbench(
        "run",
        "--framework",
        "pytorch",
        "--cuda",
        "cpu",
        "--model",
        "tiny:make",
        "--model",
        "lacking:make",
        "--torch-forms",
        "eager,torchscript,export",
        "--batch-sizes",
        "1,4",
        "--latency-seconds",
        "0.2",
        "--latency-runs",
        "5",
        "--cold-starts",
        "1",
        "--no-read-images",
        cwd=cwd,
        timeout=1200,
    )
    assert ran.results, f"no results:\n{ran.process.stdout}\n{ran.process.stderr[-3000:]}"
    yield ran
    remove_runs(engine, cwd / "results")  # type: ignore[arg-type]


def test_each_form_is_timed_side_by_side_with_eager_the_headline(forms_run: Ran) -> None:
    assert forms_run.process.returncode == 0, forms_run.process.stderr[-3000:]
    cell = forms_run.cells()["pytorch/cpu"]
    assert cell["status"] == "ok", cell["smoke"]["message"]
    smoke = cell["smoke"]
    models = [{**s, **s["detail"]} for s in [smoke, *smoke["detail"]["more_models"]]]
    found = {s["model"]["source"]: s for s in models}
    tiny, lacking = found["tiny:make"], found["lacking:make"]
    for one, headline in ((tiny, "eager"), (lacking, "export")):
        settings = one["settings"]
        forms = [s["setting"]["form"] for s in settings]
        assert forms[0] == headline and set(forms) == {"eager", "torchscript", "export"}
        for setting in settings:
            if setting["setting"]["form"] == "eager" and one is lacking:
                assert "transformers" in setting["error"]  # named: no fallback
                continue
            assert setting["error"] is None and setting["parity"]["ok"], setting
            assert len(setting["startup"]) == 1, setting  # its own fresh container
            assert setting["startup"][0]["framework_import"] > 0
    note = lacking["settings"][0]["note"]
    assert note.startswith("eager: the model's module does not import here"), note
    assert "transformers" in note and note.endswith("export instead")
    report = next(forms_run.cwd.glob("results/*/report.md")).read_text()
    assert "PyTorch's forms: each form's start-up" in report
    assert "| eager (headline)" in report and "| export (headline)" in report
    assert "export instead" in report
