"""Pipeline health: when gold was last published, how fresh each symbol is, row counts."""

from __future__ import annotations

import datetime as dt

import pandas as pd  # type: ignore[import-untyped]  # pandas-stubs is not a dependency yet
import streamlit as st

from marketpulse.dashboard import data, ui
from marketpulse.dashboard.analytics import age_seconds, describe_age
from marketpulse.dashboard.backends import DataError

settings = ui.settings()
st.title("Pipeline health")
threshold = settings.dashboard_stale_after_seconds
now = dt.datetime.now(dt.UTC)

with ui.explain_data_errors():
    status = data.gold_status(settings)
    fresh = data.freshness(settings)
try:
    quotes = data.quotes(settings)[["symbol", "time"]].rename(columns={"time": "last_quote"})
    quotes_note = ""
except DataError as exc:
    quotes = pd.DataFrame(
        {"symbol": pd.Series(dtype=str), "last_quote": pd.Series(dtype="datetime64[ns, UTC]")}
    )
    quotes_note = exc.message

publish_age = age_seconds(status.published_at, now)
# Watchlist symbols without any gold row are listed too: they are the likeliest to need attention.
expected = pd.DataFrame({"symbol": sorted(set(settings.watchlist) - set(fresh["symbol"]))})
table = (
    pd.concat([fresh, expected], ignore_index=True)
    .merge(quotes, on="symbol", how="outer")
    .sort_values("symbol")
    .reset_index(drop=True)
)
table["bar_age_s"] = [age_seconds(t, now) for t in table["last_bar_start"]]
table["gold_lag_s"] = [
    (q - b).total_seconds() if pd.notna(q) and pd.notna(b) else None
    for q, b in zip(table["last_quote"], table["last_bar_start"], strict=True)
]
table["status"] = [
    "no data" if pd.isna(d) and a is None else "stale" if a is None or a > threshold else "fresh"
    for d, a in zip(table["last_trade_date"], table["bar_age_s"], strict=True)
]
stale_symbols = table.loc[table["status"] != "fresh", "symbol"].tolist()

limit = describe_age(threshold).removesuffix(" ago")
if publish_age is None or publish_age > threshold:
    st.error(
        f"**Gold is stale**: last published {describe_age(publish_age)} (limit {limit}). Check the "
        "transform CronJob or Deployment of this pipeline and its logs.",
        icon=":material/running_with_errors:",
    )
elif table.empty:
    st.info(
        "Gold was published but has no symbol yet: the transform has not seen archived ticks.",
        icon=":material/hourglass_empty:",
    )
elif stale_symbols:
    st.warning(
        f"**Stale symbols**: no 1-minute bar within {limit} for {', '.join(stale_symbols)}. "
        "The market may be closed, or the source stopped delivering them.",
        icon=":material/warning:",
    )
else:
    st.success(f"Fresh: gold published {describe_age(publish_age)}, every symbol within {limit}.")

cols = st.columns(4)
cols[0].metric("Last publish", describe_age(publish_age))
cols[1].metric("Gold tables", str(len(status.rows)))
cols[2].metric("Gold rows", f"{sum(status.rows.values()):,}")
cols[3].metric("Stale symbols", f"{len(stale_symbols)} / {len(table)}")
if status.published_at is not None:
    st.caption(f"Published at {status.published_at.isoformat()} · warehouse: {settings.warehouse}")

st.subheader("Freshness per symbol")
st.dataframe(
    table[["symbol", "status", "last_trade_date", "last_bar_start", "bar_age_s", "last_quote", "gold_lag_s"]],
    hide_index=True,
    key="health_freshness",
    column_config={
        "last_trade_date": st.column_config.DateColumn("Last trading date"),
        "last_bar_start": st.column_config.DatetimeColumn("Last 1-min bar (UTC)", format="YYYY-MM-DD HH:mm"),
        "bar_age_s": st.column_config.NumberColumn("Bar age (s)", format="%.0f"),
        "last_quote": st.column_config.DatetimeColumn("Last quote (UTC)", format="YYYY-MM-DD HH:mm:ss"),
        "gold_lag_s": st.column_config.NumberColumn("Gold behind quotes (s)", format="%.0f"),
    },
)
if quotes_note:
    st.caption(f"Live quotes unavailable: {quotes_note}")

st.subheader("Rows per gold table")
st.dataframe(
    pd.DataFrame(sorted(status.rows.items()), columns=["table", "rows"]),
    hide_index=True,
    key="health_rows",
)
