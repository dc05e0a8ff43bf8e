"""The pipeline's backends: its S3 bucket (with the credentials from its Secret), its Kafka topics
with the direct backend, and the freshness read from the bucket.

Each answers with a `Check`: a backend that is down or refuses a feature is a condition of the
pipeline, never an exception out of the reconcile. What a remote server said reaches a Check only
as a short, sanitised reason (`reasons.short_reason`).
"""

from __future__ import annotations

import asyncio
import base64
import logging
from dataclasses import dataclass
from typing import Any

from minio import Minio
from minio.error import S3Error

from marketpulse.contract.api import StockPipeline
from marketpulse.contract.layout import GOLD_PREFIX, LATEST_PREFIX
from marketpulse.contract.topics import plan_topics
from marketpulse.contract.workloads import PipelineNames, bootstrap_servers
from marketpulse.operator.backends import buckets, topics
from marketpulse.operator.builders import BuildContext
from marketpulse.operator.freshness import QuotesUnreadableError, freshness_from_quotes, read_quotes
from marketpulse.operator.kube import KubeError, Ref
from marketpulse.operator.policy import endpoint_refusals, referenced_secrets, secret_refusal
from marketpulse.operator.reasons import short_reason
from marketpulse.operator.runtime import Runtime
from marketpulse.operator.status import Check
from marketpulse.storage.s3 import minio_client

Logger = logging.Logger | logging.LoggerAdapter[Any]


async def ensure_direct_topics(runtime: Runtime, pipeline: StockPipeline, ctx: BuildContext) -> Check:
    bootstrap = bootstrap_servers(pipeline.spec)
    plans = plan_topics(pipeline.spec, ctx.names)
    timeout = runtime.settings.kafka_timeout_seconds
    try:
        outcome = await runtime.blocking(
            lambda: topics.ensure_topics(runtime.admin(bootstrap), plans, timeout)
        )
    except Exception as exc:
        # Brokers down or unreachable: say so and retry; nothing about the spec is wrong.
        return Check.failed("KafkaUnavailable", f"Kafka at {bootstrap}: {short_reason(exc)}")
    parts = ", ".join(f"{name}: {count} partitions" for name, count in outcome.partitions.items())
    parts += f"; {outcome.durability()}"
    if outcome.larger:
        more = ", ".join(f"{n} has {c}" for n, c in outcome.larger.items())
        return Check.ok("PartitionsKept", f"{parts}; more than requested kept (never shrunk): {more}")
    return Check.ok("TopicsReady", parts)


async def secret_refusals(runtime: Runtime, pipeline: StockPipeline, names: PipelineNames) -> list[str]:
    """Why the pipeline may not use each Secret its spec names (its owner did not mark it for
    pipelines, or for this one); reads each Secret's metadata, never logs its data."""
    refs = referenced_secrets(pipeline.spec)
    found = await asyncio.gather(
        *(runtime.kube.get(Ref("v1", "Secret", names.namespace, name)) for _, name in refs)
    )
    refusals = (secret_refusal(f, n, obj, names.name) for (f, n), obj in zip(refs, found, strict=True))
    return [r for r in refusals if r is not None]


async def s3_credentials(runtime: Runtime, pipeline: StockPipeline, namespace: str) -> tuple[str, str]:
    """Access key and secret key for the pipeline's bucket: its credentialsSecret (when its owner
    marked it for pipelines), else the operator's."""
    storage, settings = pipeline.spec.storage, runtime.settings
    access, secret = settings.s3_access_key, settings.s3_secret_key
    if storage.credentials_secret is not None:
        creds = storage.credentials_secret
        found = await runtime.kube.get(Ref("v1", "Secret", namespace, creds.name))
        refusal = secret_refusal("spec.storage.credentialsSecret", creds.name, found, pipeline.metadata.name)
        if refusal is not None or found is None:
            raise KubeError(403, "SecretNotUsable", refusal or "")
        data = found.get("data") or {}
        try:
            access = base64.b64decode(data[creds.access_key_id_key]).decode()
            secret = base64.b64decode(data[creds.secret_access_key_key]).decode()
        except KeyError as exc:
            raise KubeError(
                422, "MissingKey", f"Secret {creds.name} has no key {exc.args[0]} (storage.credentialsSecret)"
            ) from None
    return access, secret


def _minio(runtime: Runtime, pipeline: StockPipeline, access: str, secret: str) -> Minio:
    storage, settings = pipeline.spec.storage, runtime.settings
    # The reconcile refuses such a spec before this; the check here keeps every path honest.
    refused = endpoint_refusals(pipeline.spec, settings.endpoint_policy())
    if storage.endpoint is not None and any(r.startswith("spec.storage.endpoint") for r in refused):
        raise EndpointRefusedError(refused[0])
    return minio_client(
        storage.endpoint or settings.s3_endpoint, access, secret, storage.region or settings.s3_region
    )


async def s3_client(runtime: Runtime, pipeline: StockPipeline, namespace: str) -> Minio:
    access, secret = await s3_credentials(runtime, pipeline, namespace)
    return _minio(runtime, pipeline, access, secret)


class EndpointRefusedError(Exception):
    """The spec names an endpoint the platform does not allow."""


@dataclass
class BucketResult:
    check: Check
    # Newest tick per watchlist symbol from the archive's quotes; None when it could not be read.
    freshness: list[dict[str, str]] | None = None
    # The S3 secret key the workloads may hold: never to appear in what their pods report.
    secrets: tuple[str, ...] = ()
    # The bucket is the pipeline's (created by it, or adopted as the platform allows).
    usable: bool = False
    # Usable, but adopted: no owner tag of this pipeline, so the operator neither deletes it nor
    # gives it a policy of its own.
    adopted: bool = False


def ownership(runtime: Runtime, pipeline: StockPipeline, names: PipelineNames) -> buckets.Ownership:
    return buckets.Ownership(
        owner=names.qualified,
        adopt_unowned=runtime.settings.adopt_unowned_buckets,
        # Only a bucket the operator recorded under the old naming rule, never one the spec names.
        claim_untagged=pipeline.spec.storage.bucket is None and names.bucket == names.legacy_bucket,
    )


async def ensure_bucket(
    runtime: Runtime, pipeline: StockPipeline, names: PipelineNames, logger: Logger
) -> BucketResult:
    retention = pipeline.spec.storage.retention_days
    try:
        access, secret = await s3_credentials(runtime, pipeline, names.namespace)
    except KubeError as exc:
        return BucketResult(Check.failed("CredentialsUnavailable", exc.message))
    secrets = (secret,)
    owner = ownership(runtime, pipeline, names)
    try:
        client = _minio(runtime, pipeline, access, secret)
        outcome = await runtime.blocking(
            lambda: buckets.ensure_bucket(client, names.bucket, retention, owner)
        )
    except EndpointRefusedError as exc:
        return BucketResult(Check.failed("EndpointRefused", str(exc)), secrets=secrets)
    except buckets.BucketNotOwnedError as exc:
        return BucketResult(Check.failed("BucketNotOwned", f"spec.storage.bucket: {exc}"), secrets=secrets)
    except S3Error as exc:
        return BucketResult(
            Check.failed("BucketFailed", f"bucket {names.bucket}: {short_reason(exc)}"), secrets=secrets
        )
    except Exception as exc:
        return BucketResult(
            Check.failed("S3Unavailable", f"bucket {names.bucket}: {short_reason(exc)}"), secrets=secrets
        )
    freshness = await read_freshness(runtime, client, pipeline, names, logger)
    return BucketResult(
        bucket_check(names.bucket, retention, outcome),
        freshness,
        secrets,
        usable=True,
        adopted=not outcome.owned,
    )


def bucket_check(bucket: str, retention_days: int, outcome: buckets.BucketOutcome) -> Check:
    """The Bucket condition of a usable bucket: what it guarantees, or which features the server refused
    and what is left unbounded without them (so that the platform team can act on it)."""
    adopted = "" if outcome.owned else "; adopted (no owner tag of this pipeline), so never deleted"
    if not outcome.refused:
        return Check.ok(
            "BucketReady",
            f"bucket {bucket}: versioning on, bronze expires after {retention_days} days, old versions of "
            f"{LATEST_PREFIX} and {GOLD_PREFIX} after {buckets.REWRITTEN_NONCURRENT_DAYS} day{adopted}",
        )
    refused = "; ".join(
        f"{feature} refused by the S3 server ({why})" for feature, why in outcome.refused.items()
    )
    reason = "FeatureNotSupported"
    if "lifecycle" in outcome.refused:
        reason = "LifecycleNotSupported"
        refused += (
            f"; so bronze does not expire after {retention_days} days, and old versions of {LATEST_PREFIX} "
            f"and {GOLD_PREFIX} pile up (one per quotes rewrite and gold publish)"
        )
    return Check.ok(reason, f"bucket {bucket} exists; {refused}{adopted}")


async def read_freshness(
    runtime: Runtime, client: Minio, pipeline: StockPipeline, names: PipelineNames, logger: Logger
) -> list[dict[str, str]] | None:
    """Freshness from the archive's quotes: [] before any, None (keep the last) when unreadable."""
    try:
        raw = await runtime.blocking(lambda: read_quotes(client, names.bucket))
        return [] if raw is None else freshness_from_quotes(raw, pipeline.spec.watchlist)
    except QuotesUnreadableError as exc:
        logger.warning("freshness not updated: bucket %s: %s", names.bucket, exc)
    except Exception as exc:  # S3 trouble is the Bucket condition's business; freshness just waits
        logger.debug("freshness not updated: bucket %s: %s", names.bucket, short_reason(exc))
    return None
