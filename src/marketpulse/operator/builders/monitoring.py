"""ServiceMonitor and PrometheusRule, for clusters that run the Prometheus Operator."""

from __future__ import annotations

from typing import Any

from marketpulse.contract.api import StockPipelineSpec
from marketpulse.contract.workloads import METRICS_PORT
from marketpulse.operator.builders.context import BuildContext, object_meta

# Alert thresholds; the data plane's metric names are the contract (see each workload's metrics).
FEED_STALE_FOR = "5m"
LAG_RECORDS = 100_000
LAG_WINDOW = "10m"
DEAD_LETTER_WINDOW = "15m"
DEAD_LETTERS_UNARCHIVED_FOR = "15m"
RETENTION_GAP_WINDOW = "1h"
TRANSFORM_WINDOW = "1h"
TRANSFORM_WINDOW_SECONDS = 3600
QUARANTINE_WINDOW = "1h"


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


def monitoring_meta(
    platform_labels: dict[str, str], spec: StockPipelineSpec | None, ctx: BuildContext
) -> dict[str, Any]:
    """The metadata of the ServiceMonitor or PrometheusRule: the platform's labels, the spec's over
    them, and the operator's own over both (admission refuses their keys; this keeps them anyway)."""
    meta = object_meta(ctx.names.monitoring, ctx, "monitoring")
    own = spec.monitoring.labels if spec is not None else {}
    meta["labels"] = {**platform_labels, **own, **meta["labels"]}
    return meta


def build_pipeline_servicemonitor(ctx: BuildContext, spec: StockPipelineSpec | None = None) -> dict[str, Any]:
    names = ctx.names
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": monitoring_meta(ctx.monitoring.service_monitor, spec, ctx),
        "spec": {
            "selector": {"matchLabels": names.selector("metrics")},
            "endpoints": [{"port": "metrics", "interval": "30s"}],
            # Copied onto every series as app_kubernetes_io_instance/_component, so rules and dashboards
            # can select one pipeline exactly (a pod-name prefix would also match `<name>-eu`).
            "podTargetLabels": ["app.kubernetes.io/instance", "app.kubernetes.io/component"],
        },
    }


def counted_recently(series: str, window: str) -> str:
    """PromQL: the counter went up within `window`, including a labelled series that first appeared
    with its first increment (client libraries create such a child on `.labels(...).inc()`, and
    `increase()` cannot see a rise before a series' first sample)."""
    return f"(increase({series}[{window}]) > 0 or ({series} > 0 unless {series} offset {window}))"


def build_pipeline_prometheusrule(ctx: BuildContext, spec: StockPipelineSpec | None = None) -> dict[str, Any]:
    names = ctx.names
    # The ServiceMonitor copies the pods' instance label onto their series (podTargetLabels).
    pods = f'namespace="{names.namespace}",app_kubernetes_io_instance="{names.name}"'
    lag = f"marketpulse_archive_consumer_lag_records{{{pods}}}"
    failures = f'marketpulse_transform_runs_total{{{pods},result="failure"}}'
    refused = [f"marketpulse_{stage}_dead_letters_total{{{pods}}}" for stage in ("ingest", "archive")]
    unarchived = f"marketpulse_archive_dead_letter_lag_records{{{pods}}}"
    retention_gap = f"marketpulse_archive_retention_gap_records_total{{{pods}}}"
    quarantined = f"marketpulse_transform_quarantined_objects_total{{{pods}}}"
    # kube-state-metrics' series of the CronJob's Jobs (named <cronjob>-<scheduled minute>).
    jobs = f'namespace="{names.namespace}",job_name=~"{names.workload("transform")}-[0-9]+"'
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
            # Growing, not merely high: a backlog that is being worked off (after an S3 outage, say)
            # needs no one, and at tens of thousands of ticks/s a steady lag of a batch is normal.
            "expr": f"sum({lag}) > {LAG_RECORDS} and sum(deriv({lag}[{LAG_WINDOW}])) > 0",
            "for": "10m",
            "labels": labels,
            "annotations": {
                "summary": f"Archive of {names.namespace}/{names.name} is falling behind",
                "description": (
                    f"More than {LAG_RECORDS} ticks wait to be archived and the backlog has kept "
                    "growing for 10 minutes."
                ),
            },
        },
        {
            "alert": "MarketPulseDeadLetters",
            # One series per stage and refused field: the alert says which check records fail.
            "expr": " or ".join(counted_recently(series, DEAD_LETTER_WINDOW) for series in refused),
            "labels": labels,
            "annotations": {
                "summary": f"Records of {names.namespace}/{names.name} refused: {{{{ $labels.field }}}}",
                "description": (
                    "Records were sent to the dead-letter topic within 15 minutes (the field label says "
                    "which check failed); they are kept under bronze/dead-letters/ in the bucket."
                ),
            },
        },
        {
            "alert": "MarketPulseDeadLettersNotArchived",
            "expr": f"max({unarchived}) > 0",
            "for": DEAD_LETTERS_UNARCHIVED_FOR,
            "labels": labels,
            "annotations": {
                "summary": f"Dead letters of {names.namespace}/{names.name} are not reaching S3",
                "description": (
                    "Dead letters have waited 15 minutes to be archived: past the topic's retention "
                    "they are gone."
                ),
            },
        },
        {
            "alert": "MarketPulseRetentionGap",
            "expr": counted_recently(retention_gap, RETENTION_GAP_WINDOW),
            "labels": {**labels, "severity": "critical"},
            "annotations": {
                "summary": f"Ticks of {names.namespace}/{names.name} expired before they were archived",
                "description": (
                    "The topic's retention deleted records the archive had not reached (it was down or "
                    "behind longer than the retention): they are not in bronze, silver or gold. The "
                    "archive's log names the partition and the offsets."
                ),
            },
        },
        {
            "alert": "MarketPulseTransformFailed",
            # Continuous mode: the looping Deployment counts its failed cycles. Cron mode: a run's
            # pod may live between two scrapes, so the Job's Failed condition is used instead, for
            # Jobs started within the hour (failed Jobs are kept for history long after).
            "expr": (
                counted_recently(failures, TRANSFORM_WINDOW)
                + f' or (kube_job_failed{{{jobs},condition="true"}} == 1'
                f" and on(namespace, job_name) (time() - kube_job_status_start_time{{{jobs}}})"
                f" < {TRANSFORM_WINDOW_SECONDS})"
            ),
            "labels": {**labels, "severity": "critical"},
            "annotations": {
                "summary": f"Transform of {names.namespace}/{names.name} failed",
                "description": "A load + dbt build run failed within the last hour; gold may be stale.",
            },
        },
        {
            "alert": "MarketPulseBronzeQuarantined",
            # An object is quarantined once, so its counter rises once: the alert holds for the window,
            # then clears. The object's ticks are missing from silver until someone looks.
            "expr": counted_recently(quarantined, QUARANTINE_WINDOW),
            "labels": labels,
            "annotations": {
                "summary": f"Transform of {names.namespace}/{names.name} quarantined a bronze object",
                "description": (
                    "A bronze object that is not NDJSON ticks, or not an archive key, was set aside "
                    "within the last hour and its ticks are not in silver; the transform's log "
                    "(bronze object quarantined) and the warehouse's bronze._quarantine table name it "
                    "and say why."
                ),
            },
        },
    ]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": monitoring_meta(ctx.monitoring.prometheus_rule, spec, ctx),
        "spec": {"groups": [{"name": f"marketpulse.{names.namespace}.{names.name}", "rules": rules}]},
    }
