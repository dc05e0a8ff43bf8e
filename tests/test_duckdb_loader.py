"""Bronze objects in the real S3 server load into DuckDB exactly once, also across a crash mid-load."""

from __future__ import annotations

import gzip
import io
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import duckdb
import orjson
import pytest
from minio import Minio

from marketpulse.archive.batching import PartitionBatch
from marketpulse.contract.ticks import Tick, encode_tick
from marketpulse.sources.synthetic import SyntheticSource
from marketpulse.storage import S3ObjectStore
from marketpulse.storage.s3 import minio_client
from marketpulse.transform.bronze_objects import BronzeObjectError
from marketpulse.transform.duckdb_loader import DuckDBBronzeLoader
from marketpulse.transform.main import next_cycle_delay
from marketpulse_dev.localenv.s3 import S3Server

pytestmark = pytest.mark.s3


def write_objects(
    client: Minio,
    bucket: str,
    ticks: list[Tick],
    per_object: int,
    *,
    compress: bool = False,
    first_offset: int = 0,
) -> list[str]:
    keys = []
    for start in range(0, len(ticks), per_object):
        chunk = ticks[start : start + per_object]
        batch = PartitionBatch(0, first_offset + start, 1_767_623_400_000, 0.0)
        for i, tick in enumerate(chunk):
            batch.add(first_offset + start + i, encode_tick(tick), 0)
        key, body = batch.key(compress=compress), batch.body(compress=compress)
        client.put_object(bucket, key, io.BytesIO(body), len(body))
        keys.append(key)
    return keys


@pytest.fixture
def bucket(s3_server: S3Server) -> tuple[Minio, str, S3ObjectStore]:
    client = minio_client(s3_server.endpoint, s3_server.access_key, s3_server.secret_key)
    name = f"load-{uuid.uuid4().hex[:8]}"
    client.make_bucket(name)
    return client, name, S3ObjectStore(client, name)


def synthetic(limit: int, seed: int = 1) -> list[Tick]:
    return [
        t
        for b in SyntheticSource(["AAPL", "MSFT"], "p-1", seed=seed, clock="simulated", limit=limit).batches()
        for t in b
        if isinstance(t, Tick)
    ]


def test_new_objects_load_once_with_their_key_and_reruns_load_nothing(
    bucket: tuple[Minio, str, S3ObjectStore], tmp_path: Path
) -> None:
    client, name, store = bucket
    ticks = synthetic(3000)
    write_objects(client, name, ticks[:2000], per_object=500)
    write_objects(client, name, ticks[2000:], per_object=500, compress=True, first_offset=2000)
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    loader = DuckDBBronzeLoader(con, store)

    first = loader.load_new()
    assert (first.objects, first.rows) == (6, 3000)
    assert loader.load_new().rows == 0

    rows = con.execute(
        "select producer_id, seq, symbol, price, size, epoch_us(event_time), _object_key "
        "from bronze.raw_ticks order by seq"
    ).fetchall()
    assert [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows] == [
        (t.producer_id, t.seq, t.symbol, t.price, t.size, t.event_time_us) for t in ticks
    ]
    assert rows[0][6].startswith("bronze/ticks/dt=2026-01-05/partition=0/")
    manifest = con.execute("select count(*), sum(row_count) from bronze._load_manifest").fetchone()
    assert manifest == (6, 3000)

    more = synthetic(4000, seed=1)[3000:]
    write_objects(client, name, more, per_object=1000, first_offset=3000)
    assert loader.load_new().rows == 1000
    assert con.execute(
        "select count(*), count(distinct (producer_id, seq)) from bronze.raw_ticks"
    ).fetchone() == (4000, 4000)


def put_raw(client: Minio, bucket: str, first_offset: int, body: bytes, *, compress: bool) -> str:
    """`body` as-is under the archive key an object starting at `first_offset` would have."""
    batch = PartitionBatch(0, first_offset, 1_767_623_400_000, 0.0)
    batch.add(first_offset, b"{}", 0)
    key = batch.key(compress=compress)
    client.put_object(bucket, key, io.BytesIO(body), len(body))
    return key


def test_objects_read_one_insert_at_a_time_in_small_chunks_get_exact_manifest_counts(
    bucket: tuple[Minio, str, S3ObjectStore],
) -> None:
    client, name, store = bucket
    ticks = synthetic(1800)
    keys = write_objects(client, name, ticks[:1000], per_object=200)
    keys += write_objects(client, name, ticks[1000:], per_object=400, compress=True, first_offset=1000)
    con = duckdb.connect()
    # One object per statement and two objects per transaction: every path through a chunk is taken.
    loader = DuckDBBronzeLoader(con, store, chunk_objects=2, group_bytes=1)

    assert (loader.load_new().rows, loader.load_new().rows) == (1800, 0)

    manifest = dict(con.execute("select object_key, row_count from bronze._load_manifest").fetchall())
    assert manifest == dict(zip(keys, [200] * 5 + [400, 400], strict=True))
    per_key = dict(con.execute("select _object_key, count(*) from bronze.raw_ticks group by 1").fetchall())
    assert per_key == manifest
    assert con.execute("select count(distinct (producer_id, seq)) from bronze.raw_ticks").fetchone() == (
        1800,
    )


BAD_OBJECTS = {
    "truncated line": (b'{"v":1,"symbol":"AAPL","price":1.5}\n{"v":1,"symbol":\n', False),
    "price not a number": (b'{"v":1,"symbol":"AAPL","price":"abc"}\n', False),
    "gzip of broken JSON": (gzip.compress(b'{"v":1,"symbol":"AAPL"\n'), True),
    "not gzip at all": (b'{"v":1,"symbol":"AAPL"}\n', True),
}


@pytest.mark.parametrize(("body", "compress"), BAD_OBJECTS.values(), ids=BAD_OBJECTS.keys())
def test_a_malformed_object_fails_its_chunk_with_an_error_naming_its_key_and_loads_nothing(
    bucket: tuple[Minio, str, S3ObjectStore], body: bytes, compress: bool
) -> None:
    client, name, store = bucket
    ticks = synthetic(1000)
    write_objects(client, name, ticks[:800], per_object=200)
    bad = put_raw(client, name, 800, body, compress=compress)
    con = duckdb.connect()
    # Objects inserted one statement each: the good ones are in the table when the bad one fails.
    loader = DuckDBBronzeLoader(con, store, group_bytes=1)

    with pytest.raises(BronzeObjectError) as failure:
        loader.load_new()

    message = str(failure.value)
    assert message.startswith(f"bronze object {bad} cannot be loaded"), message
    assert "marketpulse-load-" not in message, "the temporary download folder leaks into the error"
    assert "\n" not in message, "DuckDB's hints about read_json options are not the reason"
    assert con.execute("select count(*) from bronze.raw_ticks").fetchone() == (0,)
    assert con.execute("select count(*) from bronze._load_manifest").fetchone() == (0,)

    fixed = PartitionBatch(0, 800, 1_767_623_400_000, 0.0)
    for i, tick in enumerate(ticks[800:]):
        fixed.add(800 + i, encode_tick(tick), 0)
    client.put_object(
        name, bad, io.BytesIO(fixed.body(compress=compress)), len(fixed.body(compress=compress))
    )
    assert loader.load_new().rows == 1000


def test_an_empty_object_is_recorded_with_zero_rows_and_not_fetched_again(
    bucket: tuple[Minio, str, S3ObjectStore],
) -> None:
    client, name, store = bucket
    write_objects(client, name, synthetic(300), per_object=300)
    empty = put_raw(client, name, 300, b"", compress=False)
    con = duckdb.connect()
    con.execute("set preserve_insertion_order = true")
    loader = DuckDBBronzeLoader(con, store)

    first = loader.load_new()
    assert (first.objects, first.rows) == (2, 300)
    assert con.execute(
        "select row_count from bronze._load_manifest where object_key = ?", [empty]
    ).fetchall() == [(0,)]
    assert loader.pending() == []
    # The loader relaxes insertion order for its own inserts only; the caller's setting comes back.
    assert con.execute("select current_setting('preserve_insertion_order')").fetchone() == (True,)


def test_a_load_killed_mid_transaction_leaves_nothing_and_the_rerun_loads_everything(
    bucket: tuple[Minio, str, S3ObjectStore], s3_server: S3Server, tmp_path: Path
) -> None:
    client, name, store = bucket
    write_objects(client, name, synthetic(2000), per_object=250)
    database = tmp_path / "warehouse.duckdb"
    script = textwrap.dedent(f"""
        import duckdb
        from marketpulse.storage import S3ObjectStore
        from marketpulse.storage.s3 import minio_client
        from marketpulse.transform.duckdb_loader import DuckDBBronzeLoader
        client = minio_client({s3_server.endpoint!r}, {s3_server.access_key!r}, {s3_server.secret_key!r})
        DuckDBBronzeLoader(duckdb.connect({str(database)!r}), S3ObjectStore(client, {name!r})).load_new()
    """)
    crashed = subprocess.run(
        [sys.executable, "-c", script],
        env={"MARKETPULSE_FAILPOINTS": "transform.mid-load"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert crashed.returncode == 137, crashed.stderr

    con = duckdb.connect(str(database))
    loader = DuckDBBronzeLoader(con, store)
    loader.ensure_tables()
    assert con.execute("select count(*) from bronze.raw_ticks").fetchone() == (0,)
    assert con.execute("select count(*) from bronze._load_manifest").fetchone() == (0,)
    assert loader.load_new().rows == 2000
    assert con.execute("select count(distinct (producer_id, seq)) from bronze.raw_ticks").fetchone() == (
        2000,
    )


@pytest.mark.parametrize(
    ("build_interval", "later"),
    [
        ("3600", "run"),  # within the build interval: models only
        ("0", "run+test"),  # a periodic test pass: every model, publish, then the tests
    ],
)
def test_continuous_mode_builds_first_then_runs_models_for_new_objects_and_skips_idle_cycles(
    bucket: tuple[Minio, str, S3ObjectStore],
    s3_server: S3Server,
    tmp_path: Path,
    build_interval: str,
    later: str,
) -> None:
    client, name, _ = bucket
    ticks = synthetic(3000)
    write_objects(client, name, ticks[:2000], per_object=1000)
    database = tmp_path / "warehouse.duckdb"
    log = tmp_path / "transform.log"
    env = {
        **os.environ,
        **s3_server.settings(),
        "MARKETPULSE_BUCKET": name,
        "MARKETPULSE_DUCKDB_PATH": str(database),
        "MARKETPULSE_TRANSFORM_MODE": "continuous",
        "MARKETPULSE_TRANSFORM_INTERVAL_SECONDS": "0.5",
        "MARKETPULSE_TRANSFORM_BUILD_INTERVAL_SECONDS": build_interval,
        "MARKETPULSE_METRICS_PORT": "0",
        "DBT_TARGET_PATH": str(tmp_path / "dbt-target"),
        "DBT_LOG_PATH": str(tmp_path / "dbt-logs"),
    }

    def cycles() -> list[dict[str, object]]:
        lines = log.read_text().splitlines() if log.exists() else []
        return [orjson.loads(line) for line in lines if '"transform cycle done"' in line]

    def wait_for(predicate: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not predicate():
            assert transform.poll() is None, log.read_text()[-3000:]
            time.sleep(0.2)
        assert predicate(), f"{what}: {log.read_text()[-3000:]}"

    with log.open("wb") as sink:
        transform = subprocess.Popen(
            [str(Path(sys.executable).parent / "marketpulse"), "transform"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: any(c["dbt"] == "skipped" for c in cycles()), "an idle cycle after the first")
        write_objects(client, name, ticks[2000:], per_object=1000, first_offset=2000)
        wait_for(lambda: any(c["dbt"] == later for c in cycles()), f"a {later} cycle for the new object")
    finally:
        transform.send_signal(signal.SIGTERM)
        code = transform.wait(timeout=120)
    assert code == 0, log.read_text()[-3000:]

    done = cycles()
    assert (done[0]["dbt"], done[0]["rows"]) == ("build", 2000)
    models_only = next(c for c in done if c["dbt"] == later)
    assert models_only["rows"] == 1000
    stages = models_only["seconds"]
    assert isinstance(stages, dict)
    # Tests run only on the test pass, and after gold was published (stages are logged in order).
    assert list(stages)[-2:] == (["publish", "dbt_test"] if later == "run+test" else ["dbt", "publish"])
    assert {c["dbt"] for c in done if c["rows"] == 0} == {"skipped"}
    with duckdb.connect(str(database), read_only=True) as con:
        assert con.execute("select count(*) from silver.fct_ticks").fetchone() == (3000,)
    published = orjson.loads(client.get_object(name, "gold/_manifest.json").read())
    assert published["rows"]["ohlc_1m"] > 0


def test_the_transform_interval_is_counted_from_the_start_of_the_last_cycle() -> None:
    now = time.monotonic()
    # A cycle that began 10 s ago on a 60 s interval: the next one starts 50 s from now, not 60.
    assert 49.0 < next_cycle_delay(60.0, now - 10.0, succeeded=True) <= 50.0
    # One that took longer than the interval is followed at once.
    assert next_cycle_delay(1.0, now - 5.0, succeeded=True) == 0.0
    # A failed cycle waits the whole interval, however long it took, so it is not retried in a loop.
    assert next_cycle_delay(1.0, now - 5.0, succeeded=False) == 1.0
