"""Run the operator: kopf with the registry built from settings, peering, liveness and metrics."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Sequence

import kopf

from marketpulse.operator.handlers import build_registry
from marketpulse.operator.kube import KubeApi, KubeError, Ref, load_configuration
from marketpulse.operator.settings import OperatorSettings
from marketpulse.runtime.logs import configure_logging

DEFAULT_PEERING = "marketpulse-operator"


async def ensure_peering(settings: OperatorSettings, name: str, namespace: str | None) -> None:
    """Create the peering object if missing (kopf expects it to exist before replicas meet there)."""
    kube = KubeApi(load_configuration(settings.kubeconfig), workers=1)
    kind = "KopfPeering" if namespace else "ClusterKopfPeering"
    metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
    try:
        if await kube.get(Ref("kopf.dev/v1", kind, namespace or "", name)) is None:
            await kube.apply({"apiVersion": "kopf.dev/v1", "kind": kind, "metadata": metadata})
    finally:
        kube.close()


def run(
    settings: OperatorSettings,
    *,
    namespaces: Sequence[str] = (),
    peering: str | None = DEFAULT_PEERING,
    standalone: bool = False,
    priority: int | None = None,
    verbose: bool = False,
) -> None:
    """Block serving StockPipelines in `namespaces`, or in all namespaces when none are given."""
    # kopf.run(), unlike the `kopf run` command, leaves logging alone: kopf's records (its per-object
    # loggers too) go through the same handler and format as the workloads'.
    configure_logging("operator", "DEBUG" if verbose else "INFO", settings.log_format)
    if priority is None:
        # kopf pauses *every* operator of a peering when priorities tie, so replicas of one Deployment
        # (and the old and new pod of a rolling update) would all stand still: give each its own.
        priority = secrets.randbelow(1_000_000) + 1
        logging.getLogger(__name__).info("peering priority %d", priority)
    clusterwide = not namespaces
    if not standalone and peering:
        # Namespaced operators meet in a KopfPeering of their (first) namespace.
        try:
            asyncio.run(ensure_peering(settings, peering, None if clusterwide else namespaces[0]))
        except KubeError as exc:
            raise SystemExit(f"peering object {peering}: {exc}") from None
    liveness = f"http://0.0.0.0:{settings.health_port}/healthz" if settings.health_port else None
    kopf.run(
        registry=build_registry(settings),
        clusterwide=clusterwide,
        namespaces=list(namespaces),
        standalone=standalone,
        peering_name=peering if not standalone else None,
        priority=priority,
        liveness_endpoint=liveness,
    )
