"""What builders need besides the StockPipeline: names, image, and what the cluster serves."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from marketpulse.contract.workloads import PipelineNames, Platform


@dataclass(frozen=True)
class Capabilities:
    """API groups found by discovery at start-up; None means the kind is not served."""

    kafka_topic_version: str | None = None  # "kafka.strimzi.io/v1" or ".../v1beta2"
    kafka_user_version: str | None = None
    service_monitor: bool = False
    prometheus_rule: bool = False


@dataclass(frozen=True)
class NetworkRules:
    """What the platform says may reach the pipelines' pods, and what else they may call."""

    dashboard_from: tuple[str, ...] = ("ingress-nginx", "traefik")  # namespaces of ingress controllers
    metrics_from: tuple[str, ...] = ("monitoring",)  # namespaces of Prometheus
    extra_egress_ports: tuple[int, ...] = ()
    # The namespace whose pods labelled DASHBOARD_PROBE_LABEL may reach dashboards: the chart's own,
    # for its `helm test` pod. Empty: none.
    dashboard_probe_namespace: str = ""


@dataclass(frozen=True)
class MonitoringLabels:
    """Labels the platform adds to every pipeline's ServiceMonitor and PrometheusRule (a Prometheus
    selects them by label: kube-prometheus-stack's by `release`); a spec's own go over these."""

    service_monitor: dict[str, str] = field(default_factory=dict)
    prometheus_rule: dict[str, str] = field(default_factory=dict)


# Where each alert's runbook_url points: docs/runbooks/<alert>.md of the project, as GitHub shows it.
RUNBOOK_BASE_URL = "https://github.com/marketpulse/marketpulse/blob/main/docs/runbooks"


@dataclass(frozen=True)
class BuildContext:
    names: PipelineNames
    image: str = "ghcr.io/marketpulse/marketpulse:latest"
    image_pull_policy: str = "IfNotPresent"
    run_as_user: int = 10001
    capabilities: Capabilities = field(default_factory=Capabilities)
    platform: Platform = field(default_factory=Platform)
    network: NetworkRules | None = field(default_factory=NetworkRules)  # None: no NetworkPolicy
    monitoring: MonitoringLabels = field(default_factory=MonitoringLabels)
    runbook_base_url: str = RUNBOOK_BASE_URL
    # The token of the full refresh last requested, for the transform (operator.full_refresh).
    full_refresh: str | None = None


def object_meta(name: str, ctx: BuildContext, component: str) -> dict[str, Any]:
    """The metadata every child carries: its name, the pipeline's namespace, the standard labels."""
    return {"name": name, "namespace": ctx.names.namespace, "labels": ctx.names.labels(component)}
