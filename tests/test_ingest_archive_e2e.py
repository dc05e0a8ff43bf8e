"""ingest → Kafka → archive → S3 with the real broker and S3 server, driven only by environment variables.

The ledger holds every (producer_id, seq) Kafka acknowledged; bronze must hold each exactly once,
also when the archiver dies between writing an object and committing its offsets. The crash, S3
outage and broker restart tests also belong to the reliability suite (`-m reliability`): they drain
through the real transform and check silver and gold with `marketpulse_dev.reliability.checks`.
"""

from __future__ import annotations

import itertools
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import orjson
import pytest
from confluent_kafka import Consumer

from marketpulse.contract.layout import parse_key
from marketpulse_dev.localenv.kafka import KafkaServer
from marketpulse_dev.localenv.s3 import S3Server
from marketpulse_dev.reliability.checks import drain_and_check
from marketpulse_dev.reliability.pipeline import FlowUnderTest, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.s3]


def test_every_acknowledged_tick_lands_in_bronze_once_and_poison_goes_to_the_dlq(flow: FlowUnderTest) -> None:
    ingest = flow.run(
        "ingest",
        {
            "MARKETPULSE_TICK_LIMIT": "20000",
            "MARKETPULSE_SYNTHETIC_SCENARIOS": '[{"kind": "malformed", "at": 777}]',
        },
    )
    archive = flow.run("archive")
    try:
        assert ingest.wait(timeout=120) == 0, flow.logs()
        ledger = flow.ledger()
        assert len(ledger) == 20000
        wait_until(lambda: len(flow.bronze()[0]) >= len(ledger), 60, "bronze to catch up", flow.logs)
    finally:
        archive.send_signal(signal.SIGTERM)
    assert archive.wait(timeout=60) == 0, flow.logs()

    identities, keys = flow.bronze()
    assert Counter(identities) == Counter(ledger), (
        "bronze must hold exactly the acknowledged ticks, once each"
    )
    parsed = [parse_key(key) for key in keys]
    assert all(parsed), keys
    # Per partition, object offset ranges are contiguous and do not overlap.
    for partition in {p[1] for p in parsed if p}:
        ranges = sorted((p[2], p[3]) for p in parsed if p and p[1] == partition)
        assert all(b[0] > a[1] for a, b in itertools.pairwise(ranges))

    consumer = Consumer(
        {
            "bootstrap.servers": flow.bootstrap,
            "group.id": f"dlq-{flow.name}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([flow.dlq_topic])
    try:
        message = None
        for _ in range(30):
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                break
        assert message is not None
        assert message.error() is None
        headers = dict(message.headers() or [])
        assert headers["stage"] == b"ingest"
        assert b"price" in headers["error"]
        assert message.key() in (b"AAPL", b"MSFT", b"NVDA", b"SPY")
    finally:
        consumer.close()


@pytest.mark.reliability
def test_an_archiver_killed_between_object_write_and_commit_does_not_duplicate_bronze(
    flow: FlowUnderTest,
) -> None:
    ingest = flow.run("ingest", {"MARKETPULSE_TICK_LIMIT": "15000"})
    # A short group session: the replacement gets the dead archiver's partitions after 6 s, not 45 s.
    crashing = flow.run(
        "archive",
        {
            "MARKETPULSE_FAILPOINTS": "archive.after-object-write=3",
            "MARKETPULSE_ARCHIVE_SESSION_TIMEOUT_SECONDS": "6",
        },
    )
    assert crashing.wait(timeout=120) == 137, flow.logs()
    killed_at = time.monotonic()
    assert ingest.wait(timeout=120) == 0, flow.logs()
    written_before_restart = len(flow.bronze()[1])
    assert written_before_restart >= 3

    archive = flow.run("archive")
    try:
        ledger = flow.ledger()
        wait_until(lambda: len(flow.bronze()[0]) >= len(ledger), 90, "bronze to catch up", flow.logs)
    finally:
        archive.send_signal(signal.SIGTERM)
    assert archive.wait(timeout=60) == 0, flow.logs()
    identities, _ = flow.bronze()
    duplicates = [identity for identity, count in Counter(identities).items() if count > 1]
    assert not duplicates, f"{len(duplicates)} ticks are in bronze twice"
    assert Counter(identities) == Counter(ledger)
    assert "object already in bronze; skipped" in flow.logs()

    result = drain_and_check(flow, "archive kill -9 after object write", fault_cleared_at=killed_at)
    assert not result.violations, "\n".join(result.violations)


def test_the_whole_pipeline_puts_every_acknowledged_tick_in_silver_once_and_publishes_gold(
    flow: FlowUnderTest,
) -> None:
    ingest = flow.run(
        "ingest",
        {
            "MARKETPULSE_TICK_LIMIT": "20000",
            "MARKETPULSE_SYNTHETIC_TICKS_PER_SECOND": "0.05",  # ~4 trading days of event time
            "MARKETPULSE_SYNTHETIC_SCENARIOS": orjson.dumps(
                [{"kind": "duplicate", "at": 100}, {"kind": "duplicate", "at": 5000}]
            ).decode(),
        },
    )
    archive = flow.run("archive")
    try:
        assert ingest.wait(timeout=120) == 0, flow.logs()
        ledger = flow.ledger()
        assert len(ledger) == 20002  # the two redelivered ticks were acknowledged twice
        wait_until(lambda: len(flow.bronze()[0]) >= len(ledger), 60, "bronze to catch up", flow.logs)
    finally:
        archive.send_signal(signal.SIGTERM)
    assert archive.wait(timeout=60) == 0, flow.logs()

    database = flow.workdir / "warehouse.duckdb"
    env = {"MARKETPULSE_DUCKDB_PATH": str(database), "MARKETPULSE_TRANSFORM_MODE": "cron"}
    first = flow.run("transform", env)
    assert first.wait(timeout=300) == 0, flow.logs()

    with duckdb.connect(str(database), read_only=True) as con:
        silver = con.execute("select producer_id, seq from silver.fct_ticks").fetchall()
        daily = con.execute(
            "select symbol, count(*) from gold.ohlc_daily group by symbol order by symbol"
        ).fetchall()
    assert len(silver) == len(set(silver)), "silver must not hold a tick twice"
    assert set(silver) == set(ledger), "every acknowledged tick must reach silver"
    assert [symbol for symbol, _ in daily] == ["AAPL", "MSFT", "NVDA", "SPY"]
    assert all(days >= 4 for _, days in daily), daily

    published = {o.object_name for o in flow.minio.list_objects(flow.bucket, prefix="gold/")}
    for table in (
        "ohlc_1m",
        "ohlc_daily",
        "returns_daily",
        "returns_cumulative",
        "volatility_rolling",
        "index_base100",
    ):
        assert f"gold/{table}.parquet" in published
    assert "gold/_manifest.json" in published

    again = flow.run("transform", env)
    assert again.wait(timeout=300) == 0, flow.logs()
    with duckdb.connect(str(database), read_only=True) as con:
        assert con.execute("select count(*) from silver.fct_ticks").fetchone() == (len(silver),)
        assert con.execute("select count(*) from bronze.raw_ticks").fetchone() == (len(ledger),)


@pytest.fixture
def own_servers(tmp_path: Path) -> Iterator[tuple[KafkaServer, S3Server]]:
    """A broker and an S3 server of this test's own, since the test stops and restarts them."""
    kafka = KafkaServer(tmp_path / "own-kafka").start()
    s3 = S3Server(tmp_path / "own-s3").start()
    yield kafka, s3
    kafka.stop()
    s3.stop()


def run_through_fault(
    flow: FlowUnderTest, fault: Callable[[], None], what: str
) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """Archive 12,000 ticks produced at 2,000/s, inject `fault` once bronze has its first object, drain.

    Returns the ledger of acknowledged ticks and the identities found in bronze.
    """
    archive = flow.run("archive")
    ingest = flow.run("ingest", {"MARKETPULSE_TICK_LIMIT": "12000", "MARKETPULSE_SYNTHETIC_RATE": "2000"})
    try:
        wait_until(lambda: bool(flow.bronze()[1]), 60, "the first bronze object", flow.logs)
        fault()
        # The producer's delivery timeout (120 s) outlasts the faults injected here.
        assert ingest.wait(timeout=180) == 0, flow.logs()
        ledger = flow.ledger()
        wait_until(
            lambda: len(flow.bronze()[0]) >= len(ledger), 120, f"bronze to catch up after {what}", flow.logs
        )
    finally:
        archive.send_signal(signal.SIGTERM)
    assert archive.wait(timeout=60) == 0, flow.logs()
    return ledger, flow.bronze()[0]


@pytest.mark.reliability
def test_an_s3_outage_pauses_the_archive_which_then_drains_without_loss_or_duplicates(
    own_servers: tuple[KafkaServer, S3Server], tmp_path: Path
) -> None:
    kafka, s3 = own_servers
    flow = FlowUnderTest.create(kafka.bootstrap_servers, s3.settings(), tmp_path)
    cleared: list[float] = []

    def outage() -> None:
        s3.stop()
        time.sleep(6)  # the outage: ingest keeps producing, the archive must hold on
        s3.start()
        cleared.append(time.monotonic())

    ledger, identities = run_through_fault(flow, outage, "S3 returned")
    assert Counter(identities) == Counter(ledger)
    logs = flow.logs()
    assert "S3 unavailable; consumption paused" in logs
    assert "S3 available again; consumption resumed" in logs
    assert logs.count("partitions assigned") == 1, "the outage must not cost the archive its partitions"

    result = drain_and_check(flow, "S3 outage (6 s)", fault_cleared_at=cleared[0])
    assert not result.violations, "\n".join(result.violations)


@pytest.mark.reliability
def test_a_broker_restart_loses_no_acknowledged_tick_and_duplicates_none(
    own_servers: tuple[KafkaServer, S3Server], tmp_path: Path
) -> None:
    kafka, s3 = own_servers
    flow = FlowUnderTest.create(kafka.bootstrap_servers, s3.settings(), tmp_path)
    cleared: list[float] = []

    def restart() -> None:
        kafka.stop()
        time.sleep(3)
        kafka.start()
        cleared.append(time.monotonic())

    ledger, identities = run_through_fault(flow, restart, "the restart")
    assert len(ledger) == 12000
    assert Counter(identities) == Counter(ledger), "bronze must hold each acknowledged tick exactly once"

    result = drain_and_check(flow, "broker restart within delivery timeout", fault_cleared_at=cleared[0])
    assert not result.violations, "\n".join(result.violations)
