"""A full refresh requested once (the operator's token in MARKETPULSE_FULL_REFRESH_TOKEN) rebuilds
silver and gold from bronze exactly once per token: not again on the next cycle or in a new process,
and again after a crash that came before it was recorded. Real DuckDB, real dbt, a real S3 server."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import duckdb
import pytest
from minio import Minio

from marketpulse.archive.batching import PartitionBatch
from marketpulse.contract.settings.transform import TransformSettings
from marketpulse.contract.ticks import Tick, encode_tick
from marketpulse.sources.synthetic import SyntheticSource
from marketpulse.storage import S3ObjectStore
from marketpulse.storage.s3 import minio_client
from marketpulse.transform.main import run_cycle
from marketpulse.transform.warehouses import DuckDBWarehouse
from marketpulse.warehouse import DbtRunError
from marketpulse_dev.localenv.s3 import S3Server

pytestmark = pytest.mark.s3

SYMBOLS = ["AAPL", "MSFT"]
FIRST, SECOND = "2026-12-04T02:30:05Z", "2026-12-05T09:00:00Z"


def put_ticks(client: Minio, bucket: str, ticks: list[Tick]) -> None:
    batch = PartitionBatch(0, 0, 1_767_623_400_000, 0.0)
    for offset, tick in enumerate(ticks):
        batch.add(offset, encode_tick(tick), 0)
    body = batch.body(compress=False)
    client.put_object(bucket, batch.key(compress=False), io.BytesIO(body), len(body))


@pytest.fixture
def store(s3_server: S3Server) -> S3ObjectStore:
    client = minio_client(s3_server.endpoint, s3_server.access_key, s3_server.secret_key)
    name = f"refresh-{uuid.uuid4().hex[:8]}"
    client.make_bucket(name)
    source = SyntheticSource(SYMBOLS, "p-1", seed=3, clock="simulated", limit=600)
    put_ticks(client, name, [t for b in source.batches() for t in b if isinstance(t, Tick)])
    return S3ObjectStore(client, name)


def settings_for(path: Path, token: str = "") -> TransformSettings:
    return TransformSettings(
        duckdb_path=path, watchlist=SYMBOLS, publish_gold=False, full_refresh_token=token
    )


def rows_of(path: Path, symbol: str) -> tuple[int, int]:
    with duckdb.connect(str(path), read_only=True) as con:
        silver = con.execute("select count(*) from silver.fct_ticks where symbol = ?", [symbol]).fetchone()
        bars = con.execute("select count(*) from gold.ohlc_1m where symbol = ?", [symbol]).fetchone()
    assert silver is not None
    assert bars is not None
    return int(silver[0]), int(bars[0])


def recorded(path: Path) -> list[str]:
    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.execute("select token from bronze._full_refresh order by refreshed_at").fetchall()
    return [str(row[0]) for row in rows]


def cycle(path: Path, store: S3ObjectStore, token: str = "") -> str:
    settings = settings_for(path, token)
    # A warehouse per call, as each process (a CronJob run, a restarted pod) makes its own.
    return run_cycle(settings, DuckDBWarehouse(settings), store).dbt_command


def test_a_requested_full_refresh_rebuilds_silver_and_gold_from_bronze_once_per_token(
    store: S3ObjectStore, tmp_path: Path
) -> None:
    path = tmp_path / "warehouse.duckdb"
    assert cycle(path, store) == "build"
    intact = rows_of(path, "MSFT")
    assert min(intact) > 0
    # What a wrong incremental run leaves behind: rows missing that bronze still has.
    with duckdb.connect(str(path)) as con:
        con.execute("delete from silver.fct_ticks where symbol = 'MSFT'")
        con.execute("delete from gold.ohlc_1m where symbol = 'MSFT'")
    # An incremental build does not bring back rows it has seen, and its data tests say so.
    with pytest.raises(DbtRunError, match="assert_every_raw_tick_is_accounted_for"):
        cycle(path, store)
    assert rows_of(path, "MSFT") == (0, 0)

    assert cycle(path, store, FIRST) == "full-refresh"
    assert rows_of(path, "MSFT") == intact
    assert recorded(path) == [FIRST]

    # The token stays in the workload's environment: later cycles and restarts do not refresh again.
    assert cycle(path, store, FIRST) == "build"
    assert cycle(path, store, FIRST) == "build"
    assert recorded(path) == [FIRST]


def test_a_transform_killed_before_its_full_refresh_was_recorded_runs_it_again_once(
    store: S3ObjectStore, s3_server: S3Server, tmp_path: Path
) -> None:
    path = tmp_path / "warehouse.duckdb"
    assert cycle(path, store, FIRST) == "full-refresh"
    script = textwrap.dedent(f"""
        from pathlib import Path
        from marketpulse.contract.settings.transform import TransformSettings
        from marketpulse.storage import S3ObjectStore
        from marketpulse.storage.s3 import minio_client
        from marketpulse.transform.main import run_cycle
        from marketpulse.transform.warehouses import DuckDBWarehouse
        settings = TransformSettings(
            duckdb_path=Path({str(path)!r}), watchlist={SYMBOLS!r}, publish_gold=False,
            full_refresh_token={SECOND!r},
        )
        client = minio_client({s3_server.endpoint!r}, {s3_server.access_key!r}, {s3_server.secret_key!r})
        run_cycle(settings, DuckDBWarehouse(settings), S3ObjectStore(client, {store.bucket!r}))
    """)
    env = {**os.environ, "MARKETPULSE_FAILPOINTS": "transform.before-full-refresh-recorded"}
    killed = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert killed.returncode == 137, killed.stderr[-2000:]
    assert recorded(path) == [FIRST], "dbt finished, but the crash came before the token was recorded"

    assert cycle(path, store, SECOND) == "full-refresh"
    assert cycle(path, store, SECOND) == "build"
    assert recorded(path) == [FIRST, SECOND]
