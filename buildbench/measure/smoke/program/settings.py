"""A runtime setting, as the host sends it (`--settings`): each runtime keeps what applies to
it (ONNX Runtime all four keys, PyTorch the threads)."""

DEFAULT_SETTING = {"level": "all", "offline": False, "threads": None, "providers": None}


class ThreadsOnly:
    """The settings axis of a runtime whose only setting is intra-op threads."""

    def settings(self, requested: list[dict]) -> list[dict]:
        """Each requested thread count once."""
        seen: list[dict] = []
        for setting in requested:
            chosen = {"threads": setting.get("threads")}
            if chosen not in seen:
                seen.append(chosen)
        return seen

    @staticmethod
    def label(setting: dict) -> str:
        return f"threads={setting['threads']}" if setting["threads"] else "default"
