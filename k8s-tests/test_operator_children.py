"""What the operator makes of a StockPipeline: every child, owned, labelled and restricted, following
the spec as it changes; and what the status says when the cluster lacks a kind or refuses a child.

No kubelet runs here: Deployments are asserted as API objects and never become Available, which the
status must say honestly.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from operator_harness import (
    DEMO_CHILDREN,
    IMAGE,
    Cluster,
    children,
    condition,
    handled,
    running_operator,
    sample,
    wait_for,
    wait_status,
)

from marketpulse.operator.settings import OperatorSettings
from marketpulse.storage.s3 import minio_client
from marketpulse_dev.localenv.s3 import S3Server

pytestmark = [pytest.mark.k8s, pytest.mark.s3, pytest.mark.kafka]


def env_of(deployment: dict[str, Any]) -> dict[str, Any]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_applying_a_sample_creates_every_child_owned_labelled_and_restricted_with_a_status(
    cluster: Cluster, settings: OperatorSettings, namespace: str, s3_server: S3Server
) -> None:
    cluster.crd_set(strimzi="v1", monitoring=True)
    with running_operator(settings, namespace):
        started = time.monotonic()
        cluster.apply_yaml(namespace, sample("synthetic-duckdb"))
        wait_for(
            lambda: (
                set(children(cluster, namespace)) >= DEMO_CHILDREN
                and cluster.pipeline(namespace, "demo").get("status", {}).get("phase")
            ),
            timeout=10,
            what="every child and a status",
        )
        elapsed = time.monotonic() - started
        pipeline = cluster.pipeline(namespace, "demo")
        found = children(cluster, namespace)

    # The first pipeline may meet the watch's initial 1 s retry; steady-state latency has its own test.
    assert elapsed <= 5.0, f"children and status took {elapsed:.2f}s"
    uid = pipeline["metadata"]["uid"]
    for key, child in found.items():
        meta = child["metadata"]
        owners = meta.get("ownerReferences") or []
        assert [o["uid"] for o in owners] == [uid], f"{key} is not owned by the pipeline"
        assert owners[0]["controller"] is True
        labels = meta["labels"]
        assert labels["app.kubernetes.io/instance"] == "demo", key
        assert labels["app.kubernetes.io/part-of"] == "marketpulse", key
        assert labels["app.kubernetes.io/managed-by"] == "marketpulse-operator", key
        assert len(meta["name"]) <= 63
    assert found["KafkaTopic/demo-ticks"]["apiVersion"] == "kafka.strimzi.io/v1"
    assert found["KafkaTopic/demo-ticks"]["spec"]["topicName"] == f"{namespace}.demo.ticks"

    ingest = found["Deployment/demo-ingest"]
    pod = ingest["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == IMAGE
    assert container["command"] == ["marketpulse", "ingest"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
    }
    # Bounded node disk, as the API server keeps it: /tmp, and /tmp plus logs as ephemeral storage.
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}} in pod["volumes"]
    assert container["resources"]["requests"]["ephemeral-storage"] == "128Mi"
    assert container["resources"]["limits"]["ephemeral-storage"] == "128Mi"
    env = env_of(ingest)
    assert env["MARKETPULSE_WATCHLIST"] == "AAPL,MSFT,NVDA,AMZN,BRK.B"
    assert env["MARKETPULSE_TICKS_TOPIC"] == f"{namespace}.demo.ticks"
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "marketpulse-kafka-bootstrap:9092"
    archive_env = env_of(found["Deployment/demo-archive"])
    assert archive_env["S3_SECRET_KEY"] == {
        "secretKeyRef": {"name": "marketpulse-s3", "key": "AWS_SECRET_ACCESS_KEY"}
    }
    assert archive_env["MARKETPULSE_BUCKET"] == pipeline["status"]["bucket"]

    transform = found["CronJob/demo-transform"]
    assert transform["spec"]["concurrencyPolicy"] == "Forbid"
    transform_pod = transform["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    claims = [v for v in transform_pod["volumes"] if "persistentVolumeClaim" in v]
    assert claims[0]["persistentVolumeClaim"]["claimName"] == "demo-warehouse"
    for name in ("demo-ingest", "demo-archive", "demo-dashboard"):
        volumes = found[f"Deployment/{name}"]["spec"]["template"]["spec"]["volumes"]
        assert not [v for v in volumes if "persistentVolumeClaim" in v], f"{name} mounts the warehouse"

    status = pipeline["status"]
    assert status["observedGeneration"] == pipeline["metadata"]["generation"]
    assert status["phase"] == "Provisioning"
    assert status["topics"] == [
        f"{namespace}.demo.ticks",
        f"{namespace}.demo.ticks.dlq",
        f"{namespace}.demo.alerts",
    ]
    assert condition(pipeline, "Ingest")["status"] == "False"
    assert condition(pipeline, "Ingest")["reason"] == "Unavailable"
    assert condition(pipeline, "Topics")["reason"] == "WaitingForTopicOperator"
    assert condition(pipeline, "Bucket")["status"] == "True"
    assert condition(pipeline, "Transform")["status"] == "True"
    assert condition(pipeline, "Ready")["status"] == "False"

    s3 = minio_client(s3_server.endpoint, s3_server.access_key, s3_server.secret_key)
    assert s3.bucket_exists(status["bucket"])
    assert s3.get_bucket_versioning(status["bucket"]).status == "Enabled"

    listed = cluster.kube.run([cluster.kubectl, "get", "sp", "-n", namespace]).stdout
    assert "Provisioning" in listed.splitlines()[1]
    assert "False" in listed.splitlines()[1]


def test_a_watchlist_change_rolls_the_workloads_by_changing_their_pod_template(
    cluster: Cluster, settings: OperatorSettings, namespace: str
) -> None:
    cluster.crd_set(strimzi="v1", monitoring=True)
    with running_operator(settings, namespace):
        cluster.apply_yaml(namespace, sample("synthetic-duckdb"))
        wait_status(cluster, namespace, "demo", handled(1), "the first reconcile")
        before = cluster.apps.read_namespaced_deployment("demo-ingest", namespace)
        cluster.patch_spec(namespace, "demo", {"watchlist": ["AAPL", "TSLA"]})
        wait_status(cluster, namespace, "demo", handled(2), "the update")
        after = cluster.apps.read_namespaced_deployment("demo-ingest", namespace)
        cron = cluster.batch.read_namespaced_cron_job("demo-transform", namespace)

    assert after.metadata.generation == before.metadata.generation + 1
    env = {e.name: e.value for e in after.spec.template.spec.containers[0].env}
    assert env["MARKETPULSE_WATCHLIST"] == "AAPL,TSLA"
    assert env["MARKETPULSE_SYNTHETIC_RATE"] == "10"
    cron_env = {e.name: e.value for e in cron.spec.job_template.spec.template.spec.containers[0].env}
    assert cron_env["MARKETPULSE_WATCHLIST"] == "AAPL,TSLA"


def test_suspend_scales_to_zero_and_suspends_the_cronjob_and_resume_restores_them(
    cluster: Cluster, settings: OperatorSettings, namespace: str
) -> None:
    cluster.crd_set(strimzi="v1", monitoring=True)
    with running_operator(settings, namespace):
        cluster.apply_yaml(namespace, sample("synthetic-duckdb"))
        wait_status(cluster, namespace, "demo", handled(1), "the first reconcile")
        cluster.patch_spec(namespace, "demo", {"suspend": True})
        suspended = wait_status(cluster, namespace, "demo", handled(2), "suspend")
        replicas_suspended = {
            d.metadata.name: d.spec.replicas for d in cluster.apps.list_namespaced_deployment(namespace).items
        }
        cron_suspended = cluster.batch.read_namespaced_cron_job("demo-transform", namespace).spec.suspend
        cluster.patch_spec(namespace, "demo", {"suspend": False})
        resumed = wait_status(cluster, namespace, "demo", handled(3), "resume")
        replicas_resumed = {
            d.metadata.name: d.spec.replicas for d in cluster.apps.list_namespaced_deployment(namespace).items
        }
        cron_resumed = cluster.batch.read_namespaced_cron_job("demo-transform", namespace).spec.suspend

    assert set(replicas_suspended.values()) == {0}
    assert cron_suspended is True
    assert suspended["status"]["phase"] == "Suspended"
    assert condition(suspended, "Ingest")["reason"] == "Suspended"
    assert set(replicas_resumed.values()) == {1}
    assert cron_resumed is False
    assert resumed["status"]["phase"] == "Provisioning"


def test_a_v1beta2_only_strimzi_cluster_gets_v1beta2_topics_and_no_monitoring_without_its_crds(
    cluster: Cluster, settings: OperatorSettings, namespace: str
) -> None:
    cluster.crd_set(strimzi="v1beta2", monitoring=False)
    try:
        with running_operator(settings, namespace):
            cluster.apply_yaml(namespace, sample("synthetic-duckdb"))
            wait_status(cluster, namespace, "demo", handled(1), "the first reconcile")
            found = children(cluster, namespace)
    finally:
        cluster.crd_set(strimzi="v1", monitoring=True)

    topics = [c for k, c in found.items() if k.startswith("KafkaTopic/")]
    assert len(topics) == 3
    assert {t["apiVersion"] for t in topics} == {"kafka.strimzi.io/v1beta2"}
    assert not [k for k in found if k.split("/")[0] in ("ServiceMonitor", "PrometheusRule")]
    assert "Service/demo-metrics" not in found


def test_a_child_the_api_server_refuses_sets_its_condition_false_with_the_servers_message(
    cluster: Cluster, settings: OperatorSettings, namespace: str
) -> None:
    cluster.crd_set(strimzi="v1", monitoring=True)
    admission = client.AdmissionregistrationV1Api(cluster.api)
    policy = f"refuse-archive-{namespace}"
    admission.create_validating_admission_policy(
        {
            "metadata": {"name": policy},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": ["apps"],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE", "UPDATE"],
                            "resources": ["deployments"],
                        }
                    ]
                },
                "validations": [
                    {
                        "expression": "!object.metadata.name.endsWith('-archive')",
                        "message": "archives are not allowed in this namespace",
                    }
                ],
            },
        }
    )
    admission.create_validating_admission_policy_binding(
        {
            "metadata": {"name": policy},
            "spec": {
                "policyName": policy,
                "validationActions": ["Deny"],
                "matchResources": {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
                },
            },
        }
    )
    try:
        # The policy is enforced once the API server's admission informers have seen it.
        probe = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "probe-archive", "namespace": namespace},
            "spec": {
                "selector": {"matchLabels": {"a": "b"}},
                "template": {
                    "metadata": {"labels": {"a": "b"}},
                    "spec": {"containers": [{"name": "c", "image": "x"}]},
                },
            },
        }

        def enforced() -> bool:
            try:
                cluster.apps.create_namespaced_deployment(namespace, probe, dry_run="All")
            except ApiException as exc:
                return exc.status in (400, 403, 422)
            return False

        wait_for(enforced, timeout=30, what="the admission policy to be enforced")
        with running_operator(settings, namespace):
            cluster.apply_yaml(namespace, sample("synthetic-duckdb"))
            pipeline = wait_status(
                cluster,
                namespace,
                "demo",
                lambda p: condition(p, "Archive").get("reason") == "ApplyFailed",
                "the refused archive to show in the status",
            )
        archive = condition(pipeline, "Archive")
        assert archive["status"] == "False"
        assert "archives are not allowed in this namespace" in archive["message"]
        assert pipeline["status"]["phase"] == "Degraded"
        assert condition(pipeline, "Ready")["status"] == "False"
        assert "Deployment/demo-ingest" in children(cluster, namespace), (
            "the other children are still applied"
        )
    finally:
        admission.delete_validating_admission_policy_binding(policy)
        admission.delete_validating_admission_policy(policy)
