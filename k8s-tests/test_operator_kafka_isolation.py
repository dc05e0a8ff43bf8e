"""Kafka isolation with the direct backend: each scram-sha-512 pipeline is its own SCRAM user, allowed
its own topics and consumer groups only, on a broker with SASL/SCRAM and the StandardAuthorizer."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient
from operator_harness import (
    Cluster,
    condition,
    handled,
    operator_account,
    operator_settings,
    running_operator,
    sample,
    wait_for,
    wait_status,
)

from marketpulse.contract.settings.common import CommonSettings
from marketpulse.contract.workloads import PipelineNames
from marketpulse.operator.backends import kafka_principals
from marketpulse_dev.localenv.kafka import KafkaServer
from marketpulse_dev.localenv.s3 import S3Server
from marketpulse_dev.pytest_plugin import KubeTarget, container_environment

pytestmark = [pytest.mark.k8s, pytest.mark.s3, pytest.mark.kafka]

RECORDS = 200
TIMEOUT = 10.0


@pytest.fixture
def account(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[Path]:
    """Under exactly the operator's RBAC: making the Kafka password Secret must be one of its rights."""
    with operator_account(cluster, namespace, tmp_path / "kubeconfig") as kubeconfig:
        yield kubeconfig


def _pipeline(name: str, kafka_server: KafkaServer, policy: str) -> dict[str, Any]:
    document = sample("direct-topics")
    document["metadata"]["name"] = name
    document["spec"]["kafka"] |= {
        "bootstrapServers": kafka_server.sasl_bootstrap_servers,
        "authentication": "scram-sha-512",
    }
    document["spec"]["deletionPolicy"] = policy
    return document


def _login(cluster: Cluster, namespace: str, name: str) -> dict[str, str]:
    """What the pipeline's ingest logs in with: its pod's environment as the kubelet resolves it (the
    password from the pipeline's Secret), read by the workloads' own settings."""
    deployment = cluster.apps.read_namespaced_deployment(f"{name}-ingest", namespace)
    container = deployment.spec.template.spec.containers[0]
    env = container_environment(cluster.api, namespace, container)
    return CommonSettings(**env).kafka_config()


def _produce(login: dict[str, str], topic: str, count: int) -> list[KafkaError | None]:
    """The delivery report of each record (None: acknowledged)."""
    reports: list[KafkaError | None] = []
    producer = Producer({**login, "enable.idempotence": True, "acks": "all", "message.timeout.ms": 10000})
    for i in range(count):
        producer.produce(topic, str(i).encode(), key=b"k", on_delivery=lambda err, _m: reports.append(err))
        producer.poll(0)
    producer.flush(20)
    return reports


def _consume(login: dict[str, str], topic: str, group: str, count: int) -> tuple[list[int], int | None]:
    """Up to `count` values from the start of `topic` in `group`, and the first error code if any."""
    consumer = Consumer({**login, "group.id": group, "auto.offset.reset": "earliest"})
    values: list[int] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            message = consumer.poll(1)
            if message is None:
                continue
            if message.error() is not None:
                return values, int(message.error().code())
            values.append(int(message.value() or b""))
            if len(values) == count:
                break
    finally:
        consumer.close()
    return values, None


def test_pipeline_a_is_refused_pipeline_bs_topics_and_groups_loses_nothing_of_its_own_and_leaves_no_login(
    cluster: Cluster,
    kube: KubeTarget,
    s3_server: S3Server,
    namespace: str,
    kafka_server: KafkaServer,
    account: Path,
) -> None:
    cluster.crd_set(strimzi="v1", monitoring=False)
    settings = operator_settings(
        kube,
        s3_server,
        kubeconfig=account,
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username=kafka_server.admin_user,
        kafka_sasl_password=kafka_server.admin_password,
    )
    admin = AdminClient(kafka_server.sasl_config())
    a, b = PipelineNames(namespace, "fx-a"), PipelineNames(namespace, "fx-b")
    with running_operator(settings, namespace):
        # A keeps its topics when deleted: its login still has to go.
        cluster.apply_yaml(namespace, _pipeline("fx-a", kafka_server, "Retain"))
        cluster.apply_yaml(namespace, _pipeline("fx-b", kafka_server, "Delete"))
        first = wait_status(cluster, namespace, "fx-a", handled(1), "A's first reconcile")
        wait_status(cluster, namespace, "fx-b", handled(1), "B's first reconcile")
        login_a, login_b = (_login(cluster, namespace, n) for n in ("fx-a", "fx-b"))
        secret = cluster.core.read_namespaced_secret("fx-a-kafka", namespace)
        ingest = cluster.apps.read_namespaced_deployment("fx-a-ingest", namespace)

        own = _produce(login_a, a.ticks_topic, RECORDS)
        back, own_error = _consume(login_a, a.ticks_topic, f"{a.topic_prefix}.archive", RECORDS)
        into_b = _produce(login_a, b.ticks_topic, 1)
        _, reading_b = _consume(login_a, b.ticks_topic, f"{a.topic_prefix}.archive", 1)
        _, in_bs_group = _consume(login_a, a.ticks_topic, f"{b.topic_prefix}.archive", 1)
        b_still_works = _produce(login_b, b.ticks_topic, 1)

        # A change of the spec reconciles again: the password stays, so A's login still works.
        cluster.patch_spec(namespace, "fx-a", {"kafka": {"partitions": 4}})
        wait_status(cluster, namespace, "fx-a", handled(2), "A's second reconcile")
        again = _login(cluster, namespace, "fx-a")
        after_change = _produce(again, a.ticks_topic, 1)

        cluster.delete_pipeline(namespace, "fx-a")
        wait_for(lambda: cluster.pipeline_gone(namespace, "fx-a"), timeout=30, what="pipeline A to go")
        a_credential = kafka_principals.has_credential(admin, a.kafka_scram_user, TIMEOUT)
        b_credential = kafka_principals.has_credential(admin, b.kafka_scram_user, TIMEOUT)
        acls = admin.describe_acls(kafka_principals._of(a.kafka_scram_user)).result(timeout=TIMEOUT)
        acls_b = admin.describe_acls(kafka_principals._of(b.kafka_scram_user)).result(timeout=TIMEOUT)
        topics_left = set(admin.list_topics(timeout=TIMEOUT).topics)

    assert condition(first, "Topics")["status"] == "True", condition(first, "Topics")
    assert f"SCRAM user {a.kafka_scram_user}" in condition(first, "Topics")["message"]
    assert [o.kind for o in secret.metadata.owner_references] == ["StockPipeline"]
    env = {e.name: e for e in ingest.spec.template.spec.containers[0].env}
    assert env["KAFKA_SASL_USERNAME"].value == a.kafka_scram_user
    assert env["KAFKA_SASL_PASSWORD"].value_from.secret_key_ref.name == "fx-a-kafka"

    assert own == [None] * RECORDS
    assert own_error is None
    assert sorted(back) == list(range(RECORDS))
    assert [e.code() if e else None for e in into_b] == [KafkaError.TOPIC_AUTHORIZATION_FAILED]
    assert reading_b == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert in_bs_group == KafkaError.GROUP_AUTHORIZATION_FAILED
    assert b_still_works == [None]
    assert again == login_a
    assert after_change == [None]

    assert not a_credential
    assert not acls
    assert b_credential
    assert set(acls_b) == set(kafka_principals.acl_bindings(b))
    assert a.ticks_topic in topics_left  # Retain kept the data
    with pytest.raises(KafkaException):
        AdminClient({**login_a, "log_level": 0}).list_topics(timeout=5)
