"""Gold data written to the real local S3 server the way the transform publishes it, and the
environment that points the dashboard at it."""

from __future__ import annotations

import datetime as dt
import math
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import httpx
import numpy as np
import orjson
import pandas as pd  # type: ignore[import-untyped]
import pytest
import streamlit as st
from minio import Minio

import marketpulse.dashboard
from marketpulse.contract.layout import GOLD_PREFIX, MANIFEST_KEY, QUOTES_KEY
from marketpulse.storage import S3ObjectStore
from marketpulse.storage.s3 import minio_client
from marketpulse_dev.localenv.errors import ComponentError
from marketpulse_dev.localenv.process import free_port, wait_for
from marketpulse_dev.localenv.s3 import S3Server

APP = Path(marketpulse.dashboard.__file__).parent / "app.py"
NEW_YORK = ZoneInfo("America/New_York")
VOLATILITY_WINDOWS = (5, 20, 60)


@dataclass
class Gold:
    """Frames shaped like dbt's gold relations (the dashboard's contract), built from a seeded walk."""

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    quotes: dict[str, dict[str, object]] = field(default_factory=dict)

    def emptied(self) -> Gold:
        """The same tables with no rows: what a publish before any ticks looks like."""
        return Gold(tables={name: frame.iloc[0:0] for name, frame in self.tables.items()})

    def table(self, name: str, symbol: str | None = None) -> pd.DataFrame:
        frame = self.tables[name]
        return frame if symbol is None else frame[frame["symbol"] == symbol].reset_index(drop=True)


def trading_days(last: dt.date, count: int) -> list[dt.date]:
    """`count` weekdays ending on `last`, which is kept even on a weekend so that the 1-minute
    bars of "now" always fall inside the daily range."""
    days: list[dt.date] = [last]
    day = last - dt.timedelta(days=1)
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day -= dt.timedelta(days=1)
    return days[::-1]


def make_gold(
    symbols: list[str],
    days: int,
    minute_bars_per_symbol: int,
    *,
    last_day: dt.date | None = None,
    last_bar: dt.datetime | None = None,
    seed: int = 7,
    latest_ticks: bool = True,
) -> Gold:
    rng = np.random.default_rng(seed)
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    last_bar = last_bar or now - dt.timedelta(minutes=1)
    dates = trading_days(last_day or last_bar.astimezone(NEW_YORK).date(), days)
    daily_rows, minute_rows = [], []
    for i, symbol in enumerate(symbols):
        close = 100.0 + 50 * i
        for day in dates:
            open_ = close * (1 + rng.normal(0, 0.004))
            close = open_ * (1 + rng.normal(0.0005, 0.015))
            high = max(open_, close) * (1 + abs(rng.normal(0, 0.004)))
            low = min(open_, close) * (1 - abs(rng.normal(0, 0.004)))
            volume = int(rng.integers(1_000_000, 5_000_000))
            daily_rows.append(
                {
                    "symbol": symbol,
                    "trade_date": day,
                    "open": round(open_, 4),
                    "high": round(high, 4),
                    "low": round(low, 4),
                    "close": round(close, 4),
                    "volume": volume,
                    "vwap": round((open_ + close + high + low) / 4, 4),
                    "tick_count": volume // 100,
                }
            )
        price = close
        for m in range(minute_bars_per_symbol):
            start = last_bar - dt.timedelta(minutes=minute_bars_per_symbol - 1 - m)
            open_ = price
            price = open_ * (1 + rng.normal(0, 0.0008))
            minute_rows.append(
                {
                    "symbol": symbol,
                    "bar_start": start,
                    "trade_date": start.astimezone(NEW_YORK).date(),
                    "open": round(open_, 4),
                    "high": round(max(open_, price) * 1.0003, 4),
                    "low": round(min(open_, price) * 0.9997, 4),
                    "close": round(price, 4),
                    "volume": int(rng.integers(1_000, 50_000)),
                    "vwap": round((open_ + price) / 2, 4),
                    "tick_count": int(rng.integers(10, 500)),
                }
            )
    daily = pd.DataFrame(daily_rows)
    minute = pd.DataFrame(minute_rows)
    if not minute.empty:
        minute["bar_start"] = pd.to_datetime(minute["bar_start"], utc=True)

    returns = daily[["symbol", "trade_date", "open", "close"]].copy()
    previous = returns.groupby("symbol")["close"].shift(1)
    returns["intraday_return_pct"] = 100 * (returns["close"] - returns["open"]) / returns["open"]
    returns["close_to_close_return_pct"] = 100 * (returns["close"] - previous) / previous
    returns["log_return"] = np.log(returns["close"] / previous)
    first_close = returns.groupby("symbol")["close"].transform("first")
    cumulative = returns[["symbol", "trade_date"]].assign(
        cumulative_return_pct=100 * (returns["close"] - first_close) / first_close
    )
    index = returns[["symbol", "trade_date"]].assign(index_value=100 * returns["close"] / first_close)
    volatility = []
    for window in VOLATILITY_WINDOWS:
        # Written out with numpy rather than the app's helper, so tests compare two computations.
        for symbol, group in returns.groupby("symbol"):
            logs = group["log_return"].to_numpy()
            for end in range(window, len(logs)):
                chunk = logs[end - window + 1 : end + 1]
                if np.isnan(chunk).any():
                    continue
                volatility.append(
                    {
                        "symbol": symbol,
                        "trade_date": group["trade_date"].iloc[end],
                        "window_days": window,
                        "annualized_volatility": float(np.std(chunk, ddof=1) * math.sqrt(252)),
                    }
                )
    tables = {}
    if latest_ticks and not minute.empty:
        # The newest tick of each symbol: 30 s into its newest bar, sent 50 ms later, loaded 2 s later.
        newest = minute.groupby("symbol", as_index=False).agg(
            last_bar=("bar_start", "max"), tick_count=("tick_count", "sum")
        )
        event = newest["last_bar"] + pd.Timedelta(seconds=30)
        tables["latest_ticks"] = pd.DataFrame(
            {
                "symbol": newest["symbol"],
                "last_event_time": event,
                "last_ingest_time": event + pd.Timedelta(milliseconds=50),
                "last_loaded_at": event + pd.Timedelta(seconds=2),
                "tick_count": newest["tick_count"],
            }
        )
    gold = Gold(
        tables=tables
        | {
            "ohlc_1m": minute,
            "ohlc_daily": daily,
            "returns_daily": returns.drop(columns=["open", "close"]),
            "returns_cumulative": cumulative,
            "volatility_rolling": pd.DataFrame(
                volatility, columns=["symbol", "trade_date", "window_days", "annualized_volatility"]
            ),
            "index_base100": index,
        }
    )
    for symbol in symbols:
        last = minute[minute["symbol"] == symbol] if not minute.empty else minute
        if last.empty:
            continue
        row = last.iloc[-1]
        day_open = float(last.iloc[0]["open"])
        gold.quotes[symbol] = {
            "day": str(row["bar_start"].date()),
            "open": day_open,
            "price": float(row["close"]),
            "time": row["bar_start"].strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "size": 100,
            "change_pct": round((float(row["close"]) - day_open) / day_open * 100, 4),
        }
    return gold


def publish(store: S3ObjectStore, gold: Gold, published_at: dt.datetime | None = None) -> None:
    """Write gold as the transform does: one Parquet object per table, then the manifest."""
    con = duckdb.connect()
    rows: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name, frame in gold.tables.items():
            target = Path(scratch) / f"{name}.parquet"
            con.register("frame", frame)
            casts = []
            if "trade_date" in frame.columns:
                casts.append("cast(trade_date as date) as trade_date")
            if "bar_start" in frame.columns:
                casts.append("cast(bar_start as timestamptz) as bar_start")
            replace = f" replace ({', '.join(casts)})" if casts else ""
            con.execute(f"copy (select *{replace} from frame) to '{target}' (format parquet)")  # noqa: S608
            con.unregister("frame")
            store.put(f"{GOLD_PREFIX}{name}.parquet", target.read_bytes())
            rows[name] = len(frame)
    stamp = published_at or dt.datetime.now(dt.UTC)
    store.put(MANIFEST_KEY, orjson.dumps({"published_at": stamp.isoformat(), "rows": rows}))
    if gold.quotes:
        store.put(QUOTES_KEY, orjson.dumps({"quotes": gold.quotes}))


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    # Caches are process-wide; every test starts from what is in its own bucket.
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture
def bucket(s3_server: S3Server) -> str:
    name = f"dash-{uuid.uuid4().hex[:10]}"
    Minio(
        s3_server.endpoint.removeprefix("http://"),
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
        secure=False,
        region="us-east-1",
    ).make_bucket(name)
    return name


@pytest.fixture
def store(s3_server: S3Server, bucket: str) -> S3ObjectStore:
    return S3ObjectStore(minio_client(s3_server.endpoint, s3_server.access_key, s3_server.secret_key), bucket)


@pytest.fixture
def dashboard_env(monkeypatch: pytest.MonkeyPatch, s3_server: S3Server, bucket: str) -> Callable[..., None]:
    """Point the dashboard at the test bucket; keyword arguments override variables."""

    def apply(**overrides: str) -> None:
        env = {
            **s3_server.settings(),
            "MARKETPULSE_BUCKET": bucket,
            "MARKETPULSE_PIPELINE": "test",
            "MARKETPULSE_WAREHOUSE": "duckdb",
            "MARKETPULSE_WATCHLIST": "",
            **overrides,
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)

    return apply


@pytest.fixture(scope="session")
def gold_factory() -> Callable[..., Gold]:
    return make_gold


@pytest.fixture
def publish_gold(store: S3ObjectStore) -> Callable[..., None]:
    def apply(gold: Gold, published_at: dt.datetime | None = None) -> None:
        publish(store, gold, published_at)

    return apply


@pytest.fixture(scope="session")
def app_path() -> Path:
    return APP


@pytest.fixture
def serve_dashboard(tmp_path: Path) -> Callable[[Mapping[str, str]], AbstractContextManager[str]]:
    """`marketpulse dashboard` as a process on a free port with `env` added; the context yields its URL
    once the health endpoint answers, and stops the process afterwards."""

    @contextmanager
    def serve(env: Mapping[str, str]) -> Iterator[str]:
        port = free_port()
        log = tmp_path / "dashboard.log"
        full_env = {
            **os.environ,
            **env,
            "MARKETPULSE_DASHBOARD_ADDRESS": "127.0.0.1",
            "MARKETPULSE_DASHBOARD_PORT": str(port),
        }
        marketpulse = Path(sys.executable).with_name("marketpulse")
        with log.open("wb") as out:
            process = subprocess.Popen(
                [str(marketpulse), "dashboard"],
                env=full_env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=tmp_path,
            )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for(
                lambda: httpx.get(f"{url}/_stcore/health", timeout=1).status_code == 200,
                timeout=60,
                step="start the dashboard",
                what=f"GET {url}/_stcore/health to answer 200",
                log_path=log,
                alive=lambda: process.poll() is None,
            )
            yield url
        except ComponentError as exc:
            pytest.fail(str(exc), pytrace=False)
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    return serve
