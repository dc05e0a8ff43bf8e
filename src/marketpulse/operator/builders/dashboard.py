"""The dashboard's Service and Ingress."""

from __future__ import annotations

from typing import Any

from marketpulse.contract.api import StockPipelineSpec
from marketpulse.operator.builders.context import BuildContext, object_meta

SERVICE_PORT = 80


def build_dashboard_service(ctx: BuildContext) -> dict[str, Any]:
    names = ctx.names
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(names.dashboard_service, ctx, "dashboard"),
        "spec": {
            "type": "ClusterIP",
            "selector": names.selector("dashboard"),
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def build_dashboard_ingress(spec: StockPipelineSpec, ctx: BuildContext) -> dict[str, Any]:
    """The Ingress of `spec.dashboard.ingress` (only rendered when it is enabled, with its host)."""
    names, ingress = ctx.names, spec.dashboard.ingress
    backend = {"service": {"name": names.dashboard_service, "port": {"name": "http"}}}
    rule = {
        "host": ingress.host,
        "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]},
    }
    ingress_spec: dict[str, Any] = {"rules": [rule]}
    if ingress.class_name:
        ingress_spec["ingressClassName"] = ingress.class_name
    if ingress.tls is not None:
        ingress_spec["tls"] = [{"hosts": [ingress.host], "secretName": ingress.tls.secret_name}]
    metadata = object_meta(names.dashboard_service, ctx, "dashboard")
    if ingress.annotations:
        metadata["annotations"] = dict(sorted(ingress.annotations.items()))
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": metadata,
        "spec": ingress_spec,
    }


def dashboard_url(spec: StockPipelineSpec, ctx: BuildContext, *, ingress: bool | None = None) -> str | None:
    """Where users open the dashboard: the Ingress host, else the in-cluster Service.

    `ingress`: whether the Ingress is in place (False when its host is held by another pipeline);
    unset means as the spec asks."""
    dashboard = spec.dashboard
    if not dashboard.enabled:
        return None
    if (dashboard.ingress_enabled if ingress is None else ingress) and dashboard.ingress.host:
        scheme = "https" if dashboard.ingress.tls is not None else "http"
        return f"{scheme}://{dashboard.ingress.host}/"
    names = ctx.names
    return f"http://{names.dashboard_service}.{names.namespace}.svc:{SERVICE_PORT}/"
