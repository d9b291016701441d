"""Host side of the smoke test: the model, its ONNX export and reference outputs, once per run.

Needs torch, onnx and onnxscript on the host (the `model` extra): a CPU torch is enough. The
files reach the engine as an archive, unpacked into a volume there: never as a host path.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
import tarfile
import tempfile
import warnings
from pathlib import Path
from typing import Any

from buildbench.errors import UsageError

SEED = 0
IMAGE_SHAPE = (3, 224, 224)
# fp32 parity between the image and the host reference, in the spirit of numpy.allclose.
RTOL, ATOL = 1e-3, 1e-4
PROGRAM_FILES = ("program.py", "resnet.py")


def check_model_stack() -> None:
    """A UsageError, before anything is built, when the host lacks what the model needs."""
    _import_model_stack()


def _import_model_stack() -> tuple[Any, Any]:  # (torch, onnx)
    try:
        import onnx
        import onnxscript  # noqa: F401 - torch.onnx.export(dynamo=True) needs it
        import torch
    except ImportError as exc:
        raise UsageError(
            f"smoke tests need torch, onnx and onnxscript on the host ({exc.name} is missing)",
            tip="pip install torch --index-url https://download.pytorch.org/whl/cpu && "
            "pip install 'buildbench[model]'; or run with --no-smoke",
        ) from None
    return torch, onnx


def _export_onnx(torch: Any, model: Any, example: Any, path: Path) -> None:
    batch = torch.export.Dim("batch", min=1, max=1024)
    quiet = logging.getLogger("torch")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model,
                (example,),
                dynamo=True,
                input_names=["input"],
                output_names=["logits"],
                dynamic_shapes=({0: batch},),
                verbose=False,
            )
            program.save(str(path))
    finally:
        quiet.setLevel(level)


def prepare_artifacts(batch_sizes: tuple[int, ...]) -> bytes:
    """The smoke test's files as a tar, for a volume of the engine's (it may be remote):
    program, model (weights + ONNX), inputs and reference outputs, all world-readable."""
    with tempfile.TemporaryDirectory(prefix="buildbench-smoke-") as tmp:
        directory = Path(tmp)
        _write_artifacts(directory, batch_sizes)
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w") as tar:
            for path in sorted(directory.iterdir()):
                info = tar.gettarinfo(str(path), arcname=path.name)
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                info.mode = 0o644  # containers run as an unprivileged user: readable by all
                with path.open("rb") as handle:
                    tar.addfile(info, handle)
        return out.getvalue()


def _write_artifacts(directory: Path, batch_sizes: tuple[int, ...]) -> None:
    torch, onnx = _import_model_stack()
    from buildbench.measure.smoke.resnet import ResNet18

    torch.manual_seed(SEED)
    model = ResNet18().eval()
    torch.save(model.state_dict(), directory / "weights.pt")
    generator = torch.Generator().manual_seed(SEED + 1)
    inputs = {b: torch.randn(b, *IMAGE_SHAPE, generator=generator) for b in batch_sizes}
    with torch.no_grad():
        for b, x in inputs.items():
            (directory / f"input-{b}.f32").write_bytes(x.numpy().tobytes())
            (directory / f"reference-{b}.f32").write_bytes(model(x).numpy().tobytes())
    _export_onnx(torch, model, inputs[batch_sizes[0]], directory / "model.onnx")
    onnx.checker.check_model(str(directory / "model.onnx"), full_check=True)
    here = Path(__file__).parent
    for name in PROGRAM_FILES:
        shutil.copyfile(here / name, directory / name)
    meta = {
        "model": "resnet18 (random weights, seed 0)",
        "batch_sizes": list(batch_sizes),
        "input_shape": list(IMAGE_SHAPE),
        "num_classes": 1000,
        "rtol": RTOL,
        "atol": ATOL,
        "torch_version": torch.__version__,
        "onnx_opset": onnx.load(str(directory / "model.onnx")).opset_import[0].version,
    }
    (directory / "meta.json").write_text(json.dumps(meta, indent=2))
