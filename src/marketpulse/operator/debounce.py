"""Coalesce bursts of requests per key into one call, a short delay after the first.

A new pipeline's children change a dozen times in its first seconds (created, then their status
filled in by controllers); one status refresh after the burst says the same as one per change.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
log = logging.getLogger(__name__)


class Debouncer(Generic[K]):
    def __init__(self, delay: float, action: Callable[[K], Awaitable[None]]) -> None:
        self.delay = delay
        self.action = action
        self._pending: set[K] = set()
        self._tasks: set[asyncio.Task[None]] = set()  # referenced until done, so none is collected early

    def request(self, key: K) -> None:
        """Call the action for `key` after the delay, unless a call is already waiting.

        A request that arrives while the action runs schedules one more call, so no change that
        happened after the action read the world is missed.
        """
        if key in self._pending:
            return
        self._pending.add(key)
        task = asyncio.get_running_loop().create_task(self._fire(key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fire(self, key: K) -> None:
        await asyncio.sleep(self.delay)
        self._pending.discard(key)
        try:
            await self.action(key)
        except Exception:  # the next request, or the periodic reconcile, tries again
            log.exception("debounced action for %s failed", key)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
