"""Blocking calls (the Kubernetes client, SDKs) run on thread pools the operator shuts at exit."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TypeVar

T = TypeVar("T")


async def in_pool(pool: Executor, fn: Callable[[], T]) -> T:
    """`fn()` on `pool`; once the pool is shut (the operator is stopping), the caller is cancelled.

    kopf leaves a handler that outlives shutdown orphaned; without this its next call would raise
    "cannot schedule new futures after shutdown" and kopf would re-raise that as the operator's exit.
    """
    try:
        future = asyncio.get_running_loop().run_in_executor(pool, fn)
    except RuntimeError:  # submit() after shutdown(): nothing is left to do the call for
        raise asyncio.CancelledError from None
    return await future
