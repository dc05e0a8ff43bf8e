"""The live-quotes snapshot the dashboard polls: last price, change since first seen today, time."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

QUOTES_KEY = "latest/quotes.json"


@dataclass
class QuoteBook:
    quotes: dict[str, dict[str, Any]] = field(default_factory=dict)
    changed: bool = False

    def update(self, record: dict[str, Any]) -> None:
        symbol, price, stamp = record["symbol"], record["price"], record["event_time"]
        quote = self.quotes.get(symbol)
        day = stamp[:10]
        if quote is None or quote["day"] != day:
            quote = {"day": day, "open": price}
            self.quotes[symbol] = quote
        elif stamp < quote["time"]:
            return  # an older tick arriving late does not move the last price
        quote.update(
            price=price,
            time=stamp,
            size=record["size"],
            change_pct=round((price - quote["open"]) / quote["open"] * 100, 4),
        )
        self.changed = True

    def snapshot(self) -> bytes:
        self.changed = False
        return orjson.dumps({"quotes": self.quotes}, option=orjson.OPT_SORT_KEYS)
