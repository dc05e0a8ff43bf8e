"""A demo's history: sized to fill exactly the planned trading days, leading into the live market without
a jump, and added once per data directory."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import pytest

from marketpulse.contract.settings.ingest import IngestSettings
from marketpulse.contract.ticks import Tick
from marketpulse.ingest.main import build_source
from marketpulse.sources.synthetic import NEW_YORK, SyntheticSource, profile_for
from marketpulse_dev.local import backfill
from marketpulse_dev.local.backfill import State, decide, plan_backfill, trading_days_before

SYMBOLS = ("AAPL", "MSFT", "SPY")
THURSDAY = dt.date(2026, 12, 3)


def ticks_of(plan: backfill.BackfillPlan, monkeypatch: pytest.MonkeyPatch) -> list[Tick]:
    """The ticks ingest's own source builds from the plan's variables."""
    for name, value in plan.ingest_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MARKETPULSE_WATCHLIST", ",".join(plan.symbols))
    source = build_source(IngestSettings())
    assert isinstance(source, SyntheticSource)
    return [record for batch in source.batches() for record in batch if isinstance(record, Tick)]


def test_trading_days_before_skip_weekends_and_exclude_today() -> None:
    monday = dt.date(2026, 11, 30)
    assert trading_days_before(monday, 3) == [dt.date(2026, 11, d) for d in (25, 26, 27)]
    days = trading_days_before(THURSDAY, 90)
    assert len(days) == 90
    assert days[-1] == dt.date(2026, 12, 2)
    assert all(day.weekday() < 5 for day in days)


def test_a_plan_fills_exactly_its_sessions_with_the_same_trades_per_symbol_and_minute(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plan = plan_backfill(4, SYMBOLS, today=THURSDAY, ticks_per_minute=2)
    assert plan.ticks == 4 * 390 * 2 * 3 - 3
    ticks = ticks_of(plan, monkeypatch)
    assert len(ticks) == plan.ticks
    sessions = Counter(
        (dt.datetime.fromtimestamp(t.event_time_us / 1e6, NEW_YORK).date(), t.symbol) for t in ticks
    )
    assert {day for day, _ in sessions} == set(trading_days_before(THURSDAY, 4))
    assert set(Counter(t.symbol for t in ticks).values()) == {plan.ticks // 3}
    local_times = [dt.datetime.fromtimestamp(t.event_time_us / 1e6, NEW_YORK).time() for t in ticks]
    assert min(local_times) >= dt.time(9, 30)
    assert max(local_times) < dt.time(16, 0)
    minutes = Counter(
        (t.symbol, dt.datetime.fromtimestamp(t.event_time_us / 1e6, dt.UTC).replace(second=0, microsecond=0))
        for t in ticks
    )
    assert len(minutes) == 4 * 390 * 3, "every minute of every session has trades for every symbol"
    assert {t.producer_id for t in ticks} == {plan.producer_id}


def test_the_history_ends_at_the_price_the_live_market_starts_from(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = plan_backfill(3, SYMBOLS, today=THURSDAY, seed=42, ticks_per_minute=1)
    ticks = ticks_of(plan, monkeypatch)
    last = {t.symbol: t.price for t in ticks}
    assert last == {symbol: profile_for(symbol, 42).start_price for symbol in SYMBOLS}
    first = {t.symbol: t.price for t in reversed(ticks)}
    assert first != last, "the walk moves over the history"


def test_running_a_plan_again_produces_the_very_same_ticks(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = plan_backfill(2, SYMBOLS, today=THURSDAY, ticks_per_minute=1)

    def identities() -> list[tuple[str, int, str, int, float]]:
        ticks = ticks_of(plan, monkeypatch)
        return [(t.symbol, t.event_time_us, t.producer_id, t.seq, t.price) for t in ticks]

    assert identities() == identities()


def test_a_lead_in_walk_needs_a_finite_source() -> None:
    with pytest.raises(ValueError, match="lead_in: needs a limit"):
        SyntheticSource(["AAPL"], "p", clock="simulated", lead_in=True)


@pytest.mark.parametrize("days", [0, -1, backfill.MAX_DAYS + 1])
def test_a_plan_outside_the_supported_days_is_refused_naming_the_option(days: int) -> None:
    with pytest.raises(ValueError, match=r"--backfill-days: .* is not between 1 and"):
        plan_backfill(days, SYMBOLS, today=THURSDAY)


def test_history_is_seeded_once_resumed_when_interrupted_and_never_laid_over_existing_data(
    tmp_path: Path,
) -> None:
    plan = plan_backfill(90, SYMBOLS, today=THURSDAY)
    assert backfill.recorded(tmp_path) is None
    first = decide(plan, backfill.recorded(tmp_path), has_data=False)
    assert first.plan == plan
    assert first.reason.startswith("seeding history: 90 trading days")

    backfill.record(tmp_path, plan, State.STARTED)
    later = plan_backfill(90, SYMBOLS, today=THURSDAY + dt.timedelta(days=1))
    resumed = decide(later, backfill.recorded(tmp_path), has_data=True)
    assert resumed.plan == plan, "an interrupted backfill is run again with its own dates"
    assert resumed.reason.startswith("resuming an interrupted backfill")

    backfill.record(tmp_path, plan, State.DONE)
    done = decide(later, backfill.recorded(tmp_path), has_data=True)
    assert done.plan is None
    assert "already seeded: 90 trading days (2026-07-30 to 2026-12-02)" in done.reason

    (tmp_path / backfill.RECORD_FILE).unlink()
    foreign = decide(plan, None, has_data=True)
    assert foreign.plan is None
    assert "--fresh" in foreign.reason


def test_an_unreadable_record_counts_as_no_record(tmp_path: Path) -> None:
    (tmp_path / backfill.RECORD_FILE).write_text('{"state": "maybe", "days": "x"}')
    assert backfill.recorded(tmp_path) is None
