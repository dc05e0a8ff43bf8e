"""ServiceMonitor and PrometheusRule, for clusters that run the Prometheus Operator."""

from __future__ import annotations

from typing import Any

from marketpulse.contract.api import StockPipelineSpec
from marketpulse.contract.api.formats import prometheus_duration
from marketpulse.contract.api.v1alpha1 import MonitoringSpec
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
DELIVERY_WINDOW = "15m"
# A CronJob's transform pod lives for one run, so its gold gauges are read over the last hour: the
# newest value any run left (and in continuous mode, the last one a transform that died reported).
GOLD_LOOKBACK = "1h"
GOLD_STALE_FOR = "1m"
# Gold that has not grown for this many objectives while ticks are acknowledged is stuck, not slow.
SILENT_OBJECTIVES = 3


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


def runbook_url(ctx: BuildContext, alert: str) -> str:
    """docs/runbooks/<alert>.md, under the base the platform configured (MARKETPULSE_RUNBOOK_BASE_URL)."""
    return f"{ctx.runbook_base_url}/{alert}.md"


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
    objective = (spec.monitoring if spec is not None else MonitoringSpec()).gold_freshness_seconds
    within = prometheus_duration(objective)
    silent = prometheus_duration(objective * SILENT_OBJECTIVES)
    acked = f"marketpulse_ingest_ticks_acked_total{{{pods}}}"
    gold_newest = (
        f"last_over_time(marketpulse_transform_gold_last_ingest_timestamp_seconds{{{pods}}}[{GOLD_LOOKBACK}])"
    )
    gold_ticks = f"marketpulse_transform_gold_ticks{{{pods}}}"
    delivery_errors = f"marketpulse_ingest_delivery_errors_total{{{pods}}}"
    webhook_failures = f"marketpulse_alerts_webhook_failures_total{{{pods}}}"
    labels = {"severity": "warning", "pipeline": names.name}
    rules: list[dict[str, Any]] = [
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
        {
            "alert": "MarketPulseGoldStale",
            # Age of the newest tick in gold, counted from when ingest sent it, while ingest keeps
            # acknowledging ticks: a market that is closed (nothing acknowledged) leaves gold old and quiet.
            "expr": (
                f"(time() - max({gold_newest})) > {objective} and on() sum(increase({acked}[{within}])) > 0"
            ),
            "for": GOLD_STALE_FOR,
            "labels": labels,
            "annotations": {
                "summary": f"Gold of {names.namespace}/{names.name} is older than its objective of {within}",
                "description": (
                    "Ingest is acknowledging ticks, but the newest tick in gold was sent "
                    "{{ $value | humanizeDuration }} ago (spec.monitoring.goldFreshnessObjective: "
                    f"{within}): the transform is slow, failing or scheduled less often than the objective."
                ),
            },
        },
        {
            "alert": "MarketPulseSymbolGoldStale",
            # One symbol behind the pipeline's freshest: when all of gold is old, MarketPulseGoldStale
            # says so.
            "expr": f"(scalar(max({gold_newest})) - max by (symbol) ({gold_newest})) > {objective}",
            "for": within,
            "labels": labels,
            "annotations": {
                "summary": (
                    "Gold of {{ $labels.symbol }} in "
                    f"{names.namespace}/{names.name} trails the other symbols"
                ),
                "description": (
                    "The newest tick of {{ $labels.symbol }} in gold is {{ $value | humanizeDuration }} "
                    f"older than the pipeline's freshest symbol (objective {within}): its ticks stopped "
                    "arriving (a halted or illiquid symbol, a source subscription) or are refused."
                ),
            },
        },
        {
            "alert": "MarketPulsePipelineSilent",
            # Ticks acknowledged, gold's tick count not grown (or gone) over the window: the end-to-end
            # row-count check, done continuously.
            "expr": (
                f"sum(increase({acked}[{silent}])) > 0 and on() ("
                f"max(last_over_time({gold_ticks}[{GOLD_LOOKBACK}]))"
                f" <= max(last_over_time({gold_ticks}[{GOLD_LOOKBACK}] offset {silent}))"
                # No gold at all, from a pipeline whose ingest was acknowledging ticks before the window
                # (a new pipeline's first transform is not late yet).
                f" or (absent_over_time({gold_ticks}[{silent}]) and on() count({acked} offset {silent})))"
            ),
            "for": GOLD_STALE_FOR,
            "labels": {**labels, "severity": "critical"},
            "annotations": {
                "summary": f"Ticks of {names.namespace}/{names.name} are acknowledged but none reach gold",
                "description": (
                    f"Ingest acknowledged ticks within {silent}, but gold has not gained a tick in that "
                    f"time ({SILENT_OBJECTIVES} times spec.monitoring.goldFreshnessObjective): archive, "
                    "transform or dbt is stuck."
                ),
            },
        },
        {
            "alert": "MarketPulseDeliveryErrors",
            "expr": counted_recently(delivery_errors, DELIVERY_WINDOW),
            "labels": {**labels, "severity": "critical"},
            "annotations": {
                "summary": f"Ingest of {names.namespace}/{names.name} failed to deliver ticks to Kafka",
                "description": (
                    "The Kafka producer gave up on ticks within 15 minutes (delivery timeout, topic or "
                    "authorization error): those ticks were never acknowledged and are not in the topic."
                ),
            },
        },
        {
            "alert": "MarketPulseAlertWebhookFailing",
            "expr": counted_recently(webhook_failures, DELIVERY_WINDOW),
            "labels": labels,
            "annotations": {
                "summary": f"Alerts of {names.namespace}/{names.name} are not reaching their webhook",
                "description": (
                    "POSTs to spec.alerts.webhookUrl failed within 15 minutes; the alerts are still on the "
                    "alerts topic."
                ),
            },
        },
    ]
    for entry in rules:
        entry["annotations"]["runbook_url"] = runbook_url(ctx, str(entry["alert"]))
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": monitoring_meta(ctx.monitoring.prometheus_rule, spec, ctx),
        "spec": {"groups": [{"name": f"marketpulse.{names.namespace}.{names.name}", "rules": rules}]},
    }
