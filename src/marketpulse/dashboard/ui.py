"""What every page shares: the session's settings, turning data problems into messages, pickers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import NoReturn

import pandas as pd  # type: ignore[import-untyped]  # pandas-stubs is not a dependency yet
import streamlit as st
from pydantic import ValidationError

from marketpulse.contract.settings.dashboard import DashboardSettings
from marketpulse.contract.settings.environment import variable_at
from marketpulse.dashboard.backends import DataError, Problem

SETTINGS_KEY = "marketpulse_settings"


def install_settings() -> DashboardSettings:
    """Read the environment once per browser session (the entrypoint calls this before routing)."""
    if SETTINGS_KEY not in st.session_state:
        try:
            st.session_state[SETTINGS_KEY] = DashboardSettings()
        except ValidationError as exc:
            lines = []
            for problem in exc.errors():
                name = variable_at(DashboardSettings, str(problem["loc"][0])) if problem["loc"] else "?"
                lines.append(f"- `{name}`: {problem['msg']} (got {problem.get('input')!r})")
            st.error("The dashboard's environment is not valid:\n\n" + "\n".join(lines))
            st.stop()
    settings: DashboardSettings = st.session_state[SETTINGS_KEY]
    return settings


def settings() -> DashboardSettings:
    return install_settings()


def show_problem(exc: DataError) -> None:
    if exc.problem is Problem.NOT_PUBLISHED:
        st.info(exc.message, icon=":material/hourglass_empty:")
    elif exc.problem is Problem.NOT_CONFIGURED:
        st.warning(exc.message, icon=":material/settings:")
    else:
        st.error(exc.message, icon=":material/error:")


@contextmanager
def explain_data_errors() -> Iterator[None]:
    """Show a data problem as a message and end the page there, instead of a traceback."""
    try:
        yield
    except DataError as exc:
        show_problem(exc)
        st.stop()


def stop_with_info(message: str) -> NoReturn:
    st.info(message, icon=":material/info:")
    st.stop()


def stop_with_warning(message: str) -> NoReturn:
    st.warning(message, icon=":material/warning:")
    st.stop()


def no_rows_for(symbols: Sequence[str], table: str) -> str:
    names = ", ".join(symbols)
    return (
        f"No rows for {names} in gold table `{table}`. A symbol appears in gold once its first "
        "ticks have been archived and transformed; check that it is in the StockPipeline's "
        "watchlist and that the source delivers it."
    )


def empty_table(table: str) -> str:
    return (
        f"Gold table `{table}` has no rows yet. It fills after the transform's first run over archived ticks."
    )


def pick_symbols(options: Sequence[str], key: str, default_count: int = 5) -> list[str]:
    chosen = st.multiselect("Symbols", list(options), default=list(options[:default_count]), key=key)
    if not chosen:
        stop_with_info("Pick at least one symbol.")
    return list(chosen)


def pick_date_range(
    first: dt.date, last: dt.date, key: str, default_days: int | None = None
) -> tuple[dt.date, dt.date]:
    """An inclusive date range within [first, last]; a half-picked range means one day."""
    start_default = first if default_days is None else max(first, last - dt.timedelta(days=default_days))
    picked = st.date_input(
        "Date range", value=(start_default, last), min_value=first, max_value=last, key=key
    )
    # While the user is between the two clicks the range is half picked: show that one day.
    if len(picked) == 2:
        return picked[0], picked[1]
    if len(picked) == 1:
        return picked[0], picked[0]
    return start_default, last


def in_range(frame: pd.DataFrame, column: str, start: dt.date, end: dt.date) -> pd.DataFrame:
    dates = pd.to_datetime(frame[column]).dt.date
    return frame[(dates >= start) & (dates <= end)]


def first_last_dates(frame: pd.DataFrame, column: str = "trade_date") -> tuple[dt.date, dt.date]:
    dates = pd.to_datetime(frame[column])
    return dates.min().date(), dates.max().date()


def signed_pct(value: float) -> str:
    return f"{value:+.2f} %"
