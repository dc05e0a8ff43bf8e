"""The pipeline overview dashboard: one StockPipeline, row by row."""

from __future__ import annotations

from typing import Final

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.models import dashboard as model
from panels import (
    FIXED_RED,
    PIPELINE,
    PIPELINE_LABEL,
    PIPELINE_LABEL_REGEX,
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

from marketpulse.operator.builders.monitoring import LAG_RECORDS

PIPELINE_UID: Final = "marketpulse-pipeline-overview"
LAG_THRESHOLDS: Final = thresholds((None, "green"), (LAG_RECORDS / 10, "yellow"), (LAG_RECORDS, "red"))
FRESHNESS: Final = (
    # The transform may run as a CronJob whose pods live only for a run: look back a day for the gauge.
    f"time() - max(last_over_time(marketpulse_transform_last_success_timestamp_seconds{{{PIPELINE}}}[1d]))"
)


def _summary_row(board: dash.Dashboard) -> dash.Dashboard:
    """The "Summary" row."""
    return (
        board.with_row(dash.Row("Summary"))
        .with_panel(
            big_number(
                "Ticks in",
                "Ticks the broker acknowledged per second (ingest).",
                "suffix: ticks/s",
                Query(rate("marketpulse_ingest_ticks_acked_total")),
            )
        )
        .with_panel(
            big_number(
                "Ticks archived",
                "Records the archive consumed from the ticks topic per second.",
                "suffix: ticks/s",
                Query(rate("marketpulse_archive_records_total")),
            )
        )
        .with_panel(
            big_number(
                "Consumer lag",
                "Ticks not yet committed to bronze; "
                f"the MarketPulseConsumerLag alert fires above {LAG_RECORDS}.",
                "short",
                Query(f"sum(marketpulse_archive_consumer_lag_records{{{PIPELINE}}})"),
                thresholds=LAG_THRESHOLDS,
            )
        )
        .with_panel(
            big_number(
                "Tick → bronze p95",
                "95th percentile from the producer's record timestamp to the bronze object being written.",
                "s",
                quantiles("marketpulse_archive_tick_to_bronze_seconds", PIPELINE, qs=(0.95,))[0],
                thresholds=thresholds((None, "green"), (30, "yellow"), (60, "red")),
            )
        )
        .with_panel(
            big_number(
                "Dead letters",
                "Records sent to the dead-letter topic per second, ingest and archive together.",
                "suffix: /s",
                Query(
                    f"({rate('marketpulse_ingest_dead_letters_total')} or vector(0))"
                    f" + ({rate('marketpulse_archive_dead_letters_total')} or vector(0))"
                ),
                thresholds=thresholds((None, "green"), (0.01, "red")),
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
                thresholds=thresholds((None, "green"), (900, "yellow"), (3600, "red")),
            )
        )
    )


def _ticks_in_and_out_row(board: dash.Dashboard) -> dash.Dashboard:
    """The "Ticks in and out" row."""
    return (
        board.with_row(dash.Row("Ticks in and out"))
        .with_panel(
            graph(
                "Ticks per second",
                "In: handed to the producer and acknowledged by the broker (acks=all). "
                "Out: consumed by the archive.",
                "suffix: ticks/s",
                [
                    Query(rate("marketpulse_ingest_ticks_produced_total"), "produced"),
                    Query(rate("marketpulse_ingest_ticks_acked_total"), "acked"),
                    Query(rate("marketpulse_archive_records_total"), "archived"),
                ],
            )
        )
        .with_panel(
            graph(
                "Producer errors and queue",
                "Ticks the producer failed to deliver per second, and records waiting in its local queue.",
                "short",
                [
                    Query(rate("marketpulse_ingest_delivery_errors_total"), "delivery errors/s"),
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
                thresholds=thresholds((None, "green"), (LAG_RECORDS, "red")),
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
    )


def _bronze_objects_row(board: dash.Dashboard) -> dash.Dashboard:
    """The "Bronze objects" row."""
    return (
        board.with_row(dash.Row("Bronze objects"))
        .with_panel(
            graph(
                "Object size",
                "Quantiles and mean size of the Parquet objects the archive writes to bronze.",
                "bytes",
                [
                    *quantiles("marketpulse_archive_object_size_bytes", PIPELINE, qs=(0.5, 0.95)),
                    Query(
                        f"{rate('marketpulse_archive_object_size_bytes_sum')}"
                        f" / {rate('marketpulse_archive_object_size_bytes_count')}",
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
                        f"{rate('marketpulse_archive_records_total')}"
                        f" / {rate('marketpulse_archive_objects_written_total')}",
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
                    Query(rate("marketpulse_archive_objects_written_total"), "written"),
                    Query(rate("marketpulse_archive_recovered_objects_total"), "recovered"),
                    Query(rate("marketpulse_archive_s3_errors_total"), "S3 errors"),
                ],
                span=8,
            )
        )
    )


def _dead_letters_row(board: dash.Dashboard) -> dash.Dashboard:
    """The "Dead letters" row."""
    return board.with_row(dash.Row("Dead letters")).with_panel(
        graph(
            "Dead letters by component and field",
            "Records sent to the dead-letter topic per second, by the component that rejected them and "
            "the field that was invalid.",
            "suffix: /s",
            [
                Query(rate("marketpulse_ingest_dead_letters_total", by="field"), "ingest {{field}}"),
                Query(rate("marketpulse_archive_dead_letters_total", by="field"), "archive {{field}}"),
            ],
            span=24,
            stacked=True,
        )
    )


def _transform_row(board: dash.Dashboard) -> dash.Dashboard:
    """The "Transform" row."""
    return (
        board.with_row(dash.Row("Transform"))
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
                thresholds=thresholds((None, "green"), (3600, "red")),
                show_thresholds=True,
            )
        )
        .with_panel(
            graph(
                "Rows loaded",
                "Bronze rows loaded into the warehouse per second.",
                "suffix: rows/s",
                [Query(rate("marketpulse_transform_rows_loaded_total"), "rows")],
            )
        )
    )


def _alerts_row(board: dash.Dashboard) -> dash.Dashboard:
    """The "Alerts" row."""
    return (
        board.with_row(dash.Row("Alerts"))
        .with_panel(
            graph(
                "Alerts fired",
                "Alerts fired per second, by rule and kind.",
                "suffix: /s",
                [Query(rate("marketpulse_alerts_fired_total", by="rule, kind"), "{{rule}} {{kind}}")],
            )
        )
        .with_panel(
            graph(
                "Webhook failures",
                "Alert webhook deliveries that failed, per second.",
                "suffix: /s",
                [Query(rate("marketpulse_alerts_webhook_failures_total"), "failures")],
                thresholds=thresholds((None, "green"), (0.001, "red")),
            )
        )
    )


def pipeline_overview() -> model.Dashboard:
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
    )
    for row in (
        _summary_row,
        _ticks_in_and_out_row,
        _bronze_objects_row,
        _dead_letters_row,
        _transform_row,
        _alerts_row,
    ):
        board = row(board)
    return finish(board)
