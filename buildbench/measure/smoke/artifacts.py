"""Host side of the smoke test: the files that travel to the engine, as one archive.

Per model: its forms (ONNX with external data, a torch.export program or TorchScript), inputs
and reference outputs per batch size, and `meta.json` for the program; the program once, at
the top. The archive is unpacked into a volume of the engine's: never a host path. Every file
is 0644 and every folder 0755 in the archive, whatever its mode here (onnx writes external
data 0600): the smoke test runs as an unprivileged user.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from buildbench.measure.runtimes import DEFAULT_NAMES
from buildbench.measure.smoke import modelcache, modelinputs, modelspec, modelstack
from buildbench.measure.smoke.modelspec import PreparedModel

DEFAULT_MODEL = "buildbench.measure.smoke.resnet:resnet18"
PROGRAM = Path(__file__).with_name("program")  # a package: relative imports only
CPULOAD = PROGRAM.with_name("cpuload.py")  # the program imports it when it is there


def program_files() -> list[tuple[Path, str]]:
    """The program's files and their names in the volume: the launcher as `program.py`, the
    package as `program/`, and cpuload.py inside it (its timing loops import it)."""
    files = [(PROGRAM / "__main__.py", "program.py")]
    for path in sorted(PROGRAM.rglob("*.py")):
        if path.name != "__main__.py":
            files.append((path, f"program/{path.relative_to(PROGRAM).as_posix()}"))
    if CPULOAD.is_file():
        files.append((CPULOAD, "program/cpuload.py"))
    return files


def check_model_stack() -> None:
    """A UsageError, before anything is built, when the host lacks what the model needs."""
    modelstack.import_stack()


def default_model(frameworks: Sequence[str] = DEFAULT_NAMES) -> PreparedModel:
    """ResNet-18 with random weights: the model of a run without --model."""
    return modelcache.load(modelspec.parse_spec(DEFAULT_MODEL), frameworks=frameworks)


def model_meta(prepared: PreparedModel, data: Path) -> dict[str, object]:
    """What the program reads of one model: its files, inputs, references and tolerances."""
    described = json.loads((data / "data.json").read_text())
    info = prepared.info
    return {
        "model": info.source,
        "sha256": info.sha256,
        "onnx": f"model/{prepared.onnx}" if prepared.onnx else None,
        "onnx_files": prepared.onnx_files,
        "torch": f"model/{prepared.torch}" if prepared.torch else None,
        "torch_format": prepared.torch_format,
        "not_applicable": info.not_applicable,
        "fixed_batch": info.fixed_batch,
        "inputs": [asdict(p) for p in prepared.inputs],
        # A TorchScript file names no outputs: they are numbered as its references are.
        "outputs": [o.name for o in info.outputs]
        or [f"output_{i}" for i in range(len(described["batches"][0]["references"]))],
        "batch_sizes": [b["batch"] for b in described["batches"]],
        "batches": described["batches"],
        "rtol": modelinputs.RTOL,
        "atol": modelinputs.ATOL,
        **{key: f"model/{files[0]}" for key, files in prepared.forms.items()},
        **{f"{key}_files": files for key, files in prepared.forms.items()},
    }


def model_folder(index: int) -> str:
    """Where the index-th model lies in the volume: the first at the top (`meta.json` where
    the program looks by default), the others under `m<index>/`."""
    return f"m{index}/" if index else ""


def prepare_artifacts(
    batch_sizes: tuple[int, ...], models: Sequence[PreparedModel] | None = None
) -> bytes:
    """The smoke test's files as a tar: the program, and each model in its `model_folder`."""
    chosen = list(models) if models else [default_model()]
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for folder in sorted({str(Path(name).parent) for _, name in program_files()} - {"."}):
            _add_dir(tar, folder)
        for path, name in program_files():
            _add_file(tar, path, name)
        for index, prepared in enumerate(chosen):
            data = modelinputs.prepare_data(prepared, batch_sizes)
            meta = json.dumps(model_meta(prepared, data), indent=2).encode()
            _add_model(tar, model_folder(index), prepared, data, meta)
    return out.getvalue()


def _add_model(
    tar: tarfile.TarFile, prefix: str, prepared: PreparedModel, data: Path, meta: bytes
) -> None:
    if prefix:
        _add_dir(tar, prefix.rstrip("/"))
    _add_dir(tar, f"{prefix}model")
    names = [*prepared.onnx_files, *([prepared.torch] if prepared.torch else [])]
    names += [name for files in prepared.forms.values() for name in files]
    for name in names:
        _add_file(tar, prepared.directory / name, f"{prefix}model/{name}")
    _add_dir(tar, f"{prefix}data")
    for folder in sorted(p for p in data.iterdir() if p.is_dir()):
        _add_dir(tar, f"{prefix}data/{folder.name}")
        for path in sorted(folder.iterdir()):
            _add_file(tar, path, f"{prefix}data/{folder.name}/{path.name}")
    _add_bytes(tar, f"{prefix}meta.json", meta)


def _owned(info: tarfile.TarInfo, mode: int) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mode = mode
    return info


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    tar.addfile(_owned(info, 0o755))


def _add_file(tar: tarfile.TarFile, path: Path, name: str) -> None:
    info = _owned(tar.gettarinfo(str(path), arcname=name), 0o644)
    with path.open("rb") as handle:
        tar.addfile(info, handle)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = _owned(tarfile.TarInfo(name), 0o644)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))
