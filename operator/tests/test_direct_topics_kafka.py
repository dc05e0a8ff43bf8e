"""The direct backend on the single dev broker: topics of a pipeline that leaves replicas unset still
get created (one copy each, said so), what the spec sets reaches the broker, and an existing topic
keeps the replication it has."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

from marketpulse.contract.topics import TopicPlan
from marketpulse.operator.backends.topics import admin_client, ensure_topics
from marketpulse_dev.localenv.kafka import KafkaServer
from marketpulse_dev.pytest_plugin import eventually

pytestmark = pytest.mark.kafka
TIMEOUT = 30


def listed(admin: AdminClient, topic: str) -> None:
    """Metadata lists a new topic a moment after its creation; until then it looks missing."""
    eventually(lambda: topic in admin.list_topics(timeout=5).topics or None, timeout=TIMEOUT, what=topic)


def config_of(admin: AdminClient, topic: str) -> dict[str, str]:
    listed(admin, topic)
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    entries = admin.describe_configs([resource])[resource].result(timeout=TIMEOUT)
    return {name: entry.value for name, entry in entries.items()}


def test_unset_replicas_on_one_broker_give_one_copy_min_insync_one_and_a_warning_in_the_note(
    kafka_server: KafkaServer,
) -> None:
    admin = admin_client(kafka_server.bootstrap_servers)
    topic = f"direct.{uuid.uuid4().hex[:8]}"
    outcome = ensure_topics(admin, [TopicPlan(topic, 2, None, {"retention.ms": "3600000"})], TIMEOUT)
    assert outcome.created == [topic]
    assert outcome.durability() == (
        "1 broker, replication factor 1, min.insync.replicas 1 "
        "(below 3: a broker's loss may lose acknowledged ticks)"
    )
    config = config_of(admin, topic)
    assert (config["min.insync.replicas"], config["retention.ms"]) == ("1", "3600000")


def test_a_topic_config_naming_min_insync_replicas_wins_over_the_default(kafka_server: KafkaServer) -> None:
    admin = admin_client(kafka_server.bootstrap_servers)
    topic = f"direct.{uuid.uuid4().hex[:8]}"
    # 2 on one copy would refuse every acks=all write: the broker takes it, so must the plan.
    outcome = ensure_topics(admin, [TopicPlan(topic, 1, None, {"min.insync.replicas": "2"})], TIMEOUT)
    assert outcome.min_insync == {topic: "2"}
    assert config_of(admin, topic)["min.insync.replicas"] == "2"


def test_an_existing_topic_is_reported_with_the_replication_found_and_not_altered(
    kafka_server: KafkaServer,
) -> None:
    admin = admin_client(kafka_server.bootstrap_servers)
    topic = f"direct.{uuid.uuid4().hex[:8]}"
    ensure_topics(admin, [TopicPlan(topic, 1, None)], TIMEOUT)
    listed(admin, topic)
    again = ensure_topics(admin, [TopicPlan(topic, 1, None)], TIMEOUT)
    assert again.created == []
    assert again.replicas == {topic: 1}
    assert again.min_insync == {}, "min.insync.replicas of a topic found is not claimed"
