"""buildbench's smoke program: runs inside the image under test, as an unprivileged user, with
a read-only root filesystem and no network. Standard library plus the image's framework only
(the PyTorch image has no numpy).

It reads one model's folder (`--artifacts`): `meta.json`, the model's forms under `model/`,
inputs and the host's reference outputs per batch size under `data/<batch>/` as raw bytes.
Two modes: `full` checks parity of every output and times inference per batch size and per
runtime setting (`--settings`); `startup` (a fresh container each) times only what a cold start
costs: framework import, model load, first inference. Reports progress on stderr
(`BUILDBENCH_PROGRESS <text>`) and its findings as one stdout line:
`BUILDBENCH_SMOKE_RESULT <json>`. Raw samples only: the host does the statistics.
"""

from __future__ import annotations

import time

STARTED_EPOCH = time.time()  # first thing: the host measures container start up to here

import argparse  # noqa: E402 - after the start time, on purpose
import contextlib  # noqa: E402
import ctypes  # noqa: E402
import glob  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from typing import Any  # noqa: E402

try:  # beside this file in the volume: CPU that others used around each timed loop
    import cpuload  # type: ignore[import-not-found]
except ImportError:  # imported on the host, or an older volume
    cpuload = None

RESULT_PREFIX = "BUILDBENCH_SMOKE_RESULT "
PROGRESS_PREFIX = "BUILDBENCH_PROGRESS "
# Each output dtype a reference file can hold, and the dtype it is stored in (half floats as
# float32, which every reader has).
STORED_DTYPES = {
    "float32": "float32",
    "float16": "float32",
    "bfloat16": "float32",
    "float64": "float64",
    "int64": "int64",
    "int32": "int32",
    "int16": "int16",
    "int8": "int8",
    "uint8": "uint8",
    "bool": "bool",
}
ORT_LEVELS = ("disabled", "basic", "extended", "all")
DEFAULT_SETTING = {"level": "all", "offline": False, "threads": None, "providers": None}


def progress(text: str) -> None:
    print(PROGRESS_PREFIX + text, file=sys.stderr, flush=True)


def parity(
    got: Any, want: Any, rtol: float, atol: float, exact: bool = False, xp: Any = None
) -> dict:
    """Floats within atol + rtol * |reference| (NaN matches NaN); integers and booleans
    exactly. `ratio`: the worst difference over what the tolerance allows (above 1 fails).

    Vectorised in the image's own array library `xp` (torch, or numpy beside onnxruntime) over
    float64 arrays, so that a large output (a vocabulary's logits) costs no Python loop; plain
    sequences are read with numpy."""
    if xp is None:
        import numpy

        xp = numpy
        got, want = xp.asarray(got, dtype="float64"), xp.asarray(want, dtype="float64")
    g, w = got.reshape(-1), want.reshape(-1)
    if len(g) != len(w):
        raise ValueError(f"{len(g)} values against {len(w)} in the reference")
    if not len(w):
        return _parity_found(0.0, 0.0, 0, 0, 0.0, exact)
    magnitude = xp.where(xp.isnan(w), 0.0, xp.abs(w))  # a NaN reference allows nothing
    diff = xp.where(xp.isnan(g) & xp.isnan(w), 0.0, xp.abs(g - w))
    diff = xp.where(xp.isnan(diff), math.inf, diff)  # NaN on one side only
    allowed = magnitude * 0.0 if exact else atol + rtol * magnitude
    over = xp.where(allowed > 0, diff / xp.where(allowed > 0, allowed, 1.0), 0.0)
    over = xp.where((allowed <= 0) & (diff > 0), math.inf, over)
    relative = diff / xp.where(magnitude > 1e-12, magnitude, 1e-12)
    return _parity_found(
        float(diff.max()),
        float(relative.max()),
        int((diff > allowed).sum()),
        len(w),
        float(over.max()),
        exact,
    )


def _parity_found(
    max_abs: float, max_rel: float, mismatches: int, count: int, ratio: float, exact: bool
) -> dict:
    return {
        "max_abs_diff": max_abs,
        "max_rel_diff": max_rel,
        "ok": mismatches == 0,
        "exact": exact,
        "mismatches": mismatches,
        "count": count,
        "ratio": ratio,
    }


def compare_outputs(model: Any, got: list, batch: dict, meta: dict, folder: str) -> dict[str, dict]:
    """Parity of every output with its reference, by name, in `model`'s array library; a
    missing output or another shape fails by itself."""
    found: dict[str, dict] = {}
    for i, (name, ref) in enumerate(zip(meta["outputs"], batch["references"], strict=True)):
        exact = not ref["dtype"].startswith(("float", "bfloat"))
        if i >= len(got):
            found[name] = {**_parity_found(0, 0, 0, 0, 0, exact), "ok": False, "note": "missing"}
            continue
        shape, values = got[i]
        if list(shape) != list(ref["shape"]):
            note = f"shape {list(shape)}, reference {ref['shape']}"
            found[name] = {**_parity_found(0, 0, 0, 0, 0, exact), "ok": False, "note": note}
            continue
        path = os.path.join(folder, f"reference-{i}.bin")
        want = model.reference(path, STORED_DTYPES[ref["dtype"]])
        found[name] = parity(values, want, meta["rtol"], meta["atol"], exact, xp=model.xp)
    return found


def worst(outputs: dict[str, dict]) -> tuple[str | None, dict]:
    """The output furthest from its reference, and a summary over all of them."""
    if not outputs:
        return None, {"max_abs_diff": 0.0, "max_rel_diff": 0.0, "ok": False}
    name = max(outputs, key=lambda n: (not outputs[n]["ok"], outputs[n]["ratio"]))
    summary = {
        "max_abs_diff": max(p["max_abs_diff"] for p in outputs.values()),
        "max_rel_diff": max(p["max_rel_diff"] for p in outputs.values()),
        "ok": all(p["ok"] for p in outputs.values()),
    }
    return name, summary


def count_nodes(path: str) -> int | None:
    """Nodes of an ONNX file's main graph, read off the protobuf wire format (the images have
    no `onnx`): ModelProto field 7 is the graph, GraphProto field 1 each node."""
    try:
        with open(path, "rb") as handle:
            data = memoryview(handle.read())
        for number, start, end in _fields(data, 0, len(data)):
            if number == 7:
                return sum(1 for n, _, _ in _fields(data, start, end) if n == 1)
    except (OSError, ValueError):
        return None
    return None


def _varint(data: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(data: memoryview, pos: int, end: int):  # -> Iterator[(number, start, end)]
    """The length-delimited fields between pos and end; other wire types are skipped."""
    while pos < end:
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, pos = _varint(data, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            size, pos = _varint(data, pos)
            yield number, pos, pos + size
            pos += size
        else:
            raise ValueError(f"wire type {wire}")


def flatten(value: Any) -> list:
    """A model's outputs as a flat list of tensors (tuples, lists and dicts in order)."""
    if isinstance(value, (list, tuple)):
        return [leaf for item in value for leaf in flatten(item)]
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in flatten(item)]
    return [value]


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


DRIVER = "libcuda.so.1"  # the GPU driver: only a host with a GPU (and its runtime) has it


def dynamic_loader() -> str | None:
    """This process's dynamic loader, as mapped: glibc's ld-linux only (musl's ignores
    LD_TRACE_LOADED_OBJECTS; its `ldd` is the fallback)."""
    with contextlib.suppress(OSError), open("/proc/self/maps") as maps:
        for line in maps:
            path = line.rstrip("\n").partition(" /")[2]
            if os.path.basename(path).startswith("ld-linux"):
                return "/" + path
    return None


def unresolved_libraries(library: str, search: list[str]) -> list[str]:
    """Sonames `library` links against that the dynamic linker cannot find.

    The loader lists them itself, as ldd has it do (ldd is a bash script, and a slim image
    keeps no shell; `ld.so --list` stops at the first missing library). Each library it did
    find is stat'ed: nothing maps them on a host without a GPU, and a trace of this process
    (--slim) must keep what the check proved is there, or the slim image fails the check."""
    env = {**os.environ, "LD_LIBRARY_PATH": ":".join(search)}
    loader = dynamic_loader()
    if loader is not None:
        env["LD_TRACE_LOADED_OBJECTS"] = "1"
    try:
        out = subprocess.run(
            [loader or "ldd", library],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return [f"ldd failed: {exc}"]
    missing = []
    for line in out.splitlines():
        name, _, found = line.strip().partition(" => ")
        if "not found" in found:
            missing.append(name)
        elif found.startswith("/"):
            with contextlib.suppress(OSError):
                os.stat(found.rpartition(" (")[0] or found)
    return missing


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


class TorchModel:
    """The torch form (a torch.export program, or TorchScript) in the image's own torch.
    Its only runtime setting is intra-op threads: one load serves them all."""

    @staticmethod
    def framework(meta: dict) -> Any:
        """torch, with what loading the model's form needs: a torch.export program needs the
        export runtime (its serialiser, sympy), over a second of imports that belong to the
        framework's start-up rather than to this model's load."""
        import torch

        if meta.get("torch_format") == "pt2":
            import torch.export

            # What torch.export.load uses; another torch may lay it out differently (then the
            # load pays for it).
            with contextlib.suppress(ImportError):
                import torch._export.serde.serialize
        return torch

    def __init__(self, torch: Any, artifacts: str, meta: dict, want_gpu: bool) -> None:
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
        self.default_threads = torch.get_num_threads()
        path = os.path.join(artifacts, meta["torch"])
        if meta["torch_format"] == "pt2":
            model = torch.export.load(path).module()  # an exported module refuses .eval()
        else:
            model = torch.jit.load(path, map_location="cpu").eval()
        self.model = model.to(self.device)

    @staticmethod
    def settings(requested: list[dict]) -> list[dict]:
        seen = []
        for setting in requested:
            chosen = {"threads": setting.get("threads")}
            if chosen not in seen:
                seen.append(chosen)
        return seen

    @staticmethod
    def label(setting: dict) -> str:
        return f"threads={setting['threads']}" if setting["threads"] else "default"

    def open(self, setting: dict) -> dict:
        self.torch.set_num_threads(setting["threads"] or self.default_threads)
        return {"threads": self.torch.get_num_threads()}

    def inputs(self, folder: str, batch: dict, meta: dict) -> list:
        found = []
        for i, spec in enumerate(batch["inputs"]):
            with open(os.path.join(folder, f"input-{i}.bin"), "rb") as handle:
                raw = bytearray(handle.read())
            dtype = getattr(self.torch, spec["dtype"])
            found.append(
                self.torch.frombuffer(raw, dtype=dtype).reshape(spec["shape"]).to(self.device)
            )
        return found

    def run(self, xs: list) -> object:
        with self.torch.inference_mode():
            y = self.model(*xs)
        if self.device == "cuda":
            self.torch.cuda.synchronize()
        return y

    @property
    def xp(self) -> Any:
        return self.torch

    def outputs(self, y: object) -> list[tuple[list[int], Any]]:
        """Each output's shape, and its values as float64 on the CPU (for parity)."""
        return [
            (list(t.shape), t.detach().cpu().reshape(-1).to(self.torch.float64)) for t in flatten(y)
        ]

    def reference(self, path: str, dtype: str) -> Any:
        with open(path, "rb") as handle:
            raw = bytearray(handle.read())
        if not raw:  # torch.frombuffer refuses an empty buffer
            return self.torch.zeros(0, dtype=self.torch.float64)
        values = self.torch.frombuffer(raw, dtype=getattr(self.torch, dtype))
        return values.to(self.torch.float64)


class OnnxModel:
    """The ONNX form in the image's onnxruntime: one session per runtime setting (graph
    optimisation level, online or an offline-optimised file, providers, intra-op threads)."""

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
        self.path = os.path.join(artifacts, meta["onnx"])
        self.external = len(meta.get("onnx_files") or []) > 1
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
        """Each output's shape, and its values as float64 (for parity)."""
        found = []
        for a in y:
            a = self.numpy.asarray(a)
            found.append((list(a.shape), a.reshape(-1).astype("float64")))
        return found

    def reference(self, path: str, dtype: str) -> Any:
        return self.numpy.fromfile(path, dtype=dtype).astype("float64")


def provider_orders(providers: list[str]) -> list[list[str]]:
    """Every order of the providers but the default one: ONNX Runtime gives each node to the
    first provider that takes it, so the order decides where the model runs."""
    return [list(order) for order in itertools.permutations(providers)][1:]


def timed_runs(model: Any, xs: list, args: argparse.Namespace) -> dict:
    """Warm-up, then timed runs until at least --min-runs runs *and* --min-seconds seconds,
    with the CPU share others used meanwhile (snapshots outside the timed calls)."""
    for _ in range(args.warmup):
        model.run(xs)
    samples: list[float] = []
    before = cpuload.snapshot() if cpuload else None
    began = time.perf_counter()
    while len(samples) < args.min_runs or time.perf_counter() - began < args.min_seconds:
        t = time.perf_counter()
        model.run(xs)
        samples.append(time.perf_counter() - t)
        if len(samples) >= args.max_runs:
            break
    seconds = time.perf_counter() - began
    share = cpuload.others_share(before, cpuload.snapshot()) if cpuload and before else None
    return {
        "samples": [round(s, 6) for s in samples],
        "seconds": round(seconds, 3),
        "warmup": args.warmup,
        "cpu_others_share": share,
    }


def measure(args: argparse.Namespace) -> dict:
    with open(os.path.join(args.artifacts, "meta.json")) as handle:
        meta = json.load(handle)
    form = meta["torch" if args.framework == "pytorch" else "onnx"]
    if form is None:  # the host says so before any container runs; this is a backstop
        reason = (meta.get("not_applicable") or {}).get(args.framework)
        return {"not_applicable": reason or f"the model has no {args.framework} form"}
    model_class: Any = TorchModel if args.framework == "pytorch" else OnnxModel
    progress("importing the framework")
    began = time.perf_counter()
    framework = model_class.framework(meta)
    imported = time.perf_counter()
    progress("loading the model")
    model = model_class(framework, args.artifacts, meta, args.gpu)
    settings = model.settings(json.loads(args.settings) if args.settings else [DEFAULT_SETTING])
    first = model.open(settings[0])
    loaded = time.perf_counter()
    result: dict = {
        **model.info,
        "providers": first.get("providers"),
        "gpu_used": model.info.get(
            "gpu_used", "CUDAExecutionProvider" in first.get("providers", ())
        ),
        "started_epoch": STARTED_EPOCH,
        "import_seconds": imported - began,
        "load_seconds": loaded - imported,
        "parity": {},
        "outputs": {},
        "worst_output": {},
        "latency": {},
        "settings": [],
    }
    batches = meta["batches"] if args.mode == "full" else meta["batches"][:1]
    folder = os.path.join(args.artifacts, "data", str(batches[0]["batch"]))
    xs = model.inputs(folder, batches[0], meta)
    model.run(xs)
    result["first_inference_seconds"] = time.perf_counter() - loaded
    result["first_output_epoch"] = time.time()
    if args.mode == "full":
        for index, setting in enumerate(settings):
            entry = {
                "label": model.label(setting),
                "setting": setting,
                **(first if index == 0 else {}),
            }
            if index == 0:
                entry["load_seconds"] = result["load_seconds"]  # model construction included
            try:
                # ONNX Runtime: every setting's session made after the first, cold one, so
                # that their loads compare (the cold load is the start-up's model load).
                if index > 0 or isinstance(model, OnnxModel):
                    entry.update(model.open(setting))
                if isinstance(model, OnnxModel):
                    entry.update(model.graph_after(setting))
                time_setting(model, meta, batches, args, entry, result if index == 0 else None)
            except Exception as exc:
                if index == 0:
                    raise
                entry["error"] = f"{type(exc).__name__}: {exc}"
            result["settings"].append(entry)
        result["latency"] = result["settings"][0]["latency"]
    result["peak_memory_bytes"] = peak_memory_bytes()
    return result


def time_setting(
    model: Any, meta: dict, batches: list, args: argparse.Namespace, entry: dict, top: dict | None
) -> None:
    """Latency per batch size under one setting, with parity: every batch for the first
    setting (`top`, today's figures), the first batch for the others."""
    entry["latency"] = {}
    for n, batch in enumerate(batches):
        key = str(batch["batch"])
        folder = os.path.join(args.artifacts, "data", key)
        xs = model.inputs(folder, batch, meta)
        y = model.run(xs)
        if top is not None or n == 0:
            outputs = compare_outputs(model, model.outputs(y), batch, meta, folder)
            name, summary = worst(outputs)
            if n == 0:
                entry["parity"], entry["worst_output"] = summary, name
            if top is not None:
                top["outputs"][key], top["worst_output"][key], top["parity"][key] = (
                    outputs,
                    name,
                    summary,
                )
        progress(f"timing batch size {key} ({entry['label']})")
        entry["latency"][key] = timed_runs(model, xs, args)


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
    parser.add_argument(
        "--settings",
        help="runtime settings, a JSON list of {level, offline, threads, providers} "
        "(PyTorch takes threads): the first is the default run's",
    )
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
    if args.mode == "full" and "not_applicable" not in result:
        result["network"] = network_probe()  # after the model: not part of any timing
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
