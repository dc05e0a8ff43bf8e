"""deletionPolicy, enforced before the finalizer lets a pipeline go.

Delete: topics, bucket and warehouse volume are removed. Retain: they are released from the
pipeline (ownerReferences dropped) so that garbage collection of the rest leaves them alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from marketpulse.contract.workloads import bootstrap_servers
from marketpulse.operator.backends import buckets, topics
from marketpulse.operator.kube import KubeError, Ref
from marketpulse.operator.policy import endpoint_refusals
from marketpulse.operator.provision import s3_client
from marketpulse.operator.reconcile import parse
from marketpulse.operator.runtime import Runtime


@dataclass
class Cleanup:
    deleted: list[str] = field(default_factory=list)
    retained: list[str] = field(default_factory=list)


async def cleanup(runtime: Runtime, body: Mapping[str, Any]) -> Cleanup:
    """Delete or release the pipeline's data, as its deletionPolicy says; what was done, by name."""
    pipeline = parse(body)
    spec = pipeline.spec
    ctx = runtime.context(pipeline, (body.get("status") or {}).get("bucket"))
    names = ctx.names
    done = Cleanup()
    data_children: list[Ref] = []
    if spec.kafka.topic_backend == "strimzi" and runtime.capabilities.kafka_topic_version:
        version = runtime.capabilities.kafka_topic_version
        data_children += [
            Ref(version, "KafkaTopic", names.namespace, names.topic_object(t)) for t in names.topics
        ]
    if spec.warehouse.type == "duckdb":
        data_children.append(Ref("v1", "PersistentVolumeClaim", names.namespace, names.warehouse_claim))

    if spec.deletion_policy == "Delete":
        for ref in data_children:
            if await runtime.kube.delete(ref):
                done.deleted.append(f"{ref.kind} {ref.name}")
        if endpoint_refusals(spec, runtime.settings.endpoint_policy()):
            # Never contact an endpoint the platform does not allow, not even to delete.
            done.retained.append(f"topics and bucket {names.bucket} (an endpoint is not allowed)")
            return done
        if spec.kafka.topic_backend == "direct":
            admin = runtime.admin(bootstrap_servers(spec))
            timeout = runtime.settings.kafka_timeout_seconds
            gone = await runtime.blocking(lambda: topics.delete_topics(admin, names.topics, timeout))
            done.deleted += [f"topic {t}" for t in gone]
        client = await s3_client(runtime, pipeline, names.namespace)
        try:
            if await runtime.blocking(lambda: buckets.delete_bucket(client, names.bucket, names.qualified)):
                done.deleted.append(f"bucket {names.bucket}")
        except buckets.BucketNotOwnedError as exc:
            done.retained.append(f"bucket {names.bucket} ({exc})")
        return done

    for ref in data_children:
        try:
            await runtime.kube.merge_patch(ref, {"metadata": {"ownerReferences": None}})
            done.retained.append(f"{ref.kind} {ref.name}")
        except KubeError as exc:
            if exc.status != 404:
                raise
    if spec.kafka.topic_backend == "direct":
        done.retained += [f"topic {t}" for t in names.topics]
    done.retained.append(f"bucket {names.bucket}")
    return done
