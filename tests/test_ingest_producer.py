"""ingest's producer against the real broker: without a ledger it asks Kafka for failure reports only,
so its acknowledged count comes from what was produced, failed and is still queued; that count must
match what the broker holds, and must not count ticks that were never delivered."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from marketpulse.contract.settings.ingest import Scenario
from marketpulse.ingest.producer import TICKS_ACKED, TickProducer
from marketpulse.sources.base import BadRecord
from marketpulse.sources.synthetic import SyntheticSource
from marketpulse_dev.localenv.kafka import KafkaServer

pytestmark = pytest.mark.kafka


def topics(kafka: KafkaServer) -> tuple[str, str]:
    ticks, dlq = f"p-{uuid.uuid4().hex[:8]}.ticks", f"p-{uuid.uuid4().hex[:8]}.ticks.dlq"
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    for future in admin.create_topics([NewTopic(ticks, 3, 1), NewTopic(dlq, 1, 1)]).values():
        future.result(timeout=30)
    return ticks, dlq


def records_in(kafka: KafkaServer, topic: str, partitions: int) -> int:
    consumer = Consumer({"bootstrap.servers": kafka.bootstrap_servers, "group.id": f"count-{topic}"})
    try:
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)
        )
    finally:
        consumer.close()


def acked_metric() -> float:
    return TICKS_ACKED._value.get()


def synthetic(limit: int) -> SyntheticSource:
    return SyntheticSource(["AAPL", "MSFT"], "p-1", limit=limit, scenarios=[Scenario("malformed", at=3)])


@pytest.mark.parametrize("with_ledger", [False, True])
def test_the_acknowledged_count_is_what_the_broker_holds(
    kafka_server: KafkaServer, tmp_path: Path, with_ledger: bool
) -> None:
    ticks, dlq = topics(kafka_server)
    ledger = tmp_path / "ledger.txt" if with_ledger else None
    producer = TickProducer(
        {"bootstrap.servers": kafka_server.bootstrap_servers}, ticks, dlq, ledger_path=ledger
    )
    metric_before = acked_metric()
    produced = sum(producer.send_wire(batch) for batch in synthetic(5000).wire_batches())
    assert producer.close(timeout=60) == 0
    assert produced == 5000
    assert (producer.acked, producer.failed) == (5000, 0)
    assert acked_metric() - metric_before == 5000
    assert records_in(kafka_server, ticks, 3) == 5000
    assert records_in(kafka_server, dlq, 1) == 1  # the malformed record, not counted as a tick
    if ledger is not None:
        assert len(ledger.read_text().splitlines()) == 5000


def test_ticks_that_cannot_be_delivered_are_counted_failed_never_acknowledged() -> None:
    with socket.socket() as listener:  # a port nobody listens on once closed
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
    producer = TickProducer(
        {"bootstrap.servers": f"127.0.0.1:{port}"},
        "nowhere.ticks",
        "nowhere.ticks.dlq",
        overrides={"delivery.timeout.ms": 1500, "linger.ms": 0},
    )
    batches = list(synthetic(300).wire_batches())
    assert sum(isinstance(r, BadRecord) for batch in batches for r in batch) == 1
    produced = sum(producer.send_wire(batch) for batch in batches)
    assert producer.close(timeout=10) == 0  # nothing left: every record has failed by now
    assert produced == 300
    assert producer.acked == 0
    assert producer.failed == 301  # the 300 ticks and the dead letter
