"""An S3 object read as a stream of ranged GETs: memory is one window, whatever the object's size.

One GET per window, not one long download: a reader that paces itself (a replay at speed 1 lasts as
long as the market day it replays) holds no connection open between windows, so neither the server
nor a load balancer drops it midway. Every window is of the version first seen, so an object
rewritten meanwhile is not read half old, half new. A window that fails for a reason waiting can
cure (`is_transient`) is fetched again, with backoff, before the read gives up.
"""

from __future__ import annotations

import logging

import tenacity
from minio import Minio

from marketpulse.storage.object_store import StorageUnavailableError
from marketpulse.storage.s3 import is_transient, short

log = logging.getLogger(__name__)

WINDOW_BYTES = 4 << 20


class RangedObjectReader:
    """A read-only binary stream over `bucket/key` (its `read` and `close` are all a reader needs)."""

    def __init__(
        self, client: Minio, bucket: str, key: str, *, window: int = WINDOW_BYTES, attempts: int = 5
    ) -> None:
        self.client, self.bucket, self.key, self.window = client, bucket, key, window
        self._retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(lambda exc: isinstance(exc, Exception) and is_transient(exc)),
            stop=tenacity.stop_after_attempt(attempts),
            wait=tenacity.wait_exponential(multiplier=0.5, max=8),
            before_sleep=self._log_retry,
            reraise=True,
        )
        self._position = 0  # of the next window to fetch
        self._buffer = b""
        self._offset = 0  # into the buffer
        stat = self._retrying(client.stat_object, bucket, key)
        self.size = stat.size or 0
        self.version_id = stat.version_id

    def read(self, size: int = -1, /) -> bytes:
        """Up to `size` bytes (a window at most; -1: what is left of this window); b"" at the end."""
        if self._offset >= len(self._buffer):
            if self._position >= self.size:
                return b""
            self._buffer, self._offset = self._fetch(), 0
        end = len(self._buffer) if size < 0 else min(len(self._buffer), self._offset + size)
        data = self._buffer[self._offset : end]
        self._offset = end
        return data

    def _fetch(self) -> bytes:
        length = min(self.window, self.size - self._position)
        try:
            data = self._retrying(self._get, self._position, length)
        except Exception as exc:
            if is_transient(exc):
                raise StorageUnavailableError(f"s3://{self.bucket}/{self.key}: {short(exc)}") from exc
            raise
        if not data:
            raise StorageUnavailableError(
                f"s3://{self.bucket}/{self.key}: no bytes at offset {self._position} of {self.size}"
            )
        self._position += len(data)
        return data

    def _log_retry(self, state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        log.warning(
            "S3 read failed; retrying",
            extra={
                "object": f"s3://{self.bucket}/{self.key}",
                "offset": self._position,
                "error": short(error) if isinstance(error, Exception) else str(error),
                "attempt": state.attempt_number,
                "retry_in_s": round(state.upcoming_sleep, 3),
            },
        )

    def _get(self, offset: int, length: int) -> bytes:
        response = self.client.get_object(
            self.bucket, self.key, offset=offset, length=length, version_id=self.version_id
        )
        try:
            return bytes(response.read())
        finally:
            response.release_conn()

    def close(self) -> None:
        self._buffer = b""
