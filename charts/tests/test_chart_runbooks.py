"""Where every alert's runbook_url points: `metrics.prometheusRule.runbookBaseUrl`, on the chart's own
alerts and, through the operator's MARKETPULSE_RUNBOOK_BASE_URL, on every pipeline's."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from chart_manifests import Render, container, one

from marketpulse.operator.builders.context import RUNBOOK_BASE_URL

pytestmark = [pytest.mark.helm]

Template = Callable[..., subprocess.CompletedProcess[str]]


def values(base: str | None = None) -> dict[str, Any]:
    rule: dict[str, Any] = {} if base is None else {"runbookBaseUrl": base}
    return {"metrics": {"serviceMonitor": {"enabled": True}, "prometheusRule": rule}}


def runbook_urls(manifests: list[dict[str, Any]]) -> dict[str, str]:
    groups = one(manifests, "PrometheusRule")["spec"]["groups"]
    return {r["alert"]: r["annotations"]["runbook_url"] for g in groups for r in g["rules"]}


def operator_env(manifests: list[dict[str, Any]]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container(manifests)["env"] if "value" in e}


def test_by_default_every_runbook_url_is_the_projects_docs_runbooks(render: Render) -> None:
    manifests = render(values())

    urls = runbook_urls(manifests)
    assert urls == {alert: f"{RUNBOOK_BASE_URL}/{alert}.md" for alert in urls}
    assert len(urls) == 2
    assert operator_env(manifests)["MARKETPULSE_RUNBOOK_BASE_URL"] == RUNBOOK_BASE_URL


def test_a_runbook_base_url_in_values_reaches_the_charts_alerts_and_the_operator(render: Render) -> None:
    base = "https://wiki.example.com/sre/marketpulse"
    manifests = render(values(base))

    assert set(runbook_urls(manifests).values()) == {
        f"{base}/MarketPulseOperatorReconcileErrors.md",
        f"{base}/MarketPulseOperatorRetrying.md",
    }
    assert operator_env(manifests)["MARKETPULSE_RUNBOOK_BASE_URL"] == base


@pytest.mark.parametrize("base", ["wiki.example.com/runbooks", "https://wiki.example.com/runbooks/", 7])
def test_a_runbook_base_url_that_is_no_url_or_ends_in_a_slash_is_refused_naming_the_key(
    template: Template, base: Any
) -> None:
    result = template(values(base))
    assert result.returncode != 0
    assert "at '/metrics/prometheusRule/runbookBaseUrl'" in result.stderr
