"""deletionPolicy, enforced before the finalizer lets a pipeline go.

Delete: the workloads are stopped first (their Deployments and CronJobs deleted, their pods waited
for), so that no running ingest recreates a topic or writes into a bucket being removed; then topics,
bucket and warehouse volume are removed. Retain: they are released from the pipeline
(ownerReferences dropped) so that garbage collection of the rest leaves them alone.

A step that fails raises `CleanupFailedError`, which says whether trying again can help: the handler
retries a bounded number of times (`cleanup_budget`) and then lets the pipeline go, keeping what is
left and saying so, so that a namespace never hangs in Terminating because of MarketPulse.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from minio.error import S3Error

from marketpulse.contract.api import StockPipeline
from marketpulse.contract.workloads import PipelineNames, bootstrap_servers
from marketpulse.operator import kafka_access, s3_accounts
from marketpulse.operator.backends import buckets, topics
from marketpulse.operator.children import list_pods, prune
from marketpulse.operator.deletion_budget import CleanupFailedError, WorkloadsStopping
from marketpulse.operator.kube import KubeError, Ref
from marketpulse.operator.policy import endpoint_refusals
from marketpulse.operator.provision import s3_client
from marketpulse.operator.reasons import short_reason
from marketpulse.operator.reconcile import parse
from marketpulse.operator.runtime import Runtime
from marketpulse.runtime.faults import failpoint

# What runs the pipeline's code: stopped before its data is deleted.
# (Jobs belong to the CronJob and go with it, by garbage collection.)
WORKLOAD_KINDS = (("apps/v1", "Deployment"), ("batch/v1", "CronJob"))
# S3 answers that no retry changes: the credentials are wrong or lack the right.
_DENIED = frozenset({"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled"})
_KAFKA_DENIED = frozenset(
    {
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.SASL_AUTHENTICATION_FAILED,
    }
)


@dataclass
class Cleanup:
    deleted: list[str] = field(default_factory=list)
    retained: list[str] = field(default_factory=list)


def deleting_for(body: Mapping[str, Any], now: datetime | None = None) -> float:
    """Seconds since the pipeline was marked for deletion."""
    stamp = (body.get("metadata") or {}).get("deletionTimestamp")
    if not stamp:
        return 0.0
    since = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    return max(0.0, ((now or datetime.now(UTC)) - since).total_seconds())


async def cleanup(runtime: Runtime, body: Mapping[str, Any]) -> Cleanup:
    """Delete or release the pipeline's data, as its deletionPolicy says; what was done, by name."""
    pipeline = parse(body)
    ctx = runtime.context(pipeline, (body.get("status") or {}).get("bucket"))
    delete = pipeline.spec.deletion_policy == "Delete"
    if delete:
        await stop_workloads(runtime, ctx.names, body)
    # Whatever the policy, and before the data (whose cleanup may be given up on): kept topics and
    # buckets are data, the pipeline's logins to them are not.
    await s3_accounts.remove(runtime, pipeline, ctx.names, str(body["metadata"].get("uid", "")))
    removed = await kafka_access.remove_principal(runtime, pipeline, ctx.names)
    done = await (delete_data if delete else release_data)(runtime, pipeline, ctx.names)
    done.deleted[:0] = removed
    return done


async def stop_workloads(runtime: Runtime, names: PipelineNames, body: Mapping[str, Any]) -> None:
    """Delete the pipeline's Deployments and CronJobs; raise WorkloadsStopping while any of
    their pods still runs, up to the budget's stop timeout (a pod on a lost node never reports
    that it stopped, and it runs nothing)."""
    uid = body["metadata"]["uid"]
    await prune(runtime.kube, names, uid, [], WORKLOAD_KINDS)
    running = [
        p["metadata"]["name"]
        for p in await list_pods(runtime.kube, names)
        if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
    ]
    if running and deleting_for(body) < runtime.settings.cleanup_budget().stop_timeout_seconds:
        raise WorkloadsStopping(
            f"waiting for {len(running)} pod(s) to stop: {', '.join(sorted(running)[:5])}"
        )


def _data_children(runtime: Runtime, pipeline: StockPipeline, names: PipelineNames) -> list[Ref]:
    spec, version = pipeline.spec, runtime.capabilities.kafka_topic_version
    refs: list[Ref] = []
    if spec.kafka.topic_backend == "strimzi" and version:
        refs += [Ref(version, "KafkaTopic", names.namespace, names.topic_object(t)) for t in names.topics]
    if spec.warehouse.type == "duckdb":
        refs.append(Ref("v1", "PersistentVolumeClaim", names.namespace, names.warehouse_claim))
    return refs


async def delete_data(runtime: Runtime, pipeline: StockPipeline, names: PipelineNames) -> Cleanup:
    spec, done = pipeline.spec, Cleanup()
    for ref in _data_children(runtime, pipeline, names):
        if await runtime.kube.delete(ref):
            done.deleted.append(f"{ref.kind} {ref.name}")
    if endpoint_refusals(spec, runtime.settings.endpoint_policy()):
        # Never contact an endpoint the platform does not allow, not even to delete.
        done.retained.append(f"topics and bucket {names.bucket} (an endpoint is not allowed)")
        return done
    if spec.kafka.topic_backend == "direct":
        bootstrap = bootstrap_servers(spec)
        admin = runtime.admin(bootstrap)
        timeout = runtime.settings.kafka_timeout_seconds
        try:
            gone = await runtime.blocking(lambda: topics.delete_topics(admin, names.topics, timeout))
        except KafkaException as exc:
            raise kafka_failure(bootstrap, exc) from None
        except Exception as exc:  # the broker unreachable: it may come back
            raise CleanupFailedError(
                "KafkaUnavailable", f"Kafka at {bootstrap}: {short_reason(exc)}", permanent=False
            ) from None
        done.deleted += [f"topic {t}" for t in gone]
    failpoint("operator.delete.before-bucket")  # a crash here leaves the deletion half done
    try:
        client = await s3_client(runtime, pipeline, names.namespace)
    except KubeError as exc:
        raise CleanupFailedError(
            "CredentialsUnavailable",
            f"bucket {names.bucket}: {exc.message or exc.reason}",
            permanent=exc.status in (403, 404, 422),
            remedy="restore the Secret named in spec.storage.credentialsSecret",
        ) from None
    try:
        if await runtime.blocking(lambda: buckets.delete_bucket(client, names.bucket, names.qualified)):
            done.deleted.append(f"bucket {names.bucket}")
    except buckets.BucketNotOwnedError as exc:
        done.retained.append(f"bucket {names.bucket} ({exc})")
    except S3Error as exc:
        raise CleanupFailedError(
            "AccessDenied" if exc.code in _DENIED else "StorageError",
            f"bucket {names.bucket}: {short_reason(exc)}",
            permanent=exc.code in _DENIED,
            remedy="give the pipeline's S3 credentials the right to empty and delete its bucket",
        ) from None
    except Exception as exc:  # the S3 server unreachable or answering 5xx: it may come back
        raise CleanupFailedError(
            "StorageUnavailable", f"bucket {names.bucket}: {short_reason(exc)}", permanent=False
        ) from None
    return done


def kafka_failure(bootstrap: str, exc: KafkaException) -> CleanupFailedError:
    error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
    denied = error is not None and error.code() in _KAFKA_DENIED
    return CleanupFailedError(
        "KafkaAccessDenied" if denied else "KafkaUnavailable",
        f"Kafka at {bootstrap}: {short_reason(exc)}",
        permanent=denied,
        remedy="let the operator's Kafka principal delete the pipeline's topics",
    )


async def release_data(runtime: Runtime, pipeline: StockPipeline, names: PipelineNames) -> Cleanup:
    done = Cleanup()
    for ref in _data_children(runtime, pipeline, names):
        try:
            await runtime.kube.merge_patch(ref, {"metadata": {"ownerReferences": None}})
            done.retained.append(f"{ref.kind} {ref.name}")
        except KubeError as exc:
            if exc.status != 404:
                raise
    if pipeline.spec.kafka.topic_backend == "direct":
        done.retained += [f"topic {t}" for t in names.topics]
    done.retained.append(f"bucket {names.bucket}")
    return done


async def left_behind(runtime: Runtime, body: Mapping[str, Any]) -> list[str]:
    """What a Delete that was given up on may have left: the data children that still exist, and
    the topics and bucket it could not be sure of."""
    pipeline = parse(body)
    names = runtime.context(pipeline, (body.get("status") or {}).get("bucket")).names
    kept = []
    for ref in _data_children(runtime, pipeline, names):
        try:
            if await runtime.kube.get(ref) is not None:
                kept.append(f"{ref.kind} {ref.name}")
        except KubeError:  # cannot tell: say it may be there
            kept.append(f"{ref.kind} {ref.name}")
    if pipeline.spec.kafka.topic_backend == "direct":
        kept += [f"topic {t}" for t in names.topics]
    return [*kept, f"bucket {names.bucket}"]
