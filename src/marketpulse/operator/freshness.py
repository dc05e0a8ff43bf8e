"""Per-symbol freshness for the status: when each watchlist symbol last had a tick archived.

The archive keeps `latest/quotes.json` in the pipeline's bucket for the dashboard's live view;
the operator reads the same object when it reconciles. Times are kept to the second, as every
Kubernetes timestamp is, so a status write happens at most once per reconcile while ticks flow
and never while they do not.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from minio import Minio
from minio.error import S3Error

from marketpulse.contract.layout import QUOTES_KEY
from marketpulse.storage.bounded import ObjectTooLargeError, read_bounded

# The archive's snapshot holds at most 200 symbols of about 150 bytes: 64 KiB with room to spare.
# The bucket is the tenant's, so the object may be anything: it is read no further than this.
MAX_QUOTES_BYTES = 1024 * 1024


class QuotesUnreadableError(ValueError):
    """The quotes object exists but is not what the archive writes."""


def read_quotes(client: Minio, bucket: str) -> bytes | None:
    """The archive's quotes snapshot, or None before the archive has written one."""
    try:
        response = client.get_object(bucket, QUOTES_KEY)
    except S3Error as exc:
        if exc.code in ("NoSuchKey", "NoSuchBucket"):
            return None
        raise
    try:
        return read_bounded(response, MAX_QUOTES_BYTES)
    except ObjectTooLargeError as exc:
        raise QuotesUnreadableError(f"{QUOTES_KEY}: {exc}") from None
    finally:
        response.close()
        response.release_conn()


def freshness_from_quotes(raw: bytes, watchlist: Sequence[str]) -> list[dict[str, str]]:
    """One entry per watchlist symbol, with `lastTickTime` where the snapshot has one."""
    try:
        quotes = orjson.loads(raw)["quotes"]
        if not isinstance(quotes, dict):
            raise TypeError(f"'quotes' is a {type(quotes).__name__}, expected an object")
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise QuotesUnreadableError(f"{QUOTES_KEY}: not a quotes snapshot ({exc})") from None
    entries = []
    for symbol in watchlist:
        entry = {"symbol": symbol}
        quote = quotes.get(symbol)
        stamp = _to_second(quote.get("time")) if isinstance(quote, dict) else None
        if stamp is not None:
            entry["lastTickTime"] = stamp
        entries.append(entry)
    return entries


def _to_second(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
