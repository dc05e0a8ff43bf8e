"""Dead letters are kept as long as bronze: the archive copies the dead-letter topic into
bronze/dead-letters/ (same key layout, committed after each object is written), every byte of every
refused record recoverable, exactly once across a crash of the archive."""

from __future__ import annotations

import base64
import time

import orjson
import pytest
from confluent_kafka import Producer

from marketpulse.contract.layout import DEAD_LETTERS_PREFIX, parse_key
from marketpulse_dev.localenv.process import free_port
from marketpulse_dev.reliability.checks import archive_group, consumer_lag, metric_value
from marketpulse_dev.reliability.pipeline import FlowUnderTest, wait_until

pytestmark = [pytest.mark.reliability, pytest.mark.kafka, pytest.mark.s3]

# What a foreign or buggy producer could write into the ticks topic: not JSON, not UTF-8, empty.
POISON: list[bytes | None] = [b'{"v":1,"price":NaN}', b"\xff\xfe\x00binary\x80", None, b"[1, 2, 3]"]


def archived_dead_letters(flow: FlowUnderTest) -> list[dict[str, object]]:
    """Every line of every object under bronze/dead-letters/, in key order."""
    lines: list[dict[str, object]] = []
    for item in flow.minio.list_objects(flow.bucket, prefix=DEAD_LETTERS_PREFIX, recursive=True):
        assert item.object_name is not None
        assert parse_key(item.object_name, DEAD_LETTERS_PREFIX), f"unexpected key {item.object_name}"
        response = flow.minio.get_object(flow.bucket, item.object_name)
        try:
            lines += [orjson.loads(line) for line in response.read().splitlines()]
        finally:
            response.close()
            response.release_conn()
    return lines


def value_of(line: dict[str, object]) -> bytes | None:
    if "value_base64" in line:
        return base64.b64decode(str(line["value_base64"]))
    value = line["value"]
    return None if value is None else str(value).encode()


def produce_poison(flow: FlowUnderTest) -> None:
    foreign = Producer({"bootstrap.servers": flow.bootstrap})
    for value in POISON:
        foreign.produce(flow.ticks_topic, key=b"AAPL", value=value)
    assert foreign.flush(30) == 0


def test_dead_letters_are_archived_beside_bronze_exactly_once_across_an_archive_crash(
    flow: FlowUnderTest,
) -> None:
    port = free_port()
    archive = flow.run("archive", {"MARKETPULSE_METRICS_PORT": str(port)})
    ingest = flow.run(
        "ingest",
        {
            "MARKETPULSE_TICK_LIMIT": "2000",
            "MARKETPULSE_SYNTHETIC_SCENARIOS": orjson.dumps(
                [{"kind": "malformed", "at": at} for at in (10, 1000)]
            ).decode(),
        },
    )
    produce_poison(flow)
    assert ingest.wait(timeout=120) == 0, flow.logs()
    first_round = len(POISON) + 2  # the archive's refusals and ingest's
    wait_until(
        lambda: len(archived_dead_letters(flow)) >= first_round, 60, "the dead letters in S3", flow.logs
    )
    assert metric_value(port, "marketpulse_archive_dead_letter_objects_written_total") >= 1
    # The ticks' range holding the refused records committed too: a crash before that commit makes
    # the next archive refuse them again (dead-lettering is at least once, see docs/behaviour.md).
    wait_until(
        lambda: consumer_lag(flow.bootstrap, archive_group(flow), flow.ticks_topic) == 0,
        60,
        "the ticks' offsets committed",
        flow.logs,
    )

    # A crash of the archive, then more dead letters for its replacement.
    archive.kill()
    archive.wait(timeout=30)
    produce_poison(flow)
    restarted = flow.run("archive", {"MARKETPULSE_METRICS_PORT": str(port)})
    total = first_round + len(POISON)
    wait_until(lambda: len(archived_dead_letters(flow)) >= total, 90, "every dead letter in S3", flow.logs)
    group = f"{archive_group(flow)}.dead-letters"
    wait_until(
        lambda: consumer_lag(flow.bootstrap, group, flow.dlq_topic) == 0,
        60,
        "the dead letters' offsets committed",
        flow.logs,
    )
    wait_until(
        lambda: metric_value(port, "marketpulse_archive_dead_letter_lag_records") == 0,
        30,
        "the dead-letter lag metric to reach 0",
        flow.logs,
    )
    time.sleep(2)  # anything written twice would be written by now
    lines = archived_dead_letters(flow)
    assert restarted.poll() is None, flow.log_of(restarted)

    offsets = [int(str(line["offset"])) for line in lines]
    assert sorted(offsets) == list(range(total)), "each dead letter once, none missing"
    by_stage: dict[str, list[dict[str, object]]] = {}
    for line in lines:
        headers = line["headers"]
        assert isinstance(headers, dict)
        assert headers["error"], "every dead letter says why"
        by_stage.setdefault(str(headers["stage"]), []).append(line)
    assert len(by_stage["ingest"]) == 2
    archive_values = [value_of(line) for line in by_stage["archive"]]
    refused = [value or b"" for value in POISON]  # an empty value is dead-lettered as b""
    assert archive_values == refused + refused, "every byte of a refused record, in order, binary too"
    assert all(line["headers"]["topic"] == flow.ticks_topic for line in by_stage["archive"])  # type: ignore[index]
