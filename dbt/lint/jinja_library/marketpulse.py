"""Stand-ins for the project's macros, for sqlfluff's jinja templater only (see ../../.sqlfluff).

sqlfluff lints the models without a warehouse, so it cannot run dbt's adapter.dispatch; these
functions render what the DuckDB implementations in ../../macros render, which is enough to parse
and lint the SQL around them. dbt never imports this file.
"""


def type_timestamp_tz() -> str:
    return "timestamptz"


def exchange_date(column: str) -> str:
    return f"cast(timezone('America/New_York', {column}) as date)"


def is_finite(column: str) -> str:
    return f"isfinite({column})"


def full_match(column: str, pattern: str) -> str:
    return f"regexp_full_match({column}, '{pattern}')"


def add_seconds(column: str, seconds: object) -> str:
    return f"{column} + to_seconds({int(str(seconds)) if str(seconds).lstrip('-').isdigit() else 0})"


def load_watermark(loaded_at_column: str, relation: object = None) -> str:
    return "cast('1970-01-01 00:00:00+00:00' as timestamptz)"


def rejected_ticks_watermark() -> str:
    return "silver.fct_rejected_ticks_watermark"


def watchlist() -> list[str]:
    return ["AAPL", "MSFT"]


def int_list_var(name: str, minimum: int = 1) -> list[int]:
    return [5, 20]


def rolling_windows(
    source: str, windows: list[int], value: str, aggregates: dict[str, str], keep: list[str] | None = None
) -> str:
    selects = []
    for days in windows:
        columns = ["symbol", "trade_date", f"{days} as window_days", *(keep or [])]
        columns += [
            f"{function}({value}) over (partition by symbol order by trade_date "
            f"rows between {days - 1} preceding and current row) as {name}"
            for name, function in aggregates.items()
        ]
        selects.append(f"select {', '.join(columns)} from {source}")  # noqa: S608 - lint stand-in, no data
    return " union all ".join(selects)
