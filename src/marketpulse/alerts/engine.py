"""Alert rules over a tick stream, with bounded state and de-duplicated firings.

priceMove: the price moved more than `percent` within `windowMinutes` of event time, up from the
window's low or down from its high (monotonic deques keep the window's min and max in O(1)).
staleFeed: a watched symbol had no tick for `seconds` of wall-clock time.
A rule fires once per symbol and re-arms only after its condition has cleared.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

from marketpulse.contract.api import AlertRule


@dataclass(frozen=True)
class Alert:
    rule: str
    kind: Literal["priceMove", "staleFeed"]
    symbol: str
    message: str
    value: float
    threshold: float
    at_us: int

    def to_wire(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "kind": self.kind,
            "symbol": self.symbol,
            "message": self.message,
            "value": self.value,
            "threshold": self.threshold,
            "at_us": self.at_us,
        }


@dataclass
class _Window:
    """Prices of one symbol within the window, with running min and max."""

    span_us: int
    lows: deque[tuple[int, float]] = field(default_factory=deque)
    highs: deque[tuple[int, float]] = field(default_factory=deque)

    def push(self, at_us: int, price: float) -> tuple[float, float]:
        while self.lows and self.lows[-1][1] >= price:
            self.lows.pop()
        self.lows.append((at_us, price))
        while self.highs and self.highs[-1][1] <= price:
            self.highs.pop()
        self.highs.append((at_us, price))
        horizon = at_us - self.span_us
        while self.lows[0][0] < horizon:
            self.lows.popleft()
        while self.highs[0][0] < horizon:
            self.highs.popleft()
        return self.lows[0][1], self.highs[0][1]


class AlertEngine:
    def __init__(self, rules: list[AlertRule], watchlist: list[str], started_us: int) -> None:
        self.moves = [r for r in rules if r.price_move is not None]
        self.stales = [r for r in rules if r.stale_feed is not None]
        self.windows: dict[tuple[str, str], _Window] = {}
        self.firing: set[tuple[str, str]] = set()
        # Symbols never seen count from the start, so a feed that never starts is stale too.
        self.last_seen_us: dict[str, int] = dict.fromkeys(watchlist, started_us)

    def observe(self, symbol: str, price: float, event_us: int, seen_us: int) -> list[Alert]:
        self.last_seen_us[symbol] = seen_us
        alerts: list[Alert] = []
        for rule in self.stales:
            self.firing.discard((rule.name, symbol))  # a tick re-arms the stale-feed rule
        for rule in self.moves:
            assert rule.price_move is not None
            key = (rule.name, symbol)
            window = self.windows.get(key)
            if window is None:
                window = self.windows[key] = _Window(rule.price_move.window_minutes * 60_000_000)
            low, high = window.push(event_us, price)
            up = (price - low) / low * 100
            down = (high - price) / high * 100
            move, direction = (up, "up") if up >= down else (down, "down")
            if move > rule.price_move.percent:
                if key not in self.firing:
                    self.firing.add(key)
                    alerts.append(
                        Alert(
                            rule.name,
                            "priceMove",
                            symbol,
                            f"{symbol} moved {direction} {move:.2f}% within "
                            f"{rule.price_move.window_minutes} min (threshold "
                            f"{rule.price_move.percent}%), now {price}",
                            round(move, 4),
                            rule.price_move.percent,
                            event_us,
                        )
                    )
            else:
                self.firing.discard(key)
        return alerts

    def check_stale(self, now_us: int) -> list[Alert]:
        alerts: list[Alert] = []
        for rule in self.stales:
            assert rule.stale_feed is not None
            limit_us = rule.stale_feed.seconds * 1_000_000
            for symbol, seen in self.last_seen_us.items():
                key = (rule.name, symbol)
                silent = now_us - seen
                if silent > limit_us and key not in self.firing:
                    self.firing.add(key)
                    alerts.append(
                        Alert(
                            rule.name,
                            "staleFeed",
                            symbol,
                            f"{symbol} has had no tick for {silent / 1e6:.0f}s "
                            f"(threshold {rule.stale_feed.seconds}s)",
                            round(silent / 1e6, 3),
                            float(rule.stale_feed.seconds),
                            now_us,
                        )
                    )
        return alerts
