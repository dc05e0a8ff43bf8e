"""Building blocks shared by MarketPulse's Grafana dashboards (grafana-foundation-sdk): panels,
variables, thresholds and the pipeline/operator selectors.

Every PromQL expression uses the sample names the code exposes (`_total` for counters, `_bucket`
for histogram quantiles); `marketpulse_metric_names` checks them against the metric definitions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

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


def thresholds(*steps: tuple[float | None, str]) -> dash.ThresholdsConfig:
    return (
        dash.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=value, color=color) for value, color in steps])
    )


GREEN: Final = thresholds((None, "green"))
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


def rate(metric: str, *, by: str = "", selector: str = PIPELINE) -> str:
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (rate({metric}{{{selector}}}[{RATE}]))"
