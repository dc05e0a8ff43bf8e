"""The pipeline's S3 bucket through the `minio` SDK: exists, versioned, bounded by lifecycle rules,
and carries an owner tag naming its pipeline.

Versioning is bucket-wide, so every overwrite keeps the old copy: `latest/quotes.json`, rewritten every
couple of seconds, would keep 43,200 versions a day, and each publish of `gold/` one more copy of every
table. Lifecycle rules bound them: bronze (current and old versions) expires after the spec's retention;
old versions of `latest/` and `gold/` expire a day after they were replaced, and so do interrupted
multipart uploads there (the current objects stay). The alternative, a second, unversioned bucket for
what is rewritten, would double the buckets, accounts and policies of every pipeline for the same effect.

A bucket is the pipeline's when its tag `OWNER_TAG` says `<namespace>/<name>`: the operator tags the
buckets it creates, and refuses to use a bucket another pipeline owns, or one that no pipeline owns
(unless the platform allows adopting those; an adopted bucket is never deleted).

Any S3 service works; where one refuses a bucket feature (versitygw answers NotImplemented for
lifecycle configuration), the outcome says so instead of failing the pipeline.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import urllib3
from minio import Minio
from minio.commonconfig import ENABLED, Filter, Tags
from minio.deleteobjects import DeleteObject
from minio.error import S3Error
from minio.lifecycleconfig import (
    AbortIncompleteMultipartUpload,
    Expiration,
    LifecycleConfig,
    NoncurrentVersionExpiration,
    Rule,
)
from minio.versioningconfig import VersioningConfig

from marketpulse.contract.layout import GOLD_PREFIX, LATEST_PREFIX
from marketpulse.operator.metrics import BACKEND_WRITES

RULE_ID = "marketpulse-bronze-retention"
LATEST_RULE_ID = "marketpulse-latest-old-versions"
GOLD_RULE_ID = "marketpulse-gold-old-versions"
# Days an overwritten quotes or gold object is kept: enough to read back a bad publish, not to pile up.
REWRITTEN_NONCURRENT_DAYS = 1
OWNER_TAG = "marketpulse.io/pipeline"
BRONZE_PREFIX = "bronze/"
_REFUSED = {"NotImplemented", "MethodNotAllowed", "XNotImplemented", "AccessDenied"}
TRANSIENT_ERRORS = (urllib3.exceptions.HTTPError, OSError)


class BucketNotOwnedError(Exception):
    """The bucket exists and is not the pipeline's to use."""


@dataclass(frozen=True)
class Ownership:
    """Who asks for the bucket, and what the platform lets them take over."""

    owner: str  # <namespace>/<name>
    # A bucket with no owner tag may be used (not deleted) when the platform allows adopting.
    adopt_unowned: bool = False
    # A bucket with no owner tag is this pipeline's own, made before buckets were tagged: tag it.
    claim_untagged: bool = False


@dataclass
class BucketOutcome:
    created: bool = False
    # The bucket carries this pipeline's owner tag (False: adopted, so never deleted).
    owned: bool = False
    # Features the server refused: feature -> the server's error code and message.
    refused: dict[str, str] = field(default_factory=dict)


def _refusal(exc: S3Error) -> str:
    # The code only: the message is the server's own text, not for a status anyone may read.
    return str(exc.code)


def owner_of(client: Minio, bucket: str) -> str | None:
    """The bucket's owner tag; None when it has none (or the server keeps no bucket tags)."""
    try:
        tags = client.get_bucket_tags(bucket)
    except S3Error as exc:
        if exc.code in ("NoSuchTagSet", "NoSuchTagSetError", *_REFUSED):
            return None
        raise
    return None if tags is None else tags.get(OWNER_TAG)


def _tag(client: Minio, bucket: str, owner: str) -> bool:
    tags = Tags.new_bucket_tags()
    tags[OWNER_TAG] = owner
    try:
        client.set_bucket_tags(bucket, tags)
    except S3Error as exc:
        if exc.code not in _REFUSED:
            raise
        return False
    BACKEND_WRITES.labels("s3", "tag_bucket").inc()
    return True


def _claim(client: Minio, bucket: str, ownership: Ownership, outcome: BucketOutcome) -> None:
    """Check (or, for a bucket just created, set) the owner tag; raise when it is not ours to use."""
    if outcome.created:
        outcome.owned = _tag(client, bucket, ownership.owner)
        if not outcome.owned:
            outcome.refused["tagging"] = "the server keeps no bucket tags"
        return
    owner = owner_of(client, bucket)
    if owner == ownership.owner:
        outcome.owned = True
    elif owner is not None:
        raise BucketNotOwnedError(f"bucket {bucket} belongs to the pipeline {owner}")
    elif ownership.claim_untagged:
        outcome.owned = _tag(client, bucket, ownership.owner)
    elif not ownership.adopt_unowned:
        raise BucketNotOwnedError(
            f"bucket {bucket} exists and was not created by this pipeline (it has no {OWNER_TAG} tag); "
            "choose another storage.bucket, or ask the platform team to allow adopting buckets"
        )


def ensure_bucket(client: Minio, bucket: str, retention_days: int, ownership: Ownership) -> BucketOutcome:
    """Create the bucket if missing (tagged as `ownership.owner`'s), refuse one that is not ours, and
    bring versioning and lifecycle in line; only writes on change."""
    outcome = BucketOutcome()
    if not client.bucket_exists(bucket):
        try:
            client.make_bucket(bucket)
            BACKEND_WRITES.labels("s3", "create_bucket").inc()
            outcome.created = True
        except S3Error as exc:
            if exc.code not in ("BucketAlreadyOwnedByYou",):
                raise
    _claim(client, bucket, ownership, outcome)
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
        current = client.get_bucket_lifecycle(bucket)
        wanted = merged_lifecycle(current, retention_days)
        if wanted is not None:
            client.set_bucket_lifecycle(bucket, wanted)
            BACKEND_WRITES.labels("s3", "lifecycle").inc()
    except S3Error as exc:
        if exc.code not in _REFUSED:
            raise
        outcome.refused["lifecycle"] = _refusal(exc)
    return outcome


def lifecycle_rules(retention_days: int) -> list[Rule]:
    """The pipeline's rules: bronze expires after its retention, old versions of what is rewritten
    (`latest/`, `gold/`) after a day; current quotes and gold stay."""
    rewritten = [
        Rule(
            ENABLED,
            rule_filter=Filter(prefix=prefix),
            rule_id=rule_id,
            # A delete marker with no versions left behind it is removed too.
            expiration=Expiration(expired_object_delete_marker=True),
            noncurrent_version_expiration=NoncurrentVersionExpiration(
                noncurrent_days=REWRITTEN_NONCURRENT_DAYS
            ),
            # Gold tables may be large enough for multipart uploads; a killed publish leaves parts.
            abort_incomplete_multipart_upload=AbortIncompleteMultipartUpload(
                days_after_initiation=REWRITTEN_NONCURRENT_DAYS
            ),
        )
        for prefix, rule_id in ((LATEST_PREFIX, LATEST_RULE_ID), (GOLD_PREFIX, GOLD_RULE_ID))
    ]
    bronze = Rule(
        ENABLED,
        rule_filter=Filter(prefix=BRONZE_PREFIX),
        rule_id=RULE_ID,
        expiration=Expiration(days=retention_days),
        noncurrent_version_expiration=NoncurrentVersionExpiration(noncurrent_days=retention_days),
    )
    return [bronze, *rewritten]


def merged_lifecycle(current: LifecycleConfig | None, retention_days: int) -> LifecycleConfig | None:
    """The bucket's lifecycle with the pipeline's rules in place and everyone else's kept; None when
    the bucket already has them (so an unchanged pipeline writes nothing)."""
    wanted = lifecycle_rules(retention_days)
    ours = {rule.rule_id for rule in wanted}
    rules = list(current.rules) if current else []
    present = {rule.rule_id: _signature(rule) for rule in rules if rule.rule_id in ours}
    if present == {rule.rule_id: _signature(rule) for rule in wanted}:
        return None
    return LifecycleConfig([*(r for r in rules if r.rule_id not in ours), *wanted])


def _signature(rule: Rule) -> tuple[object, ...]:
    """What a rule does, comparable (minio's classes have no equality); absent parts are None."""
    expiration, noncurrent = rule.expiration, rule.noncurrent_version_expiration
    abort = rule.abort_incomplete_multipart_upload
    return (
        rule.status,
        rule.rule_filter.prefix if rule.rule_filter else None,
        expiration.days if expiration else None,
        bool(expiration.expired_object_delete_marker) if expiration else False,
        noncurrent.noncurrent_days if noncurrent else None,
        abort.days_after_initiation if abort else None,
    )


def delete_bucket(client: Minio, bucket: str, owner: str) -> bool:
    """Remove every object version, then the bucket. False when there was no bucket; raises
    BucketNotOwnedError when the bucket's owner tag is not `owner` (an adopted or foreign bucket)."""
    if not client.bucket_exists(bucket):
        return False
    tagged = owner_of(client, bucket)
    if tagged != owner:
        raise BucketNotOwnedError(
            f"bucket {bucket} is not deleted: its owner tag is {tagged or 'missing'}, not {owner}"
        )
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
