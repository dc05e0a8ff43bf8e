"""History for a local demo: N trading days of the synthetic market, fed through the real pipeline.

A backfill is the `--once` batch path (ingest with a simulated trading-hours clock as fast as possible,
archive, transform once) sized to end at the last session before today, with a walk that ends where
today's live ticks start (`MARKETPULSE_SYNTHETIC_LEAD_IN`). Its producer id and draws are fixed by the
plan, so running a plan again produces the very same ticks, which silver deduplicates by identity: an
interrupted backfill is safely run again. A record in the data directory says which plan ran and
whether it finished, so a second `marketpulse run` does not add history twice.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from marketpulse.contract.settings.environment import variable
from marketpulse.contract.settings.ingest import IngestSettings

NEW_YORK = ZoneInfo("America/New_York")
SESSION_MINUTES = 390  # 09:30-16:00, the synthetic clock's regular hours
# Trades per symbol per minute of history: every 1-minute bar of the past has a few trades (a real
# open, high, low and close), and 90 days of five symbols stay well under a million ticks (seconds of
# ingest and a short first transform on two cores).
TICKS_PER_MINUTE = 4
RECORD_FILE = "backfill.json"
MAX_DAYS = 2000  # about eight years of sessions: beyond that a demo's backfill stops being quick


def trading_days_before(today: dt.date, count: int) -> list[dt.date]:
    """The `count` weekdays before `today`, oldest first (exchange holidays are not modelled)."""
    days: list[dt.date] = []
    day = today - dt.timedelta(days=1)
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day -= dt.timedelta(days=1)
    return days[::-1]


@dataclass(frozen=True)
class BackfillPlan:
    """What one backfill produces: `ticks` ticks over the sessions `first_day`..`last_day`."""

    days: int
    first_day: dt.date
    last_day: dt.date
    symbols: tuple[str, ...]
    seed: int
    ticks_per_minute: int
    ticks: int

    @property
    def ticks_per_second(self) -> float:
        """Per symbol, in event time: the synthetic source's simulated rate."""
        return self.ticks_per_minute / 60

    @property
    def producer_id(self) -> str:
        # Fixed by the plan: a plan run again sends ticks with the same identity, deduplicated in silver.
        return f"backfill-{self.first_day:%Y%m%d}-{self.last_day:%Y%m%d}-seed{self.seed}"

    def start(self) -> dt.datetime:
        """The first session's open, New York time, as an instant."""
        return dt.datetime.combine(self.first_day, dt.time(9, 30), NEW_YORK).astimezone(dt.UTC)

    def ingest_env(self) -> dict[str, str]:
        """The variables that turn the pipeline's ingest into this backfill."""

        def name(field: str) -> str:
            return variable(IngestSettings, field)

        return {
            name("tick_limit"): str(self.ticks),
            name("synthetic_clock"): "simulated",
            name("synthetic_rate"): "0",  # as fast as possible
            name("synthetic_ticks_per_second"): f"{self.ticks_per_second:.12g}",
            name("synthetic_start"): self.start().isoformat(),
            name("synthetic_lead_in"): "true",
            name("producer_id"): self.producer_id,
        }

    def describe(self) -> str:
        return (
            f"{self.days} trading days ({self.first_day} to {self.last_day}), {self.ticks:,} ticks "
            f"for {len(self.symbols)} symbols"
        )


def plan_backfill(
    days: int,
    symbols: Sequence[str],
    *,
    today: dt.date,
    seed: int = 42,
    ticks_per_minute: int = TICKS_PER_MINUTE,
) -> BackfillPlan:
    """The `days` sessions before `today`, `ticks_per_minute` trades per symbol and minute.

    The simulated clock places a session's trades one step apart from its open (the first session's
    first trade one step after it); a session holds SESSION_MINUTES * rate * symbols steps. Stopping
    one round of symbols short of the last session's end keeps every trade inside the planned days and
    gives each symbol the same number of trades.
    """
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"--backfill-days: {days} is not between 1 and {MAX_DAYS}")
    if not symbols:
        raise ValueError("watchlist: a backfill needs at least one symbol")
    sessions = trading_days_before(today, days)
    per_session = SESSION_MINUTES * ticks_per_minute * len(symbols)
    return BackfillPlan(
        days=days,
        first_day=sessions[0],
        last_day=sessions[-1],
        symbols=tuple(symbols),
        seed=seed,
        ticks_per_minute=ticks_per_minute,
        ticks=days * per_session - len(symbols),
    )


class State(enum.StrEnum):
    STARTED = "started"
    DONE = "done"


def _plan_to_json(plan: BackfillPlan, state: State) -> bytes:
    document: dict[str, Any] = asdict(plan) | {"state": state.value}
    return orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)


def _plan_from_json(raw: bytes) -> tuple[BackfillPlan, State] | None:
    try:
        document = orjson.loads(raw)
        state = State(document.pop("state"))
        document["first_day"] = dt.date.fromisoformat(document["first_day"])
        document["last_day"] = dt.date.fromisoformat(document["last_day"])
        document["symbols"] = tuple(document["symbols"])
        return BackfillPlan(**document), state
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        return None


def record(data_dir: Path, plan: BackfillPlan, state: State) -> None:
    (data_dir / RECORD_FILE).write_bytes(_plan_to_json(plan, state))


def recorded(data_dir: Path) -> tuple[BackfillPlan, State] | None:
    """The plan recorded in the data directory and how far it got; None without a readable record."""
    path = data_dir / RECORD_FILE
    return _plan_from_json(path.read_bytes()) if path.is_file() else None


@dataclass(frozen=True)
class Decision:
    plan: BackfillPlan | None  # None: no backfill this time
    reason: str


def decide(wanted: BackfillPlan, previous: tuple[BackfillPlan, State] | None, has_data: bool) -> Decision:
    """Whether to run a backfill now, and which plan: history is added once per data directory.

    - a finished backfill is not repeated (a later day does not add more history either);
    - an interrupted one is run again with its own plan: the same ticks, deduplicated by silver;
    - a data directory that already holds a pipeline's data but no backfill record gets none, since
      history would overlap the days it already has.
    """
    if previous is not None:
        plan, state = previous
        if state is State.DONE:
            return Decision(None, f"history already seeded: {plan.describe()}")
        return Decision(plan, f"resuming an interrupted backfill: {plan.describe()}")
    if has_data:
        return Decision(
            None,
            "this data directory already holds data and no seeded history; --fresh starts over with history",
        )
    return Decision(wanted, f"seeding history: {wanted.describe()}")
