"""What `helm template charts/marketpulse` renders by default, its RBAC and the operator's Deployment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from chart_manifests import Render, container, kinds, of_kind, one, triples

from marketpulse.cli import app
from marketpulse.operator.rbac import CLUSTER_RULES
from marketpulse.operator.settings import OperatorSettings

pytestmark = [pytest.mark.helm]

CI = Path(__file__).parents[1] / "marketpulse" / "ci"
ROOT = Path(__file__).parents[2]

CLUSTER_SCOPED_RESOURCES = {"customresourcedefinitions", "namespaces", "clusterkopfpeerings"}


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
    assert args == ["operator", "run", "--peering=mp-marketpulse"]
    assert one(manifests, "ClusterKopfPeering")["metadata"]["name"] == "mp-marketpulse"


def test_rbac_and_service_account_are_not_created_when_switched_off(render: Render) -> None:
    manifests = render(files=[CI / "minimal-values.yaml"])
    assert kinds(manifests) == ["Deployment"]
    assert one(manifests, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "default"


# --- the operator's Deployment ---------------------------------------------------------------------


def test_the_container_runs_a_marketpulse_subcommand_that_exists(render: Render) -> None:
    group, subcommand, *_ = container(render())["args"]
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    assert subcommand in commands[group].commands


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


@pytest.mark.parametrize(
    ("values", "expected"), [({}, "shared"), ({"s3Credentials": "versitygw"}, "versitygw")]
)
def test_security_s3_credentials_reaches_the_operator_as_its_s3_iam_setting(
    render: Render, values: dict[str, str], expected: str
) -> None:
    env = {e["name"]: e for e in container(render({"security": values}))["env"]}
    assert env["MARKETPULSE_S3_IAM"]["value"] == expected
    assert OperatorSettings(s3_iam=env["MARKETPULSE_S3_IAM"]["value"]).platform().s3_per_pipeline == (
        expected != "shared"
    )


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


def test_the_pipelines_network_policy_and_cleanup_values_reach_the_operator_settings(render: Render) -> None:
    values = {
        "networkPolicy": {
            "pipelines": {
                "enabled": False,
                "dashboardFrom": ["edge", "traefik"],
                "metricsFrom": ["obs"],
                "extraEgressPorts": [3128, 8443],
            }
        },
        "operator": {"cleanup": {"attempts": 4, "permanentAttempts": 2, "retrySeconds": 3}},
    }
    env = {e["name"]: e["value"] for e in container(render(values))["env"] if "value" in e}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        settings = OperatorSettings()
        patch.setenv("MARKETPULSE_NETWORK_POLICIES", "true")
        rules = OperatorSettings().network_rules()

    assert settings.network_rules() is None
    assert rules is not None
    assert (rules.dashboard_from, rules.metrics_from) == (("edge", "traefik"), ("obs",))
    assert rules.extra_egress_ports == (3128, 8443)
    budget = settings.cleanup_budget()
    assert (budget.attempts, budget.permanent_attempts, budget.retry_seconds) == (4, 2, 3.0)
    assert budget.stop_timeout_seconds == 120


def test_the_workloads_node_disk_reaches_the_operator_settings_and_sizes_their_scratch(
    render: Render,
) -> None:
    scratch = {"base": "96Mi", "gold": "2Gi", "logs": "32Mi"}
    operator = container(render({"workloads": {"scratch": scratch}}))
    env = {e["name"]: e.get("value") for e in operator["env"]}
    assert {k: env[f"MARKETPULSE_SCRATCH_{k.upper()}"] for k in scratch} == scratch
    with pytest.MonkeyPatch.context() as patch:
        for name in ("MARKETPULSE_SCRATCH_BASE", "MARKETPULSE_SCRATCH_GOLD", "MARKETPULSE_SCRATCH_LOGS"):
            patch.setenv(name, str(env[name]))
        sizes = OperatorSettings().platform().scratch
    assert (sizes.base, sizes.gold, sizes.logs) == (96 << 20, 2 << 30, 32 << 20)


def test_the_operators_own_tmp_and_logs_are_bounded_as_ephemeral_storage(render: Render) -> None:
    manifests = render()
    operator = container(manifests)
    [tmp] = one(manifests, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert tmp["emptyDir"]["sizeLimit"] == "64Mi"
    assert operator["resources"]["requests"]["ephemeral-storage"] == "128Mi"
    assert operator["resources"]["limits"]["ephemeral-storage"] == "128Mi"
