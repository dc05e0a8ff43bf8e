"""The Kafka side of ingest: idempotent, acks=all, compressed, batched; delivery reports feed metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import orjson
from confluent_kafka import KafkaError, Message, Producer
from prometheus_client import Counter

from marketpulse.contract import dead_letters
from marketpulse.contract.ticks import reason_field
from marketpulse.sources.base import BadRecord
from marketpulse.sources.synthetic import WireRecord

log = logging.getLogger(__name__)

TICKS_PRODUCED = Counter("marketpulse_ingest_ticks_produced_total", "Ticks handed to the Kafka producer.")
TICKS_ACKED = Counter("marketpulse_ingest_ticks_acked_total", "Ticks the broker acknowledged (acks=all).")
DELIVERY_ERRORS = Counter("marketpulse_ingest_delivery_errors_total", "Ticks the producer failed to deliver.")
DEAD_LETTERS = Counter(
    "marketpulse_ingest_dead_letters_total", "Bad source records sent to the dead-letter topic.", ["field"]
)

PRODUCER_DEFAULTS: dict[str, Any] = {
    "acks": "all",
    "enable.idempotence": True,
    "compression.type": "lz4",
    "linger.ms": 20,
    "batch.size": 512 * 1024,
    "queue.buffering.max.messages": 500_000,
    "queue.buffering.max.kbytes": 256 * 1024,
    # Long enough to ride out a broker restart; what still fails after this is counted and logged.
    "delivery.timeout.ms": 120_000,
}
# During an outage every queued tick fails at once: one summary line per interval, not one per tick.
FAILURE_LOG_INTERVAL_SECONDS = 5.0


class TickProducer:
    """Delivery reports: with a ledger, one per record (the ledger needs every acknowledged id);
    without one, only failures are reported and the acknowledged count is what was produced less what
    failed and what is still queued or in flight: a report per tick is a Python call per tick."""

    def __init__(
        self,
        kafka_config: dict[str, str],
        ticks_topic: str,
        dlq_topic: str,
        *,
        ledger_path: Path | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> None:
        self.ticks_topic = ticks_topic
        self.dlq_topic = dlq_topic
        self.producer = Producer(
            {
                **kafka_config,
                **PRODUCER_DEFAULTS,
                **(overrides or {}),
                "on_delivery": self._on_delivery,
                "delivery.report.only.error": ledger_path is None,
            }
        )
        # The reliability ledger: (producer_id, seq) of every acknowledged tick, one per line.
        self._ledger: IO[str] | None = ledger_path.open("a", buffering=1 << 16) if ledger_path else None
        self.produced = 0
        self._acked = 0
        self._ticks_failed = 0
        self.failed = 0
        self.last_error: str | None = None
        self._unlogged_failures = 0
        self._failures_logged_at = float("-inf")

    @property
    def acked(self) -> int:
        """Ticks the broker acknowledged, as of the last `send` or `close` (a lower bound while dead
        letters are in flight). Read-only, so the health endpoint's thread may read it."""
        return self._acked

    def _sync_acked(self) -> None:
        if self._ledger is not None:
            return  # counted one by one in the delivery reports
        settled = self.produced - self._ticks_failed - len(self.producer)
        if settled > self._acked:
            TICKS_ACKED.inc(settled - self._acked)
            self._acked = settled

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if msg.topic() != self.ticks_topic:
            if err is not None:
                self.failed += 1
                log.error("dead letter not delivered", extra={"kafka_error": str(err)})
            return
        if err is not None:
            self.failed += 1
            self._ticks_failed += 1
            self.last_error = str(err)
            DELIVERY_ERRORS.inc()
            self._unlogged_failures += 1
            if time.monotonic() - self._failures_logged_at >= FAILURE_LOG_INTERVAL_SECONDS:
                self._log_failures()
            return
        self._acked += 1
        TICKS_ACKED.inc()
        if self._ledger is not None:
            record = orjson.loads(msg.value() or b"{}")
            self._ledger.write(f"{record['producer_id']} {record['seq']}\n")

    def _log_failures(self) -> None:
        """One line for the failures since the last one; `count` over these lines adds up to `failed`."""
        if self._unlogged_failures:
            log.error(
                "ticks not delivered",
                extra={
                    "count": self._unlogged_failures,
                    "failed_total": self.failed,
                    "kafka_error": self.last_error,
                    "topic": self.ticks_topic,
                },
            )
        self._unlogged_failures = 0
        self._failures_logged_at = time.monotonic()

    def _produce(self, topic: str, value: bytes, key: bytes | None, headers: Any = None) -> None:
        while True:
            try:
                self.producer.produce(topic, value, key, headers=headers)
                return
            except BufferError:
                # The local queue is full: serve delivery reports until there is room (back-pressure).
                self.producer.poll(0.05)

    def send_wire(self, records: Iterable[WireRecord]) -> int:
        """Produce a batch of ticks already encoded as (key, value); returns the number of ticks."""
        produce, topic = self.producer.produce, self.ticks_topic
        ticks = 0
        for record in records:
            if isinstance(record, BadRecord):
                self.dead_letter(record)
                continue
            key, value = record
            try:
                produce(topic, value, key)
            except BufferError:
                self._produce(topic, value, key)
            ticks += 1
        self.produced += ticks
        TICKS_PRODUCED.inc(ticks)
        self.producer.poll(0)
        self._sync_acked()
        return ticks

    def dead_letter(self, record: BadRecord) -> None:
        DEAD_LETTERS.labels(reason_field(record.reason)).inc()
        key = record.symbol.encode() if record.symbol else None
        letter = dead_letters.dead_letter(record.raw, key, record.reason, "ingest", size=record.size)
        self._produce(self.dlq_topic, letter.value, letter.key, headers=letter.headers)

    def close(self, timeout: float = 30.0) -> int:
        """Flush what is queued; returns how many records are still undelivered."""
        remaining = int(self.producer.flush(timeout))
        self._sync_acked()
        self._log_failures()
        if self._ledger is not None:
            self._ledger.close()
        return remaining
