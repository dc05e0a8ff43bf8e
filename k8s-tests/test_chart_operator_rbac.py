"""The operator as the chart installs it, under the chart's own ServiceAccount and RBAC: it reconciles a
pipeline from chart values watching its release namespace or every namespace, and in namespace-scoped
mode it can do nothing in a namespace it was not given. The operator runs as a local process with
exactly the container's arguments and environment (no kubelet on the local control plane).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from chart_harness import (
    ROOT,
    Helm,
    chart_operator,
    chart_s3_values,
    pipeline,
    service_account_kubeconfig,
    wait_for,
)
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from marketpulse_dev.localenv.process import free_port
from marketpulse_dev.localenv.s3 import S3Server

pytestmark = [pytest.mark.k8s, pytest.mark.helm]


@pytest.mark.s3
@pytest.mark.parametrize("watch", ["release-namespace", "every-namespace"])
def test_the_operator_under_the_charts_account_and_rbac_reconciles_a_pipeline_from_chart_values(
    helm: Helm, s3_server: S3Server, tmp_path: Path, watch: str
) -> None:
    api, namespace = helm.api, helm.namespace
    metrics_port, health_port = free_port(), free_port()
    sample = yaml.safe_load(
        (ROOT / "operator/config/samples/stockpipeline-synthetic-duckdb.yaml").read_text()
    )
    values: dict[str, Any] = {
        "operator": {
            "watchAnyNamespace": watch == "every-namespace",
            "metricsPort": metrics_port,
            "healthPort": health_port,
        },
        "s3": chart_s3_values(s3_server),
        "pipelines": [{"name": sample["metadata"]["name"], "spec": sample["spec"]}],
    }
    helm.install("defaults", values)
    with chart_operator(helm, tmp_path) as log:
        wait_for(
            lambda: httpx.get(f"http://127.0.0.1:{health_port}/healthz", timeout=1).status_code == 200,
            timeout=30,
            what="the operator's health endpoint (the chart's probes)",
        )
        reconciled = wait_for(
            lambda: (
                (p := pipeline(api, namespace, "demo"))
                and (p.get("status") or {}).get("observedGeneration") == 1
                and p
            ),
            timeout=30,
            what="the chart's pipeline to be reconciled",
        )
        deployments = sorted(
            d.metadata.name for d in client.AppsV1Api(api).list_namespaced_deployment(namespace).items
        )
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        # Removing the pipeline from the values lets this operator, under the chart's RBAC, finalize it;
        # the uninstall test covers the pre-delete hook doing the same for every pipeline.
        helm.upgrade("defaults", {**values, "pipelines": []})
        wait_for(
            lambda: pipeline(api, namespace, "demo") is None, timeout=30, what="the pipeline to be finalized"
        )
        # Uninstalling revokes the token and the RBAC under the still-running process: from here on
        # its errors are expected (in a cluster its pod is deleted at the same time).
        output = log.read_text()
        helm.uninstall()
    core = client.CoreV1Api(api)
    topics = client.CustomObjectsApi(api).list_namespaced_custom_object(
        "kafka.strimzi.io", "v1", namespace, "kafkatopics"
    )["items"]
    claims = [c.metadata.name for c in core.list_namespaced_persistent_volume_claim(namespace).items]

    assert reconciled["status"]["phase"] == "Provisioning", output[-3000:]
    assert "Forbidden" not in output, output[-3000:]
    assert deployments == ["demo-archive", "demo-dashboard", "demo-ingest", f"{helm.release}-marketpulse"]
    assert 'marketpulse_operator_reconciles_total{trigger="create"} 1.0' in metrics
    # helm uninstall leaves only what deletionPolicy Retain keeps: the topics and the warehouse volume.
    assert helm.leftovers() == []
    assert sorted(t["metadata"]["name"] for t in topics) == ["demo-alerts", "demo-ticks", "demo-ticks-dlq"]
    assert claims == ["demo-warehouse"]
    assert not client.AppsV1Api(api).list_namespaced_deployment(namespace).items or wait_for(
        lambda: not client.AppsV1Api(api).list_namespaced_deployment(namespace).items,
        timeout=30,
        what="the pipeline's Deployments to be garbage-collected",
    )


@pytest.mark.s3
def test_namespace_scoped_mode_can_do_nothing_in_a_namespace_it_was_not_given(
    helm: Helm, s3_server: S3Server, tmp_path: Path
) -> None:
    """`operator.watchAnyNamespace: false`: Roles in the served namespaces only. Under the chart's own
    ServiceAccount the operator reconciles there, leaves a pipeline elsewhere alone, and the API server
    refuses it every write and every Secret read outside; its ClusterRole only reads CRDs and Namespaces."""
    api, namespace = helm.api, helm.namespace
    core = client.CoreV1Api(api)
    other = f"{namespace}-other"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=other)))
    core.create_namespaced_secret(other, client.V1Secret(metadata=client.V1ObjectMeta(name="team")))
    try:
        sample = yaml.safe_load(
            (ROOT / "operator/config/samples/stockpipeline-synthetic-duckdb.yaml").read_text()
        )
        values: dict[str, Any] = {
            "operator": {"watchAnyNamespace": False, "metricsPort": free_port(), "healthPort": free_port()},
            "s3": chart_s3_values(s3_server),
            "pipelines": [{"name": "demo", "spec": sample["spec"]}],
        }
        helm.install("defaults", values)
        client.CustomObjectsApi(api).create_namespaced_custom_object(
            "marketpulse.io",
            "v1alpha1",
            other,
            "stockpipelines",
            {**sample, "metadata": {"name": "elsewhere"}},
        )
        account = client.AppsV1Api(api).read_namespaced_deployment(f"{helm.release}-marketpulse", namespace)
        as_operator = service_account_kubeconfig(
            helm.kube, api, namespace, account.spec.template.spec.service_account_name, tmp_path / "sa"
        )
        with chart_operator(helm, tmp_path) as log:
            wait_for(
                lambda: (p := pipeline(api, namespace, "demo")) and (p.get("status") or {}).get("phase"),
                timeout=30,
                what="the pipeline of the served namespace to be reconciled",
            )
            # Its periodic reconcile and its watches have had time to reach the other namespace.
            ignored = pipeline(api, other, "elsewhere")
            output = log.read_text()
        operator_api = config.new_client_from_config(str(as_operator))
        refusals = {
            "create a Deployment": lambda: client.AppsV1Api(operator_api).create_namespaced_deployment(
                other, {"metadata": {"name": "x"}, "spec": {}}
            ),
            "read a Secret": lambda: client.CoreV1Api(operator_api).read_namespaced_secret("team", other),
            "read StockPipelines": lambda: client.CustomObjectsApi(
                operator_api
            ).list_namespaced_custom_object("marketpulse.io", "v1alpha1", other, "stockpipelines"),
            "read Secrets cluster-wide": lambda: client.CoreV1Api(
                operator_api
            ).list_secret_for_all_namespaces(),
        }
        statuses = {}
        for what, call in refusals.items():
            try:
                call()
                statuses[what] = 200
            except ApiException as exc:
                statuses[what] = exc.status
        # The same read in its own namespace is allowed: the refusals above are the Roles' doing.
        own_secret = core.list_namespaced_secret(namespace).items[0].metadata.name
        allowed_here = client.CoreV1Api(operator_api).read_namespaced_secret(own_secret, namespace)
        cluster_rules = (
            client.RbacAuthorizationV1Api(api).read_cluster_role(f"{helm.release}-marketpulse").rules
        )
    finally:
        release = client.CustomObjectsApi(api)
        with contextlib.suppress(ApiException):
            release.patch_namespaced_custom_object(
                "marketpulse.io",
                "v1alpha1",
                other,
                "stockpipelines",
                "elsewhere",
                {"metadata": {"finalizers": None}},
            )
        core.delete_namespace(other)

    assert ignored is not None
    assert "status" not in ignored, ignored.get("status")
    assert other not in output  # never watched, never listed
    assert statuses == dict.fromkeys(refusals, 403)
    assert allowed_here.metadata.name == own_secret
    reads = {(tuple(r.api_groups), tuple(r.resources)): set(r.verbs) for r in cluster_rules}
    assert all(verbs <= {"get", "list", "watch"} for verbs in reads.values()), reads
    assert {res for _, resources in reads for res in resources} <= {"customresourcedefinitions", "namespaces"}
