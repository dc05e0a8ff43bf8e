"""Each pipeline's NetworkPolicy: what may reach its pods and what they may call, from the spec."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from marketpulse.contract.api import StockPipeline, validate_stockpipeline
from marketpulse.contract.workloads import Platform, names_for
from marketpulse.operator.builders import BuildContext, render_children
from marketpulse.operator.builders.context import NetworkRules
from marketpulse.operator.settings import OperatorSettings

SAMPLES = Path(__file__).parents[1] / "config" / "samples"
SECRET = {"secretKeyRef": {"name": "s", "key": "k"}}


def pipeline(name: str = "synthetic-duckdb", **spec: Any) -> StockPipeline:
    document = yaml.safe_load((SAMPLES / f"stockpipeline-{name}.yaml").read_text())
    document["metadata"]["namespace"] = "trading"
    document["spec"].update(spec)
    return validate_stockpipeline(document)


def policy(p: StockPipeline, rules: NetworkRules | None = None, **platform: str) -> dict[str, Any]:
    ctx = BuildContext(
        names=names_for(p), platform=Platform(**platform), network=rules if rules else NetworkRules()
    )
    [found] = [m for m in render_children(p, ctx) if m["kind"] == "NetworkPolicy"]
    return found


def egress_ports(found: dict[str, Any]) -> list[tuple[str, int]]:
    return [(p["protocol"], p["port"]) for rule in found["spec"]["egress"] for p in rule["ports"]]


def ingress(found: dict[str, Any]) -> dict[int, list[str]]:
    """Port -> the namespaces that may reach it."""
    allowed = {}
    for rule in found["spec"]["ingress"]:
        [peer] = rule["from"]
        [match] = peer["namespaceSelector"]["matchExpressions"]
        assert (match["key"], match["operator"]) == ("kubernetes.io/metadata.name", "In")
        assert set(peer) == {"namespaceSelector"}
        [port] = rule["ports"]
        allowed[port["port"]] = match["values"]
    return allowed


def test_the_policy_selects_every_pod_of_the_pipeline_and_no_other_and_limits_both_directions() -> None:
    found = policy(pipeline())
    assert found["metadata"]["name"] == "demo"
    assert found["spec"]["podSelector"] == {
        "matchLabels": {
            "app.kubernetes.io/instance": "demo",
            "app.kubernetes.io/managed-by": "marketpulse-operator",
        }
    }
    assert found["spec"]["policyTypes"] == ["Ingress", "Egress"]


def test_only_the_dashboard_port_from_ingress_controllers_and_metrics_from_monitoring_may_come_in() -> None:
    found = policy(pipeline(), NetworkRules(dashboard_from=("traefik",), metrics_from=("monitoring", "obs")))
    assert ingress(found) == {8501: ["traefik"], 9102: ["monitoring", "obs"]}


def test_without_a_dashboard_nothing_may_reach_its_port() -> None:
    assert set(ingress(policy(pipeline(dashboard={"enabled": False})))) == {9102}


def test_empty_namespace_lists_allow_nothing_in_rather_than_everything() -> None:
    found = policy(pipeline(), NetworkRules(dashboard_from=(), metrics_from=()))
    assert found["spec"]["ingress"] == []  # a policy with no ingress rule denies all ingress


def test_the_defaults_call_dns_the_strimzi_bootstrap_and_the_platform_s3_only() -> None:
    found = policy(pipeline(), s3_endpoint="http://minio.storage.svc:9000")
    assert egress_ports(found) == [("UDP", 53), ("TCP", 53), ("TCP", 9000), ("TCP", 9092)]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"storage": {"endpoint": "https://s3.eu-west-1.amazonaws.com"}}, [443, 9092]),
        ({"kafka": {"topicBackend": "direct", "bootstrapServers": "b1:9093,b2:19093"}}, [9000, 9093, 19093]),
        ({"source": {"type": "finnhub", "finnhub": {"apiKey": SECRET}}}, [443, 9000, 9092]),
        (
            {
                "alerts": {
                    "rules": [{"name": "r", "staleFeed": {"seconds": 120}}],
                    "webhookUrl": SECRET,
                }
            },
            [443, 9000, 9092],
        ),
    ],
)
def test_each_server_the_spec_names_opens_only_its_port(spec: dict[str, Any], expected: list[int]) -> None:
    found = policy(pipeline(**spec), s3_endpoint="http://minio.storage.svc:9000")
    assert [port for proto, port in egress_ports(found) if proto == "TCP" and port != 53] == expected


def test_snowflake_opens_https_or_the_port_of_its_endpoint() -> None:
    snowflake = {"account": "acme", "user": "u", "database": "D", "password": SECRET}
    default = policy(pipeline(warehouse={"type": "snowflake", "snowflake": snowflake}))
    custom = policy(
        pipeline(
            warehouse={
                "type": "snowflake",
                "snowflake": {**snowflake, "endpoint": "https://sf.internal:8443"},
            }
        )
    )
    assert ("TCP", 443) in egress_ports(default)
    assert ("TCP", 8443) in egress_ports(custom)
    assert ("TCP", 443) not in egress_ports(custom)


def test_the_platform_can_add_egress_ports_and_turn_the_policy_off() -> None:
    rules = OperatorSettings(network_extra_egress_ports="3128, 8443").network_rules()
    assert rules is not None
    assert {("TCP", 3128), ("TCP", 8443)} <= set(egress_ports(policy(pipeline(), rules)))
    off = OperatorSettings(network_policies=False)
    p = pipeline()
    ctx = BuildContext(names=names_for(p), network=off.network_rules())
    assert not [m for m in render_children(p, ctx) if m["kind"] == "NetworkPolicy"]


@pytest.mark.parametrize("ports", ["0", "65536", "80,x", "-1"])
def test_extra_egress_ports_that_are_not_ports_are_refused_naming_the_setting(ports: str) -> None:
    with pytest.raises(ValueError, match="network_extra_egress_ports"):
        OperatorSettings(network_extra_egress_ports=ports)


# --- the chart's `helm test` pod ---------------------------------------------------------------------


def test_the_charts_test_pod_may_reach_the_dashboard_only_by_its_label_and_only_from_its_namespace() -> None:
    rules = OperatorSettings(network_dashboard_probe_namespace="marketpulse").network_rules()
    assert rules is not None
    found = policy(pipeline(), rules)
    probes = [r for r in found["spec"]["ingress"] if "podSelector" in r["from"][0]]

    # One peer with both selectors: pods with the label in that namespace, not either alone.
    assert probes == [
        {
            "from": [
                {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "marketpulse"}},
                    "podSelector": {"matchLabels": {"marketpulse.io/dashboard-probe": "true"}},
                }
            ],
            "ports": [{"protocol": "TCP", "port": 8501}],
        }
    ]


def test_no_probe_namespace_or_no_dashboard_lets_no_test_pod_in() -> None:
    assert all("podSelector" not in r["from"][0] for r in policy(pipeline())["spec"]["ingress"])
    rules = NetworkRules(dashboard_probe_namespace="marketpulse")
    no_dashboard = policy(pipeline(dashboard={"enabled": False}), rules)
    assert set(ingress(no_dashboard)) == {9102}


@pytest.mark.parametrize("namespace", ["Marketpulse", "a b", "-x", "x" * 64])
def test_a_probe_namespace_that_is_no_namespace_name_is_refused_naming_the_setting(namespace: str) -> None:
    with pytest.raises(ValueError, match="network_dashboard_probe_namespace"):
        OperatorSettings(network_dashboard_probe_namespace=namespace)
