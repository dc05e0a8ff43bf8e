"""Spec: the chart ships the generated Grafana dashboards (files/dashboards/*.json) for Grafana's sidecar."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

Render = Callable[..., list[dict[str, Any]]]
CI = Path(__file__).parents[1] / "marketpulse" / "ci"


def test_should_ship_every_generated_dashboard_as_a_config_map_for_the_sidecar_with_the_monitoring_values(
    render: Render, chart: Path
) -> None:
    files = sorted((chart / "files" / "dashboards").glob("*.json"))
    maps = {
        m["metadata"]["name"]: m
        for m in render(files=[CI / "monitoring-values.yaml"])
        if m["kind"] == "ConfigMap"
    }

    assert [f.name for f in files] == ["operator.json", "pipeline-overview.json"]
    assert sorted(maps) == [f"mp-marketpulse-dashboard-{f.stem}" for f in files]
    for f in files:
        config_map = maps[f"mp-marketpulse-dashboard-{f.stem}"]
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert config_map["metadata"]["annotations"] == {"grafana_folder": "MarketPulse"}
        assert config_map["metadata"]["namespace"] == "markets"
        assert json.loads(config_map["data"][f.name]) == json.loads(f.read_text())


def test_should_give_each_dashboard_a_uid_grafana_keeps_across_releases(chart: Path) -> None:
    uids = {f.name: json.loads(f.read_text())["uid"] for f in (chart / "files" / "dashboards").glob("*.json")}
    assert uids == {
        "operator.json": "marketpulse-operator",
        "pipeline-overview.json": "marketpulse-pipeline-overview",
    }
