"""The one place a pipeline's status is written: only the keys that changed, an Event for each
significant change, and the pipeline's phase for the metrics.

Where the changes go depends on who reconciled: kopf's patch for its own handlers (kopf writes it
when the handler returns), the status subresource directly for a reconcile after a child changed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast

import kopf

from marketpulse.contract.api import KIND
from marketpulse.operator.kube import KubeApi, Ref
from marketpulse.operator.metrics import API_WRITES, PhaseBook
from marketpulse.operator.reconcile import Outcome
from marketpulse.operator.status import healthy, summarize, transitions

Logger = logging.Logger | logging.LoggerAdapter[Any]
Send = Callable[[dict[str, Any]], Awaitable[None]]
STATUS_KEYS = (
    "observedGeneration",
    "phase",
    "conditions",
    "topics",
    "bucket",
    "dashboardUrl",
    "lastFullRefresh",
    "freshness",
)


def status_changes(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """Only the status keys that differ; keys we no longer set are removed (None in a merge patch)."""
    changes = {k: v for k, v in desired.items() if current.get(k) != v}
    changes.update({k: None for k in STATUS_KEYS if k in current and k not in desired})
    return changes


def status_update(
    body: Mapping[str, Any], outcome: Outcome
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The previous status, the status `outcome` calls for, and the keys that changed between them."""
    previous = dict(body.get("status") or {})
    status = summarize(outcome.observed, generation=int(body.get("metadata", {}).get("generation", 0)))
    return previous, status, status_changes(previous, status)


def emit_events(body: Mapping[str, Any], previous: Mapping[str, Any], status: Mapping[str, Any]) -> None:
    """An Event per condition that changed status or broke, and per phase change: the moments people
    look for."""
    for condition in transitions(previous.get("conditions", []), status["conditions"]):
        if condition["type"] == "Ready":
            continue
        kopf.event(
            cast(kopf.Body, body),
            type="Normal" if healthy(condition) else "Warning",
            reason=condition["reason"],
            message=f"{condition['type']}: {condition['message']}"[:1024],
        )
    if previous.get("phase") != status["phase"]:
        kopf.event(
            cast(kopf.Body, body),
            type="Warning" if status["phase"] in ("Degraded", "Failed") else "Normal",
            reason=status["phase"],
            message=f"phase {previous.get('phase', 'Pending')} -> {status['phase']}",
        )


def into_patch(patch: kopf.Patch) -> Send:
    """Changes for kopf to write with the handler's own patch."""

    async def send(changes: dict[str, Any]) -> None:
        API_WRITES.labels(KIND, "status").inc()  # kopf writes it, so count it here
        for key, value in changes.items():
            patch.status[key] = value

    return send


def to_subresource(kube: KubeApi, ref: Ref) -> Send:
    """Changes written to the status subresource now (counted by `KubeApi.patch_status`)."""

    async def send(changes: dict[str, Any]) -> None:
        await kube.patch_status(ref, changes)

    return send


async def write_status(
    body: Mapping[str, Any],
    outcome: Outcome,
    send: Send,
    phases: PhaseBook,
    logger: Logger,
    *,
    why: str = "",
) -> None:
    """Send only the status keys that changed, with an Event for each significant change. `why`
    starts the log line (which pipeline, and what made it reconcile), where the logger does not."""
    previous, status, changes = status_update(body, outcome)
    if changes:
        await send(changes)
        logger.info("%sstatus changed: %s", why, ", ".join(sorted(changes)))
        emit_events(body, previous, status)
    phases.set(body["metadata"]["uid"], status["phase"])
