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
    names, dashboard = ctx.names, spec.dashboard
    rule: dict[str, Any] = {
        "http": {
            "paths": [
                {
                    "path": "/",
                    "pathType": "Prefix",
                    "backend": {"service": {"name": names.dashboard_service, "port": {"name": "http"}}},
                }
            ]
        }
    }
    if dashboard.host:
        rule = {"host": dashboard.host, **rule}
    ingress_spec: dict[str, Any] = {"rules": [rule]}
    if dashboard.ingress_class_name:
        ingress_spec["ingressClassName"] = dashboard.ingress_class_name
    if dashboard.tls is not None and dashboard.host:
        ingress_spec["tls"] = [{"hosts": [dashboard.host], "secretName": dashboard.tls.secret_name}]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": object_meta(names.dashboard_service, ctx, "dashboard"),
        "spec": ingress_spec,
    }


def dashboard_url(spec: StockPipelineSpec, ctx: BuildContext) -> str | None:
    """Where users open the dashboard: the Ingress host, else the in-cluster Service."""
    if not spec.dashboard.enabled:
        return None
    if spec.dashboard.host:
        scheme = "https" if spec.dashboard.tls is not None else "http"
        return f"{scheme}://{spec.dashboard.host}/"
    names = ctx.names
    return f"http://{names.dashboard_service}.{names.namespace}.svc:{SERVICE_PORT}/"
