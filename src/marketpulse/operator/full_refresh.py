"""A full refresh on request: the annotation `marketpulse.io/full-refresh: "true"`, acted on once.

As with Strimzi's `strimzi.io/manual-rolling-update`, the operator annotates the pipeline and the
next reconcile acts on it: it gives the transform a new token (the time of the request, kept in
`status.lastFullRefresh` and in the transform's environment from then on), removes the annotation
and says so in an Event. The transform's next run rebuilds silver and gold from bronze once for that
token (`marketpulse.transform.refresh`), however often its pod restarts. Any other value is left in
place and named in the FullRefresh condition, which does not count towards Ready.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from marketpulse.operator.status import Check

ANNOTATION = "marketpulse.io/full-refresh"
CONDITION = "FullRefresh"
REQUESTED = "FullRefreshRequested"


@dataclass(frozen=True)
class FullRefresh:
    """What a reconcile does about full refreshes."""

    # The token the workloads are rendered with: the request taken now, else the last one.
    token: str | None
    # A new request was taken: the annotation goes, and an Event says so.
    requested: bool
    check: Check | None


def _requested(token: str) -> Check:
    return Check.ok(
        "Requested",
        f"full refresh requested at {token}: the transform's next run rebuilds silver and gold from "
        "bronze (dbt build --full-refresh), once",
    )


def full_refresh(body: Mapping[str, Any], now: datetime, *, act: bool) -> FullRefresh:
    """The full refresh of `body`: `act` takes a request (only a reconcile that renders the
    workloads and writes the pipeline's metadata does); otherwise the last one stands."""
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    last = (body.get("status") or {}).get("lastFullRefresh")
    last = str(last) if last else None
    value = annotations.get(ANNOTATION)
    if value is not None and value != "true":
        check = Check.failed(
            "InvalidAnnotation",
            f'annotation {ANNOTATION}: {str(value)[:64]!r} is not a value it takes; set it to "true" to '
            f"rebuild silver and gold from bronze once (kubectl annotate stockpipeline NAME "
            f"{ANNOTATION}=true --overwrite), or remove it",
        )
        return FullRefresh(last, False, check)
    if value == "true" and act:
        token = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return FullRefresh(token, True, _requested(token))
    return FullRefresh(last, False, _requested(last) if last else None)
