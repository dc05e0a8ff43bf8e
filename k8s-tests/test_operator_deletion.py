"""deletionPolicy: Retain keeps topics, volume and bucket and says so; Delete removes them."""

from __future__ import annotations

import pytest
from confluent_kafka.admin import AdminClient
from operator_harness import (
    Cluster,
    condition,
    handled,
    running_operator,
    sample,
    wait_for,
    wait_status,
)

from marketpulse.operator.settings import OperatorSettings
from marketpulse.storage.s3 import minio_client
from marketpulse_dev.localenv.kafka import KafkaServer
from marketpulse_dev.localenv.s3 import S3Server

pytestmark = [pytest.mark.k8s, pytest.mark.s3, pytest.mark.kafka]


def test_deleting_with_retain_keeps_topics_volume_and_bucket_and_says_so_in_an_event(
    cluster: Cluster, settings: OperatorSettings, namespace: str, s3_server: S3Server
) -> None:
    cluster.crd_set(strimzi="v1", monitoring=True)
    with running_operator(settings, namespace):
        cluster.apply_yaml(namespace, sample("synthetic-duckdb"))
        pipeline = wait_status(cluster, namespace, "demo", handled(1), "the first reconcile")
        assert "marketpulse.io/cleanup" in pipeline["metadata"]["finalizers"]
        cluster.delete_pipeline(namespace, "demo")
        wait_for(lambda: cluster.pipeline_gone(namespace, "demo"), timeout=20, what="the pipeline to go")
    # Garbage collection by the controller-manager removes what the pipeline still owns. On a control
    # plane this test is the first to give a StockPipeline CRD, the collector learns of the new kind
    # only at its next discovery (every 30 s), so allow for one of those beside the collection itself.
    wait_for(
        lambda: not cluster.apps.list_namespaced_deployment(namespace).items,
        timeout=90,
        what="Deployments to be garbage-collected",
    )
    topics = cluster.custom("kafka.strimzi.io/v1", "kafkatopics", namespace)
    claim = cluster.core.read_namespaced_persistent_volume_claim("demo-warehouse", namespace)
    events = cluster.events(namespace, "demo")

    assert sorted(t["metadata"]["name"] for t in topics) == ["demo-alerts", "demo-ticks", "demo-ticks-dlq"]
    assert all(not t["metadata"].get("ownerReferences") for t in topics)
    assert not claim.metadata.owner_references
    assert minio_client(s3_server.endpoint, s3_server.access_key, s3_server.secret_key).bucket_exists(
        pipeline["status"]["bucket"]
    )
    retained = [e for e in events if e.reason == "Retained"]
    assert retained
    assert "kept" in retained[0].message
    assert pipeline["status"]["bucket"] in retained[0].message


def test_direct_topics_exist_on_the_broker_grow_and_are_deleted_with_the_bucket_under_delete_policy(
    cluster: Cluster,
    settings: OperatorSettings,
    namespace: str,
    s3_server: S3Server,
    kafka_server: KafkaServer,
) -> None:
    cluster.crd_set(strimzi="v1", monitoring=True)
    document = sample("direct-topics")
    document["spec"]["kafka"]["bootstrapServers"] = kafka_server.bootstrap_servers
    admin = AdminClient({"bootstrap.servers": kafka_server.bootstrap_servers})
    s3 = minio_client(s3_server.endpoint, s3_server.access_key, s3_server.secret_key)
    ticks = f"{namespace}.fx-lab.ticks"

    def partitions() -> dict[str, int]:
        listed = admin.list_topics(timeout=5).topics
        return {n: len(t.partitions) for n, t in listed.items() if n.startswith(f"{namespace}.")}

    with running_operator(settings, namespace):
        cluster.apply_yaml(namespace, document)
        pipeline = wait_status(cluster, namespace, "fx-lab", handled(1), "the first reconcile")
        created = partitions()
        transform = cluster.apps.read_namespaced_deployment("fx-lab-transform", namespace)
        cluster.patch_spec(namespace, "fx-lab", {"kafka": {"partitions": 5}})
        wait_status(cluster, namespace, "fx-lab", handled(2), "the partition change")
        # Metadata reaches the broker we ask a moment after the controller commits the change.
        grown = wait_for(lambda: (found := partitions()).get(ticks) == 5 and found, what="5 partitions")
        cluster.delete_pipeline(namespace, "fx-lab")
        wait_for(lambda: cluster.pipeline_gone(namespace, "fx-lab"), timeout=30, what="the pipeline to go")
        after = partitions()

    assert created == {ticks: 3, f"{ticks}.dlq": 1, f"{namespace}.fx-lab.alerts": 1}
    assert condition(pipeline, "Topics")["status"] == "True"
    # The one test broker: the replication chosen for unset replicas is stated, and warned about.
    assert (
        "1 broker, replication factor 1, min.insync.replicas 1 (below 3"
        in condition(pipeline, "Topics")["message"]
    )
    assert transform.spec.strategy.type == "Recreate"
    assert transform.spec.replicas == 1
    assert grown[ticks] == 5
    assert after == {}
    assert not s3.bucket_exists(pipeline["status"]["bucket"])
    assert not cluster.custom("kafka.strimzi.io/v1", "kafkatopics", namespace)
