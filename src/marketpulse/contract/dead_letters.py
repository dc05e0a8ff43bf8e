"""Dead letters: what ingest and the archive put on the dead-letter topic, and how big it may be.

A dead letter carries the refused record and why. A record can be of any size (a replay line, or
whatever a foreign producer wrote with a raised topic limit), and a reason may quote part of it, so
both are cut to fit well under the smallest message limit in the path (1 MB: librdkafka's
`message.max.bytes` and the broker's default). A cut value keeps its first bytes and says so in the
`truncated` header (its original size), so a dead letter is always deliverable and never stops the flow.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import orjson

MAX_VALUE_BYTES = 512 * 1024
MAX_KEY_BYTES = 256
MAX_REASON_CHARS = 400
TRUNCATED_HEADER = "truncated"
ELLIPSIS = "…"

# As confluent-kafka's produce() types them.
Headers = list[tuple[str, str | bytes | None]]


@dataclass(frozen=True)
class DeadLetter:
    key: bytes | None
    value: bytes
    headers: Headers


def bounded_reason(reason: str) -> str:
    if len(reason) <= MAX_REASON_CHARS:
        return reason
    return reason[: MAX_REASON_CHARS - len(ELLIPSIS)] + ELLIPSIS


def dead_letter(
    value: bytes | None,
    key: bytes | None,
    reason: str,
    stage: str,
    headers: Headers | None = None,
    *,
    size: int | None = None,
) -> DeadLetter:
    """The record refused at `stage` for `reason`, cut to fit; `headers` say where it was read.
    `size`: the record's whole size when `value` is already only its start (a source that could not
    hold it), so that the `truncated` header still tells the original size."""
    raw = value or b""
    out: Headers = [("error", bounded_reason(reason).encode()), ("stage", stage.encode()), *(headers or [])]
    whole = len(raw) if size is None else max(size, len(raw))
    if whole > len(raw) or len(raw) > MAX_VALUE_BYTES:
        out.append((TRUNCATED_HEADER, str(whole).encode()))
        raw = raw[:MAX_VALUE_BYTES]
    if key is not None and len(key) > MAX_KEY_BYTES:
        key = key[:MAX_KEY_BYTES]
    return DeadLetter(key, raw, out)


def archived_line(
    key: bytes | None,
    value: bytes | None,
    headers: Headers,
    *,
    partition: int,
    offset: int,
    timestamp_ms: int,
) -> bytes:
    """One dead letter as a line of its bronze object (`layout.DEAD_LETTERS_PREFIX`): where it sat in
    the dead-letter topic, its headers (why, from which stage, from where), and its key and value,
    as text when they are UTF-8 and in base64 otherwise, so that every byte can be recovered."""
    line: dict[str, object] = {
        "partition": partition,
        "offset": offset,
        "timestamp_ms": timestamp_ms,
        "headers": {name: _text(raw) for name, raw in headers},
    }
    for field, raw in (("key", key), ("value", value)):
        if raw is None:
            line[field] = None
            continue
        try:
            line[field] = raw.decode()
        except UnicodeDecodeError:
            line[f"{field}_base64"] = base64.b64encode(raw).decode()
    return orjson.dumps(line)


def _text(raw: str | bytes | None) -> str | None:
    if raw is None or isinstance(raw, str):
        return raw
    return raw.decode(errors="replace")
