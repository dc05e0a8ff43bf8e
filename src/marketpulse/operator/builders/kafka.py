"""The pipeline's Kafka topics (as Strimzi KafkaTopics or as plans for the admin API) and KafkaUser."""

from __future__ import annotations

from typing import Any

from marketpulse.contract.api import StockPipelineSpec
from marketpulse.contract.topics import TopicPlan
from marketpulse.contract.workloads import KAFKA_PASSWORD_KEY
from marketpulse.operator.builders.context import BuildContext, object_meta

STRIMZI_CLUSTER_LABEL = "strimzi.io/cluster"


def build_topic_kafkatopic(plan: TopicPlan, spec: StockPipelineSpec, ctx: BuildContext) -> dict[str, Any]:
    names = ctx.names
    topic_spec: dict[str, Any] = {
        "topicName": plan.name,
        "partitions": plan.partitions,
        "config": dict(plan.config),
    }
    if plan.replicas is not None:
        topic_spec["replicas"] = plan.replicas
    return {
        "apiVersion": ctx.capabilities.kafka_topic_version,
        "kind": "KafkaTopic",
        "metadata": {
            "name": names.topic_object(plan.name),
            "namespace": names.namespace,
            "labels": {**names.labels("kafka"), STRIMZI_CLUSTER_LABEL: spec.kafka.cluster_name},
        },
        "spec": topic_spec,
    }


def build_pipeline_kafkauser(spec: StockPipelineSpec, ctx: BuildContext) -> dict[str, Any]:
    """A SCRAM user allowed exactly the pipeline's topics and its consumer groups, nothing else."""
    names = ctx.names
    topic_acls = [
        {
            "type": "allow",
            "resource": {"type": "topic", "name": topic, "patternType": "literal"},
            "operations": ["Read", "Write", "Describe"],
        }
        for topic in names.topics
    ]
    group_acl = {
        "type": "allow",
        "resource": {"type": "group", "name": names.consumer_group_prefix, "patternType": "prefix"},
        "operations": ["Read", "Describe"],
    }
    return {
        "apiVersion": ctx.capabilities.kafka_user_version,
        "kind": "KafkaUser",
        "metadata": {
            "name": names.kafka_user,
            "namespace": names.namespace,
            "labels": {**names.labels("kafka"), STRIMZI_CLUSTER_LABEL: spec.kafka.cluster_name},
        },
        "spec": {
            "authentication": {"type": "scram-sha-512"},
            "authorization": {"type": "simple", "acls": [*topic_acls, group_acl]},
        },
    }


def build_pipeline_kafka_secret(ctx: BuildContext, password: str) -> dict[str, Any]:
    """The direct backend's SCRAM password, which the workloads read by secretKeyRef. Created once
    and never applied again: the broker keeps only a salted hash, so a new password means a new login."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": object_meta(ctx.names.kafka_secret, ctx, "kafka"),
        "type": "Opaque",
        "stringData": {KAFKA_PASSWORD_KEY: password},
    }
