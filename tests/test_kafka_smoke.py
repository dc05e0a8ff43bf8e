"""The local Kafka is a real KRaft broker: the real client produces (acks=all, idempotent) and consumes."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from marketpulse_dev.localenv.kafka import KafkaServer

pytestmark = pytest.mark.kafka


def test_a_record_produced_with_acks_all_is_consumed_back_with_its_key_and_value(
    kafka_server: KafkaServer,
) -> None:
    topic = f"smoke-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka_server.bootstrap_servers})
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result(timeout=30)

    delivered: list[tuple[int, int]] = []
    producer = Producer(
        {"bootstrap.servers": kafka_server.bootstrap_servers, "acks": "all", "enable.idempotence": True}
    )
    producer.produce(
        topic,
        key=b"AAPL",
        value=b'{"price":189.5}',
        on_delivery=lambda err, msg: (
            delivered.append((msg.partition(), msg.offset())) if err is None else None
        ),
    )
    assert producer.flush(30) == 0
    assert len(delivered) == 1

    consumer = Consumer(
        {
            "bootstrap.servers": kafka_server.bootstrap_servers,
            "group.id": f"g-{topic}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.subscribe([topic])
        message = None
        for _ in range(60):
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                break
        assert message is not None
        assert message.error() is None
        assert (message.key(), message.value()) == (b"AAPL", b'{"price":189.5}')
        assert (message.partition(), message.offset()) == delivered[0]
    finally:
        consumer.close()


def test_the_broker_refuses_a_topic_that_auto_creation_would_have_hidden(kafka_server: KafkaServer) -> None:
    # Topics are created on purpose (by the operator), so auto-creation is off like on Strimzi clusters.
    metadata = AdminClient({"bootstrap.servers": kafka_server.bootstrap_servers}).list_topics(
        topic=f"never-created-{uuid.uuid4().hex[:6]}", timeout=10
    )
    (topic_metadata,) = metadata.topics.values()
    assert topic_metadata.error is not None
