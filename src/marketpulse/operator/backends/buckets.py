"""The pipeline's S3 bucket through the `minio` SDK: exists, versioned, bronze expires by lifecycle.

Any S3 service works; where one refuses a bucket feature (versitygw answers NotImplemented for
lifecycle configuration), the outcome says so instead of failing the pipeline.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import urllib3
from minio import Minio
from minio.commonconfig import ENABLED, Filter
from minio.deleteobjects import DeleteObject
from minio.error import S3Error
from minio.lifecycleconfig import Expiration, LifecycleConfig, NoncurrentVersionExpiration, Rule
from minio.versioningconfig import VersioningConfig

from marketpulse.operator.metrics import BACKEND_WRITES

RULE_ID = "marketpulse-bronze-retention"
BRONZE_PREFIX = "bronze/"
_REFUSED = {"NotImplemented", "MethodNotAllowed", "XNotImplemented", "AccessDenied"}
TRANSIENT_ERRORS = (urllib3.exceptions.HTTPError, OSError)


@dataclass
class BucketOutcome:
    created: bool = False
    # Features the server refused: feature -> the server's error code and message.
    refused: dict[str, str] = field(default_factory=dict)


def _refusal(exc: S3Error) -> str:
    return f"{exc.code}: {exc.message}" if exc.message else str(exc.code)


def ensure_bucket(client: Minio, bucket: str, retention_days: int) -> BucketOutcome:
    """Create the bucket if missing and bring versioning and lifecycle in line; only writes on change."""
    outcome = BucketOutcome()
    if not client.bucket_exists(bucket):
        try:
            client.make_bucket(bucket)
            BACKEND_WRITES.labels("s3", "create_bucket").inc()
            outcome.created = True
        except S3Error as exc:
            if exc.code not in ("BucketAlreadyOwnedByYou",):
                raise
    # Versioning: an overwritten or deleted bronze object can still be recovered.
    try:
        if client.get_bucket_versioning(bucket).status != ENABLED:
            client.set_bucket_versioning(bucket, VersioningConfig(ENABLED))
            BACKEND_WRITES.labels("s3", "versioning").inc()
    except S3Error as exc:
        if exc.code not in _REFUSED:
            raise
        outcome.refused["versioning"] = _refusal(exc)
    try:
        wanted = Rule(
            ENABLED,
            rule_filter=Filter(prefix=BRONZE_PREFIX),
            rule_id=RULE_ID,
            expiration=Expiration(days=retention_days),
            noncurrent_version_expiration=NoncurrentVersionExpiration(noncurrent_days=retention_days),
        )
        current = client.get_bucket_lifecycle(bucket)
        others = [r for r in (current.rules if current else []) if r.rule_id != RULE_ID]
        ours = [r for r in (current.rules if current else []) if r.rule_id == RULE_ID]
        if not ours or _days(ours[0]) != retention_days:
            client.set_bucket_lifecycle(bucket, LifecycleConfig([*others, wanted]))
            BACKEND_WRITES.labels("s3", "lifecycle").inc()
    except S3Error as exc:
        if exc.code not in _REFUSED:
            raise
        outcome.refused["lifecycle"] = _refusal(exc)
    return outcome


def _days(rule: Rule) -> int | None:
    return rule.expiration.days if rule.expiration is not None else None


def delete_bucket(client: Minio, bucket: str) -> bool:
    """Remove every object version, then the bucket. False when there was no bucket."""
    if not client.bucket_exists(bucket):
        return False
    while True:
        batch = [
            DeleteObject(o.object_name or "", o.version_id)
            for o in itertools.islice(client.list_objects(bucket, recursive=True, include_version=True), 1000)
        ]
        if not batch:
            break
        errors = list(client.remove_objects(bucket, batch))
        if errors:
            raise RuntimeError(f"could not empty bucket {bucket}: {errors[0]}")
    client.remove_bucket(bucket)
    BACKEND_WRITES.labels("s3", "delete_bucket").inc()
    return True
