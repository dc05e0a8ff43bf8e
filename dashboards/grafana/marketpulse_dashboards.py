"""MarketPulse's Grafana dashboards as code (grafana-foundation-sdk), one module per dashboard.

`python dashboards/grafana/generate.py` writes every dashboard in `DASHBOARDS` to the chart's
`files/dashboards/`, which the chart ships as ConfigMaps for Grafana's dashboard sidecar. Output is
deterministic (fixed uids and panel ids, `sort_keys=True`, `indent=2`) so a drift test can compare the
committed files with a fresh generation. Shared building blocks are in `panels`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Final

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model
from operator_overview import operator_overview
from pipeline_overview import pipeline_overview

CHART_DASHBOARDS: Final = (
    Path(__file__).resolve().parents[2] / "charts" / "marketpulse" / "files" / "dashboards"
)

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
