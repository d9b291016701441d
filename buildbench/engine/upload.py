"""A build context sent as it is packed, the way `docker build` sends it: packing and sending
are part of the build time a user's `time docker build` sees.

The context packs itself (`BuildContext.pack`) in a thread into a pipe whose other end the
build reads: the classic builder's request body (chunked, through the Docker SDK) or the
BuildKit CLI's standard input. Nothing names a path on this machine, so remote engines work.
A context that fails to pack raises its own error, not the engine's complaint about a short tar.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

from buildbench.engine.builders import BuildContext

_CHUNK = 1024 * 1024


class _CountingWriter(io.BufferedWriter):
    """The pipe's write end, counting what went in."""

    written = 0

    def write(self, data: Any, /) -> int:
        self.written += len(data)
        return super().write(data)


class ContextUpload:
    """One sending of a context, timed from `started` (the build request's perf_counter)."""

    def __init__(self, context: BuildContext, started: float) -> None:
        self.context = context
        self.started = started
        self.seconds: float | None = None  # until packed and handed on whole
        self.bytes: int | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> int:
        """Start packing; the pipe's read end, which the caller reads (or hands to a child
        process) and closes: packing stops with a BrokenPipeError once nobody reads."""
        read, write = os.pipe()
        self._thread = threading.Thread(
            target=self._pack, args=(write,), name="buildbench-context", daemon=True
        )
        self._thread.start()
        return read

    def _pack(self, fd: int) -> None:
        out = _CountingWriter(io.FileIO(fd, "wb"), buffer_size=_CHUNK)  # closes fd
        try:
            self.context.pack(out)
            out.flush()
            self.seconds = time.perf_counter() - self.started
            self.bytes = out.written
        except BrokenPipeError:  # the reader went away: the build's own outcome says why
            pass
        except BaseException as exc:  # handed to the build's thread by finish()
            self._error = exc
        finally:
            with contextlib.suppress(OSError):  # a broken pipe's buffer cannot be flushed
                out.close()

    def finish(self) -> None:
        """Wait for the packing to end (the reader has closed its end, or read it all); raise
        what stopped it, if anything did."""
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error

    def chunks(self) -> Iterator[bytes]:
        """The packed context in chunks, packing as they are taken (a request body: chunked
        transfer encoding); started when the first is taken, stopped when the reader stops."""
        read = self.start()
        try:
            with open(read, "rb", buffering=0, closefd=False) as pipe:
                while chunk := pipe.read(_CHUNK):
                    yield chunk
        finally:
            os.close(read)
            self.finish()
