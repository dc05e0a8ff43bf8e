"""The pipeline's Kubernetes children: apply what differs, prune what the spec no longer wants,
and list the pods of its workloads.

Server-side apply, and only for a child that is not already as desired: a reconcile of an
unchanged pipeline writes nothing.
"""

from __future__ import annotations

import asyncio
from typing import Any

from marketpulse.contract.workloads import PipelineNames
from marketpulse.operator.builders import Manifest
from marketpulse.operator.diff import up_to_date
from marketpulse.operator.kube import KubeApi, KubeError, Ref
from marketpulse.operator.observe import ChildResult

# Kinds that come and go with the spec (alerts rules removed, dashboard disabled, transform mode
# switched); topics and the warehouse volume hold data and are only removed by deletionPolicy.
PRUNABLE = (
    ("apps/v1", "Deployment"),
    ("batch/v1", "CronJob"),
    ("v1", "Service"),
    ("networking.k8s.io/v1", "Ingress"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
)


async def sync_child(kube: KubeApi, desired: Manifest, *, fresh: bool) -> ChildResult:
    result = ChildResult(desired)
    try:
        # A pipeline just created has no children yet: apply without reading first.
        live = None if fresh else await kube.get(Ref.of(desired))
        if up_to_date(desired, live):
            result.live = live
        else:
            result.live = await kube.apply(desired)
            result.applied = True
    except KubeError as exc:
        result.error = exc
    return result


INGRESS = ("networking.k8s.io/v1", "Ingress")


async def prune(
    kube: KubeApi,
    names: PipelineNames,
    uid: str,
    desired: list[Manifest],
    kinds: tuple[tuple[str, str], ...] = PRUNABLE,
) -> list[str]:
    """Delete the pipeline's children of a prunable kind (of `kinds`) that `desired` no longer holds."""
    keep = {(m["kind"], m["metadata"]["name"]) for m in desired}
    listed = await asyncio.gather(
        *(
            kube.list_objects(api_version, kind, names.namespace, names.owned_selector)
            for api_version, kind in kinds
        )
    )
    stale = [
        Ref(api_version, kind, names.namespace, item["metadata"]["name"])
        for (api_version, kind), items in zip(kinds, listed, strict=True)
        for item in items
        if (kind, item["metadata"]["name"]) not in keep
        and any(o.get("uid") == uid for o in item["metadata"].get("ownerReferences", []))
    ]
    await asyncio.gather(*(kube.delete(ref) for ref in stale))
    return [f"{ref.kind}/{ref.name}" for ref in stale]


async def list_pods(kube: KubeApi, names: PipelineNames) -> list[dict[str, Any]]:
    """The pods of the pipeline's workloads (Deployments' and the transform Jobs'), by label."""
    return await kube.list_objects("v1", "Pod", names.namespace, names.owned_selector)
