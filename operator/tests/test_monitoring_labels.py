"""Labels of each pipeline's ServiceMonitor and PrometheusRule: the platform's (operator settings,
from the chart), the spec's over them, the operator's own over both; hostile keys refused."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from marketpulse.contract.api import StockPipeline, StockPipelineInvalid, validate_stockpipeline
from marketpulse.contract.workloads import names_for
from marketpulse.operator.builders import BuildContext, Capabilities, render_children
from marketpulse.operator.builders.context import MonitoringLabels
from marketpulse.operator.settings import OperatorSettings

MONITORING = Capabilities(service_monitor=True, prometheus_rule=True)
OWN = {
    "app.kubernetes.io/name": "marketpulse",
    "app.kubernetes.io/instance": "eu",
    "app.kubernetes.io/component": "monitoring",
    "app.kubernetes.io/part-of": "marketpulse",
    "app.kubernetes.io/managed-by": "marketpulse-operator",
}


def pipeline(labels: dict[str, str] | None = None) -> StockPipeline:
    spec: dict[str, Any] = {"watchlist": ["AAPL"]}
    if labels is not None:
        spec["monitoring"] = {"labels": labels}
    return validate_stockpipeline(
        {
            "apiVersion": "marketpulse.io/v1alpha1",
            "kind": "StockPipeline",
            "metadata": {"name": "eu", "namespace": "trading"},
            "spec": spec,
        }
    )


def monitoring_labels(
    p: StockPipeline, platform: MonitoringLabels | None = None
) -> dict[str, dict[str, str]]:
    ctx = BuildContext(names=names_for(p), capabilities=MONITORING, monitoring=platform or MonitoringLabels())
    return {
        m["kind"]: m["metadata"]["labels"]
        for m in render_children(p, ctx)
        if m["kind"] in ("ServiceMonitor", "PrometheusRule")
    }


def test_without_labels_set_the_monitors_carry_only_the_operators_own() -> None:
    assert monitoring_labels(pipeline()) == {"ServiceMonitor": OWN, "PrometheusRule": OWN}


def test_the_platforms_labels_go_on_every_pipelines_service_monitor_and_prometheus_rule_each_its_own() -> (
    None
):
    platform = MonitoringLabels(
        service_monitor={"release": "kube-prometheus-stack"},
        prometheus_rule={"release": "rules", "tier": "1"},
    )
    found = monitoring_labels(pipeline(), platform)

    assert found["ServiceMonitor"] == {**OWN, "release": "kube-prometheus-stack"}
    assert found["PrometheusRule"] == {**OWN, "release": "rules", "tier": "1"}


def test_the_specs_labels_go_over_the_platforms_on_both() -> None:
    platform = MonitoringLabels(
        service_monitor={"release": "kube-prometheus-stack", "team": "platform"},
        prometheus_rule={"release": "kube-prometheus-stack"},
    )
    found = monitoring_labels(pipeline({"release": "team-prometheus", "example.com/cost": ""}), platform)

    assert found["ServiceMonitor"] == {
        **OWN,
        "release": "team-prometheus",
        "team": "platform",
        "example.com/cost": "",
    }
    assert found["PrometheusRule"] == {**OWN, "release": "team-prometheus", "example.com/cost": ""}


def test_the_operators_own_labels_win_even_over_platform_labels_that_slipped_past_validation() -> None:
    # Settings refuse these keys; the builder keeps the selector and owner labels regardless, so that
    # the operator can always find and prune its objects.
    platform = MonitoringLabels(
        service_monitor={"app.kubernetes.io/instance": "other", "app.kubernetes.io/managed-by": "Helm"}
    )
    assert monitoring_labels(pipeline(), platform)["ServiceMonitor"] == OWN


def test_the_other_children_do_not_get_the_monitoring_labels() -> None:
    p = pipeline({"release": "kube-prometheus-stack"})
    ctx = BuildContext(
        names=names_for(p),
        capabilities=MONITORING,
        monitoring=MonitoringLabels(service_monitor={"release": "a"}, prometheus_rule={"release": "a"}),
    )
    others = [m for m in render_children(p, ctx) if m["kind"] not in ("ServiceMonitor", "PrometheusRule")]
    assert others
    assert all("release" not in m["metadata"]["labels"] for m in others)


# --- the spec ---------------------------------------------------------------------------------------


def refusal(labels: dict[str, Any]) -> str:
    with pytest.raises(StockPipelineInvalid) as caught:
        pipeline(labels)
    return str(caught.value)


@pytest.mark.parametrize(
    "key",
    [
        "app.kubernetes.io/instance",
        "app.kubernetes.io/managed-by",
        "app.kubernetes.io/name",
        "kubernetes.io/metadata.name",
        "node-role.kubernetes.io/control-plane",
        "k8s.io/anything",
        "marketpulse.io/dashboard-probe",
        "secrets.marketpulse.io/pipeline-secret",
    ],
)
def test_keys_the_operator_or_kubernetes_own_are_refused_naming_the_field(key: str) -> None:
    message = refusal({key: "x"})
    assert "spec.monitoring.labels: monitoring.labels may not set labels under kubernetes.io" in message


@pytest.mark.parametrize(
    "key", ["with space", "-leading", "trailing-", "a/b/c", "UPPER.example.com/x", "x" * 64, "/name", ""]
)
def test_keys_that_are_not_label_names_are_refused_naming_the_field(key: str) -> None:
    assert "spec.monitoring.labels: monitoring.labels keys must be label names" in refusal({key: "x"})


@pytest.mark.parametrize("value", ["with space", "-leading", "a/b", "x" * 64, "ünïcode"])
def test_values_that_are_not_label_values_are_refused_naming_the_key(value: str) -> None:
    assert "spec.monitoring.labels.release:" in refusal({"release": value})


def test_more_than_sixteen_labels_are_refused() -> None:
    assert "spec.monitoring.labels:" in refusal({f"l{i}": "x" for i in range(17)})
    assert len(pipeline({f"l{i}": "x" for i in range(16)}).spec.monitoring.labels) == 16


def test_a_value_that_is_not_a_string_is_refused_not_coerced() -> None:
    assert "spec.monitoring.labels.release:" in refusal({"release": 1})


# --- the operator's settings (the chart's metrics.serviceMonitor.labels, metrics.prometheusRule.labels) --


def settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> OperatorSettings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return OperatorSettings()


def test_the_labels_settings_are_json_objects_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    found = settings(
        monkeypatch,
        MARKETPULSE_SERVICE_MONITOR_LABELS=json.dumps({"release": "kube-prometheus-stack"}),
        MARKETPULSE_PROMETHEUS_RULE_LABELS=json.dumps({"release": "kube-prometheus-stack", "role": "alert"}),
    ).monitoring_labels()

    assert found.service_monitor == {"release": "kube-prometheus-stack"}
    assert found.prometheus_rule == {"release": "kube-prometheus-stack", "role": "alert"}


def test_unset_labels_settings_add_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MARKETPULSE_SERVICE_MONITOR_LABELS", raising=False)
    monkeypatch.delenv("MARKETPULSE_PROMETHEUS_RULE_LABELS", raising=False)
    assert OperatorSettings().monitoring_labels() == MonitoringLabels()


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"app.kubernetes.io/managed-by": "me"}, "'app.kubernetes.io/managed-by' is reserved"),
        ({"bad key": "x"}, "'bad key' is not a label name"),
        ({"release": "not ok"}, "the value of 'release' is not a label value"),
        ({f"l{i}": "x" for i in range(17)}, "at most 16 labels, got 17"),
    ],
)
def test_hostile_or_malformed_settings_labels_are_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, labels: dict[str, str], expected: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        settings(monkeypatch, MARKETPULSE_PROMETHEUS_RULE_LABELS=json.dumps(labels))
    message = str(caught.value)
    assert f"MARKETPULSE_PROMETHEUS_RULE_LABELS: {expected}" in message


def test_a_settings_value_that_is_not_a_json_object_of_strings_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ValidationError) as caught:
        settings(monkeypatch, MARKETPULSE_SERVICE_MONITOR_LABELS=json.dumps({"release": 1}))
    assert "service_monitor_labels" in str(caught.value)
