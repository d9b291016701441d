"""ONNX Runtime in the image: the model's ONNX form, one session per runtime setting."""

from __future__ import annotations

import ctypes
import glob
import itertools
import os
import time
from typing import Any, ClassVar

from ..probes import DRIVER, unresolved_libraries
from ..protobuf import count_nodes
from ..settings import DEFAULT_SETTING

ORT_LEVELS = ("disabled", "basic", "extended", "all")


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
    """The ONNX form in the image's onnxruntime: one session per runtime setting (graph
    optimisation level, online or an offline-optimised file, providers, intra-op threads)."""

    form: ClassVar[str] = "onnx"
    fresh_sessions: ClassVar[bool] = True  # see Runtime.fresh_sessions
    accuracy: ClassVar[dict | None] = None

    @staticmethod
    def framework(meta: dict) -> Any:
        import onnxruntime

        return onnxruntime

    def __init__(self, ort: Any, artifacts: str, meta: dict, want_gpu: bool) -> None:
        import numpy  # onnxruntime's own dependency: imported with it already

        self.numpy = numpy
        self.ort = ort
        self.available = ort.get_available_providers()
        cuda_build = False
        cuda_note: str | None = "CUDAExecutionProvider is not available"
        if "CUDAExecutionProvider" in self.available:
            cuda_build, cuda_note = load_cuda_provider(ort)
        self.cuda_works = cuda_build
        self.default_providers = ["CPUExecutionProvider"]
        if want_gpu and cuda_build:
            self.default_providers.insert(0, "CUDAExecutionProvider")
        self.path = os.path.join(artifacts, meta[self.form])
        self.external = len(meta.get(f"{self.form}_files") or []) > 1
        self.nodes_before = count_nodes(self.path)
        self.optimised: dict[str, tuple[str, float]] = {}  # level -> (file, seconds to make)
        self.session: Any = None
        self.info = {
            "framework_version": ort.__version__,
            "available_providers": self.available,
            "cuda_note": cuda_note,
            "cuda_build": cuda_build,
            "device": ort.get_device(),
        }

    def settings(self, requested: list[dict]) -> list[dict]:
        """The settings as given, `providers: "each"` expanded to every other order of this
        cell's providers (none where it has one)."""
        seen = []
        for setting in requested:
            chosen = {**DEFAULT_SETTING, **setting}
            orders = [chosen["providers"]]
            if chosen["providers"] == "each":
                orders = provider_orders(self.default_providers)
            for order in orders:
                found = {**chosen, "providers": order}
                if found not in seen:
                    seen.append(found)
        return seen

    @staticmethod
    def label(setting: dict) -> str:
        parts = [setting["level"] + (" offline" if setting["offline"] else "")]
        if setting["threads"]:
            parts.append(f"threads={setting['threads']}")
        if setting["providers"]:
            parts.append(
                ">".join(p.removesuffix("ExecutionProvider") for p in setting["providers"])
            )
        return " ".join(parts)

    def _options(self, level: str, threads: int | None) -> Any:
        levels = self.ort.GraphOptimizationLevel
        options = self.ort.SessionOptions()
        options.log_severity_level = 3
        options.graph_optimization_level = {
            "disabled": levels.ORT_DISABLE_ALL,
            "basic": levels.ORT_ENABLE_BASIC,
            "extended": levels.ORT_ENABLE_EXTENDED,
            "all": levels.ORT_ENABLE_ALL,
        }[level]
        if threads:
            options.intra_op_num_threads = threads
        return options

    def _providers(self, setting: dict) -> list[str]:
        wanted = setting["providers"] or self.default_providers
        if "CUDAExecutionProvider" in wanted and not self.cuda_works:
            raise RuntimeError("CUDAExecutionProvider cannot run here")
        missing = [p for p in wanted if p not in self.available]
        if missing:
            raise RuntimeError(f"{', '.join(missing)} is not available")
        return list(wanted)

    def optimise(self, level: str, providers: list[str]) -> tuple[str, float]:
        """The model optimised once at `level` and saved in /tmp (the only writable place):
        what an offline-optimised deployment loads; its node count is the graph after."""
        if level not in self.optimised:
            path = f"/tmp/buildbench-optimised-{level}.onnx"
            options = self._options(level, None)
            options.optimized_model_filepath = path
            if self.external:  # past 2 GB: initializers beside it, as the original has them
                options.add_session_config_entry(
                    "session.optimized_model_external_initializers_file_name",
                    os.path.basename(path) + ".data",
                )
            began = time.perf_counter()
            self.ort.InferenceSession(self.path, options, providers=providers)
            self.optimised[level] = (path, time.perf_counter() - began)
        return self.optimised[level]

    def open(self, setting: dict) -> dict:
        """A session for the setting, timed as the model load; the graph's facts after."""
        providers = self._providers(setting)
        path, level = self.path, setting["level"]
        facts: dict = {"nodes_before": self.nodes_before}
        if setting["offline"]:
            path, seconds = self.optimise(level, providers)
            facts["optimise_seconds"] = round(seconds, 4)
            level = "disabled"  # already optimised: loading it must not optimise again
        options = self._options(level, setting["threads"])
        self.session = None  # free the previous setting's session first
        began = time.perf_counter()
        self.session = self.ort.InferenceSession(path, options, providers=providers)
        facts["load_seconds"] = time.perf_counter() - began
        self.input_names = [i.name for i in self.session.get_inputs()]
        facts["providers"] = self.session.get_providers()
        return facts

    def graph_after(self, setting: dict) -> dict:
        """Nodes after optimisation at the setting's level, from the saved optimised model
        (made here for an online setting, after its timed load)."""
        try:
            path, seconds = self.optimise(setting["level"], self._providers(setting))
        except Exception:  # no room in /tmp (a tmpfs), say: the setting's timings still count
            return {"nodes_after": None}
        return {"nodes_after": count_nodes(path), "optimise_seconds": round(seconds, 4)}

    def inputs(self, folder: str, batch: dict, meta: dict) -> list:
        return [
            self.numpy.fromfile(
                os.path.join(folder, f"input-{i}.bin"), dtype=spec["dtype"]
            ).reshape(spec["shape"])
            for i, spec in enumerate(batch["inputs"])
        ]

    def run(self, xs: list) -> object:
        return self.session.run(None, dict(zip(self.input_names, xs, strict=True)))

    @property
    def xp(self) -> Any:
        return self.numpy

    def outputs(self, y: Any) -> list[tuple[list[int], Any]]:
        """Each output's shape, and its values for parity: numbers as float64; strings and a
        sequence (ZipMap's list of dicts) as Python lists, which parity reads as they are."""
        found: list[tuple[list[int], Any]] = []
        for a in y:
            if isinstance(a, list):
                found.append(([len(a)], a))
                continue
            a = self.numpy.asarray(a)
            if a.dtype.kind in "OUS":  # tensor(string): numpy objects
                flat = a.reshape(-1).tolist()
                found.append((list(a.shape), [_text(v) for v in flat]))
                continue
            found.append((list(a.shape), a.reshape(-1).astype("float64")))
        return found

    def reference(self, path: str, dtype: str) -> Any:
        return self.numpy.fromfile(path, dtype=dtype).astype("float64")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def provider_orders(providers: list[str]) -> list[list[str]]:
    """Every order of the providers but the default one: ONNX Runtime gives each node to the
    first provider that takes it, so the order decides where the model runs."""
    return [list(order) for order in itertools.permutations(providers)][1:]
