"""`marketpulse ingest`: source → Kafka, until the source ends or SIGTERM."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from minio.error import S3Error
from prometheus_client import Gauge

from marketpulse.contract.settings.common import S3Settings
from marketpulse.contract.settings.ingest import IngestSettings
from marketpulse.contract.ticks import Tick, encode_tick
from marketpulse.ingest.pacing import Pacer
from marketpulse.ingest.producer import TickProducer
from marketpulse.runtime.http import serve_metrics_and_health
from marketpulse.runtime.shutdown import Shutdown
from marketpulse.sources.base import TickSource
from marketpulse.sources.finnhub import FinnhubSource
from marketpulse.sources.lines import ByteStream
from marketpulse.sources.replay import ReplaySource, local_opener
from marketpulse.sources.synthetic import DEFAULT_START, SyntheticSource, WireRecord
from marketpulse.storage.ranged import RangedObjectReader
from marketpulse.storage.s3 import minio_client

log = logging.getLogger(__name__)
QUEUED = Gauge("marketpulse_ingest_queue_records", "Records waiting in the producer's local queue.")


def s3_opener(uri: str) -> ByteStream:
    """Stream `s3://bucket/key` with the S3_* settings, a window at a time."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket or not key:
        raise ValueError(f"MARKETPULSE_REPLAY_URI: {uri!r} is not s3://bucket/key")
    s3 = S3Settings()
    client = minio_client(s3.s3_endpoint, s3.s3_access_key, s3.s3_secret_key.get_secret_value(), s3.s3_region)
    try:
        return RangedObjectReader(client, bucket, key)
    except S3Error as exc:
        raise ValueError(f"MARKETPULSE_REPLAY_URI: cannot read {uri}: {exc.code}") from None


def build_source(settings: IngestSettings) -> TickSource:
    if settings.source == "replay":
        if not settings.replay_uri:
            raise ValueError("MARKETPULSE_REPLAY_URI: not set; expected a local path or s3://bucket/key")
        opener = s3_opener if settings.replay_uri.startswith("s3://") else local_opener
        return ReplaySource(
            settings.replay_uri,
            opener,
            speed=settings.replay_speed,
            file_format=settings.replay_format,
            loop=settings.replay_loop,
        )
    if not settings.watchlist:
        raise ValueError("MARKETPULSE_WATCHLIST: empty; expected comma-separated tickers such as AAPL,MSFT")
    if settings.source == "finnhub":
        return FinnhubSource(
            symbols=settings.watchlist,
            api_key=settings.finnhub_api_key.get_secret_value(),
            producer_id=settings.producer_id,
            calls_per_minute=settings.finnhub_calls_per_minute,
            ws_url=settings.finnhub_ws_url,
            rest_url=settings.finnhub_rest_url,
            max_poll_seconds=settings.finnhub_max_poll_seconds,
        )
    if settings.synthetic_lead_in and settings.tick_limit is None:
        raise ValueError("MARKETPULSE_SYNTHETIC_LEAD_IN: needs MARKETPULSE_TICK_LIMIT (a finite walk to end)")
    return SyntheticSource(
        symbols=settings.watchlist,
        producer_id=settings.producer_id,
        seed=settings.synthetic_seed,
        clock=settings.synthetic_clock,
        ticks_per_second=settings.synthetic_ticks_per_second,
        limit=settings.tick_limit,
        scenarios=settings.synthetic_scenarios,
        lead_in=settings.synthetic_lead_in,
        start=settings.synthetic_start or DEFAULT_START,
        # Small batches at low rates keep latency low; large ones at high rates keep overhead low.
        batch_size=max(1, min(2000, int(settings.synthetic_rate / 20) or 2000)),
    )


def encoded_batches(source: TickSource) -> Iterator[list[WireRecord]]:
    """The source's batches with each tick encoded as (key, value); the synthetic source encodes its
    own ticks, skipping a Tick object per record on the hot path."""
    if isinstance(source, SyntheticSource):
        yield from source.wire_batches()
        return
    for batch in source.batches():
        yield [(r.symbol.encode(), encode_tick(r)) if isinstance(r, Tick) else r for r in batch]


def run_ingest(settings: IngestSettings, shutdown: Shutdown) -> int:
    """Returns the process exit code: 0 when every tick was acknowledged, 1 otherwise."""
    source = build_source(settings)
    producer = TickProducer(
        settings.kafka_config(),
        settings.resolved_ticks_topic,
        settings.resolved_dlq_topic,
        ledger_path=settings.ingest_ledger,
        overrides={"delivery.timeout.ms": round(settings.ingest_delivery_timeout_seconds * 1000)},
    )
    if settings.metrics_port:
        serve_metrics_and_health(
            settings.metrics_port,
            healthy=lambda: producer.failed == 0 or producer.acked > 0,
            host=settings.metrics_host,
        )
    # A replay paces itself by event time; the synthetic source is paced to its target rate here.
    pacer = Pacer(settings.synthetic_rate if settings.source == "synthetic" else 0)
    log.info(
        "ingest started",
        extra={
            "topic": settings.resolved_ticks_topic,
            "symbols": len(settings.watchlist),
            "rate": settings.synthetic_rate,
            "producer_id": settings.producer_id,
        },
    )
    produced = 0
    for batch in encoded_batches(source):
        if shutdown.wait(pacer.delay_for(len(batch))):
            break
        produced += producer.send_wire(batch)
        QUEUED.set(len(producer.producer))
    # Flush as long as a tick may still be delivered: a source that ends during a broker restart
    # must not give up on ticks the producer would still retry.
    remaining = producer.close(timeout=settings.ingest_delivery_timeout_seconds)
    log.info(
        "ingest stopped",
        extra={
            "produced": produced,
            "acked": producer.acked,
            "failed": producer.failed,
            "undelivered": remaining,
        },
    )
    return 0 if producer.failed == 0 and remaining == 0 else 1
