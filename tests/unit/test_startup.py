"""What `buildbench run` pays before its first check: none of the libraries its report and
statistics need (numpy, pandas, matplotlib) is imported at start-up; they load while the run
waits on the engine (run/spare.py), or not at all (pandas: the run writes its CSV without it)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("numpy", "pandas", "matplotlib", "scipy")


def test_the_run_command_starts_without_the_reports_libraries() -> None:
    code = (
        "import json, sys; import buildbench.cli.run; "
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(found.stdout) == []
