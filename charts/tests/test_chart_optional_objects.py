"""What `helm template charts/marketpulse` renders when asked: monitoring, dashboards, availability and
network, a Kafka cluster, the S3 Secret and pipelines from values."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from chart_manifests import Render, container, kinds, of_kind, one

from marketpulse.contract.api.v1alpha1 import StockPipeline

pytestmark = [pytest.mark.helm]

CI = Path(__file__).parents[1] / "marketpulse" / "ci"
ROOT = Path(__file__).parents[2]


# --- metrics, ServiceMonitor, dashboards -----------------------------------------------------------


def test_the_metrics_service_selects_the_operator_pods_on_the_metrics_port(render: Render) -> None:
    manifests = render()
    service = one(manifests, "Service")
    pod_labels = one(manifests, "Deployment")["spec"]["template"]["metadata"]["labels"]

    assert service["metadata"]["name"] == "mp-marketpulse-metrics"
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}
    ]


def test_should_not_create_a_service_monitor_when_metrics_service_monitor_enabled_is_false(
    render: Render,
) -> None:
    assert not of_kind(render(), "ServiceMonitor")


def test_should_create_a_service_monitor_that_selects_the_metrics_service_when_enabled(
    render: Render,
) -> None:
    manifests = render(files=[CI / "monitoring-values.yaml"])
    monitor = one(manifests, "ServiceMonitor")
    service = one(manifests, "Service")

    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["markets"]}
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "15s", "scrapeTimeout": "10s"}
    ]


def test_a_service_monitor_without_the_metrics_service_is_refused_with_the_reason(
    template: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    result = template({"metrics": {"service": {"enabled": False}, "serviceMonitor": {"enabled": True}}})
    assert result.returncode != 0
    assert "metrics.serviceMonitor.enabled needs metrics.service.enabled" in result.stderr


def test_should_not_create_dashboard_config_maps_when_dashboards_enabled_is_false(render: Render) -> None:
    assert not of_kind(render(), "ConfigMap")


def test_should_create_one_config_map_per_dashboard_json_with_the_configurable_sidecar_label(
    chart: Path, helm: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    copy = tmp_path / "marketpulse"
    shutil.copytree(chart, copy)
    dashboards = copy / "files" / "dashboards"
    for shipped in dashboards.glob("*.json"):  # only this test's two files, not the generated ones
        shipped.unlink()
    for stem in ("operator_overview", "pipeline-health"):
        (dashboards / f"{stem}.json").write_text(json.dumps({"uid": stem, "title": stem}, sort_keys=True))
    argv = ["template", "mp", copy, "-n", "markets", "--set", "dashboards.enabled=true"]
    result = helm(*argv, "--set", "dashboards.label=grafana_dash", "--set", "dashboards.namespace=monitoring")
    assert result.returncode == 0, result.stderr
    maps = {
        m["metadata"]["name"]: m for m in yaml.safe_load_all(result.stdout) if m and m["kind"] == "ConfigMap"
    }

    assert sorted(maps) == [
        "mp-marketpulse-dashboard-operator-overview",
        "mp-marketpulse-dashboard-pipeline-health",
    ]
    overview = maps["mp-marketpulse-dashboard-operator-overview"]
    assert overview["metadata"]["labels"]["grafana_dash"] == "1"
    assert overview["metadata"]["namespace"] == "monitoring"
    assert json.loads(overview["data"]["operator_overview.json"]) == {
        "title": "operator_overview",
        "uid": "operator_overview",
    }


def test_the_dashboards_folder_ships_with_its_readme(chart: Path) -> None:
    assert (chart / "files" / "dashboards" / "README.md").is_file()


# --- availability and network ----------------------------------------------------------------------


def test_the_pod_disruption_budget_allows_one_operator_pod_down_and_selects_only_operator_pods(
    render: Render,
) -> None:
    manifests = render()
    budget = one(manifests, "PodDisruptionBudget")
    assert budget["spec"]["maxUnavailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "operator"
    assert not of_kind(render({"podDisruptionBudget": {"enabled": False}}), "PodDisruptionBudget")


def test_the_network_policy_admits_only_metrics_scrapes_and_leaves_egress_open_by_default(
    render: Render,
) -> None:
    policy = one(render(), "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert policy["spec"]["ingress"] == [{"ports": [{"port": "metrics", "protocol": "TCP"}]}]


def test_the_network_policy_restricts_egress_to_the_given_rules_plus_dns(render: Render) -> None:
    policy = one(render(files=[CI / "namespaced-values.yaml"]), "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    dns, *rules = policy["spec"]["egress"]
    assert {p["port"] for p in dns["ports"]} == {53}
    assert [p["port"] for p in rules[0]["ports"]] == [443, 6443, 9000, 9092]
    assert policy["spec"]["ingress"][0]["from"][0]["namespaceSelector"]


def test_several_replicas_roll_without_a_gap(render: Render) -> None:
    deployment = one(render(files=[CI / "namespaced-values.yaml"]), "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}


# --- Kafka (Strimzi), S3, pipelines ----------------------------------------------------------------


def test_should_not_create_a_kafka_cluster_unless_kafka_create_is_true(render: Render) -> None:
    assert not {"Kafka", "KafkaNodePool"} & set(kinds(render()))


def test_the_dev_kafka_cluster_is_kraft_with_one_dual_role_node_pool_named_for_the_pipeline_default(
    render: Render,
) -> None:
    manifests = render(files=[CI / "kafka-values.yaml"])
    kafka = one(manifests, "Kafka")
    pool = one(manifests, "KafkaNodePool")

    assert kafka["apiVersion"] == pool["apiVersion"] == "kafka.strimzi.io/v1"
    assert kafka["metadata"]["name"] == "marketpulse"  # StockPipeline spec.kafka.clusterName's default
    assert pool["metadata"]["labels"]["strimzi.io/cluster"] == "marketpulse"
    assert pool["spec"]["roles"] == ["controller", "broker"]
    assert kafka["spec"]["kafka"]["listeners"] == [
        {
            "name": "plain",
            "port": 9092,
            "type": "internal",
            "tls": False,
            "authentication": {"type": "scram-sha-512"},
        }
    ]
    assert kafka["spec"]["entityOperator"] == {"topicOperator": {}, "userOperator": {}}
    assert "annotations" not in kafka["metadata"]


def test_the_dev_kafka_authenticates_every_client_and_its_one_super_user_is_the_operators_kafkauser(
    render: Render,
) -> None:
    manifests = render(files=[CI / "kafka-values.yaml"])
    kafka = one(manifests, "Kafka")
    user = one(manifests, "KafkaUser")
    env = {e["name"]: e for e in container(manifests)["env"]}

    assert kafka["spec"]["kafka"]["authorization"] == {
        "type": "simple",
        "superUsers": ["mp-marketpulse-operator"],
    }
    assert user["metadata"]["name"] == "mp-marketpulse-operator"
    assert user["metadata"]["labels"]["strimzi.io/cluster"] == "marketpulse"
    assert user["spec"] == {"authentication": {"type": "scram-sha-512"}}
    assert env["MARKETPULSE_KAFKA_SECURITY_PROTOCOL"]["value"] == "SASL_PLAINTEXT"
    assert env["MARKETPULSE_KAFKA_SASL_MECHANISM"]["value"] == "SCRAM-SHA-512"
    assert env["MARKETPULSE_KAFKA_SASL_USERNAME"]["value"] == "mp-marketpulse-operator"
    # Strimzi's User Operator writes the password into the Secret named after the KafkaUser.
    assert env["MARKETPULSE_KAFKA_SASL_PASSWORD"]["valueFrom"] == {
        "secretKeyRef": {"name": "mp-marketpulse-operator", "key": "password"}
    }


def test_should_not_authenticate_or_authorize_when_kafka_authentication_is_none(render: Render) -> None:
    manifests = render({"kafka": {"create": True, "authentication": "none"}})
    kafka = one(manifests, "Kafka")
    env = {e["name"]: e for e in container(manifests)["env"]}

    assert "authentication" not in kafka["spec"]["kafka"]["listeners"][0]
    assert "authorization" not in kafka["spec"]["kafka"]
    assert not of_kind(manifests, "KafkaUser")
    assert env["MARKETPULSE_KAFKA_SECURITY_PROTOCOL"]["value"] == "PLAINTEXT"
    assert "MARKETPULSE_KAFKA_SASL_PASSWORD" not in env


def test_the_operators_sasl_login_to_any_kafka_comes_from_its_secret_by_reference(render: Render) -> None:
    login = {"securityProtocol": "SASL_SSL", "saslMechanism": "SCRAM-SHA-256", "secretName": "kafka-admin"}
    env = {e["name"]: e for e in container(render({"operator": {"kafkaLogin": login}}))["env"]}

    assert env["MARKETPULSE_KAFKA_SECURITY_PROTOCOL"]["value"] == "SASL_SSL"
    assert env["MARKETPULSE_KAFKA_SASL_MECHANISM"]["value"] == "SCRAM-SHA-256"
    assert env["MARKETPULSE_KAFKA_SASL_USERNAME"]["valueFrom"] == {
        "secretKeyRef": {"name": "kafka-admin", "key": "username"}
    }
    assert env["MARKETPULSE_KAFKA_SASL_PASSWORD"]["valueFrom"] == {
        "secretKeyRef": {"name": "kafka-admin", "key": "password"}
    }


def test_a_sasl_login_without_its_secret_is_refused_naming_the_value(
    template: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    result = template({"operator": {"kafkaLogin": {"securityProtocol": "SASL_PLAINTEXT"}}})
    assert result.returncode != 0
    assert "operator.kafkaLogin.secretName: required with a SASL securityProtocol" in result.stderr


def test_a_v1beta2_kafka_cluster_carries_the_kraft_and_node_pool_annotations(render: Render) -> None:
    kafka = one(render({"kafka": {"create": True, "apiVersion": "kafka.strimzi.io/v1beta2"}}), "Kafka")
    assert kafka["metadata"]["annotations"] == {
        "strimzi.io/node-pools": "enabled",
        "strimzi.io/kraft": "enabled",
    }


def test_persistent_kafka_storage_is_a_jbod_volume_shared_with_kraft_metadata(render: Render) -> None:
    pool = one(render({"kafka": {"create": True, "storage": {"class": "fast"}}}), "KafkaNodePool")
    assert pool["spec"]["storage"] == {
        "type": "jbod",
        "volumes": [
            {
                "id": 0,
                "type": "persistent-claim",
                "size": "10Gi",
                "deleteClaim": True,
                "kraftMetadata": "shared",
                "class": "fast",
            }
        ],
    }


def test_should_not_create_an_s3_secret_unless_s3_create_secret_is_true(render: Render) -> None:
    assert not of_kind(render(), "Secret")


def test_the_s3_secret_lands_in_the_release_namespace_and_every_pipeline_namespace(render: Render) -> None:
    values = yaml.safe_load((CI / "pipelines-values.yaml").read_text())
    values["pipelines"].append({"name": "other", "namespace": "research", "spec": {"watchlist": ["IBM"]}})
    secrets = of_kind(render(values), "Secret")

    assert sorted(s["metadata"]["namespace"] for s in secrets) == ["markets", "research"]
    assert secrets[0]["stringData"]["AWS_ACCESS_KEY_ID"] == "marketpulse"
    assert secrets[0]["stringData"]["rootUser"] == "marketpulse"


def test_a_chart_managed_secret_without_credentials_is_refused_with_the_key_to_set(
    template: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    result = template({"s3": {"createSecret": True}})
    assert result.returncode != 0
    assert "s3.accessKeyId: required when s3.createSecret is true" in result.stderr


def test_pipelines_from_values_render_as_stock_pipelines_that_the_typed_api_accepts(render: Render) -> None:
    pipelines = of_kind(render(files=[CI / "pipelines-values.yaml"]), "StockPipeline")

    assert [p["metadata"]["name"] for p in pipelines] == ["demo", "fx-lab"]
    assert all(p["metadata"]["namespace"] == "markets" for p in pipelines)
    assert pipelines[1]["metadata"]["labels"]["team"] == "research"
    for document in pipelines:
        StockPipeline.model_validate(document)


def test_the_sample_pipelines_can_be_given_as_chart_values(render: Render) -> None:
    samples = sorted((ROOT / "operator" / "config" / "samples").glob("*.yaml"))
    items = []
    for path in samples:
        document = yaml.safe_load(path.read_text())
        items.append({"name": document["metadata"]["name"], "spec": document["spec"]})
    rendered = of_kind(render({"pipelines": items}), "StockPipeline")
    assert [p["spec"] for p in rendered] == [i["spec"] for i in items]


@pytest.mark.parametrize("server", ["versitygw", "minio"])
def test_with_per_pipeline_s3_credentials_the_admin_keys_stay_in_the_release_namespace(
    render: Render, server: str
) -> None:
    values = yaml.safe_load((CI / "pipelines-values.yaml").read_text())
    values["pipelines"].append({"name": "other", "namespace": "research", "spec": {"watchlist": ["IBM"]}})
    values["security"] = {"s3Credentials": server}
    secrets = of_kind(render(values), "Secret")

    assert [s["metadata"]["namespace"] for s in secrets] == ["markets"]


def test_an_unknown_s3_credentials_mode_is_refused_by_the_values_schema(
    template: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    result = template({"security": {"s3Credentials": "ceph"}})
    assert result.returncode != 0
    assert "s3Credentials" in result.stderr
