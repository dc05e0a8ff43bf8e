"""The transform's warehouse, chosen once: where bronze is loaded, how dbt connects, what is published.

DuckDB is a file this process alone writes; the dashboard cannot open it, so gold is published to the
bucket as Parquet. Snowflake is loaded with PUT + COPY INTO and the dashboard queries its gold schema,
so nothing is published. Each holds the pipeline's one-writer lease in its own way (`transform.lease`).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

import duckdb

from marketpulse.contract.settings.common import Warehouse
from marketpulse.contract.settings.transform import TransformSettings
from marketpulse.storage import ObjectStore
from marketpulse.transform.bronze_objects import LoadResult
from marketpulse.transform.duckdb_loader import DuckDBBronzeLoader
from marketpulse.transform.gold_metrics import LATEST_TICKS, LATEST_TICKS_SQL, GoldSymbol
from marketpulse.transform.lease import (
    LOCK_TIMEOUT_SECONDS,
    FileLease,
    LeaseState,
    SnowflakeLease,
    executor,
    process_holder,
)
from marketpulse.transform.publish import publish_gold
from marketpulse.transform.refresh import Execute, last_full_refresh, record_full_refresh


class TransformWarehouse(Protocol):
    @property
    def target(self) -> Warehouse:
        """dbt's target for this warehouse (dbt/profiles.yml)."""

    def lease(self) -> AbstractContextManager[LeaseState]:
        """The pipeline's one-writer lease for a cycle: held, or who holds it instead."""

    def load(self, store: ObjectStore) -> LoadResult:
        """Load every bronze object not loaded yet."""

    def dbt_env(self) -> dict[str, str]:
        """What dbt's profile reads to connect."""

    def publish(self, store: ObjectStore) -> dict[str, int] | None:
        """Publish gold where the dashboard reads it: rows per table, or None when it needs nothing."""

    def gold_symbols(self) -> list[GoldSymbol]:
        """The newest tick in gold per symbol (gold.latest_ticks), for the freshness metrics."""

    def last_full_refresh(self) -> str | None:
        """The token of the last full refresh completed here (`transform.refresh`)."""

    def record_full_refresh(self, token: str) -> None:
        """Remember that the full refresh `token` completed."""


class DuckDBWarehouse:
    target: Warehouse = "duckdb"

    def __init__(self, settings: TransformSettings, holder: str | None = None) -> None:
        self.settings = settings
        self.path = settings.duckdb_path.resolve()
        # gold.latest_ticks as the last publish wrote it, read once from its Parquet file.
        self._published: list[GoldSymbol] | None = None
        self._lease = FileLease(self.path.with_name(self.path.name + ".lease"), holder or process_holder())

    def lease(self) -> AbstractContextManager[LeaseState]:
        return self._lease.hold()

    def load(self, store: ObjectStore) -> LoadResult:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # The transform is the file's only writer; each stage opens it and closes it again.
        with duckdb.connect(str(self.path)) as con:
            return DuckDBBronzeLoader(con, store, schema=self.settings.bronze_schema).load_new()

    def dbt_env(self) -> dict[str, str]:
        return {"MARKETPULSE_DUCKDB_PATH": str(self.path)}

    def publish(self, store: ObjectStore) -> dict[str, int] | None:
        if not self.settings.publish_gold:
            return None
        with duckdb.connect(str(self.path)) as con:

            def keep_latest_ticks(name: str, parquet: Path) -> None:
                if name == LATEST_TICKS:
                    self._published = _duckdb_gold_symbols(con, sql_read_parquet(parquet))

            return publish_gold(con, store, self.settings.gold_schema, on_written=keep_latest_ticks)

    def gold_symbols(self) -> list[GoldSymbol]:
        # What was just published, else (publishing off) the view itself: one more scan of silver.
        published, self._published = self._published, None
        if published is not None:
            return published
        with duckdb.connect(str(self.path)) as con:
            return _duckdb_gold_symbols(con, f'"{self.settings.gold_schema}".{LATEST_TICKS}')

    def last_full_refresh(self) -> str | None:
        with duckdb.connect(str(self.path)) as con:
            return last_full_refresh(_duckdb_executor(con), self.settings.bronze_schema)

    def record_full_refresh(self, token: str) -> None:
        with duckdb.connect(str(self.path)) as con:
            record_full_refresh(_duckdb_executor(con), self.settings.bronze_schema, token, "?")


def _duckdb_executor(con: duckdb.DuckDBPyConnection) -> Execute:
    def execute(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return con.execute(sql, list(params)).fetchall()

    return execute


def sql_read_parquet(path: Path) -> str:
    """`read_parquet('<path>')`, the path quoted as a SQL string literal."""
    quoted = str(path).replace("'", "''")
    return f"read_parquet('{quoted}')"


def _duckdb_gold_symbols(con: duckdb.DuckDBPyConnection, relation: str) -> list[GoldSymbol]:
    sql = LATEST_TICKS_SQL.format(epoch="epoch(last_ingest_time)", relation=relation)
    return [GoldSymbol(str(s), float(t), int(n)) for s, t, n in con.execute(sql).fetchall()]


class SnowflakeWarehouse:
    target: Warehouse = "snowflake"

    def __init__(self, settings: TransformSettings, holder: str | None = None) -> None:
        self.settings = settings
        self._lease = SnowflakeLease(self._connect, settings.bronze_schema, holder or process_holder())

    def lease(self) -> AbstractContextManager[LeaseState]:
        return self._lease.hold()

    def _connect(self) -> Any:
        import snowflake.connector

        try:
            return snowflake.connector.connect(
                **self.settings.snowflake_connect_kwargs(),
                # A transform waiting on another's lock gives up in bounded time (default: 12 hours).
                session_parameters={"LOCK_TIMEOUT": LOCK_TIMEOUT_SECONDS},
            )
        except snowflake.connector.errors.Error as exc:
            # The connector's message names neither the account nor the endpoint it tried.
            raise ConnectionError(
                f"cannot log in to Snowflake ({self.settings.snowflake_target()}): {exc}"
            ) from None

    def load(self, store: ObjectStore) -> LoadResult:
        from marketpulse.transform.snowflake_loader import SnowflakeBronzeLoader

        with self._connect() as con:
            loader = SnowflakeBronzeLoader(con, store, schema=self.settings.bronze_schema, lease=self._lease)
            return loader.load_new()

    def dbt_env(self) -> dict[str, str]:
        return self.settings.snowflake_env()

    def publish(self, store: ObjectStore) -> dict[str, int] | None:
        return None  # the dashboard queries the gold schema directly

    def gold_symbols(self) -> list[GoldSymbol]:
        # Schema names are checked identifiers (TransformSettings); gold sits beside dbt's base schema.
        sql = LATEST_TICKS_SQL.format(
            epoch="date_part(epoch_second, last_ingest_time)",
            relation=f"{self.settings.snowflake_database}.{self.settings.gold_schema}.{LATEST_TICKS}",
        )
        with self._connect() as con:
            rows = con.cursor().execute(sql).fetchall()
        return [GoldSymbol(str(s), float(t), int(n)) for s, t, n in rows]

    def last_full_refresh(self) -> str | None:
        with self._connect() as con:
            return last_full_refresh(executor(con), self.settings.bronze_schema)

    def record_full_refresh(self, token: str) -> None:
        with self._connect() as con:
            record_full_refresh(executor(con), self.settings.bronze_schema, token, "%s")


def warehouse_for(settings: TransformSettings) -> TransformWarehouse:
    if settings.warehouse == "snowflake":
        return SnowflakeWarehouse(settings)
    return DuckDBWarehouse(settings)
