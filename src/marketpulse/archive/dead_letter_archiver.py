"""The dead-letter topic kept beside bronze, for as long as bronze (see `DeadLetterArchiver`)."""

from __future__ import annotations

from confluent_kafka import Message, Producer

from marketpulse.archive.archiver import Archiver
from marketpulse.archive.metrics import DEAD_LETTER_METRICS
from marketpulse.contract import dead_letters
from marketpulse.contract.layout import DEAD_LETTERS_PREFIX
from marketpulse.contract.settings.archive import ArchiveSettings


class DeadLetterArchiver(Archiver):
    """The dead-letter topic into bronze/dead-letters/, exactly as the ticks go to bronze/ticks/: one
    object per offset range, committed after it is written, recovered after a crash. Every record is
    kept as it is (`dead_letters.archived_line`); nothing here is refused, so nothing is produced."""

    prefix = DEAD_LETTERS_PREFIX
    stream = "dead-letters"
    metrics = DEAD_LETTER_METRICS
    assigned_message = "assigned dead-letter partitions"
    revoked_message = "revoked dead-letter partitions"

    def _topic(self, settings: ArchiveSettings) -> str:
        return settings.resolved_dlq_topic

    def _group(self, settings: ArchiveSettings) -> str:
        return f"{settings.group_id}.dead-letters"

    def _dead_letter_producer(self, settings: ArchiveSettings) -> Producer | None:
        return None

    def _handle_all(self, messages: list[Message]) -> None:
        counted = 0
        for message in messages:
            admitted = self._admit(message)
            if admitted is None:
                continue
            partition, offset, batch = admitted
            counted += 1
            headers = message.headers() or []
            line = dead_letters.archived_line(
                message.key(),
                message.value(),
                list(headers.items()) if isinstance(headers, dict) else headers,
                partition=partition,
                offset=offset,
                timestamp_ms=message.timestamp()[1],
            )
            batch.add(offset, line)
        self.metrics.records.inc(counted)
