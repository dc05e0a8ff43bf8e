"""Which pipeline a changed child or pod concerns, and whether the change is news.

Pure: the watch handlers ask these, then request a refresh of the pipeline they name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marketpulse.contract.api import GROUP, KIND
from marketpulse.contract.workloads.names import LABEL_INSTANCE
from marketpulse.operator.podhealth import pod_problem
from marketpulse.operator.runtime import Pipeline

# Pods remembered as being in trouble (uid -> hash of the diagnosis), at most this many.
MAX_TRACKED_PODS = 50_000


def handled_and_current(body: Mapping[str, Any] | None) -> bool:
    """Not being deleted, and with no spec change waiting for its handler (that handler writes the
    status itself)."""
    if body is None:
        return False
    meta = body.get("metadata", {})
    observed = (body.get("status") or {}).get("observedGeneration")
    return not meta.get("deletionTimestamp") and observed == meta.get("generation")


def owners(body: Mapping[str, Any]) -> list[Pipeline]:
    """(namespace, name) of each StockPipeline that owns this object."""
    meta = body.get("metadata", {})
    return [
        (meta.get("namespace", ""), owner["name"])
        for owner in meta.get("ownerReferences") or []
        if owner.get("kind") == KIND and str(owner.get("apiVersion", "")).startswith(f"{GROUP}/")
    ]


def pipeline_of_pod(pod: Mapping[str, Any]) -> Pipeline | None:
    """Pods belong to ReplicaSets and Jobs, not to the pipeline; their instance label names it."""
    meta = pod.get("metadata", {})
    name = (meta.get("labels") or {}).get(LABEL_INSTANCE)
    return (meta.get("namespace", ""), name) if name else None


def pod_diagnosis_changed(troubled: dict[str, int], event: Mapping[str, Any], pod: Mapping[str, Any]) -> bool:
    """Record what `pod_problem` says about `pod` after `event`; True when that changed.

    Only pods in trouble are remembered, so healthy pods cost nothing and a pod's routine status
    updates (started, ready) reconcile nothing here: its Deployment's status brings those.
    """
    uid = str((pod.get("metadata") or {}).get("uid", ""))
    problem = None if event.get("type") == "DELETED" else pod_problem(pod)
    now = None if problem is None else hash((problem.reason, problem.message))
    before = troubled.pop(uid, None)
    if now is not None:
        if len(troubled) >= MAX_TRACKED_PODS:  # bounded memory, whatever pods a namespace holds
            troubled.pop(next(iter(troubled)))
        troubled[uid] = now
    return now != before
