"""The status follows the world without waiting for the periodic reconcile: the archive's newest
ticks, a topic that Strimzi reports Ready, a child that someone deleted."""

from __future__ import annotations

import io

import pytest
from operator_harness import (
    Cluster,
    condition,
    handled,
    histogram_count,
    operator_settings,
    running_operator,
    sample,
    wait_for,
    wait_status,
)

from marketpulse.archive.quotes import QuoteBook
from marketpulse.contract.layout import QUOTES_KEY
from marketpulse.operator.metrics import (
    DURATION,
)
from marketpulse.storage.s3 import minio_client
from marketpulse_dev.localenv.s3 import S3Server
from marketpulse_dev.pytest_plugin import KubeTarget

pytestmark = [pytest.mark.k8s, pytest.mark.s3, pytest.mark.kafka]


def test_the_status_reports_each_symbols_newest_archived_tick_and_keeps_it_over_a_bad_snapshot(
    cluster: Cluster, kube: KubeTarget, s3_server: S3Server, namespace: str
) -> None:
    cluster.crd_set(strimzi="v1", monitoring=True)
    fast = operator_settings(kube, s3_server, resync_seconds=0.3)
    s3 = minio_client(s3_server.endpoint, s3_server.access_key, s3_server.secret_key)

    def put_quotes(data: bytes) -> None:
        s3.put_object(bucket, QUOTES_KEY, io.BytesIO(data), len(data))

    book = QuoteBook()
    book.update({"symbol": "AAPL", "price": 190.0, "size": 5, "event_time": "2026-11-26T14:30:00.250000Z"})
    book.update({"symbol": "NVDA", "price": 480.0, "size": 1, "event_time": "2026-11-26T14:29:59.999999Z"})
    timer = DURATION.labels("timer")
    with running_operator(fast, namespace):
        cluster.apply_yaml(namespace, sample("synthetic-duckdb"))
        first = wait_status(cluster, namespace, "demo", handled(1), "the first reconcile")
        bucket = first["status"]["bucket"]
        put_quotes(book.snapshot())
        fresh = wait_status(
            cluster, namespace, "demo", lambda p: (p.get("status") or {}).get("freshness"), "freshness"
        )
        put_quotes(b"{not json")
        runs = histogram_count(timer)
        wait_for(lambda: histogram_count(timer) >= runs + 3, timeout=15, what="three timer reconciles")
        kept = cluster.pipeline(namespace, "demo")

    assert "freshness" not in first["status"]  # nothing archived yet
    assert fresh["status"]["freshness"] == [
        {"symbol": "AAPL", "lastTickTime": "2026-11-26T14:30:00Z"},
        {"symbol": "MSFT"},
        {"symbol": "NVDA", "lastTickTime": "2026-11-26T14:29:59Z"},
        {"symbol": "AMZN"},
        {"symbol": "BRK.B"},
    ]
    assert kept["status"]["freshness"] == fresh["status"]["freshness"]


def test_a_topic_reported_ready_reaches_the_pipeline_status_without_waiting_for_the_periodic_reconcile(
    cluster: Cluster, kube: KubeTarget, s3_server: S3Server, namespace: str
) -> None:
    cluster.crd_set(strimzi="v1", monitoring=True)
    # No periodic reconcile within the test: only the child's change can bring the news.
    slow = operator_settings(kube, s3_server, resync_seconds=3600)
    with running_operator(slow, namespace):
        cluster.apply_yaml(namespace, sample("synthetic-duckdb"))
        first = wait_status(cluster, namespace, "demo", handled(1), "the first reconcile")
        # What Strimzi's topic operator does once a topic exists in Kafka.
        ready = {"status": {"conditions": [{"type": "Ready", "status": "True"}], "observedGeneration": 1}}
        listed = cluster.objects.list_namespaced_custom_object(
            "kafka.strimzi.io", "v1", namespace, "kafkatopics"
        )
        for topic in listed["items"]:
            cluster.objects.patch_namespaced_custom_object_status(
                "kafka.strimzi.io", "v1", namespace, "kafkatopics", topic["metadata"]["name"], ready
            )
        # Within _wait_status's 20 s: the periodic reconcile is an hour away.
        topics_ready = wait_status(
            cluster, namespace, "demo", lambda p: condition(p, "Topics").get("status") == "True", "Topics"
        )

    assert condition(first, "Topics")["reason"] == "WaitingForTopicOperator"
    assert condition(topics_ready, "Topics")["reason"] == "TopicsReady"
    assert len(listed["items"]) == 3


# --- pods that cannot run -------------------------------------------------------------------------


def test_a_deleted_deployment_is_put_back_without_waiting_for_the_periodic_reconcile(
    cluster: Cluster, kube: KubeTarget, s3_server: S3Server, namespace: str
) -> None:
    cluster.crd_set(strimzi="v1", monitoring=True)
    slow = operator_settings(kube, s3_server, resync_seconds=3600)
    with running_operator(slow, namespace):
        cluster.apply_yaml(namespace, sample("synthetic-duckdb"))
        wait_status(cluster, namespace, "demo", handled(1), "the first reconcile")
        before = cluster.apps.read_namespaced_deployment("demo-archive", namespace).metadata.uid
        cluster.apps.delete_namespaced_deployment("demo-archive", namespace)

        def recreated() -> str | None:
            uid = cluster.apps.read_namespaced_deployment("demo-archive", namespace).metadata.uid
            return uid if uid != before else None

        after = wait_for(recreated, timeout=20, what="demo-archive to be recreated")

    assert after != before
