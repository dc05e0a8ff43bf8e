"""Any S3 service (MinIO, versitygw, AWS S3) through the `minio` SDK."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import urllib3
from minio import Minio
from minio.error import S3Error

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


_RETRYABLE_PUT_CODES = frozenset(
    {"InternalError", "ServiceUnavailable", "SlowDown", "InsufficientStorage", "XMinioStorageFull"}
)


class S3ObjectStore:
    def __init__(self, client: Minio, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    @staticmethod
    def _unavailable(exc: Exception) -> StorageUnavailableError:
        return StorageUnavailableError(f"S3 bucket {exc.__class__.__name__}: {exc}")

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        try:
            self.client.put_object(self.bucket, key, io.BytesIO(data), len(data), content_type=content_type)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._unavailable(exc) from exc
        except S3Error as exc:
            # A full disk is an outage too: the archive pauses and retries rather than crash.
            if exc.code in _RETRYABLE_PUT_CODES:
                raise self._unavailable(exc) from exc
            raise

    def get(self, key: str) -> bytes:
        try:
            response = self.client.get_object(self.bucket, key)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._unavailable(exc) from exc
        try:
            return bytes(response.read())
        finally:
            # Read to the end, so the connection goes back to the pool; close() would drop it and make
            # every GET open a new TCP connection.
            response.release_conn()

    def download(self, key: str, path: Path) -> None:
        try:
            self.client.fget_object(self.bucket, key, str(path))
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._unavailable(exc) from exc

    def exists(self, key: str) -> bool:
        try:
            self.client.stat_object(self.bucket, key)
        except S3Error as exc:
            if exc.code in _MISSING:
                return False
            raise
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._unavailable(exc) from exc
        return True

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        try:
            for item in self.client.list_objects(self.bucket, prefix=prefix, recursive=True):
                if item.object_name is not None and not item.is_dir:
                    yield ObjectInfo(item.object_name, item.size or 0)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._unavailable(exc) from exc
