"""Graceful shutdown: SIGTERM/SIGINT set a flag the main loop checks; the loop flushes and commits."""

from __future__ import annotations

import signal
import threading
from types import FrameType


class Shutdown:
    def __init__(self) -> None:
        self._event = threading.Event()

    def install(self) -> Shutdown:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self._event.set()

    def request(self) -> None:
        self._event.set()

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`, waking early on shutdown; True when shutdown was requested."""
        return self._event.wait(seconds)
