"""Hold a target rate without drifting: sleep until the schedule of the records sent so far."""

from __future__ import annotations

import time
from collections.abc import Callable


class Pacer:
    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        """`rate` records per second; 0 or less means as fast as possible."""
        self.rate = rate
        self.clock = clock
        self.started = clock()
        self.sent = 0

    def delay_for(self, count: int) -> float:
        """Seconds to wait before sending `count` more records to stay on schedule."""
        if self.rate <= 0:
            return 0.0
        due = self.started + self.sent / self.rate
        self.sent += count
        return max(0.0, due - self.clock())
