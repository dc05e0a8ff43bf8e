"""What gold holds, as metrics: how fresh it is per symbol and how many ticks it has.

Read from `gold.latest_ticks` (the newest tick per symbol) after each successful cycle, so the
PrometheusRule can alert on tick → gold age (now - when ingest sent the newest tick in gold) and on
a pipeline whose ingest is acknowledging ticks while gold stops growing. Only watchlist symbols get
a series: the label's values stay bounded by the StockPipeline's watchlist.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from prometheus_client import Gauge

GOLD_NEWEST_TICK = Gauge(
    "marketpulse_transform_gold_last_ingest_timestamp_seconds",
    "When ingest sent the newest tick of each watchlist symbol that is in gold (gold.latest_ticks).",
    ["symbol"],
)
GOLD_TICKS = Gauge("marketpulse_transform_gold_ticks", "Ticks of the watchlist's symbols in gold.")

LATEST_TICKS = "latest_ticks"
# One row per symbol of a bounded watchlist; the warehouse has aggregated already.
LATEST_TICKS_SQL = "select symbol, {epoch} as last_ingest_epoch, tick_count from {relation}"


@dataclass(frozen=True)
class GoldSymbol:
    symbol: str
    last_ingest_epoch: float
    ticks: int


def record_gold(rows: Iterable[GoldSymbol], watchlist: Sequence[str]) -> None:
    """Set the gauges from gold's newest ticks; symbols outside the watchlist are left out."""
    wanted = set(watchlist)
    total = 0
    for row in rows:
        if row.symbol not in wanted:
            continue
        GOLD_NEWEST_TICK.labels(row.symbol).set(row.last_ingest_epoch)
        total += row.ticks
    GOLD_TICKS.set(total)
