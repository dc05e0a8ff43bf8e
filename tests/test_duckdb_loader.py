"""Bronze objects in the real S3 server load into DuckDB exactly once, also across a crash mid-load."""

from __future__ import annotations

import collections
import gzip
import io
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import orjson
import pytest
from minio import Minio

from marketpulse.archive.batching import PartitionBatch
from marketpulse.contract.ticks import Tick, encode_tick
from marketpulse.sources.synthetic import SyntheticSource
from marketpulse.storage import ObjectInfo, S3ObjectStore, StorageUnavailableError
from marketpulse.storage.s3 import minio_client
from marketpulse.transform.duckdb_loader import DuckDBBronzeLoader
from marketpulse.transform.lease import FileLease
from marketpulse.transform.main import next_cycle_delay
from marketpulse_dev.localenv.process import free_port
from marketpulse_dev.localenv.s3 import S3Server
from marketpulse_dev.metrics_text import scrape_sum
from marketpulse_dev.reliability.http_faults import HttpFaultProxy

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
    "truncated line": (b'{"v":1,"symbol":"AAPL","price":1.5}\n{"v":1,"symbol":\n', False, "Malformed JSON"),
    "price not a number": (b'{"v":1,"symbol":"AAPL","price":"abc"}\n', False, "Failed to cast"),
    "lines not objects": (b"[1, 2, 3]\n", False, "Expected OBJECT"),
    "gzip of broken JSON": (gzip.compress(b'{"v":1,"symbol":"AAPL"\n'), True, "Malformed JSON"),
    "not gzip at all": (b'{"v":1,"symbol":"AAPL"}\n', True, "not a GZIP stream"),
    "gzip cut short": (gzip.compress(b'{"v":1,"symbol":"AAPL","price":1.5}\n' * 500)[:40], True, "GZIP"),
}


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


def quarantine_rows(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str]]:
    return con.execute("select object_key, kind, reason from bronze._quarantine order by 1").fetchall()


@pytest.mark.parametrize(("body", "compress", "reason"), BAD_OBJECTS.values(), ids=BAD_OBJECTS.keys())
@pytest.mark.parametrize("group_bytes", [1, 64 << 20], ids=["one-object-per-statement", "grouped"])
def test_a_malformed_object_is_quarantined_once_and_the_rest_of_its_chunk_and_later_objects_load(
    bucket: tuple[Minio, str, S3ObjectStore], body: bytes, compress: bool, reason: str, group_bytes: int
) -> None:
    client, name, s3 = bucket
    ticks = synthetic(1400)
    # The bad object sits between good ones of the same chunk.
    good = write_objects(client, name, ticks[:800], per_object=200)
    bad = put_raw(client, name, 800, body, compress=compress)
    good += write_objects(client, name, ticks[800:1200], per_object=200, first_offset=1000)
    store = RecordingStore(s3)
    con = duckdb.connect()
    loader = DuckDBBronzeLoader(con, store, group_bytes=group_bytes)  # type: ignore[arg-type]

    first = loader.load_new()

    assert (first.objects, first.rows) == (6, 1200)
    assert [(q.key, q.kind) for q in first.quarantined] == [(bad, "malformed")]
    [(key, kind, why)] = quarantine_rows(con)
    assert (key, kind) == (bad, "malformed")
    assert reason in why, why
    assert "marketpulse-load-" not in why, "the temporary download folder leaks into the reason"
    assert "\n" not in why, "DuckDB's hints about read_json options are not the reason"
    assert len(why) <= 500
    manifest = dict(con.execute("select object_key, row_count from bronze._load_manifest").fetchall())
    assert manifest == dict.fromkeys(good, 200)
    assert con.execute("select count(distinct (producer_id, seq)) from bronze.raw_ticks").fetchone() == (
        1200,
    )

    # Later cycles neither fetch the quarantined object again nor record it twice, and keep loading.
    store.downloaded.clear()
    idle = loader.load_new()
    assert (idle.objects, idle.rows, idle.quarantined, store.downloaded) == (0, 0, (), [])
    later = write_objects(client, name, ticks[1200:], per_object=200, first_offset=1400)
    again = loader.load_new()
    assert (again.objects, again.rows, again.quarantined) == (1, 200, ())
    assert bad not in store.downloaded
    assert store.downloaded == later
    assert len(quarantine_rows(con)) == 1


def test_a_newer_reader_tries_what_an_older_one_quarantined_once_loading_what_it_can_read(
    bucket: tuple[Minio, str, S3ObjectStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, name, s3 = bucket
    ticks = synthetic(600)
    readable = write_objects(client, name, ticks, per_object=300)
    bad = put_raw(client, name, 600, b"[1, 2, 3]\n", compress=False)
    store = RecordingStore(s3)
    con = duckdb.connect()
    loader = DuckDBBronzeLoader(con, store)  # type: ignore[arg-type]
    loader.ensure_tables()
    # As an older reader would have left it: it refused one object the current reader reads.
    con.execute(
        "insert into bronze._quarantine values (?, 'malformed', 'unknown field', now(), 1)", [readable[1]]
    )
    assert loader.load_new().rows == 300
    monkeypatch.setattr("marketpulse.transform.duckdb_loader.READER_VERSION", 2)
    store.downloaded.clear()

    upgraded = loader.load_new()
    again = loader.load_new()

    assert (upgraded.objects, upgraded.rows) == (1, 300)
    assert [q.key for q in upgraded.quarantined] == [bad], "still unreadable: quarantined again, once"
    # The chunk is fetched again without the bad object, which is fetched once.
    assert set(store.downloaded) == {readable[1], bad}
    assert store.downloaded.count(bad) == 1
    assert (again.objects, again.quarantined) == (0, ())
    assert con.execute("select object_key, reader_version from bronze._quarantine").fetchall() == [(bad, 2)]
    assert con.execute("select count(distinct (producer_id, seq)) from bronze.raw_ticks").fetchone() == (600,)


def test_a_foreign_key_under_the_bronze_prefix_is_quarantined_unread_and_listed_once(
    bucket: tuple[Minio, str, S3ObjectStore],
) -> None:
    client, name, s3 = bucket
    good = write_objects(client, name, synthetic(400), per_object=200)
    foreign = [
        "bronze/ticks/dt=2026-01-05/partition=0/export.csv",
        "bronze/ticks/README.txt",
        "bronze/ticks/dt=2026-01-05/partition=x/1-2.ndjson",
    ]
    for key in foreign:
        client.put_object(name, key, io.BytesIO(b'{"v":1}\n'), 8)
    # Outside the bronze prefix: not the transform's business at all.
    client.put_object(name, "dead-letters/ticks/x.ndjson", io.BytesIO(b"x"), 1)
    store = RecordingStore(s3)
    con = duckdb.connect()
    loader = DuckDBBronzeLoader(con, store)  # type: ignore[arg-type]

    first = loader.load_new()
    second = loader.load_new()

    assert (first.objects, first.rows) == (2, 400)
    assert sorted(q.key for q in first.quarantined) == sorted(foreign)
    assert {q.kind for q in first.quarantined} == {"foreign"}
    assert second.quarantined == ()
    assert sorted(store.downloaded) == sorted(good), "a foreign object is never fetched"
    rows = quarantine_rows(con)
    assert [r[0] for r in rows] == sorted(foreign)
    assert all("not an archive object key" in r[2] for r in rows)


def test_a_storage_error_while_fetching_fails_the_load_and_quarantines_nothing(
    bucket: tuple[Minio, str, S3ObjectStore], s3_server: S3Server
) -> None:
    client, name, _ = bucket
    keys = write_objects(client, name, synthetic(600), per_object=200)
    con = duckdb.connect()
    with HttpFaultProxy("127.0.0.1", s3_server.port) as proxy:
        store = S3ObjectStore(minio_client(proxy.endpoint, s3_server.access_key, s3_server.secret_key), name)
        loader = DuckDBBronzeLoader(con, store)
        # Every GET of the middle object answers 503 SlowDown (listings are GETs of the bucket, not of it).
        proxy.fail(times=1000, status=503, methods={"GET"}, query=keys[1].rsplit("/", 1)[1])
        with pytest.raises(StorageUnavailableError):
            loader.load_new()
        assert proxy.answered > 0
        assert quarantine_rows(con) == []
        assert con.execute("select count(*) from bronze._load_manifest").fetchone() == (0,)

        proxy.clear()
        result = loader.load_new()
    assert (result.objects, result.rows, result.quarantined) == (3, 600, ())


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
    # Every cycle read gold's freshness back (from the Parquet it published) for the metrics.
    assert "gold freshness not read" not in log.read_text()
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


def test_the_transform_quarantines_a_malformed_object_once_counts_it_and_gold_keeps_moving(
    bucket: tuple[Minio, str, S3ObjectStore], s3_server: S3Server, tmp_path: Path
) -> None:
    client, name, _ = bucket
    ticks = synthetic(3000)
    write_objects(client, name, ticks[:1000], per_object=500)
    bad = put_raw(client, name, 1000, b'{"v":1,"symbol":"AAPL","price":"abc"}\n', compress=False)
    write_objects(client, name, ticks[1000:2000], per_object=500, first_offset=1001)
    database = tmp_path / "warehouse.duckdb"
    log = tmp_path / "transform.log"
    port = free_port()
    env = {
        **os.environ,
        **s3_server.settings(),
        "MARKETPULSE_BUCKET": name,
        "MARKETPULSE_DUCKDB_PATH": str(database),
        "MARKETPULSE_TRANSFORM_MODE": "continuous",
        "MARKETPULSE_TRANSFORM_INTERVAL_SECONDS": "0.5",
        "MARKETPULSE_TRANSFORM_BUILD_INTERVAL_SECONDS": "3600",
        "MARKETPULSE_METRICS_HOST": "127.0.0.1",
        "MARKETPULSE_METRICS_PORT": str(port),
        "DBT_TARGET_PATH": str(tmp_path / "dbt-target"),
        "DBT_LOG_PATH": str(tmp_path / "dbt-logs"),
    }

    def lines(message: str) -> list[dict[str, object]]:
        text = log.read_text() if log.exists() else ""
        return [orjson.loads(line) for line in text.splitlines() if f'"{message}"' in line]

    def wait_for(predicate: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not predicate():
            assert transform.poll() is None, log.read_text()[-3000:]
            time.sleep(0.2)
        assert predicate(), f"{what}: {log.read_text()[-3000:]}"

    def quarantined_total() -> float:
        return scrape_sum(port, "marketpulse_transform_quarantined_objects_total", timeout=10)

    with log.open("wb") as sink:
        transform = subprocess.Popen(
            [str(Path(sys.executable).parent / "marketpulse"), "transform"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: any(c["rows"] == 2000 for c in lines("transform cycle done")), "the first load")
        # Later objects keep loading, cycle after cycle, past the quarantined one.
        write_objects(client, name, ticks[2000:], per_object=500, first_offset=2001)
        wait_for(lambda: any(c["rows"] == 1000 for c in lines("transform cycle done")), "the later load")
        wait_for(lambda: len(lines("transform cycle done")) >= 4, "idle cycles after it")
        assert quarantined_total() == 1.0
    finally:
        transform.send_signal(signal.SIGTERM)
        code = transform.wait(timeout=120)
    assert code == 0, log.read_text()[-3000:]

    assert not lines("transform cycle failed")
    [warning] = lines("bronze object quarantined")
    assert (warning["key"], warning["kind"]) == (bad, "malformed")
    assert "Failed to cast" in str(warning["reason"])
    with duckdb.connect(str(database), read_only=True) as con:
        assert con.execute("select count(*) from silver.fct_ticks").fetchone() == (3000,)
        assert con.execute("select object_key from bronze._quarantine").fetchall() == [(bad,)]
        per_symbol = dict(
            con.execute("select symbol, sum(tick_count) from gold.ohlc_1m group by 1").fetchall()
        )
    # Gold holds every good tick of every symbol, the later ones included.
    assert per_symbol == dict(collections.Counter(t.symbol for t in ticks))
    published = orjson.loads(client.get_object(name, "gold/_manifest.json").read())
    assert published["rows"]["ohlc_1m"] > 0


def transform_env(s3_server: S3Server, bucket: str, database: Path, workdir: Path) -> dict[str, str]:
    return {
        **os.environ,
        **s3_server.settings(),
        "MARKETPULSE_BUCKET": bucket,
        "MARKETPULSE_DUCKDB_PATH": str(database),
        "MARKETPULSE_TRANSFORM_INTERVAL_SECONDS": "0.2",
        "MARKETPULSE_TRANSFORM_BUILD_INTERVAL_SECONDS": "3600",
        "MARKETPULSE_METRICS_PORT": "0",
        "DBT_TARGET_PATH": str(workdir / "dbt-target"),
        "DBT_LOG_PATH": str(workdir / "dbt-logs"),
    }


def log_lines(log: Path, message: str) -> list[dict[str, object]]:
    text = log.read_text() if log.exists() else ""
    return [orjson.loads(line) for line in text.splitlines() if f'"{message}"' in line]


def test_two_transforms_on_one_duckdb_file_load_every_object_exactly_once_and_take_turns(
    bucket: tuple[Minio, str, S3ObjectStore], s3_server: S3Server, tmp_path: Path
) -> None:
    client, name, _ = bucket
    ticks = synthetic(4000)
    database = tmp_path / "warehouse.duckdb"
    logs = [tmp_path / "transform-a.log", tmp_path / "transform-b.log"]
    env = {**transform_env(s3_server, name, database, tmp_path), "MARKETPULSE_TRANSFORM_MODE": "continuous"}
    transforms = []
    for index, log in enumerate(logs):
        with log.open("wb") as sink:
            workdir = tmp_path / f"dbt-{index}"  # each its own dbt target folder, as two pods have
            transforms.append(
                subprocess.Popen(
                    [str(Path(sys.executable).parent / "marketpulse"), "transform"],
                    env={**env, "DBT_TARGET_PATH": str(workdir / "target"), "DBT_LOG_PATH": str(workdir)},
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                )
            )

    def loaded_rows() -> int:
        return sum(int(str(c["rows"])) for log in logs for c in log_lines(log, "transform cycle done"))

    def wait_for(predicate: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not predicate():
            for transform, log in zip(transforms, logs, strict=True):
                assert transform.poll() is None, log.read_text()[-3000:]
            time.sleep(0.2)
        assert predicate(), f"{what}: {[log.read_text()[-2000:] for log in logs]}"

    try:
        # Objects keep arriving while both run, so both are at work when there is work.
        for batch in range(4):
            write_objects(
                client, name, ticks[batch * 1000 : (batch + 1) * 1000], 250, first_offset=batch * 1000
            )
            wait_for(lambda batch=batch: loaded_rows() >= (batch + 1) * 1000, f"batch {batch} loaded")
        wait_for(
            lambda: any(log_lines(log, "another transform holds the lease; cycle skipped") for log in logs),
            "one transform skipping a cycle the other holds",
        )
    finally:
        for transform in transforms:
            transform.send_signal(signal.SIGTERM)
        codes = [transform.wait(timeout=120) for transform in transforms]
    assert codes == [0, 0], [log.read_text()[-3000:] for log in logs]

    assert loaded_rows() == 4000
    for log in logs:
        assert not log_lines(log, "transform cycle failed"), log.read_text()[-3000:]
    skipped = [
        line for log in logs for line in log_lines(log, "another transform holds the lease; cycle skipped")
    ]
    assert all("/" in str(line["holder"]) for line in skipped), "the line names who holds the lease"
    with duckdb.connect(str(database), read_only=True) as con:
        assert con.execute(
            "select count(*), count(distinct object_key) from bronze._load_manifest"
        ).fetchone() == (
            16,
            16,
        )
        assert con.execute(
            "select count(*), count(distinct (producer_id, seq)) from bronze.raw_ticks"
        ).fetchone() == (4000, 4000)
        assert con.execute(
            "select count(*), count(distinct (producer_id, seq)) from silver.fct_ticks"
        ).fetchone() == (4000, 4000)


def test_a_cron_run_while_another_transform_holds_the_lease_skips_cleanly_and_loads_nothing(
    bucket: tuple[Minio, str, S3ObjectStore], s3_server: S3Server, tmp_path: Path
) -> None:
    client, name, _ = bucket
    write_objects(client, name, synthetic(500), per_object=250)
    database = tmp_path / "warehouse.duckdb"
    env = {**transform_env(s3_server, name, database, tmp_path), "MARKETPULSE_TRANSFORM_MODE": "cron"}
    other = FileLease(database.with_name("warehouse.duckdb.lease"), "transform-0/4242/cafe")

    with other.hold() as held:
        assert held.held
        skipped = subprocess.run(
            [str(Path(sys.executable).parent / "marketpulse"), "transform"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    done = subprocess.run(
        [str(Path(sys.executable).parent / "marketpulse"), "transform"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert skipped.returncode == 0, skipped.stderr[-3000:]
    assert "Traceback" not in skipped.stderr
    [line] = [
        orjson.loads(x) for x in skipped.stderr.splitlines() if "another transform holds the lease" in x
    ]
    assert line["holder"] == "transform-0/4242/cafe"
    assert "transform cycle done" not in skipped.stderr
    assert done.returncode == 0, done.stderr[-3000:]
    with duckdb.connect(str(database), read_only=True) as con:
        assert con.execute("select count(*) from bronze.raw_ticks").fetchone() == (500,)
