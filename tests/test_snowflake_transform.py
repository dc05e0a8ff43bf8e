"""The transform's Snowflake mode: bronze objects in the real S3 server reach Snowflake (fakesnow's
server, through the real connector and dbt-snowflake) exactly once, also across a crash mid-load,
and `marketpulse transform` builds gold there."""

from __future__ import annotations

import datetime as dt
import io
import os
import subprocess
import sys
import textwrap
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pandas as pd
import pytest
import snowflake.connector
from minio import Minio

from marketpulse.archive.batching import PartitionBatch
from marketpulse.contract.settings.transform import TransformSettings
from marketpulse.contract.ticks import Tick, encode_tick
from marketpulse.sources.synthetic import SyntheticSource
from marketpulse.storage import S3ObjectStore
from marketpulse.storage.s3 import minio_client
from marketpulse.transform.bronze_objects import BronzeObjectError
from marketpulse.transform.snowflake_loader import SnowflakeBronzeLoader
from marketpulse_dev.local.executor import LocalRun
from marketpulse_dev.local.pipeline_file import load_pipeline
from marketpulse_dev.local.secrets import secret_env_name
from marketpulse_dev.localenv.kafka import KafkaServer
from marketpulse_dev.localenv.process import free_port
from marketpulse_dev.localenv.s3 import S3Server
from marketpulse_dev.localenv.snowflake import FakeSnowflakeServer

pytestmark = [pytest.mark.s3, pytest.mark.snowflake]

MARKETPULSE = str(Path(sys.executable).parent / "marketpulse")
SAMPLES = Path(__file__).parents[1] / "operator" / "config" / "samples"
SNOWFLAKE_SAMPLE = SAMPLES / "stockpipeline-finnhub-snowflake.yaml"
BRONZE_COLUMNS = "producer_id, seq, symbol, price, size, event_time, _object_key"


def utc(microseconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(microseconds / 1e6, dt.UTC)


def synthetic(limit: int, seed: int = 1, ticks_per_second: float = 10.0) -> list[Tick]:
    source = SyntheticSource(
        ["AAPL", "MSFT"],
        "p-1",
        seed=seed,
        clock="simulated",
        limit=limit,
        ticks_per_second=ticks_per_second,
    )
    return [t for batch in source.batches() for t in batch if isinstance(t, Tick)]


def write_objects(
    client: Minio, bucket: str, ticks: list[Tick], per_object: int, *, compress: bool = False, first: int = 0
) -> list[str]:
    keys = []
    for start in range(0, len(ticks), per_object):
        batch = PartitionBatch(0, first + start, 1_767_623_400_000, 0.0)
        for i, tick in enumerate(ticks[start : start + per_object]):
            batch.add(first + start + i, encode_tick(tick), 0)
        key, body = batch.key(compress=compress), batch.body(compress=compress)
        client.put_object(bucket, key, io.BytesIO(body), len(body))
        keys.append(key)
    return keys


@dataclass
class Bucket:
    client: Minio
    name: str
    store: S3ObjectStore


@pytest.fixture
def bucket(s3_server: S3Server) -> Bucket:
    client = minio_client(s3_server.endpoint, s3_server.access_key, s3_server.secret_key)
    name = f"sf-{uuid.uuid4().hex[:8]}"
    client.make_bucket(name)
    return Bucket(client, name, S3ObjectStore(client, name))


@dataclass
class Warehouse:
    server: FakeSnowflakeServer
    database: str

    def connect(self) -> Any:
        return snowflake.connector.connect(
            **self.server.connect_kwargs(), database=self.database, schema="PUBLIC"
        )

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with self.connect() as con, con.cursor() as cursor:
            cursor.execute(sql)
            rows: list[tuple[Any, ...]] = cursor.fetchall()
            return rows

    def frame(self, sql: str) -> pd.DataFrame:
        with self.connect() as con, con.cursor() as cursor:
            cursor.execute(sql)
            columns = [column.name.lower() for column in cursor.description]
            return pd.DataFrame(cursor.fetchall(), columns=columns)

    def env(self) -> dict[str, str]:
        """What `marketpulse transform` reads to reach this database (as the workload renderer sets it)."""
        return {
            **self.server.settings(),
            "MARKETPULSE_WAREHOUSE": "snowflake",
            "SNOWFLAKE_DATABASE": self.database,
            "SNOWFLAKE_SCHEMA": "MARKETPULSE",
            # fakesnow's server can stall when several sessions query at once; one dbt thread avoids it.
            "MARKETPULSE_DBT_THREADS": "1",
        }


@pytest.fixture
def warehouse(fakesnow_server: FakeSnowflakeServer) -> Warehouse:
    # fakesnow creates the database on the first login that names it.
    return Warehouse(fakesnow_server, f"MP_{uuid.uuid4().hex[:8].upper()}")


def loaded_ticks(warehouse: Warehouse) -> list[tuple[Any, ...]]:
    return warehouse.query(f"select {BRONZE_COLUMNS} from bronze.raw_ticks order by seq")  # noqa: S608


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


def test_a_broken_object_fails_the_load_naming_its_key_and_loads_nothing_until_it_is_fixed(
    bucket: Bucket, warehouse: Warehouse
) -> None:
    ticks = synthetic(1500)
    keys = write_objects(bucket.client, bucket.name, ticks, per_object=500)
    broken_key = keys[1]
    good = bucket.client.get_object(bucket.name, broken_key).read()
    truncated = good[: len(good) // 2]  # a line cut in the middle, as a half-written upload would leave
    bucket.client.put_object(bucket.name, broken_key, io.BytesIO(truncated), len(truncated))

    with warehouse.connect() as con, pytest.raises(BronzeObjectError) as refused:
        SnowflakeBronzeLoader(con, bucket.store, chunk_objects=10).load_new()
    message = str(refused.value)
    counts = warehouse.query(
        "select (select count(*) from bronze.raw_ticks), (select count(*) from bronze._load_manifest)"
    )

    bucket.client.put_object(bucket.name, broken_key, io.BytesIO(good), len(good))
    with warehouse.connect() as con:
        rerun = SnowflakeBronzeLoader(con, bucket.store, chunk_objects=10).load_new()

    assert message.startswith(f"bronze object {broken_key} cannot be loaded (expected NDJSON ticks): ")
    assert "\n" not in message  # one line
    assert "marketpulse-load" not in message  # no scratch path
    assert counts == [(0, 0)]
    assert (rerun.objects, rerun.rows) == (3, 1500)


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


def expected_daily_bars(ticks: list[Tick]) -> pd.DataFrame:
    """Daily bars recomputed from the input ticks, independently of dbt (exchange dates, New York)."""
    frame = pd.DataFrame(
        {
            "symbol": [t.symbol for t in ticks],
            "price": [t.price for t in ticks],
            "size": [t.size for t in ticks],
            "event_us": [t.event_time_us for t in ticks],
        }
    )
    sql = """
        select symbol,
               cast(timezone('America/New_York', make_timestamptz(event_us)) as date) as trade_date,
               max(price) as high, min(price) as low, sum(size) as volume, count(*) as tick_count,
               sum(price * size) / sum(size) as vwap
        from frame group by all order by symbol, trade_date
    """
    with duckdb.connect() as con:
        con.register("frame", frame)
        bars: pd.DataFrame = con.execute(sql).fetchdf()
    return bars


def run_transform(env: dict[str, str], workdir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MARKETPULSE, "transform"],
        env={
            **os.environ,
            **env,
            "MARKETPULSE_TRANSFORM_MODE": "cron",
            "MARKETPULSE_METRICS_PORT": "0",
            "DBT_TARGET_PATH": str(workdir / "dbt-target"),
            "DBT_LOG_PATH": str(workdir / "dbt-logs"),
        },
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_the_transform_command_builds_gold_in_snowflake_equal_to_a_recomputation_from_the_ticks(
    bucket: Bucket, warehouse: Warehouse, s3_server: S3Server, tmp_path: Path
) -> None:
    ticks = synthetic(6000, ticks_per_second=0.05)  # three trading days of event time
    write_objects(bucket.client, bucket.name, ticks[:4000], per_object=1000)
    write_objects(bucket.client, bucket.name, ticks[4000:], per_object=1000, compress=True, first=4000)
    env = {**warehouse.env(), **s3_server.settings(), "MARKETPULSE_BUCKET": bucket.name}

    done = run_transform(env, tmp_path)
    assert done.returncode == 0, done.stderr[-5000:]
    cycle = [orjson.loads(line) for line in done.stderr.splitlines() if "transform cycle done" in line]
    assert [(c["objects"], c["rows"], c["dbt"], c["gold_rows"]) for c in cycle] == [(6, 6000, "build", {})]

    assert warehouse.query("select count(*) from silver.fct_ticks") == [(6000,)]
    gold = warehouse.frame(
        "select symbol, trade_date, high, low, volume, tick_count, vwap from gold.ohlc_daily "
        "order by symbol, trade_date"
    )
    expected = expected_daily_bars(ticks)
    assert len(expected) == 6, expected  # two symbols, three trading days
    assert list(gold["symbol"]) == list(expected["symbol"])
    assert [str(d) for d in gold["trade_date"]] == [
        str(d.date()) for d in pd.to_datetime(expected["trade_date"])
    ]
    assert [int(v) for v in gold["volume"]] == [int(v) for v in expected["volume"]]
    assert [int(v) for v in gold["tick_count"]] == [int(v) for v in expected["tick_count"]]
    for column in ("high", "low", "vwap"):
        assert [float(v) for v in gold[column]] == pytest.approx(
            [float(v) for v in expected[column]], rel=1e-9
        )
    # Snowflake mode publishes nothing to the bucket: the dashboard reads Snowflake's gold schema.
    assert not list(bucket.client.list_objects(bucket.name, prefix="gold/"))

    again = run_transform(env, tmp_path)
    assert again.returncode == 0, again.stderr[-5000:]
    assert warehouse.query("select count(*) from bronze.raw_ticks") == [(6000,)]
    assert warehouse.query("select count(*) from silver.fct_ticks") == [(6000,)]


@pytest.mark.parametrize(
    ("change", "variable", "expected"),
    [
        ({"SNOWFLAKE_ACCOUNT": None}, "SNOWFLAKE_ACCOUNT", "needs the account identifier"),
        ({"SNOWFLAKE_USER": ""}, "SNOWFLAKE_USER", "needs the user"),
        ({"SNOWFLAKE_PASSWORD": None}, "SNOWFLAKE_PASSWORD", "SNOWFLAKE_PRIVATE_KEY_PATH"),
        (
            {"SNOWFLAKE_PASSWORD": None, "SNOWFLAKE_PRIVATE_KEY_PATH": "/nonexistent/key.p8"},
            "SNOWFLAKE_PRIVATE_KEY_PATH",
            "is not a file",
        ),
        ({"SNOWFLAKE_PROTOCOL": "ftp"}, "SNOWFLAKE_PROTOCOL", "'http' or 'https'"),
        ({"SNOWFLAKE_DATABASE": "my-db"}, "SNOWFLAKE_DATABASE", "not a plain identifier"),
    ],
    ids=["no-account", "empty-user", "no-credential", "missing-key-file", "bad-protocol", "bad-database"],
)
def test_a_missing_or_bad_snowflake_setting_is_refused_naming_the_variable_without_a_traceback(
    warehouse: Warehouse, tmp_path: Path, change: dict[str, str | None], variable: str, expected: str
) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SNOWFLAKE_")},
        **warehouse.env(),
        "MARKETPULSE_BUCKET": "unused",
        "SNOWFLAKE_PASSWORD": "distinct-secret-4711",
    }
    for name, value in change.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    refused = subprocess.run(
        [MARKETPULSE, "transform"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert refused.returncode == 2, refused.stderr
    assert f"{variable}:" in refused.stderr
    assert expected in refused.stderr
    assert "Traceback" not in refused.stderr + refused.stdout
    assert "distinct-secret-4711" not in refused.stderr, "a password was printed"


def test_an_unreachable_snowflake_fails_the_cycle_with_a_message_and_no_traceback(
    bucket: Bucket, s3_server: S3Server, tmp_path: Path
) -> None:
    closed = free_port()  # nothing listens there
    env = {
        **s3_server.settings(),
        "MARKETPULSE_BUCKET": bucket.name,
        "MARKETPULSE_WAREHOUSE": "snowflake",
        "SNOWFLAKE_ACCOUNT": "fakesnow",
        "SNOWFLAKE_USER": "marketpulse",
        "SNOWFLAKE_PASSWORD": "secret-password",
        "SNOWFLAKE_HOST": "127.0.0.1",
        "SNOWFLAKE_PORT": str(closed),
        "SNOWFLAKE_PROTOCOL": "http",
    }
    started = time.monotonic()
    failed = run_transform(env, tmp_path)
    assert failed.returncode == 1, failed.stderr[-3000:]
    errors = [orjson.loads(line) for line in failed.stderr.splitlines() if "transform cycle failed" in line]
    assert len(errors) == 1, failed.stderr[-3000:]
    assert "cannot log in to Snowflake" in errors[0]["error"]
    assert f"endpoint http://127.0.0.1:{closed}" in errors[0]["error"]
    assert "Traceback" not in failed.stderr
    assert "secret-password" not in failed.stderr
    assert time.monotonic() - started < 300


def test_the_settings_read_exactly_the_snowflake_environment_the_workload_renderer_sets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = load_pipeline(SNOWFLAKE_SAMPLE)
    snowflake_spec = pipeline.spec.warehouse.snowflake
    assert snowflake_spec is not None
    run = LocalRun(pipeline, tmp_path, printer=lambda *_: None)
    run.kafka = KafkaServer(tmp_path / "kafka", port=19092)
    run.s3 = S3Server(tmp_path / "s3", port=17070)
    transform = next(w for w in run.workloads() if w.component == "transform")
    for var in transform.env:
        if var.secret is not None and var.secret.name != "marketpulse-s3":
            monkeypatch.setenv(secret_env_name(var.secret), f"value-of-{var.secret.key}")
    for secret_file in transform.secret_files:
        monkeypatch.setenv(secret_env_name(secret_file.secret), "-----BEGIN PRIVATE KEY-----\n")
    env = run.environment(transform)
    for name in [n for n in os.environ if n.startswith(("SNOWFLAKE_", "MARKETPULSE_"))]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    settings = TransformSettings()
    assert settings.warehouse == "snowflake"
    kwargs = settings.snowflake_connect_kwargs()
    assert (kwargs["account"], kwargs["user"], kwargs["database"], kwargs["schema"]) == (
        snowflake_spec.account,
        snowflake_spec.user,
        snowflake_spec.database,
        snowflake_spec.schema_name,
    )
    assert ("password" in kwargs) == (snowflake_spec.password is not None)
    assert ("private_key_file" in kwargs) == (snowflake_spec.private_key is not None)
    # dbt's profile reads the same variables, with the values the loader connects with.
    dbt_env = settings.snowflake_env()
    assert {k: v for k, v in dbt_env.items() if k in env and v} == {
        k: v for k, v in env.items() if k.startswith("SNOWFLAKE_")
    }


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


@pytest.fixture(autouse=True)
def _no_stray_snowflake_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's own SNOWFLAKE_* variables must not leak into the settings under test.
    for name in [n for n in os.environ if n.startswith("SNOWFLAKE_")]:
        monkeypatch.delenv(name)
