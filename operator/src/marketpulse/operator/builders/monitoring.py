"""ServiceMonitor and PrometheusRule, for clusters that run the Prometheus Operator."""

from __future__ import annotations

from typing import Any

from marketpulse.operator.builders.context import BuildContext, object_meta
from marketpulse.workloads import METRICS_PORT

# Alert thresholds; the data plane's metric names are the contract (see each workload's metrics).
FEED_STALE_FOR = "5m"
LAG_RECORDS = 100_000


def build_metrics_service(ctx: BuildContext) -> dict[str, Any]:
    """A headless Service over every pod of the pipeline, for the ServiceMonitor to discover."""
    names = ctx.names
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(names.metrics_service, ctx, "metrics"),
        "spec": {
            "clusterIP": "None",
            "selector": names.selector(),
            "ports": [{"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics", "protocol": "TCP"}],
        },
    }


def build_pipeline_servicemonitor(ctx: BuildContext) -> dict[str, Any]:
    names = ctx.names
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": object_meta(names.monitoring, ctx, "monitoring"),
        "spec": {
            "selector": {"matchLabels": names.selector("metrics")},
            "endpoints": [{"port": "metrics", "interval": "30s"}],
            # Copied onto every series as app_kubernetes_io_instance/_component, so rules and dashboards
            # can select one pipeline exactly (a pod-name prefix would also match `<name>-eu`).
            "podTargetLabels": ["app.kubernetes.io/instance", "app.kubernetes.io/component"],
        },
    }


def build_pipeline_prometheusrule(ctx: BuildContext) -> dict[str, Any]:
    names = ctx.names
    # The ServiceMonitor copies the pods' instance label onto their series (podTargetLabels).
    pods = f'namespace="{names.namespace}",app_kubernetes_io_instance="{names.name}"'
    labels = {"severity": "warning", "pipeline": names.name}
    rules = [
        {
            "alert": "MarketPulseFeedStale",
            "expr": f"sum(rate(marketpulse_archive_records_total{{{pods}}}[5m])) == 0",
            "for": FEED_STALE_FOR,
            "labels": labels,
            "annotations": {
                "summary": f"No ticks archived for {names.namespace}/{names.name}",
                "description": "The archive consumed no records for 5 minutes: is ingest producing?",
            },
        },
        {
            "alert": "MarketPulseConsumerLag",
            "expr": f"sum(marketpulse_archive_consumer_lag_records{{{pods}}}) > {LAG_RECORDS}",
            "for": "10m",
            "labels": labels,
            "annotations": {
                "summary": f"Archive of {names.namespace}/{names.name} is falling behind",
                "description": f"More than {LAG_RECORDS} ticks wait to be archived.",
            },
        },
        {
            "alert": "MarketPulseTransformFailed",
            "expr": (
                f'increase(marketpulse_transform_runs_total{{{pods},result="failure"}}[1h]) > 0'
                f' or kube_job_status_failed{{namespace="{names.namespace}",'
                f'job_name=~"{names.workload("transform")}-[0-9]+"}} > 0'
            ),
            "labels": {**labels, "severity": "critical"},
            "annotations": {
                "summary": f"Transform of {names.namespace}/{names.name} failed",
                "description": "A load + dbt build run failed; gold is not being refreshed.",
            },
        },
    ]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": object_meta(names.monitoring, ctx, "monitoring"),
        "spec": {"groups": [{"name": f"marketpulse.{names.namespace}.{names.name}", "rules": rules}]},
    }
