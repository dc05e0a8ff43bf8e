"""ingest → Kafka → archive → S3 with the real broker and S3 server, driven only by environment variables.

The ledger holds every (producer_id, seq) Kafka acknowledged; bronze must hold each exactly once,
also when the archiver dies between writing an object and committing its offsets. The crash, S3
outage and broker restart tests also belong to the reliability suite (`-m reliability`): they drain
through the real transform and check silver and gold with `marketpulse.reliability.checks`.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import orjson
import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic
from minio import Minio

from marketpulse.archive.batching import parse_key
from marketpulse.localenv.kafka import KafkaServer
from marketpulse.localenv.s3 import S3Server
from marketpulse.reliability.checks import drain_and_check

pytestmark = [pytest.mark.kafka, pytest.mark.s3]

MARKETPULSE = str(Path(sys.executable).parent / "marketpulse")


@dataclass
class Pipeline:
    name: str
    env: dict[str, str]
    bucket: str
    ticks_topic: str
    dlq_topic: str
    workdir: Path
    minio: Minio
    bootstrap: str

    def run(self, command: str, extra: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{command}-{time.monotonic_ns()}.log").open("wb")
        return subprocess.Popen(
            [MARKETPULSE, command], env={**self.env, **(extra or {})}, stdout=log, stderr=subprocess.STDOUT
        )

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.workdir.glob("*.log")))

    def bronze(self) -> tuple[list[tuple[str, int]], list[str]]:
        """(producer_id, seq) of every record in every bronze object, and the object keys."""
        identities: list[tuple[str, int]] = []
        keys = []
        for item in self.minio.list_objects(self.bucket, prefix="bronze/ticks/", recursive=True):
            assert item.object_name is not None
            keys.append(item.object_name)
            response = self.minio.get_object(self.bucket, item.object_name)
            try:
                for line in response.read().splitlines():
                    record = orjson.loads(line)
                    identities.append((record["producer_id"], record["seq"]))
            finally:
                response.close()
                response.release_conn()
        return identities, keys


def read_ledger(path: Path) -> list[tuple[str, int]]:
    if not path.exists():
        return []
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    return [(producer, int(seq)) for producer, seq in rows]


def wait_until(predicate: object, timeout: float, what: str, pipeline: Pipeline) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout}s waiting for {what}\n{pipeline.logs()}")


@pytest.fixture
def pipeline(kafka_server: KafkaServer, s3_server: S3Server, tmp_path: Path) -> Pipeline:
    return make_pipeline(kafka_server, s3_server, tmp_path)


def make_pipeline(kafka_server: KafkaServer, s3_server: S3Server, tmp_path: Path) -> Pipeline:
    name = f"p{uuid.uuid4().hex[:6]}"
    ticks, dlq = f"test.{name}.ticks", f"test.{name}.ticks.dlq"
    admin = AdminClient({"bootstrap.servers": kafka_server.bootstrap_servers})
    for future in admin.create_topics([NewTopic(ticks, 3, 1), NewTopic(dlq, 1, 1)]).values():
        future.result(timeout=30)
    minio = Minio(
        s3_server.endpoint.removeprefix("http://"),
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
        secure=False,
        region="us-east-1",
    )
    bucket = f"mp-{name}"
    minio.make_bucket(bucket)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MARKETPULSE_")},
        **kafka_server.settings(),
        **s3_server.settings(),
        "MARKETPULSE_NAMESPACE": "test",
        "MARKETPULSE_PIPELINE": name,
        "MARKETPULSE_BUCKET": bucket,
        "MARKETPULSE_WATCHLIST": "AAPL,MSFT,NVDA,SPY",
        "MARKETPULSE_METRICS_PORT": "0",
        "MARKETPULSE_SYNTHETIC_CLOCK": "simulated",
        "MARKETPULSE_SYNTHETIC_RATE": "0",
        "MARKETPULSE_INGEST_LEDGER": str(tmp_path / "ledger.txt"),
        "MARKETPULSE_ARCHIVE_MAX_AGE_SECONDS": "0.5",
        "MARKETPULSE_ARCHIVE_MAX_BYTES": "200000",
    }
    return Pipeline(name, env, bucket, ticks, dlq, tmp_path, minio, kafka_server.bootstrap_servers)


def test_every_acknowledged_tick_lands_in_bronze_once_and_poison_goes_to_the_dlq(pipeline: Pipeline) -> None:
    ingest = pipeline.run(
        "ingest",
        {
            "MARKETPULSE_TICK_LIMIT": "20000",
            "MARKETPULSE_SYNTHETIC_SCENARIOS": '[{"kind": "malformed", "at": 777}]',
        },
    )
    archive = pipeline.run("archive")
    try:
        assert ingest.wait(timeout=120) == 0, pipeline.logs()
        ledger = read_ledger(pipeline.workdir / "ledger.txt")
        assert len(ledger) == 20000
        wait_until(lambda: len(pipeline.bronze()[0]) >= len(ledger), 60, "bronze to catch up", pipeline)
    finally:
        archive.send_signal(signal.SIGTERM)
    assert archive.wait(timeout=60) == 0, pipeline.logs()

    identities, keys = pipeline.bronze()
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
            "bootstrap.servers": pipeline.bootstrap,
            "group.id": f"dlq-{pipeline.name}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([pipeline.dlq_topic])
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
    pipeline: Pipeline,
) -> None:
    ingest = pipeline.run("ingest", {"MARKETPULSE_TICK_LIMIT": "15000"})
    # A short group session: the replacement gets the dead archiver's partitions after 6 s, not 45 s.
    crashing = pipeline.run(
        "archive",
        {
            "MARKETPULSE_FAILPOINTS": "archive.after-object-write=3",
            "MARKETPULSE_ARCHIVE_SESSION_TIMEOUT_SECONDS": "6",
        },
    )
    assert crashing.wait(timeout=120) == 137, pipeline.logs()
    killed_at = time.monotonic()
    assert ingest.wait(timeout=120) == 0, pipeline.logs()
    written_before_restart = len(pipeline.bronze()[1])
    assert written_before_restart >= 3

    archive = pipeline.run("archive")
    try:
        ledger = read_ledger(pipeline.workdir / "ledger.txt")
        wait_until(lambda: len(pipeline.bronze()[0]) >= len(ledger), 90, "bronze to catch up", pipeline)
    finally:
        archive.send_signal(signal.SIGTERM)
    assert archive.wait(timeout=60) == 0, pipeline.logs()
    identities, _ = pipeline.bronze()
    duplicates = [identity for identity, count in Counter(identities).items() if count > 1]
    assert not duplicates, f"{len(duplicates)} ticks are in bronze twice"
    assert Counter(identities) == Counter(ledger)
    assert "object already in bronze; skipped" in pipeline.logs()

    result = drain_and_check(pipeline, "archive kill -9 after object write", fault_cleared_at=killed_at)
    assert not result.violations, "\n".join(result.violations)


def test_the_whole_pipeline_puts_every_acknowledged_tick_in_silver_once_and_publishes_gold(
    pipeline: Pipeline,
) -> None:
    ingest = pipeline.run(
        "ingest",
        {
            "MARKETPULSE_TICK_LIMIT": "20000",
            "MARKETPULSE_SYNTHETIC_TICKS_PER_SECOND": "0.05",  # ~4 trading days of event time
            "MARKETPULSE_SYNTHETIC_SCENARIOS": orjson.dumps(
                [{"kind": "duplicate", "at": 100}, {"kind": "duplicate", "at": 5000}]
            ).decode(),
        },
    )
    archive = pipeline.run("archive")
    try:
        assert ingest.wait(timeout=120) == 0, pipeline.logs()
        ledger = read_ledger(pipeline.workdir / "ledger.txt")
        assert len(ledger) == 20002  # the two redelivered ticks were acknowledged twice
        wait_until(lambda: len(pipeline.bronze()[0]) >= len(ledger), 60, "bronze to catch up", pipeline)
    finally:
        archive.send_signal(signal.SIGTERM)
    assert archive.wait(timeout=60) == 0, pipeline.logs()

    database = pipeline.workdir / "warehouse.duckdb"
    env = {"MARKETPULSE_DUCKDB_PATH": str(database), "MARKETPULSE_TRANSFORM_MODE": "once"}
    first = pipeline.run("transform", env)
    assert first.wait(timeout=300) == 0, pipeline.logs()

    with duckdb.connect(str(database), read_only=True) as con:
        silver = con.execute("select producer_id, seq from silver.fct_ticks").fetchall()
        daily = con.execute(
            "select symbol, count(*) from gold.ohlc_daily group by symbol order by symbol"
        ).fetchall()
    assert len(silver) == len(set(silver)), "silver must not hold a tick twice"
    assert set(silver) == set(ledger), "every acknowledged tick must reach silver"
    assert [symbol for symbol, _ in daily] == ["AAPL", "MSFT", "NVDA", "SPY"]
    assert all(days >= 4 for _, days in daily), daily

    published = {o.object_name for o in pipeline.minio.list_objects(pipeline.bucket, prefix="gold/")}
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

    again = pipeline.run("transform", env)
    assert again.wait(timeout=300) == 0, pipeline.logs()
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
    flow: Pipeline, fault: Callable[[], None], what: str
) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """Archive 12,000 ticks produced at 2,000/s, inject `fault` once bronze has its first object, drain.

    Returns the ledger of acknowledged ticks and the identities found in bronze.
    """
    archive = flow.run("archive")
    ingest = flow.run("ingest", {"MARKETPULSE_TICK_LIMIT": "12000", "MARKETPULSE_SYNTHETIC_RATE": "2000"})
    try:
        wait_until(lambda: bool(flow.bronze()[1]), 60, "the first bronze object", flow)
        fault()
        # The producer's delivery timeout (120 s) outlasts the faults injected here.
        assert ingest.wait(timeout=180) == 0, flow.logs()
        ledger = read_ledger(flow.workdir / "ledger.txt")
        wait_until(
            lambda: len(flow.bronze()[0]) >= len(ledger), 120, f"bronze to catch up after {what}", flow
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
    flow = make_pipeline(kafka, s3, tmp_path)
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
    flow = make_pipeline(kafka, s3, tmp_path)
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
