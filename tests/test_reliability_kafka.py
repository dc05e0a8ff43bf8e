"""A broker outage longer than the producer's delivery timeout: the ticks the producer gives up on are
counted (metric and log) and make ingest exit non-zero; every tick it did get acknowledged reaches
silver once. (A restart within the delivery timeout is
test_ingest_archive_e2e.py::test_a_broker_restart_loses_no_acknowledged_tick_and_duplicates_none,
which runs in this suite too.) MARKETPULSE_RELIABILITY_FULL=1 adds dbt's tests and a from-scratch
gold rebuild.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from marketpulse_dev.localenv.kafka import KafkaServer
from marketpulse_dev.localenv.process import free_port
from marketpulse_dev.localenv.s3 import S3Server
from marketpulse_dev.reliability.checks import drain_and_check, metric_value
from marketpulse_dev.reliability.pipeline import FlowUnderTest, wait_until

pytestmark = [pytest.mark.reliability, pytest.mark.kafka, pytest.mark.s3]

DELIVERY_TIMEOUT_SECONDS = 4


@pytest.fixture
def own_kafka(tmp_path: Path) -> Iterator[KafkaServer]:
    """A broker of this test's own, since the test stops it."""
    kafka = KafkaServer(tmp_path / "own-kafka").start()
    yield kafka
    kafka.stop()


def test_a_broker_outage_longer_than_the_delivery_timeout_counts_and_reports_every_failed_tick(
    own_kafka: KafkaServer, s3_server: S3Server, tmp_path: Path
) -> None:
    flow = FlowUnderTest.create(own_kafka.bootstrap_servers, s3_server.settings(), tmp_path / "flow")
    port = free_port()
    try:
        archive = flow.run("archive")
        ingest = flow.run(
            "ingest",
            {
                "MARKETPULSE_SYNTHETIC_RATE": "1000",
                "MARKETPULSE_TICK_LIMIT": "15000",
                "MARKETPULSE_INGEST_DELIVERY_TIMEOUT_SECONDS": str(DELIVERY_TIMEOUT_SECONDS),
                "MARKETPULSE_METRICS_PORT": str(port),
            },
        )
        wait_until(lambda: bool(flow.bronze()[1]), 60, "the first bronze object", flow.logs)
        own_kafka.stop()
        # While the broker is away, the producer gives up on each tick after the delivery timeout
        # and must say so on /metrics (scraped while ingest still runs).
        errors_seen = 0.0

        def counted() -> bool:
            nonlocal errors_seen
            errors_seen = metric_value(port, "marketpulse_ingest_delivery_errors_total")
            return errors_seen > 0

        wait_until(counted, DELIVERY_TIMEOUT_SECONDS + 30, "delivery errors on /metrics", flow.logs)
        assert ingest.poll() is None, "ingest keeps running through the outage"
        own_kafka.start()
        cleared_at = time.monotonic()

        assert ingest.wait(timeout=180) == 1, "ingest must exit non-zero when ticks were not delivered"
        (stopped,) = flow.log_records(ingest, "ingest stopped")
        failed, acked, produced = int(stopped["failed"]), int(stopped["acked"]), int(stopped["produced"])  # type: ignore[call-overload]
        assert failed >= errors_seen > 0
        assert produced == acked + failed + int(stopped["undelivered"]), stopped  # type: ignore[call-overload]
        reports = flow.log_records(ingest, "ticks not delivered")
        assert sum(int(r["count"]) for r in reports) == failed, "every failure is logged, in summary lines"  # type: ignore[call-overload]
        assert len(reports) < failed, "an outage is not one log line per tick"
        assert len(flow.ledger()) == acked, "the ledger holds the acknowledged ticks, not the failed ones"

        result = drain_and_check(
            flow,
            f"broker outage > delivery timeout ({DELIVERY_TIMEOUT_SECONDS}s)",
            fault_cleared_at=cleared_at,
            archive=archive,
            notes={"delivery_failures": failed, "produced": produced},
        )
    finally:
        flow.stop_all()
    assert not result.violations, "\n".join(result.violations)
