"""Snowflake mode: the same pages read Snowflake's gold schema through the real connector (fakesnow)."""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import snowflake.connector
from streamlit.testing.v1 import AppTest

from marketpulse_dev.localenv.snowflake import FakeSnowflakeServer

pytestmark = pytest.mark.snowflake

SYMBOLS = ["AAPL", "MSFT"]
COLUMN_TYPES = {
    "symbol": "varchar",
    "trade_date": "date",
    "bar_start": "timestamp_tz",
    "window_days": "integer",
    "volume": "bigint",
    "tick_count": "bigint",
    "last_event_time": "timestamp_tz",
    "last_ingest_time": "timestamp_tz",
    "last_loaded_at": "timestamp_tz",
}


def _bindable(value: Any) -> Any:
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, float) and math.isnan(value):
        return None  # the first day has no previous close, so no close-to-close return
    return value


def load_gold(server: FakeSnowflakeServer, database: str, gold: Any) -> None:
    """Create the gold relations and bulk-insert the frames (executemany: one statement per table)."""
    with snowflake.connector.connect(**server.connect_kwargs()) as connection:
        cursor = connection.cursor()
        cursor.execute(f"create database if not exists {database}")
        cursor.execute(f"create schema if not exists {database}.gold")
        for name, frame in gold.tables.items():
            columns = ", ".join(f"{c} {COLUMN_TYPES.get(c, 'double')}" for c in frame.columns)
            cursor.execute(f"create or replace table {database}.gold.{name} ({columns})")
            rows = [tuple(_bindable(v) for v in row) for row in frame.itertuples(index=False)]
            placeholders = ", ".join(["%s"] * len(frame.columns))
            insert = f"insert into {database}.gold.{name} values ({placeholders})"  # noqa: S608
            cursor.executemany(insert, rows)


@pytest.fixture
def snowflake_gold(
    fakesnow_server: FakeSnowflakeServer,
    gold_factory: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> Any:
    database = f"mp_{uuid.uuid4().hex[:8]}"
    gold = gold_factory(SYMBOLS, days=40, minute_bars_per_symbol=20)
    load_gold(fakesnow_server, database, gold)
    for name, value in {
        **fakesnow_server.settings(),
        "SNOWFLAKE_DATABASE": database,
        "MARKETPULSE_WAREHOUSE": "snowflake",
        "MARKETPULSE_GOLD_SCHEMA": "gold",
        "MARKETPULSE_BUCKET": "",  # live quotes need S3; gold pages must not
        "MARKETPULSE_WATCHLIST": "",
    }.items():
        monkeypatch.setenv(name, value)
    return gold


def test_in_snowflake_mode_the_ohlc_and_comparison_pages_show_the_gold_schemas_rows(
    app_path: Path, snowflake_gold: Any
) -> None:
    at = AppTest.from_file(str(app_path), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="symbol").options == SYMBOLS
    daily = snowflake_gold.table("ohlc_daily", "AAPL")
    shown = {m.label: m.value for m in at.metric}
    assert shown["Last close"] == f"{daily['close'].iloc[-1]:,.2f}"
    assert shown["High"] == f"{daily['high'].max():,.2f}"
    assert len(at.get("plotly_chart")) == 1

    start = daily["trade_date"].iloc[-5]
    at.date_input(key="dates").set_value((start, daily["trade_date"].iloc[-1])).run()
    assert {m.label: m.value for m in at.metric}["High"] == f"{daily['high'].iloc[-5:].max():,.2f}"

    at.switch_page("pages/volatility.py").run()
    assert not at.exception
    vol = snowflake_gold.table("volatility_rolling")
    last = vol[(vol["symbol"] == "MSFT") & (vol["window_days"] == 20)]["annualized_volatility"].iloc[-1]
    assert {m.label: m.value for m in at.metric}["MSFT"] == f"{last * 100:.2f} %"


def test_in_snowflake_mode_the_health_page_counts_gold_rows_and_explains_missing_quotes(
    app_path: Path, snowflake_gold: Any
) -> None:
    at = AppTest.from_file(str(app_path), default_timeout=60).run()
    at.switch_page("pages/health.py").run()
    assert not at.exception, [e.value for e in at.exception]
    rows = next(d.value for d in at.dataframe if "rows" in d.value.columns)
    assert rows.set_index("table")["rows"].to_dict() == {n: len(f) for n, f in snowflake_gold.tables.items()}
    assert any("MARKETPULSE_BUCKET is not set" in c.value for c in at.caption)


def test_in_snowflake_mode_a_database_without_gold_says_nothing_was_built_yet(
    app_path: Path, fakesnow_server: FakeSnowflakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = f"mp_{uuid.uuid4().hex[:8]}"
    with snowflake.connector.connect(**fakesnow_server.connect_kwargs()) as connection:
        connection.cursor().execute(f"create database if not exists {database}")
    for name, value in {
        **fakesnow_server.settings(),
        "SNOWFLAKE_DATABASE": database,
        "MARKETPULSE_WAREHOUSE": "snowflake",
    }.items():
        monkeypatch.setenv(name, value)
    at = AppTest.from_file(str(app_path), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    assert "No gold relation" in at.info[0].value


def test_in_snowflake_mode_a_private_key_file_replaces_the_password(
    app_path: Path, snowflake_gold: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The operator mounts the user's key (key-pair auth) and sets no password: the pages still load.

    fakesnow accepts any login, so this checks that the connector is given the key file (and reads
    it: an unreadable key fails the login) rather than that Snowflake verifies its signature.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"phrase"),
    )
    key_file = tmp_path / "private-key.p8"
    key_file.write_bytes(pem)
    monkeypatch.delenv("SNOWFLAKE_PASSWORD", raising=False)
    monkeypatch.setenv("SNOWFLAKE_PRIVATE_KEY_PATH", str(key_file))
    monkeypatch.setenv("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE", "phrase")

    at = AppTest.from_file(str(app_path), default_timeout=60).run()
    at.switch_page("pages/health.py").run()
    assert not at.exception, [e.value for e in at.exception]
    rows = next(d.value for d in at.dataframe if "rows" in d.value.columns)
    assert rows.set_index("table")["rows"].to_dict() == {n: len(f) for n, f in snowflake_gold.tables.items()}

    monkeypatch.setenv("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE", "wrong")
    at = AppTest.from_file(str(app_path), default_timeout=60).run()
    at.switch_page("pages/health.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert not any("rows" in d.value.columns for d in at.dataframe)
    shown = " ".join(e.value for e in [*at.error, *at.warning, *at.info])
    assert "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE: cannot read the private key" in shown, shown
