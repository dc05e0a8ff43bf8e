"""`hosts`: which StockPipeline holds a dashboard host when several ask for it."""

from __future__ import annotations

from typing import Any

from marketpulse.operator.hosts import HostClaim, claim_of, conflict_message, holder_of


def body(
    namespace: str,
    name: str,
    created: str,
    host: str | None = "markets.example.com",
    *,
    enabled: bool = True,
    dashboard: bool = True,
) -> dict[str, Any]:
    ingress: dict[str, Any] = {"enabled": enabled} | ({"host": host} if host else {})
    return {
        "metadata": {"namespace": namespace, "name": name, "creationTimestamp": created},
        "spec": {"watchlist": ["AAPL"], "dashboard": {"enabled": dashboard, "ingress": ingress}},
    }


def claim(namespace: str, name: str, created: str, host: str = "markets.example.com") -> HostClaim:
    found = claim_of(body(namespace, name, created, host))
    assert found is not None
    return found


def test_only_a_running_dashboard_with_an_enabled_ingress_and_a_host_claims_it() -> None:
    assert claim_of(body("a", "p", "2026-01-01T00:00:00Z")) == HostClaim(
        "markets.example.com", "a", "p", "2026-01-01T00:00:00Z"
    )
    assert claim_of(body("a", "p", "2026-01-01T00:00:00Z", enabled=False)) is None
    assert claim_of(body("a", "p", "2026-01-01T00:00:00Z", dashboard=False)) is None
    assert claim_of(body("a", "p", "2026-01-01T00:00:00Z", host=None)) is None
    assert claim_of({"metadata": {"name": "p"}, "spec": {"watchlist": ["AAPL"]}}) is None


def test_the_pipeline_created_first_holds_the_host_in_any_namespace() -> None:
    first = claim("team-a", "zeta", "2026-01-01T00:00:00Z")
    second = claim("team-b", "alpha", "2026-01-01T00:00:05Z")

    assert holder_of(second, [first, second]) == first
    assert holder_of(first, [first, second]) is None


def test_pipelines_created_in_the_same_second_are_ordered_by_namespace_then_name() -> None:
    same = "2026-01-01T00:00:00Z"
    a_z, b_a, b_b = claim("a", "z", same), claim("b", "a", same), claim("b", "b", same)

    assert holder_of(b_a, [b_b, a_z, b_a]) == a_z
    assert holder_of(b_b, [b_b, b_a]) == b_a
    assert holder_of(a_z, [b_b, b_a, a_z]) is None


def test_other_hosts_and_the_pipeline_itself_are_no_rivals() -> None:
    me = claim("a", "p", "2026-01-02T00:00:00Z")
    elsewhere = claim("b", "q", "2026-01-01T00:00:00Z", host="other.example.com")
    my_older_self = HostClaim(me.host, "a", "p", "2025-01-01T00:00:00Z")  # a stale copy of the same object

    assert holder_of(me, [elsewhere, my_older_self]) is None


def test_every_contender_comes_to_the_same_holder() -> None:
    claims = [claim(ns, n, t) for ns, n, t in [("c", "x", "03"), ("a", "y", "01"), ("b", "z", "02")]]
    claims = [HostClaim(c.host, c.namespace, c.name, f"2026-01-01T00:00:{c.created}Z") for c in claims]
    holders = {str(holder_of(c, claims) or c) for c in claims}

    assert holders == {"a/y"}


def test_the_refusal_names_the_field_the_host_and_the_holder() -> None:
    mine, theirs = claim("b", "second", "2026-01-02T00:00:00Z"), claim("a", "first", "2026-01-01T00:00:00Z")

    message = conflict_message(mine, theirs)

    assert "spec.dashboard.ingress.host markets.example.com" in message
    assert "StockPipeline a/first" in message


def test_a_host_spelled_with_capitals_or_a_trailing_dot_is_the_same_host_refused_naming_its_holder() -> None:
    # Admission refuses these spellings; a pipeline stored before that rule still holds the DNS name.
    theirs = claim("team-a", "first", "2026-01-01T00:00:00Z", host="Markets.Example.com.")
    mine = claim("team-b", "second", "2026-01-02T00:00:00Z", host="markets.example.com")

    holder = holder_of(mine, [theirs, mine])

    assert holder == theirs
    message = conflict_message(mine, theirs)
    assert "spec.dashboard.ingress.host markets.example.com" in message
    assert "StockPipeline team-a/first" in message
    assert holder_of(theirs, [theirs, mine]) is None


def test_hosts_that_only_share_a_suffix_or_a_prefix_are_different_hosts() -> None:
    mine = claim("a", "p", "2026-01-02T00:00:00Z", host="markets.example.com")
    others = [
        claim("b", "q", "2026-01-01T00:00:00Z", host="eu.markets.example.com"),
        claim("c", "r", "2026-01-01T00:00:00Z", host="markets.example.co"),
    ]

    assert holder_of(mine, [*others, mine]) is None
