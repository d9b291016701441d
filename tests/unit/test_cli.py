"""The command line: one clear line and a documented exit code for every user mistake."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from buildbench.cli import cli, main

ROOT = Path(__file__).resolve().parents[2]


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(
        cli, list(args), env=env, prog_name="buildbench", catch_exceptions=False
    )


@pytest.mark.parametrize(
    ("args", "env", "code", "first_line"),
    [
        (
            ["run"],
            {"DOCKER_HOST": "unix:///nonexistent.sock"},
            3,
            "ERROR: no Docker engine answers at unix:///nonexistent.sock",
        ),
        (["run", "--cuda", "gpu"], {}, 2, "Usage: buildbench run [OPTIONS]"),
        (["run", "--batch-sizes", "1,x"], {}, 2, "Usage: buildbench run [OPTIONS]"),
        (["run", "--repeat", "0"], {}, 2, "Usage: buildbench run [OPTIONS]"),
        (
            ["run", "--slo-p95", "fast"],
            {"DOCKER_HOST": "unix:///nonexistent.sock"},  # refused before any engine is asked
            2,
            "ERROR: --slo-p95 'fast' is not a positive number of milliseconds",
        ),
        (
            ["run", "--slo-p95", "-50"],
            {"DOCKER_HOST": "unix:///nonexistent.sock"},
            2,
            "ERROR: --slo-p95 '-50' is not a positive number of milliseconds",
        ),
        (
            ["run", "--slo-p95", "200", "--no-smoke"],
            {},
            2,
            "ERROR: --slo-p95 needs the smoke test: --no-smoke measures no service",
        ),
        (
            ["run"],
            {"BUILDBENCH_CUDA": "tpu", "DOCKER_HOST": "unix:///nonexistent.sock"},
            2,
            "Usage: buildbench run [OPTIONS]",
        ),
        (
            ["run", "--engine", "engine.example:2375"],
            {},
            2,
            "ERROR: --engine 'engine.example:2375' is not an engine address",
        ),
        (
            ["clean", "--engine", "unix:///nonexistent.sock"],
            {},
            3,
            "ERROR: no Docker engine answers at unix:///nonexistent.sock",
        ),
        (
            ["clean", "--engine", "unix:///a.sock", "--engine", "unix:///b.sock"],
            {},
            2,
            "ERROR: this command works on one engine at a time",
        ),
    ],
)
def test_user_mistakes_get_one_line_and_an_exit_code(args, env, code, first_line):
    result = invoke(*args, env=env)
    assert result.exit_code == code
    assert result.output.splitlines()[0] == first_line
    assert "Traceback" not in result.output


def test_a_bad_slo_says_what_to_give():
    result = invoke("run", "--slo-p95", "nan", env={"DOCKER_HOST": "unix:///nonexistent.sock"})
    assert result.output.splitlines()[1] == (
        "TIP: give the p95 latency a service must keep, e.g. --slo-p95 200"
    )


def test_no_engine_says_how_to_fix_it():
    result = invoke("run", env={"DOCKER_HOST": "unix:///nonexistent.sock"})
    assert result.output.splitlines()[1].startswith("TIP: start the engine")


def test_every_command_has_help_with_an_example_and_is_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    for name in cli.list_commands(click.Context(cli)):
        result = invoke(name, "--help")
        assert result.exit_code == 0, name
        assert "Example: buildbench" in result.output, name
        assert f"buildbench {name}" in readme, f"README does not show `buildbench {name}`"


def test_a_bad_value_names_its_environment_variable_only_when_it_came_from_it():
    from_env = invoke("run", env={"BUILDBENCH_CUDA": "tpu"})
    assert "Invalid value for '--cuda' (from BUILDBENCH_CUDA): 'tpu'" in from_env.stderr
    from_option = invoke("run", "--cuda", "tpu")
    assert "Invalid value for '--cuda': 'tpu'" in from_option.stderr
    assert "BUILDBENCH_CUDA" not in from_option.stderr.splitlines()[-1]


def test_run_and_list_start_without_pandas_or_matplotlib() -> None:
    """A quarter and a third of a second at every start: they load when a table or a chart is
    written (a run loads them while its preflight waits on the engine)."""
    check = (
        "import sys, buildbench.cli.run, buildbench.cli.list; "
        "print(sorted({'pandas', 'matplotlib'} & set(sys.modules)))"
    )
    found = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == "[]"


def test_main_freezes_the_collector_before_the_interpreter_tears_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Teardown's last collections walk every object pandas, numpy and matplotlib made (a
    quarter of a second after a run); frozen, they are skipped, whatever the exit."""
    frozen: list[bool] = []
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append(True))
    monkeypatch.setattr(sys, "argv", ["buildbench", "--version"])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 0 and frozen == [True]
