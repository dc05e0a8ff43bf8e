"""The `helm test` hook: a restricted pod of the operator image that checks each pipeline's dashboard,
admitted by the pipelines' NetworkPolicies through its label."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from chart_manifests import Manifest, Render, container, of_kind

from marketpulse.operator.builders.network import DASHBOARD_PROBE_LABEL
from marketpulse.operator.settings import OperatorSettings

pytestmark = [pytest.mark.helm]

Template = Callable[..., subprocess.CompletedProcess[str]]
CHART = Path(__file__).parents[1] / "marketpulse"
CI = CHART / "ci"


def hook_pod(render: Render, values: dict[str, Any] | None = None, **kwargs: Any) -> Manifest:
    pods = of_kind(render(values, hooks=True, **kwargs), "Pod")
    assert len(pods) == 1, pods
    return pods[0]


def urls(pod: Manifest) -> list[str]:
    (tester,) = pod["spec"]["containers"]
    return [a for a in tester["command"][3:] if a.startswith("http")]


def test_the_test_pod_is_a_helm_test_hook_kept_for_its_log(render: Render) -> None:
    pod = hook_pod(render, {"tests": {"dashboards": ["demo"]}})

    assert pod["metadata"]["name"] == "mp-marketpulse-test-dashboards"
    assert pod["metadata"]["namespace"] == "markets"
    assert pod["metadata"]["annotations"] == {
        "helm.sh/hook": "test",
        "helm.sh/hook-delete-policy": "before-hook-creation",
    }
    assert pod["metadata"]["labels"]["app.kubernetes.io/component"] == "test"
    assert pod["spec"]["restartPolicy"] == "Never"


def test_the_test_pod_meets_the_restricted_pod_security_standard_with_no_account_token(
    render: Render,
) -> None:
    pod = hook_pod(render, {"tests": {"dashboards": ["demo"]}})
    spec = pod["spec"]
    (tester,) = spec["containers"]

    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert tester["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert tester["resources"]["limits"]["memory"] == "64Mi"
    assert spec["activeDeadlineSeconds"] == 120  # tests.timeoutSeconds and a minute


def test_the_test_pod_runs_the_checked_in_script_with_the_operator_image(render: Render) -> None:
    values = {"image": {"repository": "localhost/marketpulse-operator", "tag": "abc", "pullPolicy": "Never"}}
    pod = hook_pod(render, {**values, "tests": {"dashboards": ["demo"], "timeoutSeconds": 30}})
    (tester,) = pod["spec"]["containers"]
    script = (CHART / "files" / "tests" / "dashboard_health.py").read_text()

    assert tester["image"] == "localhost/marketpulse-operator:abc"
    assert tester["imagePullPolicy"] == "Never"
    assert tester["command"][:2] == ["python", "-c"]
    # The block scalar keeps the script's text (but for blank lines' trailing spaces helm's nindent adds).
    assert [line.rstrip() for line in tester["command"][2].splitlines()] == script.rstrip().splitlines()
    assert tester["command"][3] == "30"


def test_it_checks_the_pipelines_of_values_with_a_dashboard_and_those_tests_dashboards_names(
    render: Render,
) -> None:
    values = {
        "pipelines": [
            {"name": "demo", "spec": {"watchlist": ["AAPL"]}},
            {"name": "eu", "namespace": "trading", "spec": {"watchlist": ["SAP"]}},
            {"name": "headless", "spec": {"watchlist": ["AAPL"], "dashboard": {"enabled": False}}},
        ],
        "tests": {"dashboards": ["lab", "research/fx"]},
    }
    assert urls(hook_pod(render, values)) == [
        "http://demo-dashboard.markets.svc/_stcore/health",
        "http://eu-dashboard.trading.svc/_stcore/health",
        "http://lab-dashboard.markets.svc/_stcore/health",
        "http://fx-dashboard.research.svc/_stcore/health",
    ]


def test_with_no_pipeline_to_check_there_is_no_test_pod(render: Render) -> None:
    assert not of_kind(render(hooks=True), "Pod")
    headless = [{"name": "x", "spec": {"watchlist": ["AAPL"], "dashboard": {"enabled": False}}}]
    assert not of_kind(render({"pipelines": headless}, hooks=True), "Pod")


def test_the_test_pod_is_not_part_of_the_release_objects(render: Render) -> None:
    assert not of_kind(render({"tests": {"dashboards": ["demo"]}}), "Pod")


def test_the_test_pods_label_is_the_one_pipelines_network_policies_admit_from_the_release_namespace(
    render: Render,
) -> None:
    manifests = render({"tests": {"dashboards": ["demo"]}}, hooks=True)
    (pod,) = of_kind(manifests, "Pod")
    env = {e["name"]: e.get("value") for e in container(manifests)["env"]}

    assert pod["metadata"]["labels"][DASHBOARD_PROBE_LABEL] == "true"
    assert env["MARKETPULSE_NETWORK_DASHBOARD_PROBE_NAMESPACE"] == "markets"
    rules = OperatorSettings(network_dashboard_probe_namespace="markets").network_rules()
    assert rules is not None
    assert rules.dashboard_probe_namespace == pod["metadata"]["namespace"]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("a/b/c", "at '/tests/dashboards/0'"),
        ("Demo", "at '/tests/dashboards/0'"),
        ("../etc", "at '/tests/dashboards/0'"),
        ("x" * 200, "at '/tests/dashboards/0'"),
    ],
)
def test_a_tests_dashboards_entry_that_is_no_pipeline_is_refused_naming_it(
    template: Template, entry: str, message: str
) -> None:
    result = template({"tests": {"dashboards": [entry]}}, hooks=True)
    assert result.returncode != 0
    assert message in result.stderr


def test_the_timeout_is_bounded(template: Template) -> None:
    result = template({"tests": {"timeoutSeconds": 0}})
    assert result.returncode != 0
    assert "at '/tests/timeoutSeconds'" in result.stderr


def test_the_pipelines_scenario_renders_a_test_pod_for_both_pipelines(render: Render) -> None:
    assert urls(hook_pod(render, files=[CI / "pipelines-values.yaml"])) == [
        "http://demo-dashboard.markets.svc/_stcore/health",
        "http://fx-lab-dashboard.markets.svc/_stcore/health",
    ]
