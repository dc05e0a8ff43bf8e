"""Blocking calls after the operator's pools are shut end the orphaned handler, not the process."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

from marketpulse.operator.threads import in_pool


def test_a_call_runs_on_the_pool() -> None:
    pool = ThreadPoolExecutor(1, thread_name_prefix="t")
    try:
        assert asyncio.run(in_pool(pool, lambda: 6 * 7)) == 42
    finally:
        pool.shutdown()


def test_a_call_after_shutdown_cancels_the_caller_instead_of_raising() -> None:
    pool = ThreadPoolExecutor(1)
    pool.shutdown()

    async def handler() -> int:
        return await in_pool(pool, lambda: 1)

    async def main() -> None:
        task = asyncio.get_running_loop().create_task(handler())
        with pytest.raises(asyncio.CancelledError):
            await task
        assert task.cancelled()

    asyncio.run(main())


def test_errors_from_the_call_itself_still_reach_the_caller() -> None:
    pool = ThreadPoolExecutor(1)

    def broken() -> None:
        raise RuntimeError("the call failed")

    try:
        with pytest.raises(RuntimeError, match="the call failed"):
            asyncio.run(in_pool(pool, broken))
    finally:
        pool.shutdown()
