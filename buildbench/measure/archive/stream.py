"""The archive read once, front to back, as the engine streams it: its chunks as a file for
`tarfile` (`ChunkStream`), a member's data read straight from it (`Member`), and a layer's bytes
teed to a sink as `tarfile` walks them (`Tee`)."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

ProgressCallback = Callable[[int], None]

PIECE = 1024 * 1024  # the tee takes the archive in pieces that tile the 8 MiB blocks exactly
_PROGRESS_STEP = 8 * 1024 * 1024


class Pieces(io.RawIOBase):
    """Byte strings read once, front to back, as a file: `read`, and `seek` forward only, so
    that `tarfile` in random-access mode skips a member's data by moving an offset instead of
    copying it through a stream buffer (most of an archive's bytes are file data)."""

    def __init__(self) -> None:
        super().__init__()
        self._piece = b""
        self._offset = 0
        self._passed = 0  # bytes in the pieces before this one

    def _next_piece(self) -> bytes:
        """The next piece; b"" at the end."""
        raise NotImplementedError

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._passed + self._offset

    def seek(self, offset: int, whence: int = io.SEEK_SET, /) -> int:
        target = offset if whence == io.SEEK_SET else self.tell() + offset
        if whence not in (io.SEEK_SET, io.SEEK_CUR) or target < self.tell():
            raise io.UnsupportedOperation("a stream read once only seeks forward")
        while target > self._passed + len(self._piece) and self._advance():
            pass
        self._offset = min(target - self._passed, len(self._piece))
        return self.tell()

    def read(self, size: int = -1, /) -> bytes:
        if size < 0:
            return b"".join(iter(lambda: self.read(PIECE), b""))
        parts = []
        while size > 0 and (self._offset < len(self._piece) or self._advance()):
            # Slicing at an offset, not chopping the piece's front off: no quadratic copying.
            data = self._piece[self._offset : self._offset + size]
            self._offset += len(data)
            size -= len(data)
            parts.append(data)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def drain(self) -> None:
        """Read to the end (what follows a tar's end marker: its zero padding)."""
        self._offset = len(self._piece)
        while self._advance():
            self._offset = len(self._piece)

    def _advance(self) -> bool:
        self._passed += len(self._piece)
        self._piece, self._offset = self._next_piece(), 0
        return bool(self._piece)


class ChunkStream(Pieces):
    """The `docker save` chunks as a file for `tarfile`, counting bytes for `on_progress`."""

    def __init__(self, chunks: Iterable[bytes], on_progress: ProgressCallback | None) -> None:
        super().__init__()
        self._chunks: Iterator[bytes] = iter(chunks)
        self._read = 0
        self._reported = 0
        self._on_progress = on_progress

    def drain(self) -> None:
        super().drain()
        if self._on_progress is not None and self._reported != self._read:
            self._on_progress(self._read)

    def _next_piece(self) -> bytes:
        for chunk in self._chunks:
            if not chunk:
                continue  # an empty chunk is not the end
            self._read += len(chunk)
            if self._on_progress is not None and self._read - self._reported >= _PROGRESS_STEP:
                self._reported = self._read
                self._on_progress(self._read)
            return chunk
        return b""


class Reader(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class Member:
    """A regular member's data, read straight from the archive: no buffer between."""

    def __init__(self, stream: ChunkStream, start: int, size: int) -> None:
        self._stream = stream
        self._start = start
        self._size = size
        self._position = 0

    def read(self, size: int = -1, /) -> bytes:
        left = self._size - self._position
        self._stream.seek(self._start + self._position)
        data = self._stream.read(left if size < 0 else min(size, left))
        self._position += len(data)
        return data


class Sink(Protocol):
    def feed(self, data: bytes) -> None: ...

    def close(self) -> None: ...


class Tee(Pieces):
    """A layer blob as `tarfile` reads it; every byte is also fed to `sink`, in 1 MiB pieces."""

    def __init__(self, source: Reader, head: bytes, sink: Sink) -> None:
        super().__init__()
        self._source = source
        self._head: bytes | None = head
        self._sink = sink

    def drain(self) -> None:
        """Feed the rest of the blob (what follows the tar's end marker) to the sink."""
        super().drain()
        self._sink.close()

    def _next_piece(self) -> bytes:
        if self._head is not None:
            # The sniffed head and the rest of its piece: later pieces stay block-aligned.
            piece = self._head + self._source.read(PIECE - len(self._head))
            self._head = None
        else:
            piece = self._source.read(PIECE)
        if piece:
            self._sink.feed(piece)
        return piece
