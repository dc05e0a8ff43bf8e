"""Archive replicas and the group they share: a rolling update, a replica cut off the broker (a network
partition, through a TCP fault proxy in front of Kafka), and its session timing out while S3 is down.

Whatever moves between replicas, a partition is committed only by its owner: a replica that learns it
lost a partition drops what it read of it, and the new owner re-reads it from the committed offset.
Nothing is lost, silver holds nothing twice, and bronze duplicates are counted (they can come only
from an object written just before its partition moved, and are bounded by what that object held).

The partition scenarios run on a broker of their own with a PROXIED listener: the archive under test
reaches the broker through the proxy for every connection (bootstrap, coordinator, fetches), while
ingest, the other replica and the checks connect directly.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from marketpulse_dev.localenv.kafka import KafkaServer
from marketpulse_dev.localenv.process import free_port
from marketpulse_dev.localenv.s3 import S3Server
from marketpulse_dev.reliability.checks import drain_and_check, full_mode
from marketpulse_dev.reliability.fault_proxy import FaultProxy
from marketpulse_dev.reliability.http_faults import HttpFaultProxy
from marketpulse_dev.reliability.pipeline import FlowUnderTest, wait_until

pytestmark = [pytest.mark.reliability, pytest.mark.kafka, pytest.mark.s3]

TICKS = 20_000 if full_mode() else 8_000
RATE = "400"  # ticks/s, so that ticks still flow while the faults happen
Archive = subprocess.Popen[bytes]


@pytest.fixture(scope="module")
def partitionable_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[KafkaServer, FaultProxy]]:
    """A broker whose PROXIED listener is reached only through the proxy (`stall()` cuts it off)."""
    listen = free_port()
    proxy = FaultProxy("127.0.0.1", listen).start()
    broker = KafkaServer(tmp_path_factory.mktemp("kafka-proxied"), proxied=(listen, proxy.port))
    try:
        broker.start()
        yield broker, proxy
    finally:
        broker.stop()
        proxy.stop()


def owned_partitions(flow: FlowUnderTest, archive: Archive) -> set[int]:
    """What `archive` owns now, from its log (cooperative rebalancing assigns and revokes in steps)."""
    owned: set[int] = set()
    for line in flow.log_of(archive).splitlines():
        if not line.startswith("{"):
            continue
        record = orjson.loads(line)
        parts = {int(p) for p in record.get("partitions", [])}
        if record.get("message") == "partitions assigned":
            owned |= parts
        elif record.get("message") == "partitions revoked":
            owned -= parts
    return owned


def joined(flow: FlowUnderTest, archive: Archive) -> bool:
    return bool(flow.log_records(archive, "partitions assigned"))


DROPPED = "partition moved while S3 was down; its batch is left to the new owner"
UNCOMMITTED = "partition moved while its object was written; left uncommitted for its owner"
DEFERRED = "offset commit failed; the next commit covers it"


def logged_records(flow: FlowUnderTest, archive: Archive, message: str) -> int:
    """The records counted by `archive`'s log lines `message` (each names how many its object held)."""
    return sum(int(str(r.get("records", 0))) for r in flow.log_records(archive, message))


def stop(archive: Archive) -> int:
    archive.send_signal(signal.SIGTERM)
    return archive.wait(timeout=60)


def test_a_rolling_update_of_the_archive_moves_partitions_without_loss_or_duplicates(
    kafka_server: KafkaServer, s3_server: S3Server, tmp_path: Path
) -> None:
    flow = FlowUnderTest.create(kafka_server.bootstrap_servers, s3_server.settings(), tmp_path)
    try:
        old = flow.run("archive")
        ingest = flow.run(
            "ingest", {"MARKETPULSE_TICK_LIMIT": str(TICKS), "MARKETPULSE_SYNTHETIC_RATE": RATE}
        )
        wait_until(lambda: bool(flow.bronze()[1]), 60, "the first bronze object", flow.logs)
        # A Deployment's rolling update: the new replica joins while the old one still runs ...
        new = flow.run("archive")
        wait_until(
            lambda: bool(owned_partitions(flow, new)), 60, "the new replica to take a partition", flow.logs
        )
        assert owned_partitions(flow, old), "the old replica keeps the rest while both run"
        # ... then the old one is stopped as its pod is deleted, while ticks still flow.
        assert ingest.poll() is None, "the roll was to happen while ticks flow: raise TICKS or lower RATE"
        assert stop(old) == 0, flow.log_of(old)
        rolled_at = time.monotonic()
        wait_until(
            lambda: owned_partitions(flow, new) == {0, 1, 2},
            60,
            "the new replica to own every partition",
            flow.logs,
        )
        assert ingest.wait(timeout=120) == 0, flow.logs()
        result = drain_and_check(
            flow, "archive rolling update, 2 replicas", fault_cleared_at=rolled_at, archive=new
        )
    finally:
        flow.stop_all()
    result.assert_held()
    assert "Traceback" not in flow.logs()


def test_an_archive_whose_session_times_out_during_an_s3_outage_never_commits_the_lost_partition(
    partitionable_kafka: tuple[KafkaServer, FaultProxy], s3_server: S3Server, tmp_path: Path
) -> None:
    broker, kafka_proxy = partitionable_kafka
    kafka_proxy.resume()
    # One partition: the replica that owns it is the one the outage holds, deterministically.
    flow = FlowUnderTest.create(broker.bootstrap_servers, s3_server.settings(), tmp_path, partitions=1)
    with HttpFaultProxy("127.0.0.1", s3_server.port) as s3_proxy:
        try:
            first = flow.run(
                "archive",
                {
                    "KAFKA_BOOTSTRAP_SERVERS": broker.proxied_bootstrap_servers,
                    "S3_ENDPOINT": s3_proxy.endpoint,
                    "MARKETPULSE_QUOTES_INTERVAL_SECONDS": "3600",
                },
            )
            ingest = flow.run(
                "ingest", {"MARKETPULSE_TICK_LIMIT": str(TICKS), "MARKETPULSE_SYNTHETIC_RATE": RATE}
            )
            wait_until(lambda: bool(flow.bronze()[1]), 60, "the first bronze object", flow.logs)
            standby = flow.run("archive")  # joins and, the partition being sticky, owns nothing yet
            wait_until(lambda: joined(flow, standby), 60, "the second replica to join", flow.logs)
            assert owned_partitions(flow, first) == {0}
            assert not owned_partitions(flow, standby)

            s3_proxy.fail(times=1_000_000, status=503, body="xml", methods={"PUT"})
            wait_until(
                lambda: "S3 unavailable; consumption paused" in flow.log_of(first),
                60,
                "the outage",
                flow.logs,
            )
            kafka_proxy.stall()  # and now the broker cannot hear from it: its session times out
            wait_until(
                lambda: owned_partitions(flow, standby) == {0}, 60, "the standby to take over", flow.logs
            )
            wait_until(
                lambda: not owned_partitions(flow, first), 60, "the cut-off replica to see it lost", flow.logs
            )
            s3_proxy.clear()
            kafka_proxy.resume()
            healed_at = time.monotonic()
            wait_until(
                lambda: bool(flow.log_records(first, DROPPED)),
                60,
                "the cut-off replica to drop its batch",
                flow.logs,
            )
            assert ingest.wait(timeout=120) == 0, flow.logs()
            assert first.poll() is None, f"losing a partition is not a crash:\n{flow.log_of(first)}"
            result = drain_and_check(
                flow,
                "archive session timeout during S3 outage",
                fault_cleared_at=healed_at,
                archive=standby,
                notes={"dropped_records": logged_records(flow, first, DROPPED)},
            )
            assert stop(first) == 0, flow.log_of(first)
        finally:
            flow.stop_all()
    result.assert_held()
    assert result.bronze_duplicates == 0, "the lost batch was dropped unwritten: nothing in bronze twice"
    assert "Traceback" not in flow.logs()


def test_a_network_partition_between_archive_and_broker_loses_nothing(
    partitionable_kafka: tuple[KafkaServer, FaultProxy], s3_server: S3Server, tmp_path: Path
) -> None:
    broker, kafka_proxy = partitionable_kafka
    kafka_proxy.resume()
    flow = FlowUnderTest.create(broker.bootstrap_servers, s3_server.settings(), tmp_path)
    try:
        cut_off = flow.run("archive", {"KAFKA_BOOTSTRAP_SERVERS": broker.proxied_bootstrap_servers})
        ingest = flow.run(
            "ingest", {"MARKETPULSE_TICK_LIMIT": str(TICKS), "MARKETPULSE_SYNTHETIC_RATE": RATE}
        )
        wait_until(lambda: bool(flow.bronze()[1]), 60, "the first bronze object", flow.logs)
        other = flow.run("archive")
        wait_until(
            lambda: bool(owned_partitions(flow, other)),
            60,
            "the second replica to take a partition",
            flow.logs,
        )

        kafka_proxy.stall()
        wait_until(
            lambda: owned_partitions(flow, other) == {0, 1, 2}, 60, "the other replica to take all", flow.logs
        )
        assert ingest.poll() is None, (
            "the partition was to happen while ticks flow: raise TICKS or lower RATE"
        )
        joins = len(flow.log_records(cut_off, "partitions assigned"))
        kafka_proxy.resume()
        healed_at = time.monotonic()
        wait_until(
            lambda: len(flow.log_records(cut_off, "partitions assigned")) > joins,
            90,
            "the cut-off replica to rejoin the group",
            flow.logs,
        )
        assert ingest.wait(timeout=120) == 0, flow.logs()
        assert cut_off.poll() is None, f"a partition from the broker is not a crash:\n{flow.log_of(cut_off)}"
        assert stop(cut_off) == 0, flow.log_of(cut_off)
        result = drain_and_check(
            flow,
            "archive cut off the broker (network partition)",
            fault_cleared_at=healed_at,
            archive=other,
            notes={
                "uncommitted_records": logged_records(flow, cut_off, UNCOMMITTED),
                "deferred_commit_records": logged_records(flow, cut_off, DEFERRED),
            },
        )
    finally:
        flow.stop_all()
    result.assert_held()
    # Bronze may hold twice only what the cut-off replica wrote but could no longer commit.
    assert result.bronze_duplicates <= logged_records(flow, cut_off, UNCOMMITTED) + logged_records(
        flow, cut_off, DEFERRED
    )
    assert "Traceback" not in flow.logs()
