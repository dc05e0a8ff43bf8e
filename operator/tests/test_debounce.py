"""`Debouncer`: a burst of requests per key becomes one call; none made during a call is lost."""

from __future__ import annotations

import asyncio

import pytest

from marketpulse.operator.debounce import Debouncer


def test_a_burst_per_key_becomes_one_call_per_key() -> None:
    calls: list[str] = []

    async def action(key: str) -> None:
        calls.append(key)

    async def scenario() -> None:
        debouncer = Debouncer(0.05, action)
        for _ in range(10):
            debouncer.request("a")
            debouncer.request("b")
        await asyncio.sleep(0.2)
        await debouncer.close()

    asyncio.run(scenario())
    assert sorted(calls) == ["a", "b"]


def test_a_request_while_the_action_runs_gets_one_more_call() -> None:
    calls: list[float] = []
    running = asyncio.Event()

    async def action(key: str) -> None:
        calls.append(asyncio.get_running_loop().time())
        running.set()
        await asyncio.sleep(0.1)

    async def scenario() -> None:
        debouncer = Debouncer(0.01, action)
        debouncer.request("a")
        await running.wait()
        debouncer.request("a")  # the world changed after the action read it
        debouncer.request("a")
        await asyncio.sleep(0.3)
        await debouncer.close()

    asyncio.run(scenario())
    assert len(calls) == 2


def test_a_failing_action_is_logged_and_the_next_request_still_runs(caplog: pytest.LogCaptureFixture) -> None:
    outcomes: list[str] = []

    async def action(key: str) -> None:
        outcomes.append(key)
        if len(outcomes) == 1:
            raise RuntimeError("API server unreachable")

    async def scenario() -> None:
        debouncer = Debouncer(0.01, action)
        debouncer.request("a")
        await asyncio.sleep(0.1)
        debouncer.request("a")
        await asyncio.sleep(0.1)
        await debouncer.close()

    asyncio.run(scenario())
    assert outcomes == ["a", "a"]
    assert "API server unreachable" in caplog.text
