"""What `helm template charts/marketpulse` renders, as a spec: one test per promise of the chart."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from marketpulse.cli import app
from marketpulse.contract.api.v1alpha1 import StockPipeline
from marketpulse.operator.rbac import CLUSTER_RULES
from marketpulse.operator.settings import OperatorSettings

pytestmark = [pytest.mark.helm]

Manifest = dict[str, Any]
Render = Callable[..., list[Manifest]]
CI = Path(__file__).parents[1] / "marketpulse" / "ci"
ROOT = Path(__file__).parents[2]

CLUSTER_SCOPED_RESOURCES = {"customresourcedefinitions", "namespaces", "clusterkopfpeerings"}


def kinds(manifests: list[Manifest]) -> list[str]:
    return sorted(m["kind"] for m in manifests)


def one(manifests: list[Manifest], kind: str, name: str | None = None) -> Manifest:
    found = [m for m in manifests if m["kind"] == kind and name in (None, m["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def of_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def container(manifests: list[Manifest]) -> Manifest:
    pod = one(manifests, "Deployment")["spec"]["template"]["spec"]
    (operator,) = pod["containers"]
    result: Manifest = operator
    return result


def triples(rules: list[dict[str, list[str]]]) -> set[tuple[str, str, str]]:
    """What a list of PolicyRules grants, one (apiGroup, resource, verb) at a time."""
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


# --- defaults --------------------------------------------------------------------------------------


def test_defaults_render_the_operator_its_account_rbac_metrics_service_pdb_networkpolicy_and_peering(
    render: Render,
) -> None:
    assert kinds(render()) == [
        "ClusterKopfPeering",
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Service",
        "ServiceAccount",
    ]


def test_every_object_carries_the_standard_labels_and_operator_objects_the_operator_component(
    render: Render,
) -> None:
    for manifest in render(files=[CI / "pipelines-values.yaml", CI / "kafka-values.yaml"]):
        labels = manifest["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == "mp", manifest["kind"]
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/part-of"] == "marketpulse"
        assert labels["helm.sh/chart"] == "marketpulse-0.1.0"
        operator_object = manifest["kind"] not in ("StockPipeline", "Secret", "Kafka", "KafkaNodePool")
        assert (labels.get("app.kubernetes.io/component") == "operator") is operator_object, manifest["kind"]


def test_names_are_release_and_chart_unless_the_release_name_already_says_marketpulse(
    render: Render,
) -> None:
    assert one(render(), "Deployment")["metadata"]["name"] == "mp-marketpulse"
    assert one(render(release="marketpulse"), "Deployment")["metadata"]["name"] == "marketpulse"
    assert one(render({"fullnameOverride": "pulse"}), "Deployment")["metadata"]["name"] == "pulse"


# --- RBAC ------------------------------------------------------------------------------------------


def test_the_cluster_role_has_exactly_the_operators_rules_from_rbac_py_when_watching_every_namespace(
    render: Render,
) -> None:
    manifests = render()
    assert one(manifests, "ClusterRole")["rules"] == CLUSTER_RULES
    assert not of_kind(manifests, "Role")
    binding = one(manifests, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == "mp-marketpulse"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "mp-marketpulse", "namespace": "markets"}
    ]


def test_the_rbac_template_groups_its_rules_under_framework_and_application_comments(chart: Path) -> None:
    text = (chart / "templates" / "_helpers.tpl").read_text() + (
        chart / "templates" / "rbac.yaml"
    ).read_text()
    assert text.count("# Framework:") == 4
    assert text.count("# Application:") == 4
    for line in text.splitlines():
        assert '"*"' not in line, f"no wildcards in RBAC: {line}"


def test_watching_one_namespace_moves_every_namespaced_rule_into_a_role_there_and_keeps_only_cluster_reads(
    render: Render,
) -> None:
    manifests = render({"operator": {"watchAnyNamespace": False}})
    cluster_role = one(manifests, "ClusterRole")
    role = one(manifests, "Role")
    binding = one(manifests, "RoleBinding")
    granted = triples(cluster_role["rules"]) | triples(role["rules"])

    assert role["metadata"]["namespace"] == "markets"
    assert binding["metadata"]["namespace"] == "markets"
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "mp-marketpulse",
    }
    assert {resource for _, resource, _ in triples(cluster_role["rules"])} == {
        "customresourcedefinitions",
        "namespaces",
    }
    assert {verb for _, _, verb in triples(cluster_role["rules"])} == {"get", "list", "watch"}
    # Nothing beyond rbac.py, and everything of rbac.py that a namespaced operator can use.
    assert granted == {t for t in triples(CLUSTER_RULES) if t[1] != "clusterkopfpeerings"}
    assert not any(resource in CLUSTER_SCOPED_RESOURCES for _, resource, _ in triples(role["rules"]))


def test_watching_several_namespaces_gives_each_a_role_a_binding_and_a_kopf_peering(render: Render) -> None:
    manifests = render({"operator": {"watchAnyNamespace": False, "watchNamespaces": ["team-a", "team-b"]}})

    assert sorted(r["metadata"]["namespace"] for r in of_kind(manifests, "Role")) == ["team-a", "team-b"]
    assert sorted(r["metadata"]["namespace"] for r in of_kind(manifests, "RoleBinding")) == [
        "team-a",
        "team-b",
    ]
    assert sorted(p["metadata"]["namespace"] for p in of_kind(manifests, "KopfPeering")) == [
        "team-a",
        "team-b",
    ]
    assert not of_kind(manifests, "ClusterKopfPeering")
    args = container(manifests)["args"]
    assert [a for a in args if a.startswith("--namespace")] == ["--namespace=team-a", "--namespace=team-b"]


def test_watching_every_namespace_passes_no_namespace_and_uses_a_cluster_peering(render: Render) -> None:
    manifests = render()
    args = container(manifests)["args"]
    assert args == ["operator", "--peering=mp-marketpulse"]
    assert one(manifests, "ClusterKopfPeering")["metadata"]["name"] == "mp-marketpulse"


def test_rbac_and_service_account_are_not_created_when_switched_off(render: Render) -> None:
    manifests = render(files=[CI / "minimal-values.yaml"])
    assert kinds(manifests) == ["Deployment"]
    assert one(manifests, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "default"


# --- the operator's Deployment ---------------------------------------------------------------------


def test_the_container_runs_a_marketpulse_subcommand_that_exists(render: Render) -> None:
    commands = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    assert container(render())["args"][0] in commands


def test_probes_use_the_operators_health_endpoint_on_its_configured_port(render: Render) -> None:
    operator = container(render({"operator": {"healthPort": 9091}}))
    ports = {p["name"]: p["containerPort"] for p in operator["ports"]}
    env = {e["name"]: e.get("value") for e in operator["env"]}

    assert ports["health"] == 9091
    assert env["MARKETPULSE_HEALTH_PORT"] == "9091"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert operator[probe]["httpGet"] == {"path": "/healthz", "port": "health"}, probe


def test_the_environment_is_exactly_what_the_operator_settings_accept(render: Render) -> None:
    operator = container(render(files=[CI / "pipelines-values.yaml"]))
    secret = {"S3_ACCESS_KEY": "access", "S3_SECRET_KEY": "secret"}
    env = {e["name"]: e["value"] if "value" in e else secret[e["name"]] for e in operator["env"]}
    known = {f"MARKETPULSE_{name.upper()}" for name in OperatorSettings.model_fields} | {
        "S3_ENDPOINT",
        "S3_REGION",
        "S3_ACCESS_KEY",
        "S3_SECRET_KEY",
    }

    assert set(env) <= known, set(env) - known
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        settings = OperatorSettings()
    assert settings.image == "ghcr.io/marketpulse/marketpulse:0.1.0"
    assert settings.s3_endpoint == "http://s3.storage.svc:7070"
    assert settings.s3_credentials_secret == "marketpulse-s3"
    assert settings.metrics_port == 8080
    assert settings.health_port == 8081
    assert settings.run_as_user == 10001


def test_s3_credentials_reach_the_operator_only_as_secret_references(render: Render) -> None:
    env = {e["name"]: e for e in container(render({"s3": {"secretName": "object-store"}}))["env"]}
    assert env["S3_ACCESS_KEY"]["valueFrom"] == {
        "secretKeyRef": {"name": "object-store", "key": "AWS_ACCESS_KEY_ID"}
    }
    assert env["S3_SECRET_KEY"]["valueFrom"] == {
        "secretKeyRef": {"name": "object-store", "key": "AWS_SECRET_ACCESS_KEY"}
    }
    assert env["MARKETPULSE_S3_CREDENTIALS_SECRET"]["value"] == "object-store"


def test_the_pod_meets_the_restricted_pod_security_standard(render: Render) -> None:
    manifests = render()
    pod = one(manifests, "Deployment")["spec"]["template"]["spec"]
    operator = container(manifests)

    assert pod["securityContext"]["runAsNonRoot"] is True
    assert isinstance(pod["securityContext"]["runAsUser"], int)
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert operator["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
    }
    assert {"name": "tmp", "mountPath": "/tmp"} in operator["volumeMounts"]
    assert operator["resources"]["requests"]
    assert operator["resources"]["limits"]["memory"]


def test_the_image_tag_defaults_to_the_app_version_and_a_digest_pins_it(render: Render) -> None:
    digest = "sha256:" + "a" * 64
    assert container(render())["image"] == "ghcr.io/marketpulse/marketpulse:0.1.0"
    assert container(render({"image": {"tag": "dev"}}))["image"] == "ghcr.io/marketpulse/marketpulse:dev"
    assert (
        container(render({"image": {"digest": digest}}))["image"]
        == f"ghcr.io/marketpulse/marketpulse@{digest}"
    )


def test_workloads_use_the_operator_image_unless_given_their_own(render: Render) -> None:
    def workload_image(values: dict[str, Any]) -> str:
        env = {e["name"]: e.get("value") for e in container(render(values))["env"]}
        return str(env["MARKETPULSE_IMAGE"])

    assert workload_image({"image": {"tag": "dev"}}) == "ghcr.io/marketpulse/marketpulse:dev"
    assert workload_image({"workloads": {"image": {"repository": "registry.local/mp"}}}) == (
        "registry.local/mp:0.1.0"
    )


def test_the_app_version_is_the_projects_version(chart: Path) -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert yaml.safe_load((chart / "Chart.yaml").read_text())["appVersion"] == project


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
        {"name": "plain", "port": 9092, "type": "internal", "tls": False}
    ]
    assert kafka["spec"]["entityOperator"] == {"topicOperator": {}, "userOperator": {}}
    assert "annotations" not in kafka["metadata"]


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
