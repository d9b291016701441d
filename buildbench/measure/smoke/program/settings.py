"""A runtime setting, as the host sends it (`--settings`): each runtime keeps what applies to
it (ONNX Runtime all four keys, PyTorch the threads)."""

DEFAULT_SETTING = {"level": "all", "offline": False, "threads": None, "providers": None}
