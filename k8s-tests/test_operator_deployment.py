"""The operator as it is deployed: the installed entry point under exactly the chart's RBAC, with
peering, metrics and health; of two replicas only one acts."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from kubernetes import client
from operator_harness import (
    DEMO_CHILDREN,
    IMAGE,
    Cluster,
    children,
    handled,
    sample,
    service_account_kubeconfig,
    wait_for,
    wait_status,
)

from marketpulse.operator.rbac import cluster_role
from marketpulse_dev.localenv.process import free_port
from marketpulse_dev.localenv.s3 import S3Server
from marketpulse_dev.metrics_text import parse, sample_sum, scrape_sum

pytestmark = [pytest.mark.k8s, pytest.mark.s3, pytest.mark.kafka]

ROOT = Path(__file__).parents[1]


def test_the_operator_reconciles_under_exactly_the_chart_rbac_with_peering_metrics_and_health(
    cluster: Cluster, namespace: str, s3_server: S3Server, tmp_path: Path
) -> None:
    cluster.crd_set(strimzi="v1", monitoring=True)
    cluster.install([ROOT / "charts" / "marketpulse" / "crds" / "kopf.dev-peerings.yaml"])
    account = "marketpulse-operator"
    role_name = f"marketpulse-operator-{namespace}"
    rbac = client.RbacAuthorizationV1Api(cluster.api)
    cluster.core.create_namespaced_service_account(namespace, {"metadata": {"name": account}})
    role = cluster_role(role_name)
    rbac.create_cluster_role(role)
    rbac.create_cluster_role_binding(
        {
            "metadata": {"name": role_name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_name},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
        }
    )
    kubeconfig = service_account_kubeconfig(cluster, namespace, account, tmp_path / "kubeconfig")
    metrics_port, health_port = free_port(), free_port()
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "MARKETPULSE_IMAGE": IMAGE,
        "MARKETPULSE_METRICS_PORT": str(metrics_port),
        "MARKETPULSE_HEALTH_PORT": str(health_port),
        **s3_server.settings(),
    }
    log = tmp_path / "operator.log"
    # The installed entry point, as the image runs it.
    argv = [str(Path(sys.executable).with_name("marketpulse")), "operator", "run", "--namespace", namespace]
    try:
        with log.open("w") as out:
            process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for(
                lambda: httpx.get(f"http://127.0.0.1:{health_port}/healthz", timeout=1).status_code == 200,
                timeout=30,
                what="the liveness endpoint",
            )
            cluster.apply_yaml(namespace, sample("synthetic-duckdb"))
            pipeline = wait_status(
                cluster, namespace, "demo", handled(1), "a reconcile under the chart's RBAC"
            )
            found = set(children(cluster, namespace))
            metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
            peering = cluster.objects.get_namespaced_custom_object(
                "kopf.dev", "v1", namespace, "kopfpeerings", "marketpulse-operator"
            )
        finally:
            process.terminate()
            process.wait(timeout=30)
    finally:
        rbac.delete_cluster_role_binding(role_name)
        rbac.delete_cluster_role(role_name)
    output = log.read_text()

    assert found == DEMO_CHILDREN, output[-3000:]
    assert pipeline["status"]["phase"] == "Provisioning"
    assert "Forbidden" not in output
    samples = parse(metrics)
    assert sample_sum(samples, "marketpulse_operator_reconciles_total", trigger="create") == 1.0, metrics
    assert sample_sum(samples, "marketpulse_operator_pipelines", phase="Provisioning") == 1.0, metrics
    assert "marketpulse_operator_reconcile_duration_seconds_bucket" in metrics
    assert "marketpulse_operator_api_writes_total" in metrics
    assert peering["status"], "the operator announced itself in the peering object"


def test_of_two_replicas_only_one_acts_and_the_other_takes_over_when_it_stops(
    cluster: Cluster, namespace: str, s3_server: S3Server, tmp_path: Path
) -> None:
    cluster.crd_set(strimzi="v1", monitoring=True)
    cluster.install([ROOT / "charts" / "marketpulse" / "crds" / "kopf.dev-peerings.yaml"])
    replicas: list[tuple[subprocess.Popen[bytes], Path, int]] = []
    try:
        for index in range(2):
            metrics_port, health_port = free_port(), free_port()
            env = {
                **os.environ,
                "KUBECONFIG": str(cluster.kube.kubeconfig),
                "MARKETPULSE_IMAGE": IMAGE,
                "MARKETPULSE_METRICS_PORT": str(metrics_port),
                "MARKETPULSE_HEALTH_PORT": str(health_port),
                **s3_server.settings(),
            }
            log = tmp_path / f"replica-{index}.log"
            argv = [
                str(Path(sys.executable).with_name("marketpulse")),
                "operator",
                "run",
                "--namespace",
                namespace,
            ]
            with log.open("w") as out:  # default priority: each replica draws its own
                replicas.append(
                    (subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT), log, metrics_port)
                )
            wait_for(
                lambda port=health_port: (
                    httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
                ),
                timeout=60,
                what=f"replica {index} to be live",
            )

        def active() -> list[int]:
            # kopf starts every replica paused; the last peering line of each says where it stands now.
            def last(text: str, marker: str) -> int:
                return text.rfind(marker)

            logs = [log.read_text() for _, log, _ in replicas]
            return [
                i
                for i, text in enumerate(logs)
                if last(text, "Resuming operations after the pause") > last(text, "Pausing operations")
            ]

        wait_for(lambda: len(active()) == 1, timeout=60, what="exactly one replica to act")
        time.sleep(3)  # a second replica that was going to act too would do so within a keepalive exchange
        assert len(active()) == 1, "two replicas acting at once"
        (leader,) = active()
        standby = 1 - leader
        cluster.apply_yaml(namespace, sample("synthetic-duckdb"))
        wait_status(cluster, namespace, "demo", handled(1), "the active replica's reconcile")

        def reconciles(port: int) -> float:
            return scrape_sum(port, "marketpulse_operator_reconciles_total")

        assert reconciles(replicas[leader][2]) >= 1
        assert reconciles(replicas[standby][2]) == 0, "the standby replica must not act"

        replicas[leader][0].terminate()
        replicas[leader][0].wait(timeout=30)
        pipeline = cluster.pipeline(namespace, "demo")
        cluster.patch_spec(namespace, "demo", {"watchlist": [*pipeline["spec"]["watchlist"], "TSLA"]})
        wait_for(
            lambda: (cluster.pipeline(namespace, "demo").get("status") or {}).get("observedGeneration") == 2,
            timeout=120,
            what="the standby replica to take over and reconcile the change",
        )
        assert standby in active()
    finally:
        for process, _, _ in replicas:
            process.terminate()
            process.wait(timeout=30)


def test_the_chart_rbac_has_no_wildcards() -> None:
    for rule in cluster_role()["rules"]:
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[key], rule
