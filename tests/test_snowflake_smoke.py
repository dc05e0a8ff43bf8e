"""The real snowflake-connector-python runs SQL against fakesnow's server over HTTP."""

from __future__ import annotations

import pytest
import snowflake.connector

from marketpulse_dev.localenv.snowflake import FakeSnowflakeServer

pytestmark = pytest.mark.snowflake


def test_the_snowflake_connector_creates_inserts_and_queries_through_the_wire(
    fakesnow_server: FakeSnowflakeServer,
) -> None:
    with snowflake.connector.connect(
        **fakesnow_server.connect_kwargs(), database="marketpulse", schema="bronze"
    ) as connection:
        cursor = connection.cursor()
        cursor.execute("create database if not exists marketpulse")
        cursor.execute("create schema if not exists marketpulse.bronze")
        cursor.execute("create or replace table ticks (symbol varchar, price number(18,4))")
        cursor.execute("insert into ticks values ('AAPL', 189.5), ('AAPL', 190.5), ('MSFT', 410.0)")
        cursor.execute("select symbol, count(*), avg(price) from ticks group by symbol order by symbol")
        rows = cursor.fetchall()
    assert [(r[0], r[1], float(r[2])) for r in rows] == [("AAPL", 2, 190.0), ("MSFT", 1, 410.0)]
