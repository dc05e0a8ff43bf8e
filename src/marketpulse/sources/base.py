"""The interface every tick source implements."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from marketpulse.contract.ticks import Tick


@dataclass(frozen=True, slots=True)
class BadRecord:
    """Source data that is not a tick; ingest counts it and sends it to the dead-letter topic."""

    raw: bytes
    reason: str
    symbol: str | None = None
    # The record's whole size when `raw` is only its start (a line too long to hold).
    size: int | None = None


Record = Tick | BadRecord


class TickSource(Protocol):
    """Yields batches of records; a finite source ends its iterator, a live one never does."""

    def batches(self) -> Iterator[list[Record]]: ...
