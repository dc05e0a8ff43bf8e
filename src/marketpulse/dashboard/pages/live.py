"""Live quotes from the archive's latest snapshot, refreshed on their own every few seconds."""

from __future__ import annotations

import datetime as dt

import streamlit as st

from marketpulse.dashboard import data, ui
from marketpulse.dashboard.analytics import age_seconds, describe_age
from marketpulse.dashboard.backends import DataError

settings = ui.settings()
st.title("Live quotes")
st.caption(f"Refreshes every {settings.dashboard_quotes_refresh_seconds:g} s from `latest/quotes.json`.")


@st.fragment(run_every=settings.dashboard_quotes_refresh_seconds)
def live_quotes() -> None:
    # Only this fragment reruns on the timer, so the rest of the page (and other pages) stay put.
    try:
        quotes = data.quotes(settings)
    except DataError as exc:
        ui.show_problem(exc)
        return
    if settings.watchlist:
        quotes = quotes[quotes["symbol"].isin(settings.watchlist)]
    if quotes.empty:
        st.info("The quote snapshot has no symbols yet.", icon=":material/hourglass_empty:")
        return
    now = dt.datetime.now(dt.UTC)
    per_row = 6
    for offset in range(0, len(quotes), per_row):
        cols = st.columns(per_row)
        for col, row in zip(cols, quotes.iloc[offset : offset + per_row].itertuples(), strict=False):
            col.metric(str(row.symbol), f"{float(row.price):,.2f}", f"{float(row.change_pct):+.2f} %")
    table = quotes.assign(age=[describe_age(age_seconds(t, now)) for t in quotes["time"]])
    st.dataframe(
        table[["symbol", "price", "change_pct", "open", "size", "time", "age"]],
        hide_index=True,
        key="live_table",
        column_config={
            "price": st.column_config.NumberColumn("Price", format="%.2f"),
            "change_pct": st.column_config.NumberColumn("Change %", format="%+.2f"),
            "open": st.column_config.NumberColumn("Day's first", format="%.2f"),
            "time": st.column_config.DatetimeColumn("Last tick (UTC)", format="YYYY-MM-DD HH:mm:ss"),
        },
    )
    st.caption(f"Snapshot read {now:%H:%M:%S} UTC.")


live_quotes()
