"""The dbt exposures name what their consumers really read, so `dbt ls --select +exposure:…` and the
lineage in dbt docs tell the truth about what a model change breaks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from marketpulse.dashboard.backends import GOLD_RELATIONS

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "charts" / "marketpulse" / "files" / "dashboards"


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    target = tmp_path_factory.mktemp("dbt-parse")
    result = subprocess.run(
        [sys.executable, "-m", "dbt.cli.main", "parse", "--target-path", str(target), "--profiles-dir", "."],
        cwd=ROOT / "dbt",
        env={
            "PATH": "/usr/bin:/bin",
            "MARKETPULSE_DUCKDB_PATH": str(target / "w.duckdb"),
            "HOME": str(target),
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    loaded: dict[str, Any] = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
    return loaded


def _depends_on(manifest: dict[str, Any], name: str) -> set[str]:
    return set(manifest["exposures"][f"exposure.marketpulse.{name}"]["depends_on"]["nodes"])


def _gold_models(manifest: dict[str, Any]) -> set[str]:
    return {
        unique_id
        for unique_id, node in manifest["nodes"].items()
        if node["resource_type"] == "model" and node["fqn"][1] == "gold"
    }


def test_the_streamlit_exposure_lists_exactly_the_gold_relations_the_dashboard_reads(
    manifest: dict[str, Any],
) -> None:
    read = {f"model.marketpulse.{relation}" for relation in GOLD_RELATIONS}
    assert _depends_on(manifest, "streamlit_dashboard") == read
    assert read <= _gold_models(manifest)


def test_the_grafana_exposure_covers_bronze_and_every_gold_model_whose_build_it_charts(
    manifest: dict[str, Any],
) -> None:
    assert _depends_on(manifest, "grafana_pipeline_overview") == _gold_models(manifest) | {
        "source.marketpulse.bronze.raw_ticks"
    }
    panels = (DASHBOARDS / "pipeline-overview.json").read_text(encoding="utf-8")
    for metric in (
        "marketpulse_transform_rows_loaded_total",
        "marketpulse_transform_last_success_timestamp_seconds",
    ):
        assert metric in panels, f"pipeline-overview.json no longer charts {metric}: update the exposure"
