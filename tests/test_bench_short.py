"""`marketpulse bench --short` runs every suite end to end and writes complete results.

This checks the benchmark's plumbing (every metric reported, every value a finite number, both
renderings written); it never judges the figures, which belong to the benchmark's own report.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from marketpulse_dev.bench import dbt_runs, loader, pipeline
from marketpulse_dev.bench.report import ROW_KEYS

pytestmark = [pytest.mark.bench, pytest.mark.kafka, pytest.mark.s3]

MARKETPULSE = str(Path(sys.executable).parent / "marketpulse")
SUITES = ["pipeline", "loader", "dbt"]


@pytest.mark.timeout(1800)
def test_the_short_bench_reports_every_metric_of_pipeline_loader_and_dbt_as_a_finite_number(
    tmp_path: Path,
) -> None:
    out = tmp_path / "results"
    done = subprocess.run(
        [MARKETPULSE, "bench", "--short", "--suite", ",".join(SUITES), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=1700,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-5000:]

    (json_path,) = out.glob("*-pipeline+loader+dbt.json")
    (md_path,) = out.glob("*-pipeline+loader+dbt.md")
    assert (out / "latest.md").read_text() == md_path.read_text()
    result = orjson.loads(json_path.read_bytes())
    assert result["suites"] == SUITES
    assert {"cpu", "cores", "memory", "kernel", "python", "components"} <= set(result["machine"])

    rows = result["rows"]
    for row in rows:
        assert set(ROW_KEYS) <= set(row), row
        assert isinstance(row["value"], float), row
        assert math.isfinite(row["value"]), row
    reported = {(row["suite"], row["metric"]) for row in rows}
    expected = (
        {("pipeline", name) for name in pipeline.expected_metrics(pipeline.SHORT_SIZES.rate)}
        | {("loader", name) for name in loader.METRICS}
        | {("dbt", name) for name in dbt_runs.METRICS}
    )
    assert sorted(expected - reported) == []
    markdown = md_path.read_text()
    for suite, metric in expected:
        assert f"| {suite} | {metric} |" in markdown
    assert "shared machine" in markdown


def test_an_unknown_suite_is_refused_with_the_names_of_the_suites() -> None:
    done = subprocess.run(
        [MARKETPULSE, "bench", "--suite", "pipeline,warp"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert "warp is not a suite" in done.stderr
    assert "pipeline, loader, dbt, operator" in done.stderr
