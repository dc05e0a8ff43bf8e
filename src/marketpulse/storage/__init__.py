"""Object storage behind a small interface; one class per backend."""

from marketpulse.storage.object_store import ObjectInfo, ObjectStore, StorageUnavailableError
from marketpulse.storage.s3 import S3ObjectStore

__all__ = ["ObjectInfo", "ObjectStore", "S3ObjectStore", "StorageUnavailableError"]
