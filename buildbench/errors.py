"""The errors a user can cause or fix. The CLI prints them as one line plus a tip."""


class BuildbenchError(Exception):
    """An expected failure: printed as `ERROR: <message>` and `TIP: <tip>`, never a traceback."""

    exit_code = 1

    def __init__(self, message: str, tip: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.tip = tip


class UsageError(BuildbenchError):
    """Bad option values, missing files, malformed configuration or results."""

    exit_code = 2


class EngineUnavailable(BuildbenchError):
    """No Docker engine answers, or it went away."""

    exit_code = 3


class ImageNotFound(BuildbenchError):
    """An image the run needs (usually the base image) is not in the engine."""

    exit_code = 4


class BuildFailed(Exception):
    """A single image build failed; recorded on its cell, the run goes on."""

    def __init__(self, message: str, log_tail: list[str]) -> None:
        super().__init__(message)
        self.log_tail = log_tail


class Terminated(BaseException):
    """SIGTERM: unwinds like Ctrl-C, so the running cell is recorded as interrupted."""

    exit_code = 143
