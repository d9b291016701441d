"""buildbench's smoke program: runs inside the image under test, as an unprivileged user, with
a read-only root filesystem and no network. Standard library plus the image's runtime only
(the PyTorch image has no numpy).

It travels as this folder (`program/` in the volume, relative imports only) with a launcher
beside it, `program.py` (this package's `__main__.py`). One module per runtime under
`runtimes/`; the shared parts are their own modules: the command line (`cli`), the timing
loops (`timing`), parity (`parity`), environment probes (`probes`), the ONNX protobuf reader
(`protobuf`) and what is printed (`output`).

It reads one model's folder (`--artifacts`): `meta.json`, the model's forms under `model/`,
inputs and the host's reference outputs per batch size under `data/<batch>/` as raw bytes.
Two modes: `full` checks parity of every output and times inference per batch size and per
runtime setting (`--settings`); `startup` (a fresh container each) times only what a cold start
costs: framework import, model load, first inference. Reports progress on stderr
(`BUILDBENCH_PROGRESS <text>`) and its findings as one stdout line:
`BUILDBENCH_SMOKE_RESULT <json>`. Raw samples only: the host does the statistics.
"""

from __future__ import annotations

from .output import PROGRESS_PREFIX, RESULT_PREFIX
from .parity import MAPS, STORED_DTYPES, STRINGS, compare_outputs, parity, worst
from .probes import unresolved_libraries
from .protobuf import count_nodes
from .runtimes import DEFAULT_SETTING, RUNTIMES
from .runtimes.onnx import ORT_LEVELS, OnnxModel, provider_orders
from .runtimes.pytorch import FORMS as TORCH_FORMS

__all__ = [
    "DEFAULT_SETTING",
    "MAPS",
    "ORT_LEVELS",
    "PROGRESS_PREFIX",
    "RESULT_PREFIX",
    "RUNTIMES",
    "STORED_DTYPES",
    "STRINGS",
    "TORCH_FORMS",
    "OnnxModel",
    "compare_outputs",
    "count_nodes",
    "parity",
    "provider_orders",
    "unresolved_libraries",
    "worst",
]
