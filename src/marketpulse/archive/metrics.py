"""The archive's Prometheus series; `StreamMetrics` tells the ticks' archive from the dead letters'."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import Counter, Gauge, Histogram

RECORDS = Counter("marketpulse_archive_records_total", "Records consumed from the ticks topic.")
OBJECTS = Counter("marketpulse_archive_objects_written_total", "Bronze objects written to S3.")
OBJECT_BYTES = Histogram(
    "marketpulse_archive_object_size_bytes",
    "Size of bronze objects.",
    buckets=(1e3, 1e4, 1e5, 5e5, 1e6, 4e6, 8e6, 16e6, 64e6),
)
DEAD_LETTERS = Counter(
    "marketpulse_archive_dead_letters_total", "Invalid records sent to the dead-letter topic.", ["field"]
)
S3_ERRORS = Counter("marketpulse_archive_s3_errors_total", "Failed S3 writes (retried).")
RECOVERED = Counter(
    "marketpulse_archive_recovered_objects_total",
    "Objects found already written at (re)assignment, skipped instead of rewritten.",
)
REVOKED_UNWRITTEN = Counter(
    "marketpulse_archive_revoked_unwritten_records_total",
    "Records of batches dropped unwritten because their partition moved to another replica while S3 "
    "was down (the new owner reads them again from the committed offset).",
)
REVOKED_UNCOMMITTED = Counter(
    "marketpulse_archive_revoked_uncommitted_records_total",
    "Records of objects written after their partition moved to another replica (left uncommitted: the "
    "next owner skips or rewrites them, so bronze may hold them twice; silver deduplicates).",
)
RETENTION_GAP = Counter(
    "marketpulse_archive_retention_gap_records_total",
    "Records the topic's retention deleted before the archive reached them (lost to bronze).",
    ["stream"],
)
COMMITS_DEFERRED = Counter(
    "marketpulse_archive_commits_deferred_total",
    "Offset commits the group could not take (e.g. during a broker restart), left to the next one.",
)
QUOTE_WRITES_FAILED = Counter(
    "marketpulse_archive_quote_writes_failed_total",
    "latest/quotes.json writes that S3 refused (retried with the next snapshot).",
)
LAG = Gauge(
    "marketpulse_archive_consumer_lag_records", "Records in the ticks topic not yet committed to bronze."
)
LATENCY = Histogram(
    "marketpulse_archive_tick_to_bronze_seconds",
    "From the producer's record timestamp to the object being written (sampled).",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)


@dataclass(frozen=True)
class StreamMetrics:
    """The series that tell the ticks' archive from the dead letters' (the rest are shared)."""

    records: Counter
    objects: Counter
    lag: Gauge


TICK_METRICS = StreamMetrics(RECORDS, OBJECTS, LAG)
DEAD_LETTER_METRICS = StreamMetrics(
    Counter("marketpulse_archive_dead_letter_records_total", "Dead letters consumed to be archived."),
    Counter("marketpulse_archive_dead_letter_objects_written_total", "Dead-letter objects written to S3."),
    Gauge(
        "marketpulse_archive_dead_letter_lag_records",
        "Records in the dead-letter topic not yet committed to an object in S3.",
    ),
)
