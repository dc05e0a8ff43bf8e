"""`marketpulse ingest`: source → Kafka, until the source ends or SIGTERM."""

from __future__ import annotations

import logging

from prometheus_client import Gauge

from marketpulse.ingest.pacing import Pacer
from marketpulse.ingest.producer import TickProducer
from marketpulse.ingest.settings import IngestSettings
from marketpulse.runtime.http import serve_metrics_and_health
from marketpulse.runtime.shutdown import Shutdown
from marketpulse.sources.base import TickSource
from marketpulse.sources.synthetic import SyntheticSource

log = logging.getLogger(__name__)
QUEUED = Gauge("marketpulse_ingest_queue_records", "Records waiting in the producer's local queue.")


def build_source(settings: IngestSettings) -> TickSource:
    if not settings.watchlist:
        raise ValueError("MARKETPULSE_WATCHLIST: empty; expected comma-separated tickers such as AAPL,MSFT")
    return SyntheticSource(
        symbols=settings.watchlist,
        producer_id=settings.producer_id,
        seed=settings.synthetic_seed,
        clock=settings.synthetic_clock,
        ticks_per_second=settings.synthetic_ticks_per_second,
        limit=settings.tick_limit,
        scenarios=settings.synthetic_scenarios,
        # Small batches at low rates keep latency low; large ones at high rates keep overhead low.
        batch_size=max(1, min(2000, int(settings.synthetic_rate / 20) or 2000)),
    )


def run_ingest(settings: IngestSettings, shutdown: Shutdown) -> int:
    """Returns the process exit code: 0 when every tick was acknowledged, 1 otherwise."""
    source = build_source(settings)
    producer = TickProducer(
        settings.kafka_bootstrap_servers,
        settings.resolved_ticks_topic,
        settings.resolved_dlq_topic,
        ledger_path=settings.ingest_ledger,
    )
    if settings.metrics_port:
        serve_metrics_and_health(
            settings.metrics_port, healthy=lambda: producer.failed == 0 or producer.acked > 0
        )
    pacer = Pacer(settings.synthetic_rate)
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
    for batch in source.batches():
        if shutdown.wait(pacer.delay_for(len(batch))):
            break
        produced += producer.send(batch)
        QUEUED.set(len(producer.producer))
    remaining = producer.close()
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
