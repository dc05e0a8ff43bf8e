"""The operator dashboard: pipelines by phase, reconciles, errors, durations and writes."""

from __future__ import annotations

from typing import Final

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.models import dashboard as model
from panels import (
    OPERATOR,
    Query,
    base,
    big_number,
    finish,
    graph,
    label_variable,
    quantiles,
    rate,
    thresholds,
)

OPERATOR_UID: Final = "marketpulse-operator"


def operator_rate(metric: str, by: str = "") -> str:
    return rate(metric, by=by, selector=OPERATOR)


def _summary_row(board: dash.Dashboard) -> dash.Dashboard:
    """The "Summary" row."""
    return (
        board.with_row(dash.Row("Summary"))
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
                thresholds=thresholds((None, "green"), (1, "yellow")),
            )
        )
        .with_panel(
            big_number(
                "Reconciles",
                "Reconciles per second, every trigger.",
                "ops",
                Query(operator_rate("marketpulse_operator_reconciles_total")),
            )
        )
        .with_panel(
            big_number(
                "Error ratio",
                "Failed reconciles over all reconciles.",
                "percentunit",
                Query(
                    f"({operator_rate('marketpulse_operator_reconcile_errors_total')} or vector(0))"
                    f" / {operator_rate('marketpulse_operator_reconciles_total')}"
                ),
                thresholds=thresholds((None, "green"), (0.01, "yellow"), (0.1, "red")),
            )
        )
        .with_panel(
            big_number(
                "Reconcile p95",
                "95th percentile of the time to reconcile one StockPipeline.",
                "s",
                quantiles("marketpulse_operator_reconcile_duration_seconds", OPERATOR, qs=(0.95,))[0],
                thresholds=thresholds((None, "green"), (5, "yellow"), (30, "red")),
            )
        )
        .with_panel(
            big_number(
                "API writes",
                "Writes to the Kubernetes API per second; near zero once every pipeline is up to date.",
                "ops",
                Query(operator_rate("marketpulse_operator_api_writes_total")),
            )
        )
    )


def _pipelines_and_reconciles_row(board: dash.Dashboard) -> dash.Dashboard:
    """The "Pipelines and reconciles" row."""
    return (
        board.with_row(dash.Row("Pipelines and reconciles"))
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
                [Query(operator_rate("marketpulse_operator_reconciles_total", "trigger"), "{{trigger}}")],
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
                        operator_rate("marketpulse_operator_reconcile_errors_total", "trigger, error"),
                        "{{trigger}} {{error}}",
                    )
                ],
                thresholds=thresholds((None, "green"), (0.001, "red")),
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
    )


def _writes_row(board: dash.Dashboard) -> dash.Dashboard:
    """The "Writes" row."""
    return (
        board.with_row(dash.Row("Writes"))
        .with_panel(
            graph(
                "Kubernetes API writes",
                "Apply, patch, delete and status writes per second by object kind and verb.",
                "ops",
                [
                    Query(
                        operator_rate("marketpulse_operator_api_writes_total", "kind, verb"),
                        "{{verb}} {{kind}}",
                    )
                ],
            )
        )
        .with_panel(
            graph(
                "Backend writes",
                "Changes outside Kubernetes (Kafka topics, S3 buckets) per second by backend and action.",
                "ops",
                [
                    Query(
                        operator_rate("marketpulse_operator_backend_writes_total", "backend, action"),
                        "{{backend}} {{action}}",
                    )
                ],
            )
        )
    )


def operator_overview() -> model.Dashboard:
    board = base(
        OPERATOR_UID,
        "MarketPulse / Operator",
        "The StockPipeline operator: pipelines by phase, reconciles, errors, durations and writes.",
    ).with_variable(
        label_variable(
            "namespace", "Namespace", "label_values(marketpulse_operator_reconciles_total, namespace)"
        )
    )
    for row in (_summary_row, _pipelines_and_reconciles_row, _writes_row):
        board = row(board)
    return finish(board)
