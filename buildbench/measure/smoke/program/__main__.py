"""The smoke program's launcher: shipped as `program.py` beside the `program/` folder and run
as `python /buildbench/program.py`. The start time is taken first, before any import: the host
measures container start up to here."""

import time

STARTED_EPOCH = time.time()

import importlib  # noqa: E402 - after the start time, on purpose
import sys  # noqa: E402

if __name__ == "__main__":
    # In the volume this file is a script beside the package `program`; on the host
    # (`python -m buildbench.measure.smoke.program`) it is the package's own __main__.
    cli = importlib.import_module(".cli", __package__ or "program")
    sys.exit(cli.main(STARTED_EPOCH))
