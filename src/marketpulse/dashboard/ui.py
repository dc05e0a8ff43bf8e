"""What every page shares: the session's settings, turning data problems into messages, pickers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn

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


# Filters are bound to the URL (`bind="query-params"`, the widget's key is the parameter's name), so
# a link reproduces the view. Streamlit drops a value its widget cannot take; the pickers first say
# which part of the link was ignored and why, so that a mistyped or stale link is not silently changed.


def link_values(key: str) -> list[str]:
    """What the page's URL says for `key`: repeated and comma-separated values, as given."""
    parts = (part.strip() for value in st.query_params.get_all(key) for part in value.split(","))
    return [part for part in parts if part]


def ignored_from_link(key: str, given: Sequence[str], why: str) -> None:
    shown = ", ".join(given)
    if len(shown) > 80:  # a hostile link may be long; the notice names it, not all of it
        shown = shown[:77] + "…"
    st.warning(f"Ignored `{key}={shown}` from the link: {why}.", icon=":material/link_off:")


def pick_symbols(options: Sequence[str], key: str = "symbols", default_count: int = 5) -> list[str]:
    unknown = [value for value in link_values(key) if value not in options]
    if unknown:
        ignored_from_link(key, unknown, f"not a symbol with data (expected some of {', '.join(options)})")
    default = list(options[:default_count])
    chosen = st.multiselect("Symbols", list(options), default=default, key=key, bind="query-params")
    if not chosen:
        stop_with_info("Pick at least one symbol.")
    return list(chosen)


def pick_symbol(options: Sequence[str], key: str = "symbol") -> str:
    given = link_values(key)
    if given and given[-1] not in options:
        ignored_from_link(key, given, f"not a symbol with data (expected one of {', '.join(options)})")
    return str(st.selectbox("Symbol", list(options), key=key, bind="query-params"))


def pick_option(label: str, options: Sequence[str], key: str, *, container: Any = st) -> str:
    """One of a few named choices, as radio buttons."""
    given = link_values(key)
    if given and given[-1] not in options:
        ignored_from_link(key, given, f"expected one of {', '.join(options)}")
    return str(container.radio(label, list(options), horizontal=True, key=key, bind="query-params"))


def _whole_number_problem(given: Sequence[str], low: int, high: int) -> str | None:
    expected = f"expected a whole number from {low} to {high}"
    if len(given) != 1 or len(given[0]) > 12:
        return expected
    try:
        number = float(given[0])
    except ValueError:
        return expected
    if not number.is_integer() or not low <= number <= high:
        return expected
    return None


def pick_whole_number(
    label: str, low: int, high: int, default: int, key: str, *, slider: bool = False, container: Any = st
) -> int:
    given = link_values(key)
    if given and (problem := _whole_number_problem(given, low, high)):
        ignored_from_link(key, given, problem)
    if slider:
        return int(container.slider(label, low, high, default, key=key, bind="query-params"))
    return int(container.number_input(label, low, high, default, key=key, bind="query-params"))


def _date_range_problem(given: Sequence[str], first: dt.date, last: dt.date) -> str | None:
    expected = f"expected one or two dates (YYYY-MM-DD) from {first} to {last}"
    if not 1 <= len(given) <= 2:
        return expected
    try:
        dates = [dt.date.fromisoformat(value) for value in given if len(value) <= 10]
    except ValueError:
        return expected
    if len(dates) != len(given) or not all(first <= day <= last for day in dates) or dates != sorted(dates):
        return expected
    return None


def pick_date_range(
    first: dt.date, last: dt.date, key: str = "dates", default_days: int | None = None
) -> tuple[dt.date, dt.date]:
    """An inclusive date range within [first, last] (default: all of it); a half-picked range means
    one day."""
    given = link_values(key)
    if given and (problem := _date_range_problem(given, first, last)):
        ignored_from_link(key, given, problem)
    start_default = first if default_days is None else max(first, last - dt.timedelta(days=default_days))
    picked = st.date_input(
        "Date range",
        value=(start_default, last),
        min_value=first,
        max_value=last,
        key=key,
        bind="query-params",
    )
    # While the user is between the two clicks the range is half picked: show that one day.
    if len(picked) == 2:
        return picked[0], picked[1]
    if len(picked) == 1:
        return picked[0], picked[0]
    return start_default, last


def download_csv(frame: pd.DataFrame, name: str, key: str) -> None:
    """The rows a chart or table shows, as CSV; downloading does not rerun the page."""
    st.download_button(
        "Download CSV",
        frame.to_csv(index=False).encode(),
        file_name=f"{name}.csv",
        mime="text/csv",
        key=key,
        icon=":material/download:",
        on_click="ignore",
    )


def in_range(frame: pd.DataFrame, column: str, start: dt.date, end: dt.date) -> pd.DataFrame:
    dates = pd.to_datetime(frame[column]).dt.date
    return frame[(dates >= start) & (dates <= end)]


def first_last_dates(frame: pd.DataFrame, column: str = "trade_date") -> tuple[dt.date, dt.date]:
    dates = pd.to_datetime(frame[column])
    return dates.min().date(), dates.max().date()


def signed_pct(value: float) -> str:
    return f"{value:+.2f} %"
