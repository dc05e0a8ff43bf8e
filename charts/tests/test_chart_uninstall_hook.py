"""The pre-delete hook that deletes the served StockPipelines before `helm uninstall` removes the operator."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer

from marketpulse.cli import app
from marketpulse.operator.rbac import CLEANUP_RULES

pytestmark = [pytest.mark.helm]

Manifest = dict[str, Any]
Render = Callable[..., list[Manifest]]
Template = Callable[..., subprocess.CompletedProcess[str]]
CI = Path(__file__).parents[1] / "marketpulse" / "ci"
HOOK = "helm.sh/hook"


def hooks(manifests: list[Manifest]) -> list[Manifest]:
    return [m for m in manifests if HOOK in (m["metadata"].get("annotations") or {})]


def by_kind(manifests: list[Manifest]) -> dict[str, list[Manifest]]:
    found: dict[str, list[Manifest]] = {}
    for manifest in manifests:
        found.setdefault(manifest["kind"], []).append(manifest)
    return found


def job(manifests: list[Manifest]) -> Manifest:
    (found,) = by_kind(hooks(manifests))["Job"]
    return found


def test_by_default_uninstall_first_runs_a_cleanup_job_with_its_own_account_and_cluster_rbac(
    render: Render,
) -> None:
    objects = hooks(render(hooks=True))
    kinds = by_kind(objects)
    pod = job(objects)["spec"]["template"]["spec"]

    assert sorted(kinds) == ["ClusterRole", "ClusterRoleBinding", "Job", "ServiceAccount"]
    assert all(m["metadata"]["annotations"][HOOK] == "pre-delete" for m in objects)
    assert all(m["metadata"]["name"] == "mp-marketpulse-uninstall" for m in objects)
    assert pod["serviceAccountName"] == "mp-marketpulse-uninstall"
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    assert container["image"] == "ghcr.io/marketpulse/marketpulse:0.1.0"
    # No --namespace: the operator serves every namespace, so every pipeline goes.
    assert container["args"] == ["operator", "cleanup", "--timeout=240"]
    binding = kinds["ClusterRoleBinding"][0]
    assert binding["roleRef"]["name"] == "mp-marketpulse-uninstall"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "mp-marketpulse-uninstall", "namespace": "markets"}
    ]


def test_the_account_and_its_rbac_exist_before_the_job_and_all_go_once_it_succeeded(render: Render) -> None:
    objects = hooks(render(hooks=True))
    weight = {m["kind"]: int(m["metadata"]["annotations"]["helm.sh/hook-weight"]) for m in objects}

    assert weight["ServiceAccount"] < weight["ClusterRoleBinding"] < weight["Job"]
    assert weight["ClusterRole"] < weight["ClusterRoleBinding"]
    for manifest in objects:
        policy = manifest["metadata"]["annotations"]["helm.sh/hook-delete-policy"].split(",")
        assert sorted(policy) == ["before-hook-creation", "hook-succeeded"], manifest["kind"]


def test_the_hook_role_has_exactly_the_cleanup_rules_from_rbac_py(render: Render) -> None:
    (role,) = by_kind(hooks(render(hooks=True)))["ClusterRole"]
    assert role["rules"] == CLEANUP_RULES


def test_watching_some_namespaces_cleans_up_only_those_with_a_role_in_each(render: Render) -> None:
    values = {"operator": {"watchAnyNamespace": False, "watchNamespaces": ["team-a", "team-b"]}}
    kinds = by_kind(hooks(render(values, hooks=True)))
    (container,) = job(hooks(render(values, hooks=True)))["spec"]["template"]["spec"]["containers"]

    assert sorted(kinds) == ["Job", "Role", "RoleBinding", "ServiceAccount"]
    assert sorted(r["metadata"]["namespace"] for r in kinds["Role"]) == ["team-a", "team-b"]
    assert all(r["rules"] == CLEANUP_RULES for r in kinds["Role"])
    assert sorted(b["metadata"]["namespace"] for b in kinds["RoleBinding"]) == ["team-a", "team-b"]
    assert container["args"] == [
        "operator",
        "cleanup",
        "--timeout=240",
        "--namespace=team-a",
        "--namespace=team-b",
    ]


def test_should_not_create_the_uninstall_hook_when_uninstall_delete_pipelines_is_false(
    render: Render,
) -> None:
    assert hooks(render({"uninstall": {"deletePipelines": False}}, hooks=True)) == []
    assert hooks(render(files=[CI / "minimal-values.yaml"], hooks=True)) == []


def test_without_chart_rbac_the_hook_runs_as_the_named_account_and_creates_none(render: Render) -> None:
    values = {"rbac": {"create": False}, "uninstall": {"serviceAccountName": "platform-cleanup"}}
    objects = hooks(render(values, hooks=True))

    assert sorted(by_kind(objects)) == ["Job"]
    assert job(objects)["spec"]["template"]["spec"]["serviceAccountName"] == "platform-cleanup"


def test_without_chart_rbac_or_a_named_account_the_chart_is_refused_naming_the_key(
    template: Template,
) -> None:
    result = template({"rbac": {"create": False}})
    assert result.returncode != 0
    assert "uninstall.serviceAccountName: required when rbac.create is false" in result.stderr
    assert "uninstall.deletePipelines=false" in result.stderr


def test_the_timeout_reaches_the_command_and_the_job_outlives_it(render: Render) -> None:
    spec = job(hooks(render({"uninstall": {"timeoutSeconds": 600}}, hooks=True)))["spec"]
    (container,) = spec["template"]["spec"]["containers"]

    assert "--timeout=600" in container["args"]
    assert spec["activeDeadlineSeconds"] > 600


def test_the_hook_is_not_part_of_the_release_manifest(render: Render) -> None:
    assert hooks(render()) == []
    assert "Job" not in by_kind(render())


def test_the_hook_command_line_is_one_the_marketpulse_cli_accepts(render: Render) -> None:
    values = {"operator": {"watchAnyNamespace": False, "watchNamespaces": ["team-a"]}}
    (container,) = job(hooks(render(values, hooks=True)))["spec"]["template"]["spec"]["containers"]
    command = typer.main.get_command(app)
    group, subcommand, *args = container["args"]

    assert subcommand == "cleanup"
    cleanup = command.commands[group].commands[subcommand]  # type: ignore[attr-defined]
    context = cleanup.make_context(subcommand, args)
    assert list(context.params["namespace"]) == ["team-a"]  # click before 8.5 parses a tuple
    assert context.params["timeout"] == 240


def test_the_hook_pod_meets_the_restricted_pod_security_standard_and_is_labelled(render: Render) -> None:
    objects = hooks(render(hooks=True))
    pod = job(objects)["spec"]["template"]["spec"]
    (container,) = pod["containers"]

    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["resources"]["limits"]["memory"]
    for manifest in objects:
        labels = manifest["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == "mp"
        assert labels["app.kubernetes.io/component"] == "uninstall", manifest["kind"]
