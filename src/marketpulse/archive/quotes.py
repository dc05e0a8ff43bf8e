"""The live-quotes snapshot the dashboard polls: last price, change since first seen today, time."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

# (symbol, price, size, event_time) as the bytes of a canonical wire record (CANONICAL_TICK's groups).
WireQuote = tuple[bytes, bytes, bytes, bytes]


# As many symbols as a StockPipeline's watchlist may hold (the API's MAX_SYMBOLS).
MAX_QUOTES = 200


@dataclass
class QuoteBook:
    """Last quote per symbol of `watchlist` only: a producer writing other symbols to the topic
    cannot grow the book (or the snapshot the operator and dashboard read). With no watchlist, at
    most `limit` symbols, the first seen."""

    watchlist: frozenset[str] = frozenset()
    limit: int = MAX_QUOTES
    quotes: dict[str, dict[str, Any]] = field(default_factory=dict)
    changed: bool = False

    def update(self, record: dict[str, Any]) -> None:
        self.apply(record["symbol"], record["price"], record["event_time"], record["size"])

    def update_rows(self, rows: Iterable[WireQuote]) -> None:
        """The same book as `apply` row by row, from the raw fields of canonical wire records.

        Per symbol, a run of ticks of one day with non-decreasing times ends where its last tick puts
        it, except that its first tick may open the day: so only the first and last of each run are
        decoded and applied. A tick that breaks the run (older, or another day) starts a new one.
        """
        runs: dict[bytes, list[WireQuote]] = {}
        for row in rows:
            run = runs.get(row[0])
            if run is None:
                runs[row[0]] = [row, row]
                continue
            stamp, last_stamp = row[3], run[1][3]
            if stamp >= last_stamp and stamp[:10] == last_stamp[:10]:
                run[1] = row
            else:
                self._apply_run(run)
                runs[row[0]] = [row, row]
        for run in runs.values():
            self._apply_run(run)

    def _apply_run(self, run: list[WireQuote]) -> None:
        first, last = run
        for symbol, price, size, stamp in (first,) if first is last else (first, last):
            self.apply(symbol.decode(), float(price), stamp.decode(), int(size))

    def apply(self, symbol: str, price: float, stamp: str, size: int) -> None:
        quote = self.quotes.get(symbol)
        if quote is None and (
            symbol not in self.watchlist if self.watchlist else len(self.quotes) >= self.limit
        ):
            return
        day = stamp[:10]
        if quote is None or quote["day"] != day:
            quote = {"day": day, "open": price}
            self.quotes[symbol] = quote
        elif stamp < quote["time"]:
            return  # an older tick arriving late does not move the last price
        quote.update(
            price=price,
            time=stamp,
            size=size,
            change_pct=round((price - quote["open"]) / quote["open"] * 100, 4),
        )
        self.changed = True

    def snapshot(self) -> bytes:
        self.changed = False
        return orjson.dumps({"quotes": self.quotes}, option=orjson.OPT_SORT_KEYS)
