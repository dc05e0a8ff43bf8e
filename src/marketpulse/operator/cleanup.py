"""Delete every StockPipeline an operator serves and wait until the operator has finalized each one.

The chart runs this as a `pre-delete` hook (`marketpulse operator cleanup`): helm removes the
operator, its RBAC and the release's objects after the hooks, and never the CRDs, so a pipeline
still present then would keep the operator's finalizer forever. Deleting the pipelines while the
operator still runs lets it apply each one's deletionPolicy (Retain keeps topics, warehouse volume
and bucket; Delete removes them) and drop the finalizer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from marketpulse.contract.api import API_VERSION, KIND
from marketpulse.operator.kube import KubeApi, KubeError, Ref
from marketpulse.operator.lifecycle import FINALIZER

# RBAC caches may lag a freshly created hook Role by a moment; a refusal that lasts is a real one.
FORBIDDEN_GRACE_SECONDS = 10.0


@dataclass
class CleanupReport:
    """What a cleanup did: pipelines it deleted, and those still present when it gave up."""

    deleted: list[str] = field(default_factory=list)
    finalized: list[str] = field(default_factory=list)
    remaining: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return not self.remaining and self.error is None


def qualified(pipeline: dict[str, Any]) -> str:
    meta = pipeline["metadata"]
    return f"{meta['namespace']}/{meta['name']}"


def policy_of(pipeline: dict[str, Any]) -> str:
    return str((pipeline.get("spec") or {}).get("deletionPolicy", "Retain"))


def describe_stuck(pipeline: dict[str, Any]) -> str:
    """One line per pipeline the operator did not finalize: what holds it and what its policy is."""
    finalizers = ", ".join(pipeline["metadata"].get("finalizers") or []) or "none"
    return f"{qualified(pipeline)} (deletionPolicy {policy_of(pipeline)}; finalizers: {finalizers})"


async def list_pipelines(kube: KubeApi, namespaces: Sequence[str]) -> list[dict[str, Any]]:
    """Pipelines in `namespaces`, or in every namespace when none are given."""
    try:
        if not namespaces:
            return await kube.list_objects(API_VERSION, KIND, "", "")
        found = await asyncio.gather(*(kube.list_objects(API_VERSION, KIND, ns, "") for ns in namespaces))
    except KubeError as exc:
        if exc.status == 404:  # the CRD is not installed: no pipeline can exist
            return []
        raise
    return [p for batch in found for p in batch]


async def delete_pipelines(
    kube: KubeApi,
    namespaces: Sequence[str],
    *,
    timeout: float,
    interval: float = 1.0,
    say: Callable[[str], None] = print,
    clock: Callable[[], float] = time.monotonic,
) -> CleanupReport:
    """Delete every pipeline in `namespaces` (all when empty) and wait until none is left.

    Pipelines created while this runs are deleted too. API errors are retried until `timeout`
    (a refusal by RBAC only for a short grace period): the report then says what was left and why.
    """
    report = CleanupReport()
    started = clock()
    seen: set[str] = set()
    while True:
        try:
            pipelines = await list_pipelines(kube, namespaces)
            for pipeline in pipelines:
                meta = pipeline["metadata"]
                name = qualified(pipeline)
                if name not in seen:
                    seen.add(name)
                    say(f"deleting StockPipeline {name} (deletionPolicy {policy_of(pipeline)})")
                deleting = bool(meta.get("deletionTimestamp"))
                if not deleting and await kube.delete(
                    Ref(API_VERSION, KIND, meta["namespace"], meta["name"])
                ):
                    report.deleted.append(name)
            present = {qualified(p) for p in pipelines}
            for name in sorted(seen - present - set(report.finalized)):
                report.finalized.append(name)
                say(f"StockPipeline {name} finalized")
            report.remaining, report.error = pipelines, None
        except KubeError as exc:
            report.error = f"the API server refused: {exc.message} ({exc.status} {exc.reason})"
            if exc.status in (401, 403) and clock() - started > FORBIDDEN_GRACE_SECONDS:
                return report
        if report.ok or clock() - started >= timeout:
            return report
        await asyncio.sleep(interval)


def timeout_message(report: CleanupReport, timeout: float) -> str:
    stuck = "\n".join(f"  {describe_stuck(p)}" for p in report.remaining)
    return (
        f"timed out after {timeout:g}s waiting for the operator to finalize {len(report.remaining)} "
        f"StockPipeline(s):\n{stuck}\n"
        f"Is the operator running and able to reach S3 and Kafka? Its log says why a pipeline is kept. "
        f"To let a pipeline go without applying its deletionPolicy, remove the finalizer {FINALIZER}: "
        'kubectl -n NAMESPACE patch stockpipeline NAME --type=merge -p \'{"metadata":{"finalizers":null}}\''
    )
