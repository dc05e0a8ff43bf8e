"""Pipeline health: when gold was last published, how fresh each symbol is as measured from its newest
tick, row counts. Refreshes on its own."""

from __future__ import annotations

import datetime as dt

import pandas as pd  # type: ignore[import-untyped]  # pandas-stubs is not a dependency yet
import streamlit as st

from marketpulse.dashboard import data, ui
from marketpulse.dashboard.analytics import age_seconds, describe_age, forming_bars, seconds_between
from marketpulse.dashboard.backends import LATEST_TICKS, DataError, GoldStatus

settings = ui.settings()
st.title("Pipeline health")
st.caption(f"Refreshes every {settings.dashboard_health_refresh_seconds:g} s.")


def freshness_table(status: GoldStatus, fresh: pd.DataFrame, quotes: pd.DataFrame) -> pd.DataFrame:
    """One row per symbol: the newest tick gold holds and how old it is, the measured tick → gold
    latency of that tick, how far gold trails the live quotes, and the newest bar (forming or not)."""
    now = dt.datetime.now(dt.UTC)
    # Watchlist symbols without any gold row are listed too: they are the likeliest to need attention.
    expected = pd.DataFrame({"symbol": sorted(set(settings.watchlist) - set(fresh["symbol"]))})
    table = (
        pd.concat([fresh, expected], ignore_index=True)
        .merge(quotes, on="symbol", how="outer")
        .sort_values("symbol")
        .reset_index(drop=True)
    )
    if "last_event_time" not in table:  # gold published before it carried `latest_ticks`
        table["last_event_time"] = pd.Series(pd.NaT, index=table.index, dtype="datetime64[ns, UTC]")
        table["last_ingest_time"] = table["last_event_time"]
    table["tick_age_s"] = [age_seconds(t, now) for t in table["last_event_time"]]
    table["tick_to_gold_s"] = [seconds_between(t, status.published_at) for t in table["last_ingest_time"]]
    table["gold_behind_quotes_s"] = [
        seconds_between(t, q) for t, q in zip(table["last_event_time"], table["last_quote"], strict=True)
    ]
    forming = forming_bars(table["last_bar_start"], status.published_at)
    table["last_bar"] = [
        "none" if pd.isna(start) else f"forming ({int(ticks)} trades so far)" if is_forming else "closed"
        for start, ticks, is_forming in zip(
            table["last_bar_start"], table["last_bar_ticks"].fillna(0), forming, strict=True
        )
    ]
    # Judged by the newest tick when gold has it, else by the newest bar's start.
    ages = [
        tick if tick is not None else age_seconds(bar, now)
        for tick, bar in zip(table["tick_age_s"], table["last_bar_start"], strict=True)
    ]
    threshold = settings.dashboard_stale_after_seconds
    table["status"] = [
        "no data" if pd.isna(day) and age is None else "stale" if age is None or age > threshold else "fresh"
        for day, age in zip(table["last_trade_date"], ages, strict=True)
    ]
    return table


@st.fragment(run_every=settings.dashboard_health_refresh_seconds)
def health() -> None:
    # Only this fragment reruns on the timer; the caches behind it hold answers for STATUS_TTL_SECONDS.
    try:
        status = data.gold_status(settings)
        fresh = data.freshness(settings)
    except DataError as exc:
        ui.show_problem(exc)
        return
    try:
        quotes = data.quotes(settings)[["symbol", "time"]].rename(columns={"time": "last_quote"})
        quotes_note = ""
    except DataError as exc:
        quotes = pd.DataFrame(
            {"symbol": pd.Series(dtype=str), "last_quote": pd.Series(dtype="datetime64[ns, UTC]")}
        )
        quotes_note = exc.message
    now = dt.datetime.now(dt.UTC)
    threshold = settings.dashboard_stale_after_seconds
    publish_age = age_seconds(status.published_at, now)
    table = freshness_table(status, fresh, quotes)
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
            f"**Stale symbols**: no tick within {limit} for {', '.join(stale_symbols)}. "
            "The market may be closed, or the source stopped delivering them.",
            icon=":material/warning:",
        )
    else:
        st.success(f"Fresh: gold published {describe_age(publish_age)}, every symbol within {limit}.")

    latencies = table["tick_to_gold_s"].dropna()
    cols = st.columns(5)
    cols[0].metric("Last publish", describe_age(publish_age))
    cols[1].metric(
        "Tick → gold",
        f"{latencies.max():.1f} s" if not latencies.empty else "n/a",
        help="Measured for each symbol's newest tick: when gold holding it was published, less when "
        "ingest sent it. The worst symbol is shown.",
    )
    cols[2].metric("Gold tables", str(len(status.rows)))
    cols[3].metric("Gold rows", f"{sum(status.rows.values()):,}")
    cols[4].metric("Stale symbols", f"{len(stale_symbols)} / {len(table)}")
    if status.published_at is not None:
        st.caption(f"Published at {status.published_at.isoformat()} · warehouse: {settings.warehouse}")

    st.subheader("Freshness per symbol")
    st.dataframe(
        table[
            [
                "symbol",
                "status",
                "last_event_time",
                "tick_age_s",
                "tick_to_gold_s",
                "last_bar_start",
                "last_bar",
                "last_quote",
                "gold_behind_quotes_s",
                "last_trade_date",
            ]
        ],
        hide_index=True,
        key="health_freshness",
        column_config={
            "last_trade_date": st.column_config.DateColumn("Last trading date"),
            "last_event_time": st.column_config.DatetimeColumn(
                "Newest tick in gold (UTC)", format="YYYY-MM-DD HH:mm:ss"
            ),
            "tick_age_s": st.column_config.NumberColumn("Tick age (s)", format="%.0f"),
            "tick_to_gold_s": st.column_config.NumberColumn("Tick → gold (s)", format="%.1f"),
            "last_quote": st.column_config.DatetimeColumn("Last quote (UTC)", format="YYYY-MM-DD HH:mm:ss"),
            "gold_behind_quotes_s": st.column_config.NumberColumn("Gold behind quotes (s)", format="%.1f"),
            "last_bar_start": st.column_config.DatetimeColumn(
                "Newest 1-min bar (UTC)", format="YYYY-MM-DD HH:mm"
            ),
            "last_bar": st.column_config.TextColumn("Newest bar"),
        },
    )
    if LATEST_TICKS not in status.rows:
        st.caption(
            f"Gold has no `{LATEST_TICKS}` yet (published by an older transform): tick times are unknown, "
            "so freshness is judged by the newest 1-minute bar."
        )
    if quotes_note:
        st.caption(f"Live quotes unavailable: {quotes_note}")

    st.subheader("Rows per gold table")
    st.dataframe(
        pd.DataFrame(sorted(status.rows.items()), columns=["table", "rows"]),
        hide_index=True,
        key="health_rows",
    )
    st.caption(f"Checked {now:%H:%M:%S} UTC.")


health()
