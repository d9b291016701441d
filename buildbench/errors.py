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

    def __init__(self, message: str, tip: str | None = None) -> None:
        super().__init__(message, tip or START_ENGINE_TIP)


START_ENGINE_TIP = (
    "start the engine (`dockerd`, or Docker Desktop), or point DOCKER_HOST, --engine or "
    "--context at one"
)


class ImageNotFound(BuildbenchError):
    """An image the run needs (usually the base image) is not in the engine."""

    exit_code = 4


class RegistryError(BuildbenchError):
    """A push, pull or manifest read was refused by the registry (or the engine), or the local
    registry would not start."""

    exit_code = 6

    def __init__(self, message: str, tip: str | None = None) -> None:
        super().__init__(message, tip or REGISTRY_TIP)


REGISTRY_TIP = (
    "check that the registry takes pushes from this engine (a read-only registry or a mirror "
    "refuses them) and `docker login` to it if it asks, or use `--registry local`"
)


class PreflightFailed(BuildbenchError):
    """A check before any build failed: the index is unreachable, the disk too full, ..."""

    exit_code = 5


LOG_TAIL_LINES = 40  # how much of a failed build's log its cell keeps


class BuildFailed(Exception):
    """A single image build failed; recorded on its cell, the run goes on."""

    def __init__(self, message: str, log_tail: list[str]) -> None:
        super().__init__(message)
        self.log_tail = log_tail[-LOG_TAIL_LINES:]


class Terminated(BaseException):
    """SIGTERM: unwinds like Ctrl-C, so the running cell is recorded as interrupted."""

    exit_code = 143
