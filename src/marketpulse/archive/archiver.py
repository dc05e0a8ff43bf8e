"""The ticks' archiver: consume ticks, write bronze objects, then commit; DLQ what is invalid.

Exactly-once into bronze: offsets are committed only after the object is written, and when a
partition is (re)assigned, the object for the committed offset is looked up first: if a previous
owner wrote it but crashed before committing, we skip past it instead of writing it again.
While S3 is unavailable, the assigned partitions are paused and the consumer keeps polling, so it
stays in its group (no rebalance storm) and drains when S3 is back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, cast

import tenacity
from confluent_kafka import (
    OFFSET_INVALID,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from marketpulse.archive.batching import (
    CANONICAL_TICK,
    PartitionBatch,
    check_record,
)
from marketpulse.archive.metrics import (
    COMMITS_DEFERRED,
    DEAD_LETTERS,
    LATENCY,
    OBJECT_BYTES,
    QUOTE_WRITES_FAILED,
    RECOVERED,
    RETENTION_GAP,
    REVOKED_UNCOMMITTED,
    REVOKED_UNWRITTEN,
    S3_ERRORS,
    TICK_METRICS,
)
from marketpulse.archive.quotes import QuoteBook, WireQuote
from marketpulse.contract import dead_letters
from marketpulse.contract.layout import (
    BRONZE_PREFIX,
    QUOTES_KEY,
    key_prefix,
    parse_key,
    partition_date,
)
from marketpulse.contract.settings.archive import ArchiveSettings
from marketpulse.contract.ticks import reason_field
from marketpulse.runtime.faults import failpoint
from marketpulse.runtime.shutdown import Shutdown
from marketpulse.storage import ObjectStore, StorageUnavailableError

log = logging.getLogger(__name__)

# Longest wait between two tries of S3 while it is down.
STORAGE_MAX_BACKOFF_SECONDS = 10.0

# Commit errors that say "not now" (coordinator not ready, group rebalancing), not "wrong commit".
_COMMIT_LATER = frozenset(
    {
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.NOT_COORDINATOR,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.REBALANCE_IN_PROGRESS,
        KafkaError.ILLEGAL_GENERATION,
        KafkaError.UNKNOWN_MEMBER_ID,
        KafkaError._WAIT_COORD,
        KafkaError._TRANSPORT,
        KafkaError._TIMED_OUT,
    }
)


class _NoLongerOwnedError(Exception):
    """The partition an S3 call was for moved to another replica while S3 was waited out."""


def _range(batch: PartitionBatch) -> dict[str, int]:
    """A batch's range, for a log line."""
    return {
        "partition": batch.partition,
        "first": batch.first_offset,
        "last": batch.last_offset,
        "records": len(batch.lines),
    }


class Archiver:
    """Archives the ticks topic into bronze/ticks/; `DeadLetterArchiver` the dead-letter topic."""

    prefix = BRONZE_PREFIX
    stream = "ticks"
    metrics = TICK_METRICS
    assigned_message = "partitions assigned"
    revoked_message = "partitions revoked"

    def __init__(
        self,
        settings: ArchiveSettings,
        store: ObjectStore,
        shutdown: Shutdown,
        consumer_overrides: dict[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.shutdown = shutdown
        self.topic = self._topic(settings)
        self.group_id = self._group(settings)
        self.consumer = Consumer(
            {
                **settings.kafka_config(),
                "group.id": self.group_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "partition.assignment.strategy": "cooperative-sticky",
                "fetch.wait.max.ms": 100,
                "session.timeout.ms": round(settings.archive_session_timeout_seconds * 1000),
                **(consumer_overrides or {}),
            }
        )
        self.dlq = self._dead_letter_producer(settings)
        self.batches: dict[int, PartitionBatch] = {}
        # Partitions this replica owns now. A rebalance can run inside any poll, including the ones
        # that keep us in the group while S3 is down: whatever was read for a partition that has moved
        # since is dropped, never committed (the new owner re-reads it from the committed offset).
        self.owned: set[int] = set()
        self.deferred_commits: dict[int, int] = {}  # partition -> last offset of a written object
        self.last_commit_retry = 0.0
        self.recovering: set[int] = set()
        self.skip_through: dict[int, int] = {}
        self.quotes = QuoteBook(watchlist=frozenset(settings.watchlist))
        self.last_quotes_write = 0.0
        self.last_lag_report = 0.0
        self.storage_ok = True
        self.dead_letters_failed: list[str] = []

    def _topic(self, settings: ArchiveSettings) -> str:
        return settings.resolved_ticks_topic

    def _group(self, settings: ArchiveSettings) -> str:
        return settings.group_id

    def _dead_letter_producer(self, settings: ArchiveSettings) -> Producer | None:
        return Producer(
            {**settings.kafka_config(), "acks": "all", "enable.idempotence": True, "linger.ms": 5}
        )

    # -- rebalance callbacks -------------------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.owned.add(tp.partition)
            self.recovering.add(tp.partition)
            self.batches.pop(tp.partition, None)
        log.info(self.assigned_message, extra={"partitions": [tp.partition for tp in partitions]})

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Uncommitted batches are dropped: the next owner re-reads them from the committed offset.
        for tp in partitions:
            self.owned.discard(tp.partition)
            self.batches.pop(tp.partition, None)
            self.recovering.discard(tp.partition)
            self.skip_through.pop(tp.partition, None)
            self.deferred_commits.pop(tp.partition, None)
        if partitions:
            log.info(self.revoked_message, extra={"partitions": [tp.partition for tp in partitions]})

    # -- main loop -----------------------------------------------------------------------------
    def run(self) -> None:
        self.consumer.subscribe(
            [self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke
        )
        log.info(
            "archive started",
            extra={"topic": self.topic, "group": self.group_id, "bucket": self.store.bucket},
        )
        try:
            while not self.shutdown.requested:
                self._handle_all(self.consumer.consume(num_messages=5000, timeout=0.1))
                self._flush_due(final=False)
                self._retry_deferred_commits()
                self._write_quotes()
                self._report_lag()
            self._flush_due(final=True)
            self._write_quotes(force=True)
        finally:
            if self.dlq is not None:
                self.dlq.flush(30)
            self.consumer.close()
            log.info("archive stopped")

    def _handle_all(self, messages: list[Message]) -> None:
        """One consumed batch. Canonical records are validated by one regex match each and feed the
        quote book in bulk; anything else takes the full check (and the dead-letter topic if invalid)."""
        rows: list[WireQuote] = []
        canonical = CANONICAL_TICK.fullmatch
        counted = 0
        sampled: set[int] = set()
        for message in messages:
            admitted = self._admit(message)
            if admitted is None:
                continue
            partition, offset, batch = admitted
            counted += 1
            value = message.value()
            match = canonical(value) if value is not None else None
            if match is not None:
                # One latency sample per partition and consumed batch is plenty for the histogram.
                if partition in sampled:
                    batch.add(offset, value)
                else:
                    sampled.add(partition)
                    batch.add(offset, value, message.timestamp()[1])
                rows.append(cast(WireQuote, match.groups()))  # the pattern has these four groups
                continue
            record, reason = check_record(value)
            if record is None:
                assert reason is not None
                self._dead_letter(message, reason)
                batch.skip(offset)
                continue
            batch.add(offset, value, message.timestamp()[1])
            # The book must see records in order: what came before this one first.
            self.quotes.update_rows(rows)
            rows.clear()
            self.quotes.update(record)
        self.quotes.update_rows(rows)
        self.metrics.records.inc(counted)

    def _admit(self, message: Message) -> tuple[int, int, PartitionBatch] | None:
        """(partition, offset, its open batch) of a record to archive, or None for one to pass over:
        an error, a partition no longer owned, or an offset already in bronze (`_recover`)."""
        partition, offset = message.partition(), message.offset()
        if message.error() is not None or partition is None or offset is None:
            self._handle_error(message)
            return None
        if partition not in self.owned:
            return None  # revoked while an earlier record of this batch waited for S3 (_recover)
        if partition in self.recovering:
            self.recovering.discard(partition)
            self._recover(partition, offset, message.timestamp()[1])
            if partition not in self.owned:
                return None
        if offset <= self.skip_through.get(partition, -1):
            return None
        batch = self.batches.get(partition)
        if batch is None:
            batch = self.batches[partition] = self._new_batch(partition, offset, message.timestamp()[1])
        return partition, offset, batch

    def _new_batch(self, partition: int, offset: int, timestamp_ms: int) -> PartitionBatch:
        return PartitionBatch(partition, offset, timestamp_ms, time.monotonic(), prefix=self.prefix)

    def _handle_error(self, message: Message) -> None:
        error = message.error()
        if error is not None and error.code() != KafkaError._PARTITION_EOF:
            log.warning("consumer error", extra={"kafka_error": str(error)})

    def _recover(self, partition: int, offset: int, timestamp_ms: int) -> None:
        """Skip an object a previous owner wrote for this offset but did not commit."""
        self._check_retention_gap(partition, offset)
        prefix = key_prefix(partition_date(timestamp_ms), partition, offset, self.prefix)
        try:
            listed = self._with_storage(
                lambda: list(self.store.list(prefix)), wanted=lambda: partition in self.owned
            )
        except _NoLongerOwnedError:
            return  # moved while S3 was down: the new owner recovers it
        found = [parse_key(info.key, self.prefix) for info in listed]
        last = max((parsed[3] for parsed in found if parsed), default=None)
        if last is None or partition not in self.owned:
            return
        self.skip_through[partition] = last
        RECOVERED.inc()
        self._commit(partition, last)
        log.info(
            "object already in bronze; skipped", extra={"partition": partition, "first": offset, "last": last}
        )

    def _check_retention_gap(self, partition: int, first: int) -> None:
        """A partition's first record after assignment should be the one after the committed offset (or
        offset 0 for a group that never committed). Later means retention deleted the records between
        before they were archived: the consumer's offset reset skips them silently, so say it here."""
        try:
            (committed,) = self.consumer.committed([TopicPartition(self.topic, partition)], timeout=10)
        except KafkaException as exc:
            log.warning("committed offset unknown; retention gap not checked", extra={"error": str(exc)})
            return
        expected = committed.offset if committed.offset >= 0 else 0
        if first <= expected:
            return
        RETENTION_GAP.labels(self.stream).inc(first - expected)
        log.error(
            "records deleted by retention before they were archived",
            extra={
                "topic": self.topic,
                "partition": partition,
                "committed": expected,
                "first_available": first,
                "records": first - expected,
            },
        )

    def _dead_letter(self, message: Message, reason: str) -> None:
        DEAD_LETTERS.labels(reason_field(reason)).inc()
        where: dead_letters.Headers = [
            ("topic", self.topic.encode()),
            ("partition", str(message.partition()).encode()),
            ("offset", str(message.offset()).encode()),
        ]
        letter = dead_letters.dead_letter(message.value(), message.key(), reason, "archive", where)
        assert self.dlq is not None  # the ticks' archiver has one
        self.dlq.produce(
            self.settings.resolved_dlq_topic,
            key=letter.key,
            value=letter.value,
            headers=letter.headers,
            on_delivery=self._on_dead_letter_delivery,
        )
        self.dlq.poll(0)

    def _on_dead_letter_delivery(self, err: KafkaError | None, _message: Message) -> None:
        # A dead letter the broker refused must stop its range from being committed (_flush).
        if err is not None:
            self.dead_letters_failed.append(str(err))

    def _flush_due(self, *, final: bool) -> None:
        now = time.monotonic()
        for partition, batch in list(self.batches.items()):
            if self.batches.get(partition) is not batch:
                continue  # revoked while an earlier object of this loop waited for S3
            if final or batch.due(
                now, self.settings.archive_max_age_seconds, self.settings.archive_max_bytes
            ):
                self._flush(batch)
                # The batch may be gone already: its partition was revoked while S3 was waited out.
                if self.batches.get(partition) is batch:
                    del self.batches[partition]

    def _flush(self, batch: PartitionBatch) -> None:
        compress = self.settings.archive_gzip
        if batch.lines:
            key, body = batch.key(compress=compress), batch.body(compress=compress)
            if self.prefix == BRONZE_PREFIX:  # the crash tests aim at the ticks' objects
                failpoint("archive.before-object-write")
            try:
                self._with_storage(
                    lambda: self.store.put(key, body, "application/x-ndjson"),
                    wanted=lambda: self._owns(batch),
                )
            except _NoLongerOwnedError:
                REVOKED_UNWRITTEN.inc(len(batch.lines))
                log.warning(
                    "partition moved while S3 was down; its batch is left to the new owner",
                    extra=_range(batch),
                )
                return
            if self.prefix == BRONZE_PREFIX:  # the crash tests aim at the ticks' objects
                failpoint("archive.after-object-write")
            self.metrics.objects.inc()
            if self.metrics is TICK_METRICS:
                OBJECT_BYTES.observe(len(body))
            now_ms = time.time() * 1000
            for stamp in batch.timestamps_ms[:: max(1, len(batch.timestamps_ms) // 20)]:
                LATENCY.observe(max(0.0, (now_ms - stamp) / 1000))
        # Dead letters of this range must be acknowledged before the range is committed; one the
        # broker refused fails the archive, which then re-reads the range from the committed offset.
        if self.dlq is not None and self.dlq.flush(30) > 0:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "dead-letter records not acknowledged"))
        if self.dead_letters_failed:
            failed, self.dead_letters_failed = self.dead_letters_failed, []
            raise KafkaException(
                KafkaError(KafkaError._FAIL, f"{len(failed)} dead letter(s) not delivered: {failed[0]}")
            )
        if not self._owns(batch):
            # Revoked (or revoked and assigned back, which restarts it from the committed offset) while
            # the object was being written: committing now would speak for a range we no longer own.
            REVOKED_UNCOMMITTED.inc(len(batch.lines))
            log.warning(
                "partition moved while its object was written; left uncommitted for its owner",
                extra=_range(batch),
            )
            return
        self._commit(batch.partition, batch.last_offset, records=len(batch.lines))

    def _owns(self, batch: PartitionBatch) -> bool:
        """Whether `batch` still speaks for its partition (not revoked, nor revoked and reassigned)."""
        return batch.partition in self.owned and self.batches.get(batch.partition) is batch

    def _commit(self, partition: int, last_offset: int, records: int = 0) -> None:
        """Commit synchronously. A commit the group cannot take now (its coordinator is moving or
        still loading after a broker restart, or the group is rebalancing) is left for later instead
        of crashing or blocking the loop: the object is written, so the next commit of this partition
        covers it, and an owner that starts from the older offset skips the object (`_recover`).
        When no next record comes (the market closed), `_retry_deferred_commits` sends it again."""
        self.deferred_commits.pop(partition, None)
        try:
            self.consumer.commit(
                offsets=[TopicPartition(self.topic, partition, last_offset + 1)], asynchronous=False
            )
        except KafkaException as exc:
            error = exc.args[0]
            if not isinstance(error, KafkaError) or error.code() not in _COMMIT_LATER:
                raise
            COMMITS_DEFERRED.inc()
            self.deferred_commits[partition] = last_offset
            log.warning(
                "offset commit failed; the next commit covers it",
                extra={"partition": partition, "records": records, "kafka_error": str(error)},
            )

    def _retry_deferred_commits(self) -> None:
        """Once a second, commit again what the group could not take, for partitions still owned."""
        now = time.monotonic()
        if not self.deferred_commits or now - self.last_commit_retry < 1:
            return
        self.last_commit_retry = now
        for partition, last_offset in list(self.deferred_commits.items()):
            if partition not in self.owned or partition in self.batches:
                # Gone to another owner, or the open batch's commit will cover it anyway.
                self.deferred_commits.pop(partition, None)
                continue
            self._commit(partition, last_offset)

    def _with_storage(self, action: Any, wanted: Callable[[], bool] | None = None) -> Any:
        """Run an S3 call; while S3 is down, pause consumption, keep polling (group membership) between
        tries, backing off to 10 s; give up only once shutdown was asked for and the wait is long.
        `wanted`, when given, is asked before each try: once it is false (the partition moved to
        another replica meanwhile) the call is abandoned with _NoLongerOwnedError."""

        def paused(state: tenacity.RetryCallState) -> None:
            S3_ERRORS.inc()
            if self.storage_ok:
                self.storage_ok = False
                error = state.outcome.exception() if state.outcome else None
                log.warning("S3 unavailable; consumption paused", extra={"error": str(error)})

        def give_up(state: tenacity.RetryCallState) -> bool:
            return self.shutdown.requested and (state.upcoming_sleep or 0) >= STORAGE_MAX_BACKOFF_SECONDS

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(StorageUnavailableError),
            wait=tenacity.wait_exponential(multiplier=0.5, max=STORAGE_MAX_BACKOFF_SECONDS),
            stop=give_up,
            sleep=self._keep_membership,
            before_sleep=paused,
            reraise=True,
        )

        def attempt() -> Any:
            # Asked before every try: a rebalance can run in any wait (_keep_membership polls).
            if wanted is not None and not wanted():
                raise _NoLongerOwnedError
            return action()

        try:
            result = retrying(attempt)
        except _NoLongerOwnedError:
            self._resume_if_paused()
            raise
        self._resume_if_paused()
        return result

    def _resume_if_paused(self) -> None:
        if not self.storage_ok:
            self.consumer.resume(self.consumer.assignment())
            self.storage_ok = True
            log.info("S3 available again; consumption resumed")

    def _keep_membership(self, seconds: float) -> None:
        """Poll without consuming: paused partitions deliver nothing, but polling keeps us in the group."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.consumer.pause(self.consumer.assignment())  # includes partitions assigned meanwhile
            for message in self.consumer.consume(num_messages=100, timeout=0.1):
                partition, offset = message.partition(), message.offset()
                if message.error() is None and partition is not None and offset is not None:
                    # Fetched before the pause took effect: rewind so it is read again, never skipped.
                    self.consumer.seek(TopicPartition(self.topic, partition, offset))

    def _report_lag(self) -> None:
        """From the high watermarks the fetcher already knows (no broker round trip) and our positions."""
        now = time.monotonic()
        if now - self.last_lag_report < 5:
            return
        self.last_lag_report = now
        lag = 0
        for tp in self.consumer.assignment():
            _, high = self.consumer.get_watermark_offsets(tp, cached=True)
            batch = self.batches.get(tp.partition)
            committed_to = batch.first_offset if batch else None
            if committed_to is None:
                (position,) = self.consumer.position([tp])
                committed_to = position.offset
            if high >= 0 and committed_to is not None and committed_to >= 0:
                lag += max(0, high - committed_to)
        self.metrics.lag.set(lag)

    def _write_quotes(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self.quotes.changed or (
            not force and now - self.last_quotes_write < self.settings.quotes_interval_seconds
        ):
            return
        snapshot = self.quotes.snapshot()
        try:
            self.store.put(QUOTES_KEY, snapshot, "application/json")
        except StorageUnavailableError as exc:
            # The snapshot is the whole latest state, so the next write makes up for this one.
            QUOTE_WRITES_FAILED.inc()
            log.warning("quotes snapshot not written; retrying", extra={"error": str(exc)})
            self.quotes.changed = True
        self.last_quotes_write = now


__all__ = ["OFFSET_INVALID", "Archiver"]
