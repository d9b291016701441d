"""What the program prints: progress on stderr, its findings as one prefixed stdout line."""

from __future__ import annotations

import sys

RESULT_PREFIX = "BUILDBENCH_SMOKE_RESULT "
PROGRESS_PREFIX = "BUILDBENCH_PROGRESS "


def progress(text: str) -> None:
    print(PROGRESS_PREFIX + text, file=sys.stderr, flush=True)
