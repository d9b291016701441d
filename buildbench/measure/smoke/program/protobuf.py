"""The ONNX protobuf, read without `onnx` (the images have none): enough to count nodes."""

from __future__ import annotations


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
