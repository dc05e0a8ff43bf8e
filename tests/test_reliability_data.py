"""Bad, replayed and late data: poison records go to the dead-letter topic with a reason while the
workloads keep running; a replay of the ticks topic from the earliest offset duplicates bronze but
not silver; ticks older than ones already in silver and gold still land there exactly once.

Each scenario is judged by `marketpulse_dev.reliability.checks.drain_and_check` through the real transform;
MARKETPULSE_RELIABILITY_FULL=1 runs more ticks, dbt's tests, and a from-scratch gold rebuild everywhere.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from pathlib import Path

import duckdb
import orjson
import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from marketpulse.contract.dead_letters import MAX_REASON_CHARS, MAX_VALUE_BYTES
from marketpulse_dev.localenv.process import free_port
from marketpulse_dev.reliability.checks import (
    archive_group,
    drain_and_check,
    full_mode,
    metric_value,
    run_transform,
    wait_for_lag_zero,
)
from marketpulse_dev.reliability.pipeline import FlowUnderTest, wait_until

pytestmark = [pytest.mark.reliability, pytest.mark.kafka, pytest.mark.s3]

TICKS = 20_000 if full_mode() else 3_000


def dead_letters(flow: FlowUnderTest, expected: int) -> list[tuple[dict[str, bytes], bytes]]:
    """(headers, value) of the first `expected` records of the dead-letter topic."""
    consumer = Consumer(
        {"bootstrap.servers": flow.bootstrap, "group.id": f"dlq-{flow.name}", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([flow.dlq_topic])
    found: list[tuple[dict[str, bytes], bytes]] = []
    try:
        deadline = time.monotonic() + 30
        while len(found) < expected and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                headers = {k: v for k, v in (message.headers() or []) if v is not None}
                found.append((headers, message.value() or b""))
    finally:
        consumer.close()
    return found


def tick_json(**fields: object) -> bytes:
    base: dict[str, object] = {
        "v": 1,
        "symbol": "AAPL",
        "price": 101.5,
        "size": 100,
        "event_time": "2026-01-05T15:00:00.000000Z",
        "ingest_time": "2026-01-05T15:00:00.000100Z",
        "source": "foreign",
        "producer_id": "foreign-producer",
        "seq": 1,
    }
    return orjson.dumps({**base, **fields})


# Records a buggy or foreign producer could write straight into the ticks topic, past ingest's
# checks, each with the field the archive's reason must name.
POISON: list[tuple[str, bytes | None]] = [
    ("record", b'{"v":1,"symbol":"AAPL","price":NaN,"size":1}'),  # NaN is not JSON
    ("price", tick_json(price=-3.25, seq=2)),
    ("size", tick_json(size=-100, seq=3)),
    ("record", b"[1, 2, 3]"),
    ("record", None),  # an empty value (a tombstone)
]


def test_poison_records_go_to_the_dead_letter_topic_with_a_reason_and_the_workloads_keep_running(
    flow: FlowUnderTest, tmp_path: Path
) -> None:
    port = free_port()
    archive = flow.run("archive", {"MARKETPULSE_METRICS_PORT": str(port)})
    malformed_at = [10, 1500, 2999]
    ingest = flow.run(
        "ingest",
        {
            "MARKETPULSE_TICK_LIMIT": str(TICKS),
            "MARKETPULSE_SYNTHETIC_RATE": "2000",
            "MARKETPULSE_SYNTHETIC_SCENARIOS": orjson.dumps(
                [{"kind": "malformed", "at": at} for at in malformed_at]
            ).decode(),
        },
    )
    foreign = Producer({"bootstrap.servers": flow.bootstrap})
    for _, value in POISON:
        foreign.produce(flow.ticks_topic, key=b"AAPL", value=value)
    # Well-formed but for a symbol nobody watches: bronze keeps it, silver rejects it with a reason.
    foreign.produce(flow.ticks_topic, key=b"ZZZZ", value=tick_json(symbol="ZZZZ", seq=4))
    assert foreign.flush(30) == 0
    assert ingest.wait(timeout=120) == 0, flow.logs()

    # A replay file with bad rows: ingest refuses each with the line and the field, and goes on.
    replay = tmp_path / "bad.ndjson"
    rows = [
        {"symbol": "MSFT", "timestamp": "2026-01-05T15:00:01Z", "price": 400.0, "size": 5},
        {"symbol": "MSFT", "timestamp": "2026-01-05T15:00:02Z", "price": "NaN", "size": 5},
        {"symbol": "MSFT", "timestamp": "2026-01-05T15:00:03Z", "price": -1.0, "size": 5},
        {"symbol": "MSFT", "timestamp": "2026-01-05T15:00:04Z", "price": 401.0, "size": -5},
        {"symbol": "MSFT", "timestamp": "2026-01-05T15:00:05Z", "price": 402.0, "size": 7},
    ]
    replay.write_bytes(b"\n".join(orjson.dumps(r) for r in rows) + b"\n")
    replayed = flow.run(
        "ingest",
        {
            "MARKETPULSE_SOURCE": "replay",
            "MARKETPULSE_REPLAY_URI": str(replay),
            "MARKETPULSE_REPLAY_SPEED": "0",
        },
    )
    assert replayed.wait(timeout=60) == 0, flow.log_of(replayed)

    expected_letters = len(malformed_at) + len(POISON) + 3
    wait_until(
        lambda: metric_value(port, "marketpulse_archive_dead_letters_total") >= len(POISON),
        60,
        "the archive to count its dead letters",
        flow.logs,
    )
    assert metric_value(port, "marketpulse_archive_dead_letters_total") == len(POISON)
    assert archive.poll() is None, "poison must not stop the archive"
    letters = dead_letters(flow, expected_letters)
    by_stage: dict[bytes, list[bytes]] = {}
    for headers, _ in letters:
        by_stage.setdefault(headers["stage"], []).append(headers["error"])
    assert len(by_stage.get(b"archive", [])) == len(POISON)
    fields = sorted(error.split(b":", 1)[0].decode() for error in by_stage[b"archive"])
    assert fields == sorted(name for name, _ in POISON)
    ingest_errors = by_stage.get(b"ingest", [])
    assert len(ingest_errors) == len(malformed_at) + 3
    assert sum(b"must be a finite number > 0" in e for e in ingest_errors) == 2  # NaN and -1.0
    assert any(e.startswith(b"line 4: size") for e in ingest_errors)

    result = drain_and_check(
        flow,
        "poison records (malformed, NaN, negative)",
        fault_cleared_at=time.monotonic(),
        archive=archive,
        notes={"dead_letters": len(letters)},
    )
    result.assert_held()
    with duckdb.connect(str(flow.workdir / "warehouse.duckdb"), read_only=True) as con:
        rejected = con.execute("select symbol, reject_reason from silver.fct_rejected_ticks").fetchall()
    assert rejected == [("ZZZZ", "unknown_symbol")], (
        "what passes the archive but not silver is kept, with why"
    )


def test_a_replay_from_the_earliest_offset_duplicates_bronze_but_not_silver(flow: FlowUnderTest) -> None:
    archive = flow.run("archive")
    # Three waves, each archived before the next: every partition gets three objects. At
    # (re)assignment the archive skips the object written at the committed offset; the replay then
    # archives the other two waves as one range, under a key of its own.
    for wave in range(3):
        ingest = flow.run(
            "ingest", {"MARKETPULSE_TICK_LIMIT": str(TICKS // 3), "MARKETPULSE_SYNTHETIC_SEED": str(wave)}
        )
        assert ingest.wait(timeout=120) == 0, flow.logs()
        assert wait_for_lag_zero(flow, timeout=60) is not None, flow.logs()
    code, log = run_transform(flow, flow.workdir / "warehouse.duckdb")
    assert code == 0, log
    archive.terminate()
    assert archive.wait(timeout=60) == 0, flow.logs()

    admin = AdminClient({"bootstrap.servers": flow.bootstrap})
    partitions = admin.list_topics(flow.ticks_topic, timeout=10).topics[flow.ticks_topic].partitions
    reset = ConsumerGroupTopicPartitions(
        archive_group(flow), [TopicPartition(flow.ticks_topic, p, 0) for p in partitions]
    )
    for future in admin.alter_consumer_group_offsets([reset]).values():
        future.result(timeout=30)
    replayed_at = time.monotonic()
    rearchive = flow.run("archive")
    result = drain_and_check(
        flow,
        "replay from the earliest offset",
        fault_cleared_at=replayed_at,
        archive=rearchive,
        expect_bronze_duplicates=True,
    )
    result.assert_held()


def replay_file(path: Path, start: dt.datetime, seconds: list[float], seed: int) -> Path:
    """Ticks of AAPL and MSFT at `start + seconds[i]`, in the order given (not sorted)."""
    rng = random.Random(seed)  # noqa: S311 - test data, not cryptography
    lines = []
    for offset in seconds:
        symbol = rng.choice(["AAPL", "MSFT"])
        moment = start + dt.timedelta(seconds=offset)
        lines.append(
            orjson.dumps(
                {
                    "symbol": symbol,
                    "timestamp": moment.isoformat(),
                    "price": round(rng.uniform(90, 110), 4),
                    "size": rng.randint(1, 500),
                }
            )
        )
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_late_and_out_of_order_ticks_reach_silver_and_gold_exactly_once(flow: FlowUnderTest) -> None:
    start = dt.datetime(2026, 1, 6, 15, 0, tzinfo=dt.UTC)
    rng = random.Random(3)  # noqa: S311 - test data, not cryptography
    # The first file spans 20 minutes in shuffled order; the second arrives after the first is in
    # silver and gold, and its ticks are older than the newest already seen, inside the same bars.
    first = rng.sample([i * 0.4 for i in range(TICKS * 2 // 3)], TICKS * 2 // 3)
    late = [rng.uniform(0, max(first) - 60) for _ in range(TICKS // 3)]
    archive = flow.run("archive")
    env = {"MARKETPULSE_SOURCE": "replay", "MARKETPULSE_REPLAY_SPEED": "0"}
    on_time = replay_file(flow.workdir / "on-time.ndjson", start, first, seed=1)
    assert flow.run("ingest", {**env, "MARKETPULSE_REPLAY_URI": str(on_time)}).wait(timeout=120) == 0
    assert wait_for_lag_zero(flow, timeout=60) is not None, flow.logs()
    code, log = run_transform(flow, flow.workdir / "warehouse.duckdb")
    assert code == 0, log

    late_file = replay_file(flow.workdir / "late.ndjson", start, late, seed=2)
    assert flow.run("ingest", {**env, "MARKETPULSE_REPLAY_URI": str(late_file)}).wait(timeout=120) == 0
    arrived_at = time.monotonic()
    result = drain_and_check(
        flow,
        "late and out-of-order ticks",
        fault_cleared_at=arrived_at,
        archive=archive,
        rebuild_gold=True,
        notes={"on_time": len(first), "late": len(late)},
    )
    result.assert_held()
    assert result.acknowledged == len(first) + len(late)


def test_records_of_any_size_are_dead_lettered_cut_to_fit_and_the_flow_goes_on(
    flow: FlowUnderTest, tmp_path: Path
) -> None:
    """A record just under the broker's limit, and one far over it on a topic whose limit was raised,
    reach the archive; a 2 MB replay line reaches ingest. Each becomes a dead letter cut to fit
    (librdkafka would refuse it whole), with a bounded reason and a `truncated` header, and neither
    workload stops: the ticks around them all reach silver."""
    admin = AdminClient({"bootstrap.servers": flow.bootstrap})
    raised = ConfigResource(
        ResourceType.TOPIC, flow.ticks_topic, set_config={"max.message.bytes": str(8 << 20)}
    )
    for future in admin.alter_configs([raised]).values():
        future.result(timeout=30)
    port = free_port()
    archive = flow.run("archive", {"MARKETPULSE_METRICS_PORT": str(port)})
    ingest = flow.run("ingest", {"MARKETPULSE_TICK_LIMIT": str(TICKS), "MARKETPULSE_SYNTHETIC_RATE": "2000"})
    big = Producer({"bootstrap.servers": flow.bootstrap, "message.max.bytes": str(8 << 20)})
    oversized = {
        "near the broker's limit": tick_json(symbol="A" * 1_000_000, seq=5)[: 1_000_000 - 1024],
        "beyond it": tick_json(symbol="B" * (3 << 20), seq=6),
    }
    for value in oversized.values():
        big.produce(flow.ticks_topic, key=b"AAPL", value=value)
    assert big.flush(30) == 0
    assert ingest.wait(timeout=120) == 0, flow.logs()

    replay = tmp_path / "long-line.ndjson"
    rows = [
        orjson.dumps({"symbol": "MSFT", "timestamp": "2026-01-05T15:00:01Z", "price": 400.0, "size": 5}),
        orjson.dumps(
            {"symbol": "MSFT", "timestamp": "2026-01-05T15:00:02Z", "price": 1.0, "note": "n" * (2 << 20)}
        ),
        orjson.dumps({"symbol": "MSFT", "timestamp": "2026-01-05T15:00:03Z", "price": 402.0, "size": 7}),
    ]
    replay.write_bytes(b"\n".join(rows) + b"\n")
    replayed = flow.run(
        "ingest",
        {
            "MARKETPULSE_SOURCE": "replay",
            "MARKETPULSE_REPLAY_URI": str(replay),
            "MARKETPULSE_REPLAY_SPEED": "0",
        },
    )
    assert replayed.wait(timeout=60) == 0, flow.log_of(replayed)
    wait_until(
        lambda: metric_value(port, "marketpulse_archive_dead_letters_total") >= len(oversized),
        60,
        "the archive to dead-letter the oversized records",
        flow.logs,
    )
    assert archive.poll() is None, "an oversized record must not stop the archive"
    letters = dead_letters(flow, len(oversized) + 1)

    by_stage: dict[bytes, list[tuple[dict[str, bytes], bytes]]] = {}
    for headers, value in letters:
        by_stage.setdefault(headers["stage"], []).append((headers, value))
    archived = sorted(by_stage[b"archive"], key=lambda letter: int(letter[0]["offset"]))
    sizes = sorted(len(v) for v in oversized.values())
    assert [int(h["truncated"]) for h, _ in archived] == sizes
    assert all(len(value) == MAX_VALUE_BYTES for _, value in archived)
    assert all(len(h["error"]) <= 4 * MAX_REASON_CHARS for h, _ in archived)  # UTF-8, at most 4 bytes a char
    [(replay_headers, replay_value)] = by_stage[b"ingest"]
    assert replay_headers["error"].startswith(b"line 2")
    assert int(replay_headers["truncated"]) == len(rows[1])
    assert replay_value == rows[1][:MAX_VALUE_BYTES]

    result = drain_and_check(
        flow,
        "oversized records",
        fault_cleared_at=time.monotonic(),
        archive=archive,
        notes={"dead_letters": 3},
    )
    result.assert_held()
