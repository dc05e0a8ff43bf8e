"""charts/marketpulse against the real API server: install every scenario, upgrade, uninstall. (The
operator under the chart's own ServiceAccount and RBAC is test_chart_operator_rbac.py.)

No kubelet runs on the local control plane, so the chart's Deployment never gets a pod: installs
run without `--wait` on Deployments, and the operator runs as a local process with exactly the
container's arguments and environment, authenticated by a token of the chart's ServiceAccount.
Uninstalls there skip the pre-delete hook (`--no-hooks`), whose Job would never get a pod; the hook
runs for real on the node (k8s-tests/node/test_helm_uninstall.py) and on any cluster given with
--use-existing-cluster.
"""

from __future__ import annotations

import pytest
from chart_harness import SCENARIOS, Helm
from kubernetes import client

pytestmark = [pytest.mark.k8s, pytest.mark.helm]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_each_scenario_validates_server_side_installs_upgrades_and_uninstalls_without_leftovers(
    helm: Helm, scenario: str
) -> None:
    helm.validate_server_side(helm.template(scenario))
    helm.install(scenario)
    installed = helm.leftovers()
    helm.upgrade(scenario, {"podAnnotations": {"marketpulse.io/upgraded": "yes"}})
    deployment = client.AppsV1Api(helm.api).read_namespaced_deployment(
        f"{helm.release}-marketpulse", helm.namespace
    )
    helm.uninstall()

    assert f"deployments/{helm.release}-marketpulse" in installed
    assert deployment.spec.template.metadata.annotations == {"marketpulse.io/upgraded": "yes"}
    assert helm.leftovers() == []


def test_install_prints_notes_that_say_what_to_apply_next_and_where_the_dashboards_are(helm: Helm) -> None:
    notes = helm.install("monitoring").split("NOTES:", 1)[1]

    assert "kind: StockPipeline" in notes
    assert f"kubectl -n {helm.namespace} get stockpipelines" in notes
    assert "port-forward service/demo-dashboard" in notes
    assert "grafana_dashboard=1" in notes
    assert "create secret generic marketpulse-s3" in notes
    assert "kubectl apply --server-side -f <chart>/crds/" in notes


def test_a_pipeline_with_an_invalid_spec_in_values_is_refused_by_the_api_server_naming_the_field(
    helm: Helm,
) -> None:
    manifests = helm.template("defaults", {"pipelines": [{"name": "bad", "spec": {"watchlist": ["aapl"]}}]})
    argv = [helm.kubectl, "apply", "--dry-run=server", "--namespace", helm.namespace, "-f", "-"]
    result = helm.kube.run(argv, stdin=manifests, check=False)
    assert result.returncode != 0
    assert "spec.watchlist" in result.stderr


# --- the operator under the chart's ServiceAccount and RBAC ----------------------------------------
