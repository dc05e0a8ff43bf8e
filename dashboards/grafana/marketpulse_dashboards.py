"""MarketPulse's Grafana dashboards as code (grafana-foundation-sdk), one builder per domain.

`python dashboards/grafana/generate.py` writes every dashboard in `DASHBOARDS` to the chart's
`files/dashboards/`, which the chart ships as ConfigMaps for Grafana's dashboard sidecar. Output is
deterministic (fixed uids and panel ids, `sort_keys=True`, `indent=2`) so a drift test can compare the
committed files with a fresh generation.

Every PromQL expression uses the sample names the code exposes (`_total` for counters, `_bucket`
for histogram quantiles); `marketpulse_metric_names` checks them against the metric definitions.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.builders.common import (
    GraphThresholdsStyleConfig,
    ReduceDataOptions,
    StackingConfig,
    VizLegendOptions,
    VizTooltipOptions,
)
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

from marketpulse.operator.builders.monitoring import LAG_RECORDS

CHART_DASHBOARDS: Final = (
    Path(__file__).resolve().parents[2] / "charts" / "marketpulse" / "files" / "dashboards"
)
TAGS: Final = ["marketpulse"]
RATE: Final = "$__rate_interval"
PROMETHEUS: Final = model.DataSourceRef(type_val="prometheus", uid="${datasource}")

# The pipeline ServiceMonitor (operator builders/monitoring.py) sets no podTargetLabels, so series carry
# the Prometheus Operator's target labels only: namespace, service, pod, job. The operator names each
# pipeline's metrics Service `<pipeline>-metrics` (PipelineNames.metrics_service), so `service` is the
# one label that identifies a pipeline exactly (a `pod=~"<pipeline>-.*"` match would also catch a
# pipeline called `<pipeline>-eu`). If the ServiceMonitor ever copies app.kubernetes.io/instance, key
# these two constants on `app_kubernetes_io_instance` instead.
PIPELINE_LABEL: Final = "service"
PIPELINE_LABEL_REGEX: Final = "/^(.+)-metrics$/"
PIPELINE: Final = 'namespace="$namespace", service="$pipeline-metrics"'
OPERATOR: Final = 'namespace="$namespace"'


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = "__auto"


# --- building blocks -----------------------------------------------------------------------------


def _target(query: Query, ref_id: str) -> prometheus.Dataquery:
    return (
        prometheus.Dataquery()
        .expr(query.expr)
        .legend_format(query.legend)
        .ref_id(ref_id)
        .datasource(PROMETHEUS)
        .range()
    )


def _targets(queries: Sequence[Query]) -> list[prometheus.Dataquery]:
    return [_target(q, chr(ord("A") + i)) for i, q in enumerate(queries)]


def _thresholds(*steps: tuple[float | None, str]) -> dash.ThresholdsConfig:
    return (
        dash.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=value, color=color) for value, color in steps])
    )


GREEN: Final = _thresholds((None, "green"))
FIXED_RED: Final = {"mode": "fixed", "fixedColor": "red"}


def graph(
    title: str,
    description: str,
    unit: str,
    queries: Sequence[Query],
    *,
    span: int = 12,
    height: int = 8,
    thresholds: dash.ThresholdsConfig = GREEN,
    show_thresholds: bool = False,
    stacked: bool = False,
    bars: bool = False,
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .targets(_targets(queries))
        .unit(unit)
        .min(0)
        .span(span)
        .height(height)
        .thresholds(thresholds)
        .fill_opacity(10)
        .line_width(1)
        .legend(
            VizLegendOptions()
            .show_legend(True)
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
        )
        .tooltip(VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI).sort(common.SortOrder.DESCENDING))
    )
    if show_thresholds:
        panel = panel.thresholds_style(
            GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.DASHED)
        )
    if stacked:
        panel = panel.stacking(StackingConfig().mode(common.StackingMode.NORMAL))
    if bars:
        panel = panel.draw_style(common.GraphDrawStyle.BARS).fill_opacity(80)
    return panel


def big_number(
    title: str,
    description: str,
    unit: str,
    query: Query,
    *,
    span: int = 4,
    thresholds: dash.ThresholdsConfig = GREEN,
) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .targets(_targets([query]))
        .unit(unit)
        .span(span)
        .height(4)
        .thresholds(thresholds)
        .color_mode(common.BigValueColorMode.VALUE)
        .graph_mode(common.BigValueGraphMode.AREA)
        .reduce_options(
            ReduceDataOptions().calcs(["lastNotNull"]).values(False)  # the latest value, not an average
        )
    )


def datasource_variable() -> dash.DatasourceVariable:
    return dash.DatasourceVariable("datasource").label("Data source").type("prometheus")


def label_variable(name: str, label: str, query: str, *, regex: str = "") -> dash.QueryVariable:
    variable = (
        dash.QueryVariable(name)
        .label(label)
        .datasource(PROMETHEUS)
        .query(query)
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
    )
    return variable.regex(regex) if regex else variable


def quantiles(
    histogram: str, selector: str, *, by: str = "", qs: Sequence[float] = (0.5, 0.9, 0.99)
) -> list[Query]:
    """histogram_quantile over `<histogram>_bucket`; `by` adds labels to keep (legend shows them)."""
    keep = f"le, {by}" if by else "le"
    prefix = " ".join(f"{{{{{label.strip()}}}}}" for label in by.split(",")) + " " if by else ""
    return [
        Query(
            f"histogram_quantile({q}, sum by ({keep}) (rate({histogram}_bucket{{{selector}}}[{RATE}])))",
            f"{prefix}p{round(q * 100)}",
        )
        for q in qs
    ]


def finish(builder: dash.Dashboard) -> model.Dashboard:
    """The built dashboard with panel ids numbered top to bottom: the SDK leaves them unset, and a
    stable id keeps links to a panel (`viewPanel=`) working across regenerations."""
    built = builder.build()
    for number, panel in enumerate(built.panels or [], start=1):
        panel.id_val = number
    return built


def base(uid: str, title: str, description: str) -> dash.Dashboard:
    return (
        dash.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .editable()
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .time("now-6h", "now")
        .refresh("30s")
        .timezone("browser")
        .annotation(
            # Grafana's own annotations and alerts, as a dashboard made in the UI has them.
            dash.AnnotationQuery()
            .name("Annotations & Alerts")
            .datasource(model.DataSourceRef(type_val="grafana", uid="-- Grafana --"))
            .enable(True)
            .hide(True)
            .icon_color("rgba(0, 211, 255, 1)")
            .type("dashboard")
            .built_in(1)
        )
        .with_variable(datasource_variable())
    )


# --- pipeline overview ---------------------------------------------------------------------------

PIPELINE_UID: Final = "marketpulse-pipeline-overview"
FRESHNESS: Final = (
    # The transform may run as a CronJob whose pods live only for a run: look back a day for the gauge.
    f"time() - max(last_over_time(marketpulse_transform_last_success_timestamp_seconds{{{PIPELINE}}}[1d]))"
)


def _rate(metric: str, *, by: str = "", selector: str = PIPELINE) -> str:
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (rate({metric}{{{selector}}}[{RATE}]))"


def pipeline_overview() -> model.Dashboard:
    lag_thresholds = _thresholds((None, "green"), (LAG_RECORDS / 10, "yellow"), (LAG_RECORDS, "red"))
    board = (
        base(
            PIPELINE_UID,
            "MarketPulse / Pipeline overview",
            "One StockPipeline: ticks in and out, archive lag and latency, bronze objects, dead letters, "
            "transform runs and gold freshness.",
        )
        .with_variable(
            label_variable(
                "namespace", "Namespace", "label_values(marketpulse_archive_records_total, namespace)"
            )
        )
        .with_variable(
            label_variable(
                "pipeline",
                "Pipeline",
                'label_values(marketpulse_archive_records_total{namespace="$namespace"}, '
                f"{PIPELINE_LABEL})",
                regex=PIPELINE_LABEL_REGEX,
            )
        )
        .with_row(dash.Row("Summary"))
        .with_panel(
            big_number(
                "Ticks in",
                "Ticks the broker acknowledged per second (ingest).",
                "suffix: ticks/s",
                Query(_rate("marketpulse_ingest_ticks_acked_total")),
            )
        )
        .with_panel(
            big_number(
                "Ticks archived",
                "Records the archive consumed from the ticks topic per second.",
                "suffix: ticks/s",
                Query(_rate("marketpulse_archive_records_total")),
            )
        )
        .with_panel(
            big_number(
                "Consumer lag",
                "Ticks not yet committed to bronze; "
                f"the MarketPulseConsumerLag alert fires above {LAG_RECORDS}.",
                "short",
                Query(f"sum(marketpulse_archive_consumer_lag_records{{{PIPELINE}}})"),
                thresholds=lag_thresholds,
            )
        )
        .with_panel(
            big_number(
                "Tick → bronze p95",
                "95th percentile from the producer's record timestamp to the bronze object being written.",
                "s",
                quantiles("marketpulse_archive_tick_to_bronze_seconds", PIPELINE, qs=(0.95,))[0],
                thresholds=_thresholds((None, "green"), (30, "yellow"), (60, "red")),
            )
        )
        .with_panel(
            big_number(
                "Dead letters",
                "Records sent to the dead-letter topic per second, ingest and archive together.",
                "suffix: /s",
                Query(
                    f"({_rate('marketpulse_ingest_dead_letters_total')} or vector(0))"
                    f" + ({_rate('marketpulse_archive_dead_letters_total')} or vector(0))"
                ),
                thresholds=_thresholds((None, "green"), (0.01, "red")),
            )
        )
        .with_panel(
            big_number(
                "Gold freshness",
                "Time since the last successful transform (load, dbt build, publish): how stale gold is. "
                "Yellow after 15 minutes (three missed runs of the default 5-minute schedule), "
                "red after an hour.",
                "s",
                Query(FRESHNESS),
                thresholds=_thresholds((None, "green"), (900, "yellow"), (3600, "red")),
            )
        )
        .with_row(dash.Row("Ticks in and out"))
        .with_panel(
            graph(
                "Ticks per second",
                "In: handed to the producer and acknowledged by the broker (acks=all). "
                "Out: consumed by the archive.",
                "suffix: ticks/s",
                [
                    Query(_rate("marketpulse_ingest_ticks_produced_total"), "produced"),
                    Query(_rate("marketpulse_ingest_ticks_acked_total"), "acked"),
                    Query(_rate("marketpulse_archive_records_total"), "archived"),
                ],
            )
        )
        .with_panel(
            graph(
                "Producer errors and queue",
                "Ticks the producer failed to deliver per second, and records waiting in its local queue.",
                "short",
                [
                    Query(_rate("marketpulse_ingest_delivery_errors_total"), "delivery errors/s"),
                    Query(f"sum(marketpulse_ingest_queue_records{{{PIPELINE}}})", "queued records"),
                ],
            )
        )
        .with_panel(
            graph(
                "Consumer lag",
                "Records in the ticks topic not yet committed to bronze; the dashed line is the alert level.",
                "short",
                [Query(f"sum(marketpulse_archive_consumer_lag_records{{{PIPELINE}}})", "lag")],
                thresholds=_thresholds((None, "green"), (LAG_RECORDS, "red")),
                show_thresholds=True,
            )
        )
        .with_panel(
            graph(
                "Tick → bronze latency",
                "Quantiles of the time from the producer's record timestamp to the bronze object being "
                "written (sampled). Tick → gold adds the wait for the next transform: see Gold freshness.",
                "s",
                quantiles("marketpulse_archive_tick_to_bronze_seconds", PIPELINE),
            )
        )
        .with_row(dash.Row("Bronze objects"))
        .with_panel(
            graph(
                "Object size",
                "Quantiles and mean size of the Parquet objects the archive writes to bronze.",
                "bytes",
                [
                    *quantiles("marketpulse_archive_object_size_bytes", PIPELINE, qs=(0.5, 0.95)),
                    Query(
                        f"{_rate('marketpulse_archive_object_size_bytes_sum')}"
                        f" / {_rate('marketpulse_archive_object_size_bytes_count')}",
                        "mean",
                    ),
                ],
                span=8,
            )
        )
        .with_panel(
            graph(
                "Batch size",
                "Records per bronze object: records consumed over objects written.",
                "short",
                [
                    Query(
                        f"{_rate('marketpulse_archive_records_total')}"
                        f" / {_rate('marketpulse_archive_objects_written_total')}",
                        "records per object",
                    )
                ],
                span=8,
            )
        )
        .with_panel(
            graph(
                "Objects and S3 errors",
                "Objects written, objects found already written after a rebalance (skipped), and failed "
                "S3 writes (retried), per second.",
                "ops",
                [
                    Query(_rate("marketpulse_archive_objects_written_total"), "written"),
                    Query(_rate("marketpulse_archive_recovered_objects_total"), "recovered"),
                    Query(_rate("marketpulse_archive_s3_errors_total"), "S3 errors"),
                ],
                span=8,
            )
        )
        .with_row(dash.Row("Dead letters"))
        .with_panel(
            graph(
                "Dead letters by component and field",
                "Records sent to the dead-letter topic per second, by the component that rejected them and "
                "the field that was invalid.",
                "suffix: /s",
                [
                    Query(_rate("marketpulse_ingest_dead_letters_total", by="field"), "ingest {{field}}"),
                    Query(_rate("marketpulse_archive_dead_letters_total", by="field"), "archive {{field}}"),
                ],
                span=24,
                stacked=True,
            )
        )
        .with_row(dash.Row("Transform"))
        .with_panel(
            graph(
                "Stage duration",
                "Quantiles of each transform stage: load (bronze → warehouse), dbt (build), publish (gold).",
                "s",
                quantiles(
                    "marketpulse_transform_stage_duration_seconds", PIPELINE, by="stage", qs=(0.5, 0.95)
                ),
            )
        )
        .with_panel(
            graph(
                "Runs by result",
                "Transform cycles per hour by result; any failure fires MarketPulseTransformFailed.",
                "short",
                [
                    Query(
                        f"sum by (result) (increase(marketpulse_transform_runs_total{{{PIPELINE}}}[1h]))",
                        "{{result}}",
                    )
                ],
                bars=True,
            ).override_by_name("failure", [model.DynamicConfigValue(id_val="color", value=FIXED_RED)])
        )
        .with_panel(
            graph(
                "Gold freshness",
                "Time since the last successful transform, per pipeline.",
                "s",
                [Query(FRESHNESS, "since last success")],
                thresholds=_thresholds((None, "green"), (3600, "red")),
                show_thresholds=True,
            )
        )
        .with_panel(
            graph(
                "Rows loaded",
                "Bronze rows loaded into the warehouse per second.",
                "suffix: rows/s",
                [Query(_rate("marketpulse_transform_rows_loaded_total"), "rows")],
            )
        )
        .with_row(dash.Row("Alerts"))
        .with_panel(
            graph(
                "Alerts fired",
                "Alerts fired per second, by rule and kind.",
                "suffix: /s",
                [Query(_rate("marketpulse_alerts_fired_total", by="rule, kind"), "{{rule}} {{kind}}")],
            )
        )
        .with_panel(
            graph(
                "Webhook failures",
                "Alert webhook deliveries that failed, per second.",
                "suffix: /s",
                [Query(_rate("marketpulse_alerts_webhook_failures_total"), "failures")],
                thresholds=_thresholds((None, "green"), (0.001, "red")),
            )
        )
    )
    return finish(board)


# --- operator ------------------------------------------------------------------------------------

OPERATOR_UID: Final = "marketpulse-operator"


def operator_overview() -> model.Dashboard:
    def rate(metric: str, by: str = "") -> str:
        return _rate(metric, by=by, selector=OPERATOR)

    board = (
        base(
            OPERATOR_UID,
            "MarketPulse / Operator",
            "The StockPipeline operator: pipelines by phase, reconciles, errors, durations and writes.",
        )
        .with_variable(
            label_variable(
                "namespace", "Namespace", "label_values(marketpulse_operator_reconciles_total, namespace)"
            )
        )
        .with_row(dash.Row("Summary"))
        .with_panel(
            big_number(
                "Pipelines Ready",
                "StockPipelines in phase Ready.",
                "short",
                Query(f'sum(marketpulse_operator_pipelines{{{OPERATOR}, phase="Ready"}})'),
            )
        )
        .with_panel(
            big_number(
                "Pipelines not Ready",
                "StockPipelines in any phase but Ready (Pending, Provisioning, Degraded, Suspended, Failed).",
                "short",
                Query(f'sum(marketpulse_operator_pipelines{{{OPERATOR}, phase!="Ready"}})'),
                thresholds=_thresholds((None, "green"), (1, "yellow")),
            )
        )
        .with_panel(
            big_number(
                "Reconciles",
                "Reconciles per second, every trigger.",
                "ops",
                Query(rate("marketpulse_operator_reconciles_total")),
            )
        )
        .with_panel(
            big_number(
                "Error ratio",
                "Failed reconciles over all reconciles.",
                "percentunit",
                Query(
                    f"({rate('marketpulse_operator_reconcile_errors_total')} or vector(0))"
                    f" / {rate('marketpulse_operator_reconciles_total')}"
                ),
                thresholds=_thresholds((None, "green"), (0.01, "yellow"), (0.1, "red")),
            )
        )
        .with_panel(
            big_number(
                "Reconcile p95",
                "95th percentile of the time to reconcile one StockPipeline.",
                "s",
                quantiles("marketpulse_operator_reconcile_duration_seconds", OPERATOR, qs=(0.95,))[0],
                thresholds=_thresholds((None, "green"), (5, "yellow"), (30, "red")),
            )
        )
        .with_panel(
            big_number(
                "API writes",
                "Writes to the Kubernetes API per second; near zero once every pipeline is up to date.",
                "ops",
                Query(rate("marketpulse_operator_api_writes_total")),
            )
        )
        .with_row(dash.Row("Pipelines and reconciles"))
        .with_panel(
            graph(
                "Pipelines by phase",
                "StockPipelines this operator reconciles, by phase.",
                "short",
                [Query(f"sum by (phase) (marketpulse_operator_pipelines{{{OPERATOR}}})", "{{phase}}")],
                stacked=True,
            )
        )
        .with_panel(
            graph(
                "Reconciles by trigger",
                "Reconciles per second by what triggered them.",
                "ops",
                [Query(rate("marketpulse_operator_reconciles_total", "trigger"), "{{trigger}}")],
            )
        )
        .with_panel(
            graph(
                "Reconcile errors",
                "Failed reconciles per second by trigger and kind of error "
                "(temporary, permanent, apply, unexpected).",
                "ops",
                [
                    Query(
                        rate("marketpulse_operator_reconcile_errors_total", "trigger, error"),
                        "{{trigger}} {{error}}",
                    )
                ],
                thresholds=_thresholds((None, "green"), (0.001, "red")),
            )
        )
        .with_panel(
            graph(
                "Reconcile duration",
                "Quantiles of the time to reconcile one StockPipeline, and the 95th percentile per trigger.",
                "s",
                [
                    *quantiles("marketpulse_operator_reconcile_duration_seconds", OPERATOR),
                    *quantiles(
                        "marketpulse_operator_reconcile_duration_seconds", OPERATOR, by="trigger", qs=(0.95,)
                    ),
                ],
            )
        )
        .with_row(dash.Row("Writes"))
        .with_panel(
            graph(
                "Kubernetes API writes",
                "Apply, patch, delete and status writes per second by object kind and verb.",
                "ops",
                [Query(rate("marketpulse_operator_api_writes_total", "kind, verb"), "{{verb}} {{kind}}")],
            )
        )
        .with_panel(
            graph(
                "Backend writes",
                "Changes outside Kubernetes (Kafka topics, S3 buckets) per second by backend and action.",
                "ops",
                [
                    Query(
                        rate("marketpulse_operator_backend_writes_total", "backend, action"),
                        "{{backend}} {{action}}",
                    )
                ],
            )
        )
    )
    return finish(board)


# --- output --------------------------------------------------------------------------------------

# File name in the chart's files/dashboards/ (it becomes part of the ConfigMap's name) -> builder.
DASHBOARDS: Final[dict[str, Callable[[], model.Dashboard]]] = {
    "pipeline-overview.json": pipeline_overview,
    "operator.json": operator_overview,
}


def to_json(board: model.Dashboard) -> str:
    return json.dumps(board, cls=JSONEncoder, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def render_all() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {name: to_json(build()) for name, build in DASHBOARDS.items()}
