"""Numbered lines of a byte stream in bounded memory, whatever the stream's size or its lines' length.

The stream is read a block at a time; a line is held whole only up to `max_bytes`. A longer line (a
runaway field, a file with no newlines, a gzip bomb) is not held: its first `keep` bytes are, and the
rest is counted and dropped as it streams past, so memory is about `max_bytes + block` however long.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from marketpulse.contract.dead_letters import MAX_VALUE_BYTES

BLOCK_BYTES = 1 << 20
# Far beyond any tick (about 150 bytes), and the size at which a dead letter has to be cut anyway.
MAX_LINE_BYTES = 1 << 20


class ByteStream(Protocol):
    """What the lines are read from: a file opened `rb`, a gzip reader, an S3 object reader."""

    def read(self, size: int = -1, /) -> bytes: ...
    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Line:
    number: int  # 1-based, counting every line of the stream, blank ones too
    data: bytes  # without its line end; for a line over the limit, only its first bytes
    size: int  # the whole line's length in bytes

    @property
    def too_long(self) -> bool:
        return self.size > len(self.data)


def _line(number: int, data: bytes, max_bytes: int, keep: int) -> Line:
    if data.endswith(b"\r"):  # CRLF files
        data = data[:-1]
    if len(data) > max_bytes:
        return Line(number, data[:keep], len(data))
    return Line(number, data, len(data))


def numbered_lines(
    stream: ByteStream,
    *,
    max_bytes: int = MAX_LINE_BYTES,
    keep: int = MAX_VALUE_BYTES,
    block: int = BLOCK_BYTES,
) -> Iterator[Line]:
    """Every line of `stream`, split on `\\n`; a last line without one is a line too."""
    number = 0
    pending = b""  # the start of a line whose end has not been read yet
    skipped: bytes | None = None  # the first `keep` bytes of an over-long line being dropped
    skipped_size = 0
    while chunk := stream.read(block):
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            number += 1
            if skipped is not None:
                yield Line(number, skipped, skipped_size + end - start)
                skipped = None
            else:
                yield _line(number, pending + chunk[start:end], max_bytes, keep)
                pending = b""
            start = end + 1
        if skipped is not None:
            skipped_size += len(chunk) - start
            continue
        pending += chunk[start:]
        if len(pending) > max_bytes:
            skipped, skipped_size, pending = pending[:keep], len(pending), b""
    if skipped is not None:
        yield Line(number + 1, skipped, skipped_size)
    elif pending:
        yield _line(number + 1, pending, max_bytes, keep)
