"""Bronze objects in the real S3 server and the Snowflake (fakesnow) schema they load into."""

from __future__ import annotations

import datetime as dt
import io
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import snowflake.connector
from minio import Minio

from marketpulse.archive.batching import PartitionBatch
from marketpulse.contract.ticks import Tick, encode_tick
from marketpulse.sources.synthetic import SyntheticSource
from marketpulse.storage import S3ObjectStore
from marketpulse_dev.localenv.snowflake import FakeSnowflakeServer

pytestmark = [pytest.mark.s3, pytest.mark.snowflake]

MARKETPULSE = str(Path(sys.executable).parent / "marketpulse")
SAMPLES = Path(__file__).parents[3] / "operator" / "config" / "samples"
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


def loaded_ticks(warehouse: Warehouse) -> list[tuple[Any, ...]]:
    return warehouse.query(f"select {BRONZE_COLUMNS} from bronze.raw_ticks order by seq")  # noqa: S608
