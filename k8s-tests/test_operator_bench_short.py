"""The operator benchmark in short mode: it runs end to end and every row is complete and finite.

No figure is asserted here (performance is judged by `marketpulse bench`, not by a timed test).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from marketpulse_dev.bench.operator_bench import (
    histogram_quantile,
    percentile,
    run_operator_bench,
)
from marketpulse_dev.bench.report import ROW_KEYS, check_row
from marketpulse_dev.metrics_text import parse


def test_histogram_quantiles_interpolate_within_a_bucket_as_prometheus_does() -> None:
    buckets = [(0.1, 10.0), (0.5, 30.0), (math.inf, 40.0)]

    assert histogram_quantile(0.1, buckets) == pytest.approx(0.04)
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.3)
    # In the +Inf bucket the highest finite bound is the estimate.
    assert histogram_quantile(0.95, buckets) == pytest.approx(0.5)
    assert math.isnan(histogram_quantile(0.5, [(0.1, 0.0), (math.inf, 0.0)]))


def test_percentiles_are_nearest_rank_and_metrics_parse_with_their_labels() -> None:
    assert percentile([3.0, 1.0, 2.0, 4.0], 50) == 2.0
    assert percentile([float(i) for i in range(1, 21)], 95) == 19.0
    parsed = parse(
        "# HELP x\n"
        'marketpulse_operator_reconciles_total{trigger="timer"} 7.0\n'
        'marketpulse_operator_reconcile_duration_seconds_bucket{le="+Inf",trigger="create"} 3.0\n'
    )

    assert parsed["marketpulse_operator_reconciles_total"] == [({"trigger": "timer"}, 7.0)]
    assert parsed["marketpulse_operator_reconcile_duration_seconds_bucket"] == [
        ({"le": "+Inf", "trigger": "create"}, 3.0)
    ]


@pytest.mark.k8s
@pytest.mark.s3
@pytest.mark.bench
def test_the_short_operator_benchmark_reports_every_metric_with_finite_figures(tmp_path: Path) -> None:
    rows = run_operator_bench(short=True, workdir=tmp_path)
    metrics = [str(row["metric"]) for row in rows]

    assert all(set(row) == set(ROW_KEYS) for row in rows), rows
    assert [check_row(row)["suite"] for row in rows] == ["operator"] * len(rows)
    for row in rows:
        checked = check_row(row)
        assert math.isfinite(checked["value"]), row
        assert checked["value"] >= 0, row
        for reference in (checked["baseline"], checked["ceiling"]):
            assert reference is None or (math.isfinite(reference) and reference > 0), row
        assert checked["notes"], row
    for size in ("1 pipeline", "a batch of 5 pipelines"):
        for label in ("p50", "p95"):
            assert f"apply → children + status {label}, {size}" in metrics
    assert "API writes per no-op reconcile" in metrics
    for trigger in ("create", "timer"):
        assert f"reconcile duration p50 ({trigger})" in metrics
        assert f"reconcile duration p95 ({trigger})" in metrics
    assert sum(row["target"] is not None for row in rows) == 3  # the p95 latencies and the writes
