"""buildbench's smoke program: runs inside the image under test, as an unprivileged user, with
a read-only root filesystem and no network. Standard library plus the image's framework only
(the PyTorch image has no numpy).

Two modes: `full` checks parity and times inference per batch size; `startup` (a fresh
container each) times only what a cold start costs: framework import, model load, first
inference. Reports progress on stderr (`BUILDBENCH_PROGRESS <text>`) and its findings as one
stdout line: `BUILDBENCH_SMOKE_RESULT <json>`. Raw samples only: the host does the statistics.
"""

from __future__ import annotations

import time

STARTED_EPOCH = time.time()  # first thing: the host measures container start up to here

import argparse  # noqa: E402 - after the start time, on purpose
import ctypes  # noqa: E402
import glob  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from array import array  # noqa: E402
from typing import Any  # noqa: E402

RESULT_PREFIX = "BUILDBENCH_SMOKE_RESULT "
PROGRESS_PREFIX = "BUILDBENCH_PROGRESS "


def progress(text: str) -> None:
    print(PROGRESS_PREFIX + text, file=sys.stderr, flush=True)


def read_floats(path: str) -> array:
    values = array("f")
    with open(path, "rb") as handle:
        values.frombytes(handle.read())
    return values


def parity(got: list[float], want: array, rtol: float, atol: float) -> dict:
    max_abs = max_rel = 0.0
    within = True
    for g, w in zip(got, want, strict=True):
        diff = abs(g - w)
        max_abs = max(max_abs, diff)
        max_rel = max(max_rel, diff / max(abs(w), 1e-12))
        within = within and diff <= atol + rtol * abs(w)
    return {"max_abs_diff": max_abs, "max_rel_diff": max_rel, "ok": within}


def network_probe() -> dict:
    """Prove the isolation from inside: which interfaces exist, and whether a connection fails."""
    try:
        interfaces = sorted(os.listdir("/sys/class/net"))
    except OSError:
        interfaces = []
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
        error = None
    except OSError as exc:
        error = f"{type(exc).__name__}: {exc}"
    return {"interfaces": interfaces, "connection_failed": error is not None, "error": error}


def peak_memory_bytes() -> int:
    for path in (
        "/sys/fs/cgroup/memory.peak",  # cgroup v2 (kernel 5.19+)
        "/sys/fs/cgroup/memory/memory.max_usage_in_bytes",  # cgroup v1
    ):
        try:
            with open(path) as handle:
                return int(handle.read())
        except (OSError, ValueError):
            continue
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class TorchModel:
    @staticmethod
    def framework() -> Any:
        import torch

        return torch

    def __init__(self, torch: Any, artifacts: str, want_gpu: bool) -> None:
        sys.path.insert(0, artifacts)
        from resnet import ResNet18

        self.torch = torch
        cudnn = None
        if torch.version.cuda is not None:
            cudnn = torch.backends.cudnn.version()  # loads libcudnn: proves the libraries load
        self.info = {
            "framework_version": torch.__version__,
            "cuda_version": torch.version.cuda,
            "cudnn_version": cudnn,
            "cuda_build": torch.version.cuda is not None and cudnn is not None,
        }
        self.device = "cuda" if want_gpu and torch.cuda.is_available() else "cpu"
        self.info["gpu_used"] = self.device == "cuda"
        self.info["device"] = torch.cuda.get_device_name(0) if self.device == "cuda" else "cpu"
        model = ResNet18()
        weights = torch.load(
            os.path.join(artifacts, "weights.pt"), map_location="cpu", weights_only=True
        )
        model.load_state_dict(weights)
        self.model = model.eval().to(self.device)

    def load(self, path: str, shape: list[int]):
        return (
            self.torch.frombuffer(bytearray(read_floats(path).tobytes()), dtype=self.torch.float32)
            .reshape(shape)
            .to(self.device)
        )

    def run(self, x) -> object:
        with self.torch.inference_mode():
            y = self.model(x)
        if self.device == "cuda":
            self.torch.cuda.synchronize()
        return y

    @staticmethod
    def values(y) -> list[float]:
        return y.float().cpu().flatten().tolist()


DRIVER = "libcuda.so.1"  # the GPU driver: only a host with a GPU (and its runtime) has it


def unresolved_libraries(library: str, search: list[str]) -> list[str]:
    """Sonames `library` links against that the dynamic linker cannot find (via ldd)."""
    env = {**os.environ, "LD_LIBRARY_PATH": ":".join(search)}
    try:
        out = subprocess.run(
            ["ldd", library], capture_output=True, text=True, env=env, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return [f"ldd failed: {exc}"]
    return [line.split()[0] for line in out.splitlines() if "not found" in line]


def load_cuda_provider(ort: Any) -> tuple[bool, str | None]:
    """Whether ONNX Runtime's CUDA provider can run here or on a GPU host, and why not.

    `get_available_providers()` lists CUDA for any onnxruntime-gpu wheel, even one whose CUDA
    and cuDNN libraries are missing: only loading the provider's library proves they are there.
    Without a GPU, the load fails on the driver alone (libcuda.so.1); then every other library
    it links against must resolve.
    """
    capi = os.path.join(os.path.dirname(ort.__file__), "capi")
    provider = os.path.join(capi, "libonnxruntime_providers_cuda.so")
    try:
        if hasattr(ort, "preload_dlls"):  # CUDA/cuDNN from the nvidia-* wheels (ORT >= 1.21)
            ort.preload_dlls()
        for name in ("libonnxruntime_providers_shared.so", "libonnxruntime_providers_cuda.so"):
            ctypes.CDLL(os.path.join(capi, name), mode=ctypes.RTLD_GLOBAL)
        return True, None
    except OSError as exc:
        if not os.path.exists(provider):
            return False, str(exc)
    site = os.path.dirname(os.path.dirname(ort.__file__))
    search = sorted(glob.glob(os.path.join(site, "nvidia", "*", "lib")))
    missing = unresolved_libraries(provider, search)
    if missing == [DRIVER]:
        return True, f"{DRIVER} (the GPU driver) is absent: no GPU here"
    return False, f"the CUDA provider cannot load: missing {', '.join(missing) or '?'}"


class OnnxModel:
    @staticmethod
    def framework() -> Any:
        import onnxruntime

        return onnxruntime

    def __init__(self, ort: Any, artifacts: str, want_gpu: bool) -> None:
        import numpy  # onnxruntime's own dependency: imported with it already

        self.numpy = numpy
        available = ort.get_available_providers()
        cuda_build = False
        cuda_note: str | None = "CUDAExecutionProvider is not available"
        if "CUDAExecutionProvider" in available:
            cuda_build, cuda_note = load_cuda_provider(ort)
        providers = ["CPUExecutionProvider"]
        if want_gpu and cuda_build:
            providers.insert(0, "CUDAExecutionProvider")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(
            os.path.join(artifacts, "model.onnx"), options, providers=providers
        )
        used = self.session.get_providers()
        self.info = {
            "framework_version": ort.__version__,
            "available_providers": available,
            "providers": used,
            "cuda_note": cuda_note,
            "cuda_build": cuda_build,
            "gpu_used": "CUDAExecutionProvider" in used,
            "device": ort.get_device(),
        }

    def load(self, path: str, shape: list[int]):
        return self.numpy.fromfile(path, dtype=self.numpy.float32).reshape(shape)

    def run(self, x) -> object:
        return self.session.run(None, {"input": x})[0]

    @staticmethod
    def values(y) -> list[float]:
        return y.astype("float32").ravel().tolist()


def timed_runs(model: Any, x: Any, args: argparse.Namespace) -> tuple[list[float], float]:
    """Warm-up, then timed runs until at least --min-runs runs *and* --min-seconds seconds."""
    for _ in range(args.warmup):
        model.run(x)
    samples: list[float] = []
    began = time.perf_counter()
    while len(samples) < args.min_runs or time.perf_counter() - began < args.min_seconds:
        t = time.perf_counter()
        model.run(x)
        samples.append(time.perf_counter() - t)
        if len(samples) >= args.max_runs:
            break
    return samples, time.perf_counter() - began


def measure(args: argparse.Namespace) -> dict:
    with open(os.path.join(args.artifacts, "meta.json")) as handle:
        meta = json.load(handle)
    model_class: Any = TorchModel if args.framework == "pytorch" else OnnxModel
    progress("importing the framework")
    began = time.perf_counter()
    framework = model_class.framework()
    imported = time.perf_counter()
    progress("loading the model")
    model = model_class(framework, args.artifacts, args.gpu)
    loaded = time.perf_counter()
    result: dict = {
        **model.info,
        "started_epoch": STARTED_EPOCH,
        "import_seconds": imported - began,
        "load_seconds": loaded - imported,
        "parity": {},
        "latency": {},
    }
    batches = meta["batch_sizes"] if args.mode == "full" else meta["batch_sizes"][:1]
    for n, batch in enumerate(batches):
        x = model.load(
            os.path.join(args.artifacts, f"input-{batch}.f32"), [batch, *meta["input_shape"]]
        )
        y = model.run(x)
        if n == 0:
            result["first_inference_seconds"] = time.perf_counter() - loaded
            result["first_output_epoch"] = time.time()
        if args.mode != "full":
            break
        want = read_floats(os.path.join(args.artifacts, f"reference-{batch}.f32"))
        result["parity"][str(batch)] = parity(model.values(y), want, meta["rtol"], meta["atol"])
        progress(f"timing batch size {batch}")
        samples, seconds = timed_runs(model, x, args)
        result["latency"][str(batch)] = {
            "samples": [round(s, 6) for s in samples],
            "seconds": round(seconds, 3),
            "warmup": args.warmup,
        }
    result["peak_memory_bytes"] = peak_memory_bytes()
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--framework", choices=["pytorch", "onnx"], required=True)
    parser.add_argument("--mode", choices=["full", "startup"], default="full")
    parser.add_argument("--artifacts", default="/buildbench")
    parser.add_argument("--gpu", action="store_true", help="run on a GPU when one is visible")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--min-runs", type=int, default=30)
    parser.add_argument("--min-seconds", type=float, default=2.0)
    parser.add_argument("--max-runs", type=int, default=100_000)
    args = parser.parse_args()
    result: dict = {"python_version": sys.version.split()[0], "mode": args.mode}
    try:
        result.update(measure(args))
        code = 0
    except ImportError as exc:
        result["error"] = f"the framework does not import: {type(exc).__name__}: {exc}"
        code = 3
    except Exception as exc:  # report anything else the same way: the host records it
        result["error"] = f"{type(exc).__name__}: {exc}"
        code = 4
    if args.mode == "full":
        result["network"] = network_probe()  # after the model: not part of any timing
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
