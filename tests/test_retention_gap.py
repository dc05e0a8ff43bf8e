"""The archive down longer than the topic's retention: the records retention deleted before the archive
reached them are gone, and the consumer's offset reset would skip them without a word. The archive
counts them (`marketpulse_archive_retention_gap_records_total`, alert MarketPulseRetentionGap) and logs
the partition and offsets, then goes on with what is left.

Retention is played by Kafka's DeleteRecords, which moves a partition's log start offset exactly as a
deleted segment does, without waiting for the broker's retention check."""

from __future__ import annotations

import signal

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from marketpulse_dev.localenv.process import free_port
from marketpulse_dev.reliability.checks import archive_group, metric_value, wait_for_lag_zero
from marketpulse_dev.reliability.pipeline import FlowUnderTest, wait_until

pytestmark = [pytest.mark.reliability, pytest.mark.kafka, pytest.mark.s3]

DELETED_PER_PARTITION = 100


def committed_offsets(flow: FlowUnderTest) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": flow.bootstrap, "group.id": archive_group(flow)})
    try:
        partitions = [TopicPartition(flow.ticks_topic, p) for p in range(3)]
        return {tp.partition: tp.offset for tp in consumer.committed(partitions, timeout=10)}
    finally:
        consumer.close()


def test_ticks_retention_deleted_while_the_archive_was_down_are_counted_and_logged_never_skipped_silently(
    flow: FlowUnderTest,
) -> None:
    archive = flow.run("archive")
    first = flow.run("ingest", {"MARKETPULSE_TICK_LIMIT": "1500"})
    assert first.wait(timeout=120) == 0, flow.logs()
    assert wait_for_lag_zero(flow, timeout=60) is not None, flow.logs()
    archive.send_signal(signal.SIGTERM)
    assert archive.wait(timeout=60) == 0, flow.log_of(archive)

    # The archive is down; ticks go on arriving, and retention deletes the oldest unarchived ones.
    second = flow.run("ingest", {"MARKETPULSE_TICK_LIMIT": "1500"})
    assert second.wait(timeout=120) == 0, flow.logs()
    # Partitions the watchlist's keys hash to (the others hold nothing and were never committed).
    committed = {p: offset for p, offset in committed_offsets(flow).items() if offset >= 0}
    assert committed, "the first ticks were archived and committed"
    admin = AdminClient({"bootstrap.servers": flow.bootstrap})
    cut = [TopicPartition(flow.ticks_topic, p, o + DELETED_PER_PARTITION) for p, o in committed.items()]
    for deleted in admin.delete_records(cut, operation_timeout=30, request_timeout=30).values():
        deleted.result()

    port = free_port()
    restarted = flow.run("archive", {"MARKETPULSE_METRICS_PORT": str(port)})
    assert wait_for_lag_zero(flow, timeout=90) is not None, flow.logs()
    expected = DELETED_PER_PARTITION * len(committed)
    wait_until(
        lambda: metric_value(port, "marketpulse_archive_retention_gap_records_total") >= expected,
        30,
        "the retention gap to be counted",
        flow.logs,
    )
    assert metric_value(port, "marketpulse_archive_retention_gap_records_total") == expected
    gaps = flow.log_records(restarted, "records deleted by retention before they were archived")
    assert sorted((int(str(g["partition"])), int(str(g["records"]))) for g in gaps) == [
        (p, DELETED_PER_PARTITION) for p in sorted(committed)
    ]
    assert all(
        int(str(g["first_available"])) == committed[int(str(g["partition"]))] + DELETED_PER_PARTITION
        for g in gaps
    )
    assert restarted.poll() is None, "a gap is reported, not a crash"

    # A restart with nothing deleted reports no gap: the check is about what retention took.
    restarted.send_signal(signal.SIGTERM)
    assert restarted.wait(timeout=60) == 0, flow.log_of(restarted)
    third = flow.run("ingest", {"MARKETPULSE_TICK_LIMIT": "300"})
    assert third.wait(timeout=120) == 0, flow.logs()
    again = flow.run("archive")
    assert wait_for_lag_zero(flow, timeout=90) is not None, flow.logs()
    assert flow.log_records(again, "records deleted by retention before they were archived") == []
