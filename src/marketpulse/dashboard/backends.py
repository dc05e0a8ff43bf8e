"""Where the dashboard's data comes from: one interface, one class per backend, no Streamlit here.

- `ParquetGoldBackend` (DuckDB mode): the transform owns the warehouse file, so the dashboard reads
  the gold tables it publishes as Parquet to `gold/` in the bucket and queries them with an
  in-memory DuckDB. A table is downloaded again only when `gold/_manifest.json` says a newer
  publish happened.
- `SnowflakeGoldBackend` (Snowflake mode): the same relations in Snowflake's gold schema.
- `QuoteSource`: the archive's `latest/quotes.json`, in both modes.

Every failure a user can cause or fix (wrong bucket, bad credentials, nothing published yet,
server down) becomes a `DataError` whose message names the setting and what would be right.
"""

from __future__ import annotations

import abc
import datetime as dt
import decimal
import enum
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import duckdb
import orjson
import pandas as pd  # type: ignore[import-untyped]  # pandas-stubs is not a dependency yet
import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type information
import pyarrow.compute as pc  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]
from minio.error import S3Error

from marketpulse.contract.layout import GOLD_PREFIX, MANIFEST_KEY, QUOTES_KEY
from marketpulse.storage import ObjectStore, StorageUnavailableError

# The gold relations the dashboard reads (the public contract of dbt's gold layer) and the column
# each is filtered on by date.
DATE_COLUMNS: dict[str, str] = {
    "ohlc_1m": "bar_start",
    "ohlc_daily": "trade_date",
    "returns_daily": "trade_date",
    "returns_cumulative": "trade_date",
    "volatility_rolling": "trade_date",
    "index_base100": "trade_date",
    "moving_averages_daily": "trade_date",
}
# The newest tick per symbol (no date column): what the health page measures freshness with. Gold
# published before it existed lacks it, and the page then falls back to the newest bar.
LATEST_TICKS = "latest_ticks"
# Every gold relation the dashboard reads (dbt's exposure `streamlit_dashboard` lists the same).
GOLD_RELATIONS: tuple[str, ...] = (*DATE_COLUMNS, LATEST_TICKS)
_TIMESTAMPS = frozenset(
    {"bar_start", "last_bar_start", "last_loaded_at", "last_event_time", "last_ingest_time"}
)
_BAD_CREDENTIALS = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken"}
_MISSING_KEY = {"NoSuchKey", "NoSuchObject"}
_MANIFEST_REUSE_SECONDS = 1.0


class Problem(enum.Enum):
    NOT_CONFIGURED = "not configured"
    UNREACHABLE = "unreachable"
    MISSING_BUCKET = "missing bucket"
    BAD_CREDENTIALS = "bad credentials"
    NOT_PUBLISHED = "not published"
    QUERY_FAILED = "query failed"


class DataError(Exception):
    """A reason the dashboard cannot show data, worded for the person looking at it."""

    def __init__(self, problem: Problem, message: str) -> None:
        super().__init__(message)
        self.problem = problem
        self.message = message


@dataclass(frozen=True)
class GoldStatus:
    """What the last publish of gold looked like."""

    published_at: dt.datetime | None
    rows: dict[str, int] = field(default_factory=dict)


def _normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """The same column types from every backend: dates as naive datetimes, timestamps in UTC."""
    for column in frame.columns:
        dtype = str(frame[column].dtype)
        # Converting only what differs: DuckDB already answers with these types, Snowflake not.
        if column.endswith("_date") and not dtype.startswith("datetime64"):
            frame[column] = pd.to_datetime(frame[column])
        elif column in _TIMESTAMPS and not dtype.endswith("UTC]"):
            frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


class GoldBackend(abc.ABC):
    """Gold relations queried with SQL; subclasses say how to reach a relation and run a query."""

    name: str
    placeholder: str

    @abc.abstractmethod
    def status(self) -> GoldStatus: ...

    @abc.abstractmethod
    def _relation(self, table: str) -> str:
        """The SQL name of `table`, made queryable first if needed."""

    @abc.abstractmethod
    def _run(self, sql: str, params: Sequence[Any]) -> pd.DataFrame: ...

    def select(
        self,
        table: str,
        symbols: Sequence[str] | None = None,
        start: dt.date | None = None,
        end: dt.date | None = None,
    ) -> pd.DataFrame:
        """Rows of one gold table, optionally for some symbols and an inclusive date range."""
        date_column = DATE_COLUMNS[table]
        relation = self._relation(table)
        where: list[str] = []
        params: list[Any] = []
        p = self.placeholder
        if symbols is not None:
            if not symbols:
                return _normalise(self._run(f"select * from {relation} where false", []))  # noqa: S608
            where.append(f"symbol in ({', '.join([p] * len(symbols))})")
            params.extend(symbols)
        # Compared as dates on both sides, so timestamps (ohlc_1m) and dates filter the same way.
        if start is not None:
            where.append(f"cast({date_column} as date) >= {p}")
            params.append(start)
        if end is not None:
            where.append(f"cast({date_column} as date) <= {p}")
            params.append(end)
        clause = f" where {' and '.join(where)}" if where else ""
        # Identifiers come from DATE_COLUMNS and the backend's own relation names; values are bound.
        sql = f"select * from {relation}{clause} order by symbol, {date_column}"  # noqa: S608
        return _normalise(self._run(sql, params))

    def symbols(self) -> list[str]:
        frame = self._run(f"select distinct symbol from {self._relation('ohlc_daily')}", [])  # noqa: S608
        return sorted(str(s) for s in frame["symbol"])

    def freshness(self) -> pd.DataFrame:
        """Per symbol: the newest trading date, the newest 1-minute bar (its ticks and close so far) and,
        when gold has `latest_ticks`, the newest tick's event, ingest and load times."""
        daily, minute = self._relation("ohlc_daily"), self._relation("ohlc_1m")
        ticks = self._relation(LATEST_TICKS) if LATEST_TICKS in self.status().rows else None
        tick_columns = (
            ", t.last_event_time, t.last_ingest_time, t.last_loaded_at as last_tick_loaded_at"
            if ticks
            else ""
        )
        tick_join = f"left join {ticks} as t on t.symbol = coalesce(d.symbol, m.symbol)" if ticks else ""
        # One round trip: the health page refreshes often and Snowflake charges per query.
        sql = f"""
            select
                coalesce(d.symbol, m.symbol) as symbol, d.last_trade_date, m.last_bar_start,
                b.tick_count as last_bar_ticks, b.close as last_bar_close{tick_columns}
            from (select symbol, max(trade_date) as last_trade_date from {daily} group by symbol) as d
            full outer join (
                select symbol, max(bar_start) as last_bar_start from {minute} group by symbol
            ) as m on d.symbol = m.symbol
            left join {minute} as b on b.symbol = m.symbol and b.bar_start = m.last_bar_start
            {tick_join}
            order by 1
        """  # noqa: S608
        return _normalise(self._run(sql, []))


# --- DuckDB mode: gold Parquet in S3 ------------------------------------------------------------


@contextmanager
def _s3_errors(bucket: str, endpoint: str, key: str) -> Iterator[None]:
    try:
        try:
            yield
        except StorageUnavailableError as exc:
            # A bucket gone mid-run is an outage to the workloads (the operator re-creates it), but
            # to someone opening the dashboard it is a name to check: say that, from the S3 answer.
            if isinstance(exc.__cause__, S3Error) and exc.__cause__.code == "NoSuchBucket":
                raise exc.__cause__ from None
            raise
    except S3Error as exc:
        if exc.code == "NoSuchBucket":
            raise DataError(
                Problem.MISSING_BUCKET,
                f"MARKETPULSE_BUCKET: bucket {bucket!r} does not exist on {endpoint}. The operator "
                "creates it when the StockPipeline is applied; check the name and the pipeline's status.",
            ) from None
        if exc.code in _BAD_CREDENTIALS:
            raise DataError(
                Problem.BAD_CREDENTIALS,
                f"S3_ACCESS_KEY / S3_SECRET_KEY: {endpoint} refused the credentials ({exc.code}). "
                "Use the access key and secret from the pipeline's storage Secret.",
            ) from None
        if exc.code in _MISSING_KEY:
            raise DataError(
                Problem.NOT_PUBLISHED,
                f"Nothing at {key!r} in bucket {bucket!r} yet."
                + (
                    " The archive writes live quotes every few seconds once ticks flow."
                    if key == QUOTES_KEY
                    else " The transform publishes gold there after its first successful run."
                ),
            ) from None
        raise DataError(Problem.QUERY_FAILED, f"S3 answered {exc.code} for {key!r}: {exc.message}") from None
    except StorageUnavailableError as exc:
        raise DataError(
            Problem.UNREACHABLE,
            f"S3_ENDPOINT: cannot reach {endpoint} ({exc}). Check the endpoint URL and that the "
            "S3 service is running.",
        ) from None


class ParquetGoldBackend(GoldBackend):
    """Each published gold table is read once into a sorted in-memory Arrow table. select() filters
    it with Arrow compute kernels: a dashboard query touches a few thousand rows, and at that size
    DuckDB's fixed cost per statement (planning, result conversion) is several times the scan.
    DuckDB answers the SQL of the aggregate queries over the same Arrow tables; their answers only
    change with a publish, so they are computed once per publish."""

    name = "duckdb"
    placeholder = "?"

    def __init__(self, store: ObjectStore, endpoint: str) -> None:
        self.store = store
        self.endpoint = endpoint
        self._con = duckdb.connect(":memory:")
        # Timestamps come back in UTC whatever the server's local time zone is.
        self._con.execute("set TimeZone = 'UTC'")
        # A few thousand rows per query: one thread answers faster than a pool that has to be
        # scheduled, and leaves the pod's other core to Streamlit.
        self._con.execute("set threads = 1")
        # One connection and one set of tables serve every browser session (Streamlit runs them in
        # threads).
        self._lock = threading.RLock()
        self._tables: dict[str, tuple[str, pa.Table]] = {}  # table -> (publish version, rows)
        self._per_publish: dict[str, tuple[str, Any]] = {}  # query -> (publish version, answer)
        self._status: tuple[float, GoldStatus] | None = None

    def _get(self, key: str) -> bytes:
        with _s3_errors(self.store.bucket, self.endpoint, key):
            return self.store.get(key)

    def status(self) -> GoldStatus:
        # Every query checks the manifest for a newer publish; a page runs several queries at once,
        # so one read per second is enough to see a publish and saves a round trip per query.
        now = time.monotonic()
        if self._status is not None and now - self._status[0] < _MANIFEST_REUSE_SECONDS:
            return self._status[1]
        status = self._read_manifest()
        self._status = (now, status)
        return status

    def _read_manifest(self) -> GoldStatus:
        raw = self._get(MANIFEST_KEY)
        try:
            manifest = orjson.loads(raw)
            published = manifest.get("published_at")
            return GoldStatus(
                published_at=dt.datetime.fromisoformat(published) if published else None,
                rows={str(k): int(v) for k, v in dict(manifest.get("rows", {})).items()},
            )
        except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError) as exc:
            raise DataError(
                Problem.QUERY_FAILED,
                f"{MANIFEST_KEY} in bucket {self.store.bucket!r} is not a gold manifest "
                f'({exc}); expected {{"published_at": "<ISO time>", "rows": {{"<table>": <count>}}}}.',
            ) from None

    def _version(self) -> str:
        published = self.status().published_at
        return published.isoformat() if published else ""

    def _gold(self, table: str) -> pa.Table:
        """The rows of `table` as last published, sorted by (symbol, date); read again only after a
        newer publish."""
        status = self.status()
        if table not in status.rows:
            raise DataError(
                Problem.NOT_PUBLISHED,
                f"Gold table {table!r} is not in {MANIFEST_KEY} (published {status.published_at}); "
                f"it has: {', '.join(sorted(status.rows)) or 'no tables'}.",
            )
        version = status.published_at.isoformat() if status.published_at else ""
        with self._lock:
            loaded = self._tables.get(table)
            if loaded is not None and loaded[0] == version:
                return loaded[1]
            key = f"{GOLD_PREFIX}{table}.parquet"
            data = self._get(key)
            order = ["symbol", *([DATE_COLUMNS[table]] if table in DATE_COLUMNS else [])]
            try:
                rows = pq.read_table(pa.BufferReader(data))
                rows = rows.sort_by([(column, "ascending") for column in order])
            except (pa.ArrowException, KeyError) as exc:
                raise DataError(
                    Problem.QUERY_FAILED,
                    f"{key} in bucket {self.store.bucket!r} is not readable gold Parquet with columns "
                    f"{' and '.join(order)}: {exc}",
                ) from None
            # `table` is one of GOLD_RELATIONS (the callers' names, checked against the manifest above).
            self._con.register(table, rows)
            self._tables[table] = (version, rows)
        return rows

    def _relation(self, table: str) -> str:
        self._gold(table)
        return table

    def select(
        self,
        table: str,
        symbols: Sequence[str] | None = None,
        start: dt.date | None = None,
        end: dt.date | None = None,
    ) -> pd.DataFrame:
        rows = self._gold(table)
        mask = None
        if symbols is not None:
            wanted = pa.array(list(symbols), type=rows.schema.field("symbol").type)
            mask = pc.is_in(rows["symbol"], value_set=wanted)
        date_column = DATE_COLUMNS[table]
        lower, upper = _day_bounds(rows.schema.field(date_column).type, start, end)
        for bound, compare in ((lower, pc.greater_equal), (upper, pc.less)):
            if bound is not None:
                kept = compare(rows[date_column], bound)
                mask = kept if mask is None else pc.and_(mask, kept)
        # Filtering keeps the (symbol, date) order the table is stored in.
        chosen = rows if mask is None else rows.filter(mask)
        return _normalise(_dates_as_datetimes(chosen).to_pandas())

    def symbols(self) -> list[str]:
        names: list[str] = self._per_publish_answer(
            "symbols",
            lambda: sorted(str(s) for s in pc.unique(self._gold("ohlc_daily")["symbol"]).to_pylist()),
        )
        return list(names)

    def freshness(self) -> pd.DataFrame:
        frame: pd.DataFrame = self._per_publish_answer("freshness", super().freshness)
        return frame.copy()

    def _per_publish_answer(self, query: str, compute: Callable[[], Any]) -> Any:
        version = self._version()
        with self._lock:
            known = self._per_publish.get(query)
            if known is not None and known[0] == version:
                return known[1]
            answer = compute()
            self._per_publish[query] = (version, answer)
            return answer

    def _run(self, sql: str, params: Sequence[Any]) -> pd.DataFrame:
        with self._lock:
            try:
                result = self._con.sql(sql, params=list(params)).to_arrow_table()
            except duckdb.Error as exc:
                raise DataError(Problem.QUERY_FAILED, f"Query on gold Parquet failed: {exc}") from None
        return _normalise(_dates_as_datetimes(result).to_pandas())


def _day_bounds(
    column_type: pa.DataType, start: dt.date | None, end: dt.date | None
) -> tuple[pa.Scalar | None, pa.Scalar | None]:
    """[lower, upper) scalars of the column's type for the inclusive days start..end; a timestamp's
    day is its UTC day, as in SQL's `cast(<timestamp> as date)` with TimeZone UTC."""
    after_end = end + dt.timedelta(days=1) if end is not None else None
    if pa.types.is_timestamp(column_type):
        zone = dt.UTC if column_type.tz else None
        lower = dt.datetime.combine(start, dt.time.min, zone) if start is not None else None
        upper = dt.datetime.combine(after_end, dt.time.min, zone) if after_end is not None else None
        return (
            pa.scalar(lower, type=column_type) if lower is not None else None,
            pa.scalar(upper, type=column_type) if upper is not None else None,
        )
    return (
        pa.scalar(start, type=column_type) if start is not None else None,
        pa.scalar(after_end, type=column_type) if after_end is not None else None,
    )


def _dates_as_datetimes(table: pa.Table) -> pa.Table:
    """DATE columns as datetime64[us], the type every backend's frames carry (see _normalise)."""
    for index, column in enumerate(table.schema):
        if pa.types.is_date(column.type):
            table = table.set_column(index, column.name, table.column(index).cast(pa.timestamp("us")))
    return table


# --- Snowflake mode ----------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    # The connector returns NUMBER as Decimal; charts and statistics want floats.
    return float(value) if isinstance(value, decimal.Decimal) else value


def _utc(value: Any) -> dt.datetime | None:
    if value is None or pd.isna(value):
        return None
    stamp = pd.Timestamp(value)
    # Snowflake's TIMESTAMP_NTZ comes back naive; the transform writes those in UTC.
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    result: dt.datetime = stamp.to_pydatetime()
    return result


class SnowflakeGoldBackend(GoldBackend):
    name = "snowflake"
    placeholder = "%s"  # the connector's default (pyformat) binding style

    def __init__(self, connect: Callable[[], Any], database: str, schema: str) -> None:
        self._connect = connect
        self.database = database
        self.schema = schema
        self._connection: Any = None
        # A connection is not safe for concurrent cursors from several sessions' threads.
        self._lock = threading.RLock()

    def _translate(self, exc: Exception) -> DataError:
        from snowflake.connector import errors

        text = str(exc)
        if isinstance(exc, errors.DatabaseError) and (
            "password" in text.lower() or "authenticat" in text.lower() or getattr(exc, "errno", 0) == 390100
        ):
            return DataError(
                Problem.BAD_CREDENTIALS,
                "SNOWFLAKE_USER / SNOWFLAKE_PASSWORD: Snowflake refused the login. Use the credentials "
                f"from the pipeline's warehouse Secret. ({text.splitlines()[0]})",
            )
        if isinstance(exc, errors.ProgrammingError) and "does not exist" in text.lower():
            return DataError(
                Problem.NOT_PUBLISHED,
                f"No gold relation in {self.database}.{self.schema} yet ({text.splitlines()[0]}). "
                "The transform builds them on its first successful run; check SNOWFLAKE_DATABASE and "
                "MARKETPULSE_GOLD_SCHEMA.",
            )
        if isinstance(exc, errors.OperationalError | errors.InterfaceError | OSError):
            return DataError(
                Problem.UNREACHABLE,
                f"SNOWFLAKE_ACCOUNT / SNOWFLAKE_HOST: cannot reach Snowflake ({text.splitlines()[0]}).",
            )
        return DataError(Problem.QUERY_FAILED, f"Snowflake query failed: {text.splitlines()[0]}")

    def _cursor(self) -> Any:
        if self._connection is None:
            self._connection = self._connect()
        return self._connection.cursor()

    def _relation(self, table: str) -> str:
        return f'"{self.database}"."{self.schema}"."{table}"'.upper()

    def _run(self, sql: str, params: Sequence[Any]) -> pd.DataFrame:
        from snowflake.connector import errors

        with self._lock:
            try:
                cursor = self._cursor()
                try:
                    cursor.execute(sql, tuple(params))
                    rows = cursor.fetchall()
                    columns = [str(d[0]).lower() for d in cursor.description]
                finally:
                    cursor.close()
            except (errors.Error, OSError) as exc:
                raise self._translate(exc) from None
        return pd.DataFrame([[_plain(v) for v in row] for row in rows], columns=columns)

    def status(self) -> GoldStatus:
        rows: dict[str, int] = {}
        for table in GOLD_RELATIONS:
            try:
                frame = self._run(f"select count(*) as n from {self._relation(table)}", [])  # noqa: S608
            except DataError as exc:
                if exc.problem is Problem.NOT_PUBLISHED:
                    continue  # optional relations (moving averages, latest ticks) may not exist
                raise
            rows[table] = int(frame["n"].iloc[0])
        if not rows:
            raise DataError(
                Problem.NOT_PUBLISHED,
                f"No gold relation in {self.database}.{self.schema} yet. The transform builds them on "
                "its first successful run.",
            )
        try:
            frame = self._run(
                f"select max(last_loaded_at) as t from {self._relation('ohlc_daily')}",  # noqa: S608
                [],
            )
            published = _utc(frame["t"].iloc[0])
        except DataError:
            # The last load time is a column of the transform's tables, not of the public contract.
            published = None
        return GoldStatus(published_at=published, rows=rows)


# --- Live quotes --------------------------------------------------------------------------------


class QuoteSource:
    def __init__(self, store: ObjectStore, endpoint: str) -> None:
        self.store = store
        self.endpoint = endpoint

    def latest(self) -> pd.DataFrame:
        """One row per symbol: price, change since the day's first tick, time of the last tick."""
        with _s3_errors(self.store.bucket, self.endpoint, QUOTES_KEY):
            raw = self.store.get(QUOTES_KEY)
        try:
            quotes = dict(orjson.loads(raw)["quotes"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise DataError(
                Problem.QUERY_FAILED,
                f"{QUOTES_KEY} in bucket {self.store.bucket!r} is not a quote snapshot ({exc}); "
                'expected {"quotes": {"<SYMBOL>": {"price": ..., "time": ...}}}.',
            ) from None
        frame = pd.DataFrame(
            [
                {
                    "symbol": symbol,
                    "price": float(q.get("price", float("nan"))),
                    "change_pct": float(q.get("change_pct", 0.0)),
                    "open": float(q.get("open", float("nan"))),
                    "size": q.get("size"),
                    "time": q.get("time"),
                    "day": q.get("day"),
                }
                for symbol, q in sorted(quotes.items())
            ],
            columns=["symbol", "price", "change_pct", "open", "size", "time", "day"],
        )
        frame["time"] = pd.to_datetime(frame["time"], utc=True, format="ISO8601")
        return frame
