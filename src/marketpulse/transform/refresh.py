"""A full refresh asked for once runs once: the warehouse remembers the last one it completed.

The operator gives the transform one token per request (MARKETPULSE_FULL_REFRESH_TOKEN, the time of
the request), and keeps it in the workload's environment until the next request. A cycle whose
warehouse has not recorded that token runs `dbt build --full-refresh` and records the token once
dbt has succeeded, in the warehouse whose models it rebuilt. So a transform restarted mid-refresh
runs it again, one restarted after it does not, and a warehouse started afresh (a new volume) gets
one more full build, which costs nothing there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

TABLE = "_full_refresh"

# `execute(sql, params)`: the rows, if any; the driver's placeholder is DuckDB's `?` or the
# Snowflake connector's `%s`.
Execute = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]


def _ensure_table(execute: Execute, schema: str) -> None:
    # The load creates the schema before; a warehouse asked first (a test, a tool) still answers.
    execute(f"create schema if not exists {schema}", [])
    execute(f"create table if not exists {schema}.{TABLE} (token varchar, refreshed_at timestamp)", [])


def last_full_refresh(execute: Execute, schema: str) -> str | None:
    """The token of the newest full refresh the warehouse completed, or None."""
    _ensure_table(execute, schema)
    rows = execute(f"select token from {schema}.{TABLE} order by refreshed_at desc limit 1", [])
    return str(rows[0][0]) if rows else None


def record_full_refresh(execute: Execute, schema: str, token: str, placeholder: str) -> None:
    """Remember that the full refresh `token` completed (every one is kept, for the record)."""
    _ensure_table(execute, schema)
    execute(
        f"insert into {schema}.{TABLE} (token, refreshed_at) values ({placeholder}, current_timestamp)",
        [token],
    )


def pending(token: str, last: Callable[[], str | None]) -> bool:
    """Whether the full refresh `token` (empty: none requested) is still to be done."""
    return bool(token) and last() != token
