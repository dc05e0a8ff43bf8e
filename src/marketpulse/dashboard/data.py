"""The one way pages get data: cached clients (`st.cache_resource`) and cached queries
(`st.cache_data` with a ttl near how often the data changes).

Every function takes the session's `DashboardSettings`; they are hashed by `cache_key`, so two
sessions share a cached answer only when they point at the same data with the same credentials.
Failures are raised as `DataError` and never cached, so a fixed bucket or Secret shows on the next
rerun.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd  # type: ignore[import-untyped]  # pandas-stubs is not a dependency yet
import streamlit as st

from marketpulse.contract.settings.dashboard import DashboardSettings
from marketpulse.dashboard.backends import (
    DataError,
    GoldBackend,
    GoldStatus,
    ParquetGoldBackend,
    Problem,
    QuoteSource,
    SnowflakeGoldBackend,
)
from marketpulse.storage import S3ObjectStore
from marketpulse.storage.s3 import minio_client

# Gold changes once per transform run (a 1-minute CronJob or a 30 s continuous loop); the quote
# snapshot every ~2 s; the health page wants to notice a missed publish quickly.
GOLD_TTL_SECONDS = 30
STATUS_TTL_SECONDS = 10
QUOTES_TTL_SECONDS = 1

_HASH: dict[Any, Any] = {DashboardSettings: lambda settings: settings.cache_key}


def _store(settings: DashboardSettings) -> S3ObjectStore:
    if not settings.bucket:
        raise DataError(
            Problem.NOT_CONFIGURED,
            "MARKETPULSE_BUCKET is not set: set it to the pipeline's bucket (the StockPipeline's "
            "status.bucket).",
        )
    try:
        client = minio_client(
            settings.s3_endpoint,
            settings.s3_access_key,
            settings.s3_secret_key.get_secret_value(),
            settings.s3_region,
        )
    except ValueError as exc:
        raise DataError(Problem.NOT_CONFIGURED, str(exc)) from None
    return S3ObjectStore(client, settings.bucket)


def _snowflake_connect(settings: DashboardSettings) -> Any:
    import snowflake.connector

    kwargs: dict[str, Any] = {
        "account": settings.snowflake_account,
        "user": settings.snowflake_user,
        "database": settings.snowflake_database,
        "schema": settings.gold_schema,
        # Fail fast: a page waiting minutes on login retries looks like a hung dashboard.
        "login_timeout": 15,
        "network_timeout": 30,
    }
    password = settings.snowflake_password
    if password is not None or settings.snowflake_private_key_path is None:
        kwargs["password"] = password.get_secret_value() if password is not None else ""
    else:
        kwargs["private_key_file"] = str(settings.snowflake_private_key_path)
        passphrase = settings.snowflake_private_key_passphrase
        if passphrase is not None:
            kwargs["private_key_file_pwd"] = passphrase.get_secret_value()
    for key, value in (
        ("role", settings.snowflake_role),
        ("warehouse", settings.snowflake_warehouse),
        ("host", settings.snowflake_host),
    ):
        if value:
            kwargs[key] = value
    if settings.snowflake_host:
        kwargs["port"] = settings.snowflake_port
        kwargs["protocol"] = settings.snowflake_protocol
    try:
        return snowflake.connector.connect(**kwargs)
    except (ValueError, TypeError, OSError) as exc:
        if "private_key_file" not in kwargs:
            raise
        # The connector reads the key file before it connects: a wrong passphrase or a file that is
        # not a PEM key surfaces here, not as a login error.
        raise DataError(
            Problem.BAD_CREDENTIALS,
            "SNOWFLAKE_PRIVATE_KEY_PATH / SNOWFLAKE_PRIVATE_KEY_PASSPHRASE: cannot read the private key "
            f"{settings.snowflake_private_key_path} ({exc}). Expected the PEM key of the Snowflake user "
            "and its passphrase from the pipeline's warehouse Secret.",
        ) from None


@st.cache_resource(hash_funcs=_HASH, show_spinner=False)
def gold_backend(settings: DashboardSettings) -> GoldBackend:
    """The session-independent client for the gold tables of the configured warehouse."""
    if settings.warehouse == "snowflake":
        if not settings.snowflake_account:
            raise DataError(
                Problem.NOT_CONFIGURED,
                "SNOWFLAKE_ACCOUNT is not set: MARKETPULSE_WAREHOUSE=snowflake needs the account, "
                "user and a password or private key file (or host/port for a local stand-in).",
            )
        return SnowflakeGoldBackend(
            lambda: _snowflake_connect(settings), settings.snowflake_database, settings.gold_schema
        )
    return ParquetGoldBackend(_store(settings), settings.s3_endpoint)


@st.cache_resource(hash_funcs=_HASH, show_spinner=False)
def quote_source(settings: DashboardSettings) -> QuoteSource:
    return QuoteSource(_store(settings), settings.s3_endpoint)


@st.cache_data(ttl=GOLD_TTL_SECONDS, hash_funcs=_HASH, show_spinner=False, max_entries=512)
def load(
    settings: DashboardSettings,
    table: str,
    symbols: tuple[str, ...] | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> pd.DataFrame:
    """Rows of a gold table for some symbols and an inclusive date range."""
    return gold_backend(settings).select(table, symbols, start, end)


@st.cache_data(ttl=GOLD_TTL_SECONDS, hash_funcs=_HASH, show_spinner=False)
def symbols(settings: DashboardSettings) -> list[str]:
    """Symbols with gold data, plus the watchlist's (which may have none yet)."""
    return sorted(set(gold_backend(settings).symbols()) | set(settings.watchlist))


@st.cache_data(ttl=STATUS_TTL_SECONDS, hash_funcs=_HASH, show_spinner=False)
def gold_status(settings: DashboardSettings) -> GoldStatus:
    return gold_backend(settings).status()


@st.cache_data(ttl=STATUS_TTL_SECONDS, hash_funcs=_HASH, show_spinner=False)
def freshness(settings: DashboardSettings) -> pd.DataFrame:
    return gold_backend(settings).freshness()


@st.cache_data(ttl=QUOTES_TTL_SECONDS, hash_funcs=_HASH, show_spinner=False)
def quotes(settings: DashboardSettings) -> pd.DataFrame:
    return quote_source(settings).latest()
