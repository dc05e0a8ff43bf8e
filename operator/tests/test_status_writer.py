"""The one status writer: only the keys that changed, nothing at all for an unchanged world."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from marketpulse.operator.metrics import PhaseBook
from marketpulse.operator.reconcile import Outcome
from marketpulse.operator.status import Check, Observed, summarize
from marketpulse.operator.status_writer import status_changes, write_status

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
OBSERVED = Observed({"Topics": Check.ok("TopicsReady")}, NOW, topics=["t"], bucket="b")


def test_only_changed_keys_are_sent_and_keys_no_longer_set_are_removed() -> None:
    current = {"phase": "Ready", "topics": ["t"], "dashboardUrl": "http://old/", "kopf": {"x": 1}}
    desired = {"phase": "Degraded", "topics": ["t"]}
    # kopf's own key is not the writer's business: it is neither kept nor removed.
    assert status_changes(current, desired) == {"phase": "Degraded", "dashboardUrl": None}


def test_an_unchanged_world_sends_nothing_yet_still_books_the_phase() -> None:
    body: dict[str, Any] = {
        "metadata": {"uid": "u1", "generation": 4},
        "status": summarize(OBSERVED, generation=4),
    }
    sent: list[dict[str, Any]] = []

    async def send(changes: dict[str, Any]) -> None:
        sent.append(changes)

    phases = PhaseBook()
    asyncio.run(write_status(body, Outcome(OBSERVED), send, phases, _Quiet()))
    assert sent == []
    assert phases._phases == {"u1": body["status"]["phase"]}


class _Quiet:
    def info(self, *_: Any) -> None:
        raise AssertionError("nothing changed, so nothing is logged")
