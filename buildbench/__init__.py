"""buildbench: what serving with PyTorch costs next to ONNX Runtime, in built Docker images."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("buildbench")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
