"""Short, sanitised reasons for what a remote server answered.

Status conditions and Events are read by everyone who may read the pipeline, and the servers a
spec points at are not trusted: their answers never reach the status beyond an error code and an
HTTP status, cleaned to a few printable characters (no bodies, no messages they chose).
"""

from __future__ import annotations

import re

import urllib3
from confluent_kafka import KafkaError, KafkaException
from minio.error import InvalidResponseError, S3Error, ServerError

MAX_REASON = 120
_UNSAFE = re.compile(r"[^A-Za-z0-9 ._:/()=,-]+")


def clean(text: str, limit: int = MAX_REASON) -> str:
    """Printable, single-line, at most `limit` characters."""
    cleaned = _UNSAFE.sub(" ", text).strip()
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 3].rstrip() + "..."


def _token(text: str | None) -> str:
    return clean(text or "unknown", 64).replace(" ", "")


def short_reason(exc: BaseException) -> str:
    """What went wrong, in terms this process chose, never the remote server's own words."""
    if isinstance(exc, S3Error):
        return f"S3 error {_token(exc.code)}"
    if isinstance(exc, InvalidResponseError | ServerError):
        status = getattr(exc, "_code", None) or getattr(exc, "_status_code", None) or "?"
        return f"the S3 server answered HTTP {_token(str(status))} without an S3 error document"
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        error: KafkaError = exc.args[0]
        return f"Kafka error {_token(error.name())}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
        # They describe this side of the connection (name resolution, refused, timeout) in the
        # library's words; cleaned and cut all the same.
        return clean(f"{type(exc).__name__}: {exc}")
    return type(exc).__name__
