"""Tag, push and pull through the engine, each timed until the engine's stream ends."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
import docker.utils
import requests

from buildbench.errors import EngineUnavailable, RegistryError

log = logging.getLogger("buildbench")

# The engine closed or lost the connection in the middle of a push or pull stream.
_BROKEN_STREAM = (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError)


def tag(api: docker.APIClient, image_id: str, reference: str) -> None:
    """Name the local image `reference`, so that the engine can push it."""
    repository, tag_name = _split(reference)
    try:
        if not api.tag(image_id, repository, tag=tag_name):
            raise RegistryError(f"the engine did not tag {image_id} as {reference}")
    except docker.errors.APIError as exc:
        raise RegistryError(f"tagging {image_id} as {reference} failed: {_why(exc)}") from None


def untag(api: docker.APIClient, reference: str) -> None:
    """Remove the name `reference`; the image goes too if no other name holds it (a pull's)."""
    try:
        api.remove_image(reference)
    except docker.errors.NotFound:
        return
    except docker.errors.APIError as exc:
        raise RegistryError(f"removing {reference} failed: {_why(exc)}") from None


def push(
    api: docker.APIClient, reference: str, on_progress: Callable[[str], None] | None = None
) -> float:
    """Push `reference` (already tagged) and return the seconds until the engine's stream ends."""
    repository, tag_name = _split(reference)
    start = time.perf_counter()
    try:
        # With the tag explicit: without one, the engine pushes every tag of the repository.
        stream = api.push(repository, tag=tag_name, stream=True, decode=True)
        end = _follow(stream, f"push of {reference}", on_progress)
    except docker.errors.APIError as exc:
        raise _failed(f"push of {reference}", _why(exc)) from None
    except _BROKEN_STREAM as exc:
        raise _engine_went_away(f"push of {reference}", exc) from None
    seconds = time.perf_counter() - start
    # A stream that stops without the pushed digest was cut off, and its time means nothing.
    digest = end.aux.get("Digest")
    if not digest:
        raise RegistryError(f"push of {reference} ended without the registry's digest ({end})")
    log.debug("pushed %s (%s) in %.1f s", reference, digest, seconds)
    return seconds


def pull(
    api: docker.APIClient, reference: str, on_progress: Callable[[str], None] | None = None
) -> float:
    """Pull `reference` and return the seconds until the engine's stream ends.

    Layers the engine already holds (the base image's, usually) are not downloaded again.
    """
    start = time.perf_counter()
    try:
        stream = api.pull(reference, stream=True, decode=True)
        end = _follow(stream, f"pull of {reference}", on_progress)
    except docker.errors.APIError as exc:
        raise _failed(f"pull of {reference}", _why(exc)) from None
    except _BROKEN_STREAM as exc:
        raise _engine_went_away(f"pull of {reference}", exc) from None
    seconds = time.perf_counter() - start
    # The engine ends a complete pull with "Status: Downloaded newer image ..." or "... up to date".
    if not end.status.startswith("Status:"):
        raise RegistryError(f"pull of {reference} ended before the engine said it was done ({end})")
    log.debug("pulled %s in %.1f s", reference, seconds)
    return seconds


@dataclass(frozen=True)
class _StreamEnd:
    status: str  # the last status line
    aux: Mapping[str, Any]  # the last `aux` object: a push's Tag, Digest and Size


def _follow(
    stream: Iterable[Any], action: str, on_progress: Callable[[str], None] | None
) -> _StreamEnd:
    """Read a push/pull stream to its end and raise its error line, which docker-py does not."""
    status = ""
    aux: Mapping[str, Any] = {}
    errors: list[str] = []
    for event in stream:
        if not isinstance(event, dict):
            continue
        if "error" in event or "errorDetail" in event:
            # Read on to the end, so that the engine's connection is not left half read.
            detail = event.get("errorDetail") or {}
            errors.append(str(event.get("error") or detail.get("message") or event).strip())
            continue
        if isinstance(event.get("aux"), dict):
            aux = event["aux"]
        if "status" in event:
            status = str(event["status"])
            if on_progress is not None:
                on_progress(_progress_line(event))
    if errors:
        raise _failed(action, errors[0])
    return _StreamEnd(status, aux)


def _progress_line(event: Mapping[str, Any]) -> str:
    parts = [f"{event['id']}:" if event.get("id") else "", event["status"], event.get("progress")]
    return " ".join(str(part) for part in parts if part)


def _split(reference: str) -> tuple[str, str]:
    repository, tag_name = docker.utils.parse_repository_tag(reference)
    return repository, tag_name or "latest"


def _failed(action: str, why: str) -> RegistryError:
    """The engine's reason, on one line; a 405 is said plainly (the engine quotes the registry's
    unparsable answer to it, e.g. `error parsing HTTP 405 response body: ...`)."""
    log.debug("%s failed: %s", action, why)
    if re.search(r"\b405\b", why):
        why = "the registry answered HTTP 405 Method Not Allowed: it takes no pushes (read-only?)"
    return RegistryError(f"{action} failed: {' '.join(why.split())}")


def _engine_went_away(action: str, exc: Exception) -> EngineUnavailable:
    log.debug("%s: %r", action, exc)
    return EngineUnavailable(f"the Docker engine stopped answering during the {action}")


def _why(exc: docker.errors.APIError) -> str:
    return str(exc.explanation or exc)
