"""Host side of the smoke test: the model, its ONNX export and reference outputs, once per run.

Needs torch, onnx and onnxscript on the host (the `model` extra): a CPU torch is enough.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
import warnings
from pathlib import Path

from buildbench.errors import UsageError

SEED = 0
IMAGE_SHAPE = (3, 224, 224)
# fp32 parity between the image and the host reference, in the spirit of numpy.allclose.
RTOL, ATOL = 1e-3, 1e-4
PROGRAM_FILES = ("program.py", "resnet.py")


def check_model_stack() -> None:
    """A UsageError, before anything is built, when the host lacks what the model needs."""
    _import_model_stack()


def _import_model_stack():  # -> (torch, onnx)
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


def _export_onnx(torch, model, example, path: Path) -> None:
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


def prepare_artifacts(directory: Path, batch_sizes: tuple[int, ...]) -> Path:
    """Write the smoke mount: program, model (weights + ONNX), inputs and reference outputs."""
    torch, onnx = _import_model_stack()
    from buildbench.smoke.resnet import ResNet18

    directory.mkdir(parents=True, exist_ok=True)
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
    # Containers run as an unprivileged user: everything must be world-readable.
    for path in [directory, *directory.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return directory
