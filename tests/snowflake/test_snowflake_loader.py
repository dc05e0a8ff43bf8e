"""The Snowflake bronze loader: objects in the real S3 server reach Snowflake (fakesnow's server, through
the real connector) exactly once, also across a crash mid-load."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from snowflake_bronze import Bucket, Warehouse, loaded_ticks, synthetic, utc, write_objects

from marketpulse.storage import ObjectInfo, S3ObjectStore
from marketpulse.transform.snowflake_loader import SnowflakeBronzeLoader
from marketpulse_dev.localenv.s3 import S3Server

pytestmark = [pytest.mark.s3, pytest.mark.snowflake]


def test_new_objects_plain_and_gz_load_once_with_their_keys_and_reruns_load_nothing(
    bucket: Bucket, warehouse: Warehouse
) -> None:
    ticks = synthetic(3000)
    plain = write_objects(bucket.client, bucket.name, ticks[:2000], per_object=500)
    gz = write_objects(bucket.client, bucket.name, ticks[2000:], per_object=500, compress=True, first=2000)
    assert all(key.endswith(".ndjson.gz") for key in gz)

    with warehouse.connect() as con:
        loader = SnowflakeBronzeLoader(con, bucket.store, chunk_objects=4)
        first = loader.load_new()
        assert (first.objects, first.rows) == (6, 3000)
        assert (loader.load_new().objects, loader.load_new().rows) == (0, 0)

    rows = loaded_ticks(warehouse)
    assert [(r[0], r[1], r[2], r[3], r[4]) for r in rows] == [
        (t.producer_id, t.seq, t.symbol, t.price, t.size) for t in ticks
    ]
    assert [int(r[5].timestamp() * 1_000_000) for r in rows] == [t.event_time_us for t in ticks]
    assert {r[6] for r in rows} == set(plain + gz)
    manifest = warehouse.query("select object_key, row_count from bronze._load_manifest order by object_key")
    assert manifest == sorted([(key, 500) for key in plain + gz])

    more = synthetic(4000)[3000:]
    write_objects(bucket.client, bucket.name, more, per_object=1000, first=3000)
    with warehouse.connect() as con:
        assert SnowflakeBronzeLoader(con, bucket.store).load_new().rows == 1000
    assert warehouse.query(
        "select count(*), count(distinct producer_id || ':' || seq) from bronze.raw_ticks"
    ) == [(4000, 4000)]


class RecordingStore:
    """The real S3 store, noting each key it downloads (to tell what a load fetched)."""

    def __init__(self, store: S3ObjectStore) -> None:
        self.store = store
        self.bucket = store.bucket
        self.downloaded: list[str] = []

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self.store.put(key, data, content_type)

    def get(self, key: str) -> bytes:
        return self.store.get(key)

    def download(self, key: str, path: Path) -> None:
        self.downloaded.append(key)
        self.store.download(key, path)

    def exists(self, key: str) -> bool:
        return self.store.exists(key)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        return self.store.list(prefix)


def test_a_malformed_object_is_quarantined_once_and_the_rest_keep_loading_into_snowflake(
    bucket: Bucket, warehouse: Warehouse
) -> None:
    ticks = synthetic(2500)
    keys = write_objects(bucket.client, bucket.name, ticks[:1500], per_object=500)
    broken_key = keys[1]
    good = bucket.client.get_object(bucket.name, broken_key).read()
    truncated = good[: len(good) // 2]  # a line cut in the middle, as a half-written upload would leave
    bucket.client.put_object(bucket.name, broken_key, io.BytesIO(truncated), len(truncated))
    foreign = "bronze/ticks/dt=2026-01-05/partition=0/export.csv"
    bucket.client.put_object(bucket.name, foreign, io.BytesIO(b"a,b\n"), 4)
    store = RecordingStore(bucket.store)

    with warehouse.connect() as con:
        loader = SnowflakeBronzeLoader(con, store, chunk_objects=10)  # type: ignore[arg-type]
        first = loader.load_new()
        store.downloaded.clear()
        idle = loader.load_new()
        later = write_objects(bucket.client, bucket.name, ticks[1500:], per_object=500, first=1500)
        again = loader.load_new()

    assert (first.objects, first.rows) == (2, 1000)
    assert sorted((q.key, q.kind) for q in first.quarantined) == sorted(
        [(broken_key, "malformed"), (foreign, "foreign")]
    )
    assert (idle.objects, idle.quarantined) == (0, ())
    assert (again.objects, again.rows, again.quarantined) == (2, 1000, ())
    assert sorted(store.downloaded) == sorted(later), "a quarantined object is not fetched again"
    rows = warehouse.query("select object_key, kind, reason from bronze._quarantine order by object_key")
    assert [(r[0], r[1]) for r in rows] == sorted([(broken_key, "malformed"), (foreign, "foreign")])
    reason = dict((r[0], r[2]) for r in rows)[broken_key]
    assert "Malformed JSON" in reason, reason
    assert "\n" not in reason  # one line
    assert "marketpulse-load" not in reason  # no scratch path
    manifest = warehouse.query("select object_key from bronze._load_manifest order by object_key")
    assert [r[0] for r in manifest] == sorted([keys[0], keys[2], *later])
    wanted = ticks[:500] + ticks[1000:]
    assert [(r[0], r[1]) for r in loaded_ticks(warehouse)] == [(t.producer_id, t.seq) for t in wanted]


def test_an_object_an_older_reader_quarantined_is_loaded_by_the_current_one_and_leaves_quarantine(
    bucket: Bucket, warehouse: Warehouse
) -> None:
    ticks = synthetic(1000)
    keys = write_objects(bucket.client, bucket.name, ticks, per_object=500)
    with warehouse.connect() as con:
        loader = SnowflakeBronzeLoader(con, bucket.store)
        loader.ensure_tables()
        with con.cursor() as cursor:
            cursor.execute(
                "insert into bronze._quarantine values (%s, 'malformed', 'unknown field', %s, 0)",
                [keys[1], utc(0)],
            )
        result = loader.load_new()

    assert (result.objects, result.rows, result.quarantined) == (2, 1000, ())
    assert warehouse.query("select count(*) from bronze._quarantine") == [(0,)]
    assert [(r[0], r[1]) for r in loaded_ticks(warehouse)] == [(t.producer_id, t.seq) for t in ticks]


def test_a_load_killed_between_copy_and_commit_leaves_nothing_and_the_rerun_loads_exactly_once(
    bucket: Bucket, warehouse: Warehouse, s3_server: S3Server
) -> None:
    ticks = synthetic(2000)
    write_objects(bucket.client, bucket.name, ticks, per_object=250)
    script = textwrap.dedent(f"""
        import snowflake.connector
        from marketpulse.storage import S3ObjectStore
        from marketpulse.storage.s3 import minio_client
        from marketpulse.transform.snowflake_loader import SnowflakeBronzeLoader
        client = minio_client({s3_server.endpoint!r}, {s3_server.access_key!r}, {s3_server.secret_key!r})
        con = snowflake.connector.connect(
            **{warehouse.server.connect_kwargs()!r}, database={warehouse.database!r}, schema="PUBLIC"
        )
        SnowflakeBronzeLoader(con, S3ObjectStore(client, {bucket.name!r})).load_new()
    """)
    crashed = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "MARKETPULSE_FAILPOINTS": "transform.mid-load"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert crashed.returncode == 137, crashed.stderr[-3000:]
    # The COPY ran (the failpoint sits after it) but never committed: nothing is visible.
    assert warehouse.query("select count(*) from bronze.raw_ticks") == [(0,)]
    assert warehouse.query("select count(*) from bronze._load_manifest") == [(0,)]

    with warehouse.connect() as con:
        assert SnowflakeBronzeLoader(con, bucket.store).load_new().rows == 2000
        assert SnowflakeBronzeLoader(con, bucket.store).load_new().rows == 0
    rows = loaded_ticks(warehouse)
    assert [(r[0], r[1]) for r in rows] == [(t.producer_id, t.seq) for t in ticks]


@pytest.mark.bench
def test_benchmark_snowflake_bronze_load_throughput_beside_a_multi_row_insert_baseline(
    bucket: Bucket, warehouse: Warehouse, capsys: pytest.CaptureFixture[str]
) -> None:
    ticks = synthetic(100_000)
    write_objects(bucket.client, bucket.name, ticks, per_object=5000)
    with warehouse.connect() as con:
        loader = SnowflakeBronzeLoader(con, bucket.store)
        started = time.perf_counter()
        result = loader.load_new()
        seconds = time.perf_counter() - started
    assert (result.objects, result.rows) == (20, 100_000)
    assert warehouse.query("select count(*) from bronze.raw_ticks") == [(100_000,)]

    # The naive baseline: the connector's executemany, which sends one multi-row INSERT per call.
    baseline = ticks[:10_000]
    with warehouse.connect() as con, con.cursor() as cursor:
        cursor.execute("create table bronze.naive_ticks like bronze.raw_ticks")
        started = time.perf_counter()
        for start in range(0, len(baseline), 1000):
            cursor.executemany(
                "insert into bronze.naive_ticks (symbol, price, size, event_time, producer_id, seq) "
                "values (%s, %s, %s, %s, %s, %s)",
                [
                    (t.symbol, t.price, t.size, utc(t.event_time_us), t.producer_id, t.seq)
                    for t in baseline[start : start + 1000]
                ],
            )
        naive_seconds = time.perf_counter() - started
    assert warehouse.query("select count(*) from bronze.naive_ticks") == [(len(baseline),)]
    with capsys.disabled():
        print(
            f"\nsnowflake bronze load (fakesnow): {result.rows} rows in {result.objects} objects, "
            f"{seconds:.2f} s, {result.rows / seconds:,.0f} rows/s; naive multi-row INSERT baseline: "
            f"{len(baseline)} rows, {naive_seconds:.2f} s, {len(baseline) / naive_seconds:,.0f} rows/s"
        )
