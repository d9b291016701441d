"""Fail the build when the installed framework is not the variant that was asked for.

Usage: check_variant.py torch|onnxruntime|openvino CUDA   (CUDA empty = the CPU variant)
Runs in the builder stage only; it never reaches the final image.
"""

import sys
from importlib import metadata

framework, cuda = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ""
dists = {d.metadata["Name"].lower() for d in metadata.distributions()}
nvidia = sorted(d for d in dists if d.startswith("nvidia-"))

if framework == "torch":
    import torch

    is_cuda_build = torch.version.cuda is not None
    found = f"torch {torch.__version__} (CUDA {torch.version.cuda})"
elif framework == "openvino":
    import openvino

    is_cuda_build = False  # no CUDA build exists: its GPU plugin is for Intel GPUs
    found = f"openvino {openvino.__version__} (CPU)"
else:
    is_cuda_build = "onnxruntime-gpu" in dists
    found = "onnxruntime-gpu" if is_cuda_build else "onnxruntime (CPU)"

if cuda and not is_cuda_build:
    sys.exit(f"buildbench: CUDA variant asked for, but pip installed {found}")
if not cuda and (is_cuda_build or nvidia):
    sys.exit(
        f"buildbench: CPU variant asked for, but pip installed {found} with {len(nvidia)} "
        "nvidia-* packages: give a CPU wheel index (--torch-cpu-index-url) or a directory "
        "with a CPU wheel (--pip-find-links)"
    )
print(f"buildbench: {found}, {len(nvidia)} nvidia-* packages: matches CUDA={cuda!r}")
