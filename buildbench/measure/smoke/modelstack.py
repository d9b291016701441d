"""The host's model stack (torch, onnx), and what every model module does with it: quiet the
exporters, say an exception in a few words, hash files."""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from buildbench.errors import UsageError


def import_stack() -> tuple[Any, Any]:  # (torch, onnx)
    """torch and onnx, or a UsageError saying what to install."""
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


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """The exporters' warnings and progress text: not for the user's terminal."""
    logger = logging.getLogger("torch")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def first_line(exc: BaseException, limit: int = 160) -> str:
    """An exception in a few words: its type and first sentence, cut to `limit` characters."""
    lines = str(exc).strip().splitlines()
    text = lines[0].split(". ")[0] if lines else ""
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return f"{type(exc).__name__}: {text}".strip().rstrip(":")


def sha256_of(paths: Sequence[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()
