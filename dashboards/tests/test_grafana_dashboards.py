"""The Grafana dashboards: generated JSON committed in the chart, stable uids, one pipeline per view."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from marketpulse.contract.workloads import PipelineNames
from marketpulse.operator.builders import BuildContext
from marketpulse.operator.builders.monitoring import (
    LAG_RECORDS,
    build_metrics_service,
    build_pipeline_servicemonitor,
)

GRAFANA = Path(__file__).parents[1] / "grafana"
if str(GRAFANA) not in sys.path:  # the generators are scripts beside the chart, not part of the package
    sys.path.insert(0, str(GRAFANA))

import generate  # noqa: E402
import marketpulse_dashboards as boards  # noqa: E402
import panels as blocks  # noqa: E402

REGENERATE = "run `.venv/bin/python dashboards/grafana/generate.py` and commit the result"
UIDS = {"pipeline-overview.json": "marketpulse-pipeline-overview", "operator.json": "marketpulse-operator"}


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    return boards.render_all()


@pytest.fixture(scope="module")
def parsed(rendered: dict[str, str]) -> dict[str, dict[str, Any]]:
    return {name: json.loads(text) for name, text in rendered.items()}


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in board["panels"] if p["type"] != "row"]


def test_the_committed_dashboards_equal_a_fresh_generation(rendered: dict[str, str]) -> None:
    for name, text in rendered.items():
        path = boards.CHART_DASHBOARDS / name
        assert path.is_file(), f"{path} is missing: {REGENERATE}"
        assert path.read_text() == text, f"{path} differs from the generators in {GRAFANA}: {REGENERATE}"


def test_the_chart_ships_no_dashboard_that_no_generator_makes() -> None:
    shipped = {p.name for p in boards.CHART_DASHBOARDS.glob("*.json")}
    assert shipped == set(boards.DASHBOARDS), f"delete the stale files or add a generator: {REGENERATE}"


def test_check_mode_reports_a_changed_or_missing_file_and_passes_a_fresh_one(tmp_path: Path) -> None:
    assert generate.main(["--out", str(tmp_path)]) == 0
    assert generate.main(["--check", "--out", str(tmp_path)]) == 0

    (tmp_path / "operator.json").write_text("{}\n")
    (tmp_path / "pipeline-overview.json").unlink()
    assert generate.stale(tmp_path) == ["operator.json", "pipeline-overview.json"]
    assert generate.main(["--check", "--out", str(tmp_path)]) == 1


def test_generation_is_deterministic_sorted_and_indented(rendered: dict[str, str]) -> None:
    assert boards.render_all() == rendered
    for text in rendered.values():
        assert text == json.dumps(json.loads(text), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def test_each_dashboard_keeps_its_uid_and_file_name(parsed: dict[str, dict[str, Any]]) -> None:
    assert {name: board["uid"] for name, board in parsed.items()} == UIDS
    for name in parsed:
        # File names become ConfigMap names (charts/marketpulse/templates/dashboards.yaml).
        assert re.fullmatch(r"[a-z0-9-]+\.json", name)


def test_panel_ids_are_unique_and_panels_fit_the_24_column_grid_without_overlapping(
    parsed: dict[str, dict[str, Any]],
) -> None:
    for name, board in parsed.items():
        ids = [p["id"] for p in board["panels"]]
        assert ids == list(range(1, len(ids) + 1)), name
        cells: set[tuple[int, int]] = set()
        for p in board["panels"]:
            g = p["gridPos"]
            assert g["x"] + g["w"] <= 24, (name, p["title"])
            mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
            assert not cells & mine, f"{name}: {p['title']!r} overlaps another panel"
            cells |= mine


def test_every_panel_and_query_uses_the_datasource_variable(parsed: dict[str, dict[str, Any]]) -> None:
    for board in parsed.values():
        first = board["templating"]["list"][0]
        assert (first["name"], first["type"], first["query"]) == ("datasource", "datasource", "prometheus")
        for p in panels(board):
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert p["targets"], p["title"]
            for t in p["targets"]:
                assert t["datasource"] == p["datasource"]


def test_every_pipeline_query_selects_the_chosen_namespace_and_pipeline(
    parsed: dict[str, dict[str, Any]],
) -> None:
    board = parsed["pipeline-overview.json"]
    for p in panels(board):
        for t in p["targets"]:
            # Every selector of a marketpulse_ metric carries both matchers, so no panel mixes pipelines.
            selectors = re.findall(r"marketpulse_\w+(\{[^}]*\})?", t["expr"])
            assert selectors, t["expr"]
            assert all(s == "{" + blocks.PIPELINE + "}" for s in selectors), (p["title"], t["expr"])


def test_the_operator_dashboard_selects_the_chosen_namespace(parsed: dict[str, dict[str, Any]]) -> None:
    for p in panels(parsed["operator.json"]):
        for t in p["targets"]:
            selectors = re.findall(r"marketpulse_\w+(\{[^}]*\})?", t["expr"])
            assert selectors
            assert all(s.startswith("{" + blocks.OPERATOR) for s in selectors), (p["title"], t["expr"])


@pytest.mark.parametrize("name", ["synthetic-duckdb", "eu", "a-pipeline-name-of-exactly-40-characters"])
def test_the_pipeline_variable_reads_the_pipeline_name_from_the_label_its_service_monitor_gives(
    parsed: dict[str, dict[str, Any]], name: str
) -> None:
    ctx = BuildContext(names=PipelineNames(namespace="trading", name=name))
    service = build_metrics_service(ctx)
    monitor = build_pipeline_servicemonitor(ctx)
    # The ServiceMonitor selects the metrics Service, so Prometheus labels every series service=<its name>.
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()

    variable = next(
        v for v in parsed["pipeline-overview.json"]["templating"]["list"] if v["name"] == "pipeline"
    )
    assert f", {blocks.PIPELINE_LABEL})" in variable["query"]
    match = re.fullmatch(variable["regex"].strip("/"), service["metadata"]["name"])
    assert match is not None
    assert match.group(1) == name
    assert blocks.PIPELINE.replace("$pipeline", name).endswith(f'service="{service["metadata"]["name"]}"')


def test_the_consumer_lag_panels_mark_the_level_the_alert_fires_at(parsed: dict[str, dict[str, Any]]) -> None:
    lag = [p for p in panels(parsed["pipeline-overview.json"]) if p["title"] == "Consumer lag"]
    steps = [s["value"] for p in lag for s in p["fieldConfig"]["defaults"]["thresholds"]["steps"]]
    assert LAG_RECORDS in steps
    assert len(lag) == 2
