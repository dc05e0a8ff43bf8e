"""Any S3 service (MinIO, versitygw, AWS S3) through the `minio` SDK."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import urllib3
from minio import Minio
from minio.error import MinioException, S3Error, ServerError

from marketpulse.storage.object_store import ObjectInfo, StorageUnavailableError

_MISSING = {"NoSuchKey", "NoSuchObject"}


def minio_client(endpoint: str, access_key: str, secret_key: str, region: str = "us-east-1") -> Minio:
    parsed = urlparse(endpoint if "://" in endpoint else f"http://{endpoint}")
    if not parsed.hostname:
        raise ValueError(f"S3_ENDPOINT: {endpoint!r} is not a URL like http://host:port")
    # Short timeouts and no SDK-level retries: callers decide how to wait out an outage.
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=3, read=30), retries=urllib3.Retry(total=0), maxsize=10
    )
    return Minio(
        parsed.netloc,
        access_key=access_key,
        secret_key=secret_key,
        secure=parsed.scheme == "https",
        region=region,
        http_client=http,
    )


# Answers that say "not now" rather than "no": the caller pauses and tries again. NoSuchBucket is
# one mid-run (the operator re-creates a pipeline's bucket on its next reconcile); a full disk too.
_TRANSIENT_CODES = frozenset(
    {
        "InternalError",
        "ServiceUnavailable",
        "SlowDown",
        "RequestTimeout",
        "InsufficientStorage",
        "XMinioStorageFull",
        "NoSuchBucket",
    }
)


def _status(exc: MinioException) -> int | None:
    if isinstance(exc, S3Error):
        return exc.response.status if exc.response is not None else None
    if isinstance(exc, ServerError):
        return exc.status_code
    # A body that is not S3's XML (a load balancer's HTML page, or nothing): the SDK keeps the
    # status as the error's code and offers no accessor for it.
    code = getattr(exc, "_code", None)
    return code if isinstance(code, int) else None


def is_transient(exc: Exception) -> bool:
    """An S3 failure that waiting can cure: the network, throttling (503 SlowDown, 429), any 5xx
    whatever its body, and the codes above. Everything else (403, a bad request) is for the caller."""
    if isinstance(exc, (urllib3.exceptions.HTTPError, OSError)):
        return True
    if not isinstance(exc, MinioException):
        return False
    if isinstance(exc, S3Error) and exc.code in _TRANSIENT_CODES:
        return True
    status = _status(exc)
    return status is not None and (status >= 500 or status == 429)


@contextmanager
def _outage_is_unavailable() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        if is_transient(exc):
            raise StorageUnavailableError(f"S3 {exc.__class__.__name__}: {short(exc)}") from exc
        raise


def short(exc: Exception) -> str:
    """At most a line of what S3 (or whatever answered) said: an HTML page is not a log message."""
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:199] + "…"


class S3ObjectStore:
    def __init__(self, client: Minio, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        with _outage_is_unavailable():
            self.client.put_object(self.bucket, key, io.BytesIO(data), len(data), content_type=content_type)

    def get(self, key: str) -> bytes:
        with _outage_is_unavailable():
            response = self.client.get_object(self.bucket, key)
            try:
                return bytes(response.read())
            finally:
                # Read to the end, so the connection goes back to the pool; close() would drop it and
                # make every GET open a new TCP connection.
                response.release_conn()

    def download(self, key: str, path: Path) -> None:
        with _outage_is_unavailable():
            self.client.fget_object(self.bucket, key, str(path))

    def exists(self, key: str) -> bool:
        with _outage_is_unavailable():
            try:
                self.client.stat_object(self.bucket, key)
            except S3Error as exc:
                if exc.code in _MISSING:
                    return False
                raise
        return True

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        with _outage_is_unavailable():
            for item in self.client.list_objects(self.bucket, prefix=prefix, recursive=True):
                if item.object_name is not None and not item.is_dir:
                    yield ObjectInfo(item.object_name, item.size or 0)
