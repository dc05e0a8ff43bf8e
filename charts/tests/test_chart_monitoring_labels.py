"""Labels of ServiceMonitors and PrometheusRules from values: on the chart's own, and through the
operator's settings on every pipeline's (kube-prometheus-stack selects both by `release`)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from chart_manifests import Render, container, one

from marketpulse.contract.api import validate_stockpipeline
from marketpulse.contract.workloads import names_for
from marketpulse.operator.builders import BuildContext, Capabilities, render_children
from marketpulse.operator.settings import OperatorSettings

pytestmark = [pytest.mark.helm]

Template = Callable[..., subprocess.CompletedProcess[str]]
CI = Path(__file__).parents[1] / "marketpulse" / "ci"


def monitoring(service_monitor: dict[str, str], prometheus_rule: dict[str, str]) -> dict[str, Any]:
    return {
        "metrics": {
            "serviceMonitor": {"enabled": True, "labels": service_monitor},
            "prometheusRule": {"labels": prometheus_rule},
        }
    }


def test_the_charts_service_monitor_and_prometheus_rule_each_carry_their_own_labels(render: Render) -> None:
    manifests = render(monitoring({"release": "kps", "scrape": "yes"}, {"release": "kps", "role": "alert"}))
    monitor = one(manifests, "ServiceMonitor")["metadata"]["labels"]
    rule = one(manifests, "PrometheusRule")["metadata"]["labels"]

    assert {monitor["release"], monitor["scrape"]} == {"kps", "yes"}
    assert "role" not in monitor
    assert {rule["release"], rule["role"]} == {"kps", "alert"}
    assert "scrape" not in rule
    # The chart's standard labels stay.
    assert monitor["app.kubernetes.io/managed-by"] == rule["app.kubernetes.io/managed-by"] == "Helm"


def test_the_kube_prometheus_stack_scenario_labels_both_for_its_prometheus(render: Render) -> None:
    manifests = render(files=[CI / "monitoring-values.yaml"])
    for kind in ("ServiceMonitor", "PrometheusRule"):
        assert one(manifests, kind)["metadata"]["labels"]["release"] == "kube-prometheus-stack", kind


def test_the_labels_reach_every_pipelines_monitors_through_the_operators_settings(render: Render) -> None:
    values = monitoring({"release": "kube-prometheus-stack"}, {"release": "kube-prometheus-stack", "t": "1"})
    # The ServiceMonitor of the chart is off: the pipelines' get the labels all the same.
    values["metrics"]["serviceMonitor"]["enabled"] = False
    env = {e["name"]: e["value"] for e in container(render(values))["env"] if "value" in e}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        settings = OperatorSettings()
    pipeline = validate_stockpipeline(
        {
            "apiVersion": "marketpulse.io/v1alpha1",
            "kind": "StockPipeline",
            "metadata": {"name": "eu", "namespace": "trading"},
            "spec": {"watchlist": ["AAPL"], "monitoring": {"labels": {"t": "2"}}},
        }
    )
    ctx = BuildContext(
        names=names_for(pipeline),
        capabilities=Capabilities(service_monitor=True, prometheus_rule=True),
        monitoring=settings.monitoring_labels(),
    )
    found = {m["kind"]: m["metadata"]["labels"] for m in render_children(pipeline, ctx)}

    assert found["ServiceMonitor"]["release"] == "kube-prometheus-stack"
    assert found["PrometheusRule"]["release"] == "kube-prometheus-stack"
    assert found["PrometheusRule"]["t"] == "2"  # the spec's over the platform's
    assert found["ServiceMonitor"]["app.kubernetes.io/managed-by"] == "marketpulse-operator"


def test_no_labels_reach_the_operator_as_empty_json_objects(render: Render) -> None:
    env = {e["name"]: e.get("value") for e in container(render())["env"]}
    assert env["MARKETPULSE_SERVICE_MONITOR_LABELS"] == "{}"
    assert env["MARKETPULSE_PROMETHEUS_RULE_LABELS"] == "{}"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            monitoring({"app.kubernetes.io/managed-by": "me"}, {}),
            'metrics.serviceMonitor.labels: "app.kubernetes.io/managed-by" is reserved',
        ),
        (
            monitoring({}, {"marketpulse.io/dashboard-probe": "true"}),
            'metrics.prometheusRule.labels: "marketpulse.io/dashboard-probe" is reserved',
        ),
        (
            # Refused even with the chart's own ServiceMonitor off: the operator would get them.
            {"metrics": {"serviceMonitor": {"labels": {"node-role.kubernetes.io/x": "x"}}}},
            'metrics.serviceMonitor.labels: "node-role.kubernetes.io/x" is reserved',
        ),
        (
            monitoring({}, {"release name": "x"}),
            'metrics.prometheusRule.labels: "release name" is not a label',
        ),
        (monitoring({"a/b/c": "x"}, {}), 'metrics.serviceMonitor.labels: "a/b/c" is not a label name'),
    ],
)
def test_reserved_or_malformed_label_keys_are_refused_naming_the_value(
    template: Template, values: dict[str, Any], message: str
) -> None:
    result = template(values)
    assert result.returncode != 0
    assert message in result.stderr


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ({"release": "kube prometheus"}, "at '/metrics/prometheusRule/labels/release'"),
        ({"release": 1}, "at '/metrics/prometheusRule/labels/release': got number, want string"),
        ({f"l{i}": "x" for i in range(17)}, "at '/metrics/prometheusRule/labels'"),
    ],
)
def test_malformed_labels_are_refused_by_the_schema_naming_the_key(
    template: Template, labels: dict[str, Any], message: str
) -> None:
    result = template(monitoring({}, labels))
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr
