"""One dashboard host, one pipeline: who holds `spec.dashboard.ingress.host` when several ask for it.

A host belongs to the StockPipeline that asked for it first (the earliest `creationTimestamp`; ties
go to the first by namespace, then name), in any namespace. Every other pipeline that asks for it
gets no Ingress and a Dashboard condition naming the holder. The decision is a pure function of the
pipelines' own objects, so every reconcile of every contender comes to the same answer.

The operator lists StockPipelines (it may list them cluster-wide) rather than Ingresses: a loser
has no Ingress to list, and two pipelines created at once must agree without either having one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from marketpulse.contract.api import API_VERSION, KIND
from marketpulse.operator.kube import KubeApi, KubeError

log = logging.getLogger(__name__)

HOST_FIELD = "spec.dashboard.ingress.host"
# Concurrent reconciles share one listing for this long; a listing that does not hold the pipeline
# asking is never used (it may predate a rival created just before it).
LISTING_TTL_SECONDS = 2.0


@dataclass(frozen=True)
class HostClaim:
    """A pipeline whose spec asks for an Ingress on `host`."""

    host: str
    namespace: str
    name: str
    created: str = ""  # RFC 3339 as the API server writes it; "" sorts first (a test's bare object)

    @property
    def seniority(self) -> tuple[datetime, str, str]:
        created = datetime.fromisoformat(self.created) if self.created else datetime.min
        return created.replace(tzinfo=None), self.namespace, self.name

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def claim_of(body: Mapping[str, Any]) -> HostClaim | None:
    """The host a StockPipeline object asks for, or None. Read from the raw object with the API's
    defaults (dashboard enabled, Ingress off), so that an object the operator cannot parse still counts."""
    spec = body.get("spec") or {}
    dashboard = spec.get("dashboard") or {}
    ingress = dashboard.get("ingress") or {}
    host = ingress.get("host")
    if dashboard.get("enabled", True) is not True or ingress.get("enabled") is not True:
        return None
    if not isinstance(host, str) or not host:
        return None
    meta = body.get("metadata") or {}
    return HostClaim(
        host=host,
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        created=str(meta.get("creationTimestamp") or ""),
    )


def same_host(a: str, b: str) -> bool:
    """One DNS name however it is spelled: names are case-insensitive and `example.com.` is the fully
    qualified `example.com`. Admission refuses both spellings; an object stored before that rule, or
    read raw where the operator cannot parse it, still competes for the name an Ingress would route."""
    return a.rstrip(".").lower() == b.rstrip(".").lower()


def holder_of(claim: HostClaim, claims: Iterable[HostClaim]) -> HostClaim | None:
    """The pipeline that holds `claim.host` if it is not `claim`'s own, else None."""
    me = (claim.namespace, claim.name)
    rivals = [c for c in claims if same_host(c.host, claim.host) and (c.namespace, c.name) != me]
    first = min([claim, *rivals], key=lambda c: c.seniority)
    return None if first is claim else first


def conflict_message(claim: HostClaim, holder: HostClaim) -> str:
    return (
        f"{HOST_FIELD} {claim.host} is held by StockPipeline {holder}, which asked for it first: "
        "this pipeline's Ingress is not created; choose another host"
    )


@dataclass
class _Listing:
    claims: list[HostClaim]
    uids: set[str]
    at: float


@dataclass
class HostClaims:
    """The host claims of every StockPipeline, listed for all reconciles together.

    Cluster-wide where the operator may list pipelines in every namespace; an operator confined to
    its namespaces by RBAC falls back to the namespace of the pipeline asking."""

    kube: KubeApi
    ttl: float = LISTING_TTL_SECONDS
    page: int = 200
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _listings: dict[str, _Listing] = field(default_factory=dict)
    _clusterwide: bool = True

    async def holder(self, claim: HostClaim, uid: str) -> HostClaim | None:
        return holder_of(claim, await self.claims(claim.namespace, uid))

    async def claims(self, namespace: str, uid: str) -> list[HostClaim]:
        async with self._lock:
            scope = "" if self._clusterwide else namespace
            listing = self._listings.get(scope)
            if listing is None or time.monotonic() - listing.at > self.ttl or uid not in listing.uids:
                try:
                    listing = await self._list(scope)
                except KubeError as exc:
                    if exc.status != 403 or scope != "":
                        raise
                    log.warning(
                        "may not list StockPipelines cluster-wide (%s): dashboard hosts are checked "
                        "against the pipelines of the same namespace only",
                        exc.message,
                    )
                    self._clusterwide, scope = False, namespace
                    listing = await self._list(scope)
                self._listings[scope] = listing
            return listing.claims

    async def _list(self, namespace: str) -> _Listing:
        claims, uids = [], set()
        async for item in self.kube.iter_objects(API_VERSION, KIND, namespace, page=self.page):
            uids.add(str((item.get("metadata") or {}).get("uid", "")))
            claim = claim_of(item)
            if claim is not None:
                claims.append(claim)
        return _Listing(claims, uids, time.monotonic())
