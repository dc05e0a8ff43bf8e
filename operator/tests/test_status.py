"""`summarize`: the whole status from what a reconcile observed, one pure function."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from marketpulse.archive.quotes import QuoteBook
from marketpulse.operator.freshness import QuotesUnreadableError, freshness_from_quotes
from marketpulse.operator.status import Check, Observed, summarize, transitions

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
ALL_OK = {
    "Topics": Check.ok("TopicsReady"),
    "Bucket": Check.ok("BucketReady"),
    "Ingest": Check.ok("Available"),
    "Archive": Check.ok("Available"),
    "Transform": Check.ok("Scheduled"),
    "Dashboard": Check.ok("Available"),
}


def by_type(status: dict[str, object]) -> dict[str, dict[str, object]]:
    conditions = status["conditions"]
    assert isinstance(conditions, list)
    return {c["type"]: c for c in conditions}


def test_every_concern_ready_makes_the_pipeline_ready() -> None:
    status = summarize(Observed(ALL_OK, NOW, topics=["t"], bucket="b", dashboard_url="http://d/"), 3)
    assert status["phase"] == "Ready"
    assert status["observedGeneration"] == 3
    assert by_type(status)["Ready"]["status"] == "True"
    assert status["bucket"] == "b"
    assert status["dashboardUrl"] == "http://d/"
    assert [c["type"] for c in status["conditions"]] == [*ALL_OK, "Ready"]
    assert all(c["observedGeneration"] == 3 for c in status["conditions"])


def test_deployments_that_never_become_available_leave_the_pipeline_provisioning_honestly() -> None:
    checks = {**ALL_OK, "Ingest": Check.failed("Unavailable", "Deployment x: 0/1 replicas available")}
    status = summarize(Observed(checks, NOW), 1)
    assert status["phase"] == "Provisioning"
    assert by_type(status)["Ingest"]["message"] == "Deployment x: 0/1 replicas available"
    assert by_type(status)["Ready"]["reason"] == "Provisioning"


def test_a_child_the_api_server_refused_degrades_the_pipeline_with_its_reason() -> None:
    checks = {**ALL_OK, "Archive": Check.failed("ApplyFailed", "Deployment y: forbidden")}
    status = summarize(Observed(checks, NOW), 1)
    assert status["phase"] == "Degraded"
    assert by_type(status)["Ready"]["reason"] == "ApplyFailed"


def test_suspended_and_invalid_pipelines_say_so() -> None:
    assert summarize(Observed(ALL_OK, NOW, suspended=True), 1)["phase"] == "Suspended"
    failed = summarize(Observed({}, NOW, invalid="spec.watchlist: Required value"), 1)
    assert failed["phase"] == "Failed"
    assert by_type(failed)["Ready"]["message"] == "spec.watchlist: Required value"


def test_a_condition_keeps_its_transition_time_while_its_status_stays() -> None:
    first = summarize(Observed(ALL_OK, NOW), 1)
    later = NOW + timedelta(minutes=5)
    again = summarize(Observed(ALL_OK, later, previous=first["conditions"]), 1)
    assert again == first
    flipped = {**ALL_OK, "Bucket": Check.failed("S3Unavailable", "down")}
    changed = summarize(Observed(flipped, later, previous=first["conditions"]), 1)
    assert by_type(changed)["Bucket"]["lastTransitionTime"] == "2026-01-02T03:09:05Z"
    assert by_type(changed)["Topics"]["lastTransitionTime"] == "2026-01-02T03:04:05Z"
    assert [c["type"] for c in transitions(first["conditions"], changed["conditions"])] == ["Bucket", "Ready"]


def test_freshness_lists_each_watchlist_symbol_with_its_newest_tick_to_the_second() -> None:
    book = QuoteBook()
    book.update({"symbol": "AAPL", "price": 10.0, "size": 1, "event_time": "2026-11-26T14:30:00.123456Z"})
    book.update({"symbol": "AAPL", "price": 11.0, "size": 1, "event_time": "2026-11-26T14:31:07.900000Z"})
    book.update({"symbol": "TSLA", "price": 5.0, "size": 1, "event_time": "2026-11-26T14:30:00.000000Z"})
    entries = freshness_from_quotes(book.snapshot(), ["AAPL", "MSFT"])
    # TSLA is not on the watchlist any more; MSFT has had no tick yet.
    assert entries == [{"symbol": "AAPL", "lastTickTime": "2026-11-26T14:31:07Z"}, {"symbol": "MSFT"}]
    status = summarize(Observed(ALL_OK, NOW, freshness=entries), 1)
    assert status["freshness"] == entries


def test_a_quotes_object_that_is_not_a_snapshot_is_named_in_the_error() -> None:
    for raw in (b"not json", b'{"prices": {}}', b'{"quotes": []}'):
        with pytest.raises(QuotesUnreadableError, match=r"latest/quotes\.json: not a quotes snapshot"):
            freshness_from_quotes(raw, ["AAPL"])
    # A quote with an unreadable time is reported without one, not as an error.
    assert freshness_from_quotes(b'{"quotes": {"AAPL": {"time": "yesterday"}}}', ["AAPL"]) == [
        {"symbol": "AAPL"}
    ]


def test_a_concern_that_breaks_while_it_was_still_on_its_way_is_a_transition_worth_an_event() -> None:
    provisioning = {**ALL_OK, "Ingest": Check.failed("Unavailable", "0/1 replicas available")}
    first = summarize(Observed(provisioning, NOW), 1)
    crashing = {
        **ALL_OK,
        "Ingest": Check.failed("CrashLoopBackOff", "pod p: container ingest keeps crashing"),
    }
    broken = summarize(Observed(crashing, NOW, previous=first["conditions"]), 1)
    pulling = {**ALL_OK, "Ingest": Check.failed("ImagePullBackOff", "pod p: container ingest: back-off")}
    still_broken = summarize(Observed(pulling, NOW, previous=broken["conditions"]), 1)
    recovering = summarize(Observed(provisioning, NOW, previous=still_broken["conditions"]), 1)

    assert broken["phase"] == "Degraded"
    assert [c["reason"] for c in transitions(first["conditions"], broken["conditions"])] == [
        "CrashLoopBackOff",
        "CrashLoopBackOff",  # Ready: from Provisioning to the broken concern's reason
    ]
    assert [c["type"] for c in transitions(broken["conditions"], still_broken["conditions"])] == []
    assert [c["type"] for c in transitions(still_broken["conditions"], recovering["conditions"])] == [
        "Ingest",
        "Ready",
    ]
