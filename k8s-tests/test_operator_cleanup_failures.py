"""deletionPolicy Delete stops the workloads before it deletes data, and a cleanup that cannot
succeed ends: it says why and what to do in the Cleanup condition, is given up on after a bounded
number of tries (an Event lists what is left), and never holds a namespace in Terminating."""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from operator_harness import (
    Cluster,
    condition,
    handled,
    operator_settings,
    running_operator,
    sample,
    wait_for,
    wait_status,
)

from marketpulse.contract.workloads.names import LABEL_INSTANCE, LABEL_MANAGED_BY, MANAGED_BY
from marketpulse.operator.policy import SECRET_LABEL
from marketpulse.storage.s3 import minio_client
from marketpulse_dev.localenv.kafka import KafkaServer
from marketpulse_dev.localenv.s3 import S3Server
from marketpulse_dev.pytest_plugin import KubeTarget

pytestmark = [pytest.mark.k8s, pytest.mark.s3, pytest.mark.kafka]


def credentials_secret(cluster: Cluster, namespace: str, s3: S3Server) -> None:
    """Working S3 keys in a Secret marked for pipelines."""
    data = {"AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key}
    cluster.core.create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="team-s3", labels={SECRET_LABEL: "true"}),
            data={k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
        ),
    )


def deleting_pipeline(name: str) -> dict[str, Any]:
    document = sample("synthetic-duckdb")
    document["metadata"] = {"name": name}
    document["spec"]["deletionPolicy"] = "Delete"
    document["spec"]["storage"] = {"credentialsSecret": {"name": "team-s3"}}
    return document


def cleanup_reason(cluster: Cluster, namespace: str, name: str) -> str | None:
    return condition(cluster.pipeline(namespace, name), "Cleanup").get("reason")


def test_delete_stops_every_workload_before_it_deletes_topics_and_bucket(
    cluster: Cluster,
    kube: KubeTarget,
    s3_server: S3Server,
    kafka_server: KafkaServer,
    namespace: str,
) -> None:
    cluster.crd_set(strimzi="v1", monitoring=True)
    document = sample("direct-topics")
    document["spec"]["kafka"]["bootstrapServers"] = kafka_server.bootstrap_servers
    admin = AdminClient({"bootstrap.servers": kafka_server.bootstrap_servers})
    s3 = minio_client(s3_server.endpoint, s3_server.access_key, s3_server.secret_key)

    def topics() -> list[str]:
        return sorted(n for n in admin.list_topics(timeout=5).topics if n.startswith(f"{namespace}."))

    # A pod of the pipeline that keeps running (bound to a node that never stops it), as an ingest
    # on a slow-to-drain node would: until it is gone, nothing of the pipeline's data may go.
    labels = {LABEL_INSTANCE: "fx-lab", LABEL_MANAGED_BY: MANAGED_BY}
    straggler = client.V1Pod(
        metadata=client.V1ObjectMeta(name="fx-lab-ingest-straggler", labels=labels),
        spec=client.V1PodSpec(
            node_name="a-node-that-never-answers", containers=[client.V1Container(name="c", image="ingest")]
        ),
    )
    settings = operator_settings(kube, s3_server, workload_stop_timeout_seconds=300)
    with running_operator(settings, namespace):
        cluster.apply_yaml(namespace, document)
        pipeline = wait_status(cluster, namespace, "fx-lab", handled(1), "the first reconcile")
        bucket = pipeline["status"]["bucket"]
        cluster.core.create_namespaced_pod(namespace, straggler)
        before = topics()
        cluster.delete_pipeline(namespace, "fx-lab")
        wait_for(
            lambda: cleanup_reason(cluster, namespace, "fx-lab") == "StoppingWorkloads",
            timeout=30,
            what="the Cleanup condition to say the workloads are stopping",
        )
        waiting = condition(cluster.pipeline(namespace, "fx-lab"), "Cleanup")
        deployments = [d.metadata.name for d in cluster.apps.list_namespaced_deployment(namespace).items]
        cronjobs = [c.metadata.name for c in cluster.batch.list_namespaced_cron_job(namespace).items]
        while_running = (topics(), s3.bucket_exists(bucket))
        phase = cluster.pipeline(namespace, "fx-lab")["status"]["phase"]
        cluster.core.delete_namespaced_pod("fx-lab-ingest-straggler", namespace, grace_period_seconds=0)
        wait_for(lambda: cluster.pipeline_gone(namespace, "fx-lab"), timeout=30, what="the pipeline to go")
        after = (topics(), s3.bucket_exists(bucket))

    assert len(before) == 3
    assert (deployments, cronjobs) == ([], [])
    assert "fx-lab-ingest-straggler" in waiting["message"]
    assert phase == "Deleting"
    assert while_running == (before, True)
    assert after == ([], False)


def test_a_cleanup_whose_credentials_secret_is_gone_says_so_then_lets_the_pipeline_go_keeping_the_bucket(
    cluster: Cluster, kube: KubeTarget, s3_server: S3Server, namespace: str
) -> None:
    cluster.crd_set(strimzi="v1", monitoring=True)
    credentials_secret(cluster, namespace, s3_server)
    s3 = minio_client(s3_server.endpoint, s3_server.access_key, s3_server.secret_key)
    settings = operator_settings(
        kube, s3_server, cleanup_retry_seconds=1.0, cleanup_permanent_attempts=3, cleanup_attempts=12
    )
    messages: list[str] = []
    with running_operator(settings, namespace):
        cluster.apply_yaml(namespace, deleting_pipeline("orphan"))
        bucket = wait_status(cluster, namespace, "orphan", handled(1), "the first reconcile")["status"][
            "bucket"
        ]
        cluster.core.delete_namespaced_secret("team-s3", namespace)
        cluster.delete_pipeline(namespace, "orphan")

        def seen() -> bool:
            if cluster.pipeline_gone(namespace, "orphan"):
                return True
            with contextlib.suppress(ApiException):  # gone since
                message = condition(cluster.pipeline(namespace, "orphan"), "Cleanup").get("message")
                if message and message not in messages:
                    messages.append(message)
            return False

        wait_for(seen, timeout=60, interval=0.2, what="the pipeline to be let go")
    abandoned = [e for e in cluster.events(namespace, "orphan") if e.reason == "CleanupAbandoned"]

    tries = [m for m in messages if "try " in m]
    assert tries, f"the Cleanup condition never counted a try: {messages}"
    first = tries[0]
    assert "try 1 of 3" in first
    assert "Secret team-s3 not found" in first
    assert "restore the Secret named in spec.storage.credentialsSecret" in first
    assert len(abandoned) == 1
    assert abandoned[0].type == "Warning"
    assert "3 tries failed" in abandoned[0].message
    assert f"bucket {bucket}" in abandoned[0].message
    # The warehouse volume was deleted by the first try: only what is really left is listed.
    assert "PersistentVolumeClaim" not in abandoned[0].message
    assert s3.bucket_exists(bucket)  # kept, and said so: never deleted with unknown credentials


@pytest.fixture
def doomed_namespace(cluster: Cluster) -> Iterator[str]:
    """A namespace the test deletes itself."""
    name = f"mp-doomed-{uuid.uuid4().hex[:8]}"
    cluster.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    cluster.release_pipelines(name)
    try:
        cluster.core.delete_namespace(name)
    except ApiException as exc:
        if exc.status != 404:
            raise


def test_a_namespace_whose_pipeline_cannot_clean_up_is_deleted_without_hanging(
    cluster: Cluster,
    kube: KubeTarget,
    s3_server: S3Server,
    doomed_namespace: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cluster.crd_set(strimzi="v1", monitoring=True)
    namespace = doomed_namespace
    credentials_secret(cluster, namespace, s3_server)
    # Many tries and long waits: only the namespace being deleted may end the cleanup early.
    settings = operator_settings(kube, s3_server, cleanup_retry_seconds=30.0, cleanup_permanent_attempts=10)

    def namespace_gone() -> bool:
        try:
            found = cluster.core.read_namespace(namespace)
        except ApiException as exc:
            if exc.status == 404:
                return True
            raise
        waiting.extend(c.message for c in found.status.conditions or [] if c.status == "True")
        return False

    waiting: list[str] = []

    with caplog.at_level(logging.WARNING), running_operator(settings, namespace):
        cluster.apply_yaml(namespace, deleting_pipeline("stuck"))
        wait_status(cluster, namespace, "stuck", handled(1), "the first reconcile")
        cluster.core.delete_namespaced_secret("team-s3", namespace)
        started = time.monotonic()
        cluster.core.delete_namespace(namespace)
        try:
            wait_for(namespace_gone, timeout=60, interval=0.5, what="the namespace to be deleted")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the namespace said: {sorted(set(waiting))}") from None
        took = time.monotonic() - started

    given_up = [r.getMessage() for r in caplog.records if "given up" in r.getMessage()]
    assert took < 30, f"the namespace took {took:.0f}s: it waited for a retry it did not need"
    assert len(given_up) == 1
    assert "its namespace is being deleted" in given_up[0]
    assert "Secret team-s3 not found" in given_up[0]


def test_an_operator_killed_halfway_through_a_delete_is_finished_by_the_next_one(
    cluster: Cluster,
    kube: KubeTarget,
    s3_server: S3Server,
    kafka_server: KafkaServer,
    namespace: str,
    tmp_path: Path,
) -> None:
    """Killed (like kill -9) after the topics went and before the bucket: the restarted operator
    deletes the bucket, deletes nothing twice, and lets the pipeline go."""
    cluster.crd_set(strimzi="v1", monitoring=True)
    document = sample("direct-topics")
    document["spec"]["kafka"]["bootstrapServers"] = kafka_server.bootstrap_servers
    admin = AdminClient({"bootstrap.servers": kafka_server.bootstrap_servers})
    s3 = minio_client(s3_server.endpoint, s3_server.access_key, s3_server.secret_key)
    env = {
        **os.environ,
        "KUBECONFIG": str(kube.kubeconfig),
        "S3_ENDPOINT": s3_server.endpoint,
        "S3_ACCESS_KEY": s3_server.access_key,
        "S3_SECRET_KEY": s3_server.secret_key,
        "MARKETPULSE_ALLOWED_KAFKA_SERVERS": "127.0.0.1",
        "MARKETPULSE_METRICS_PORT": "0",
        "MARKETPULSE_HEALTH_PORT": "0",
    }
    argv = [
        str(Path(sys.executable).with_name("marketpulse")),
        "operator",
        "run",
        "--standalone",
        "-n",
        namespace,
    ]

    def topics() -> list[str]:
        return sorted(n for n in admin.list_topics(timeout=5).topics if n.startswith(f"{namespace}."))

    first_log = tmp_path / "first.log"
    with first_log.open("w") as out:
        first = subprocess.Popen(
            argv,
            env={**env, "MARKETPULSE_FAILPOINTS": "operator.delete.before-bucket"},
            stdout=out,
            stderr=out,
        )
    try:
        cluster.apply_yaml(namespace, document)
        reconciled = wait_status(cluster, namespace, "fx-lab", handled(1), "the first reconcile")
        bucket = reconciled["status"]["bucket"]
        created = topics()
        cluster.delete_pipeline(namespace, "fx-lab")
        code = first.wait(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    halfway = (topics(), s3.bucket_exists(bucket), cluster.pipeline_gone(namespace, "fx-lab"))

    second_log = tmp_path / "second.log"
    with second_log.open("w") as out:
        second = subprocess.Popen(argv, env=env, stdout=out, stderr=out)
    try:
        wait_for(lambda: cluster.pipeline_gone(namespace, "fx-lab"), timeout=60, what="the pipeline to go")
    finally:
        second.terminate()
        second.wait(timeout=30)
    deleted = [e.message for e in cluster.events(namespace, "fx-lab") if e.reason == "Deleted"]

    assert len(created) == 3
    assert code == 137, first_log.read_text()[-3000:]
    assert halfway == ([], True, False), "killed after the topics, before the bucket"
    assert not s3.bucket_exists(bucket)
    assert len(deleted) == 1, deleted
    assert f"bucket {bucket}" in deleted[0]
    assert "topic" not in deleted[0], "the topics were deleted by the first operator, not again"
    assert "Traceback" not in second_log.read_text()
