"""The local control plane is a real Kubernetes API: CRDs, schema validation, garbage collection."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from marketpulse_dev.localenv.versions import KUBERNETES_VERSION
from marketpulse_dev.pytest_plugin import KubeTarget

pytestmark = pytest.mark.k8s

KAFKA_TOPIC = """\
apiVersion: kafka.strimzi.io/v1
kind: KafkaTopic
metadata:
  name: {name}
  namespace: {namespace}
  labels:
    strimzi.io/cluster: my-cluster
spec:
  partitions: {partitions}
  replicas: 1
  config:
    retention.ms: 604800000
"""


def wait_until(predicate: Callable[[], bool], timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.25)
    return False


@pytest.fixture(scope="module")
def kafkatopic_crd(kube: KubeTarget, kubectl_binary: Path, upstream_crds: Path) -> None:
    crd = upstream_crds / "strimzi" / "043-Crd-kafkatopic.yaml"
    kube.run([kubectl_binary, "apply", "--server-side", "-f", crd])
    kube.run(
        [
            kubectl_binary,
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/kafkatopics.kafka.strimzi.io",
        ]
    )


def test_the_local_api_server_reports_the_pinned_kubernetes_version(
    kube: KubeTarget, api_client: client.ApiClient
) -> None:
    if kube.local is None:
        pytest.skip("an existing cluster runs its own Kubernetes version")
    assert client.VersionApi(api_client).get_code().git_version == KUBERNETES_VERSION


@pytest.mark.usefixtures("kafkatopic_crd")
def test_a_strimzi_kafkatopic_applied_with_kubectl_reads_back_through_the_python_client(
    kube: KubeTarget, kubectl_binary: Path, namespace: str, api_client: client.ApiClient
) -> None:
    manifest = KAFKA_TOPIC.format(name="ticks", namespace=namespace, partitions=3)
    kube.run([kubectl_binary, "apply", "-f", "-"], stdin=manifest)

    topic = client.CustomObjectsApi(api_client).get_namespaced_custom_object(
        "kafka.strimzi.io", "v1", namespace, "kafkatopics", "ticks"
    )
    assert topic["spec"]["partitions"] == 3
    assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "my-cluster"


@pytest.mark.usefixtures("kafkatopic_crd")
def test_a_server_side_dry_run_that_breaks_the_upstream_schema_is_refused_naming_the_field(
    kube: KubeTarget, kubectl_binary: Path, namespace: str, api_client: client.ApiClient
) -> None:
    manifest = KAFKA_TOPIC.format(name="bad", namespace=namespace, partitions='"three"')
    result = kube.run([kubectl_binary, "apply", "--dry-run=server", "-f", "-"], stdin=manifest, check=False)
    assert result.returncode != 0
    assert "spec.partitions" in result.stderr
    with pytest.raises(ApiException) as missing:
        client.CustomObjectsApi(api_client).get_namespaced_custom_object(
            "kafka.strimzi.io", "v1", namespace, "kafkatopics", "bad"
        )
    assert missing.value.status == 404


def test_deleting_an_owner_garbage_collects_its_dependents(
    kube: KubeTarget, namespace: str, api_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(api_client)
    owner = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"))
    )
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(
                name="dependent",
                owner_references=[
                    client.V1OwnerReference(
                        api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid
                    )
                ],
            )
        ),
    )
    core.delete_namespaced_config_map("owner", namespace)

    def dependent_gone() -> bool:
        try:
            core.read_namespaced_config_map("dependent", namespace)
        except ApiException as exc:
            return exc.status == 404
        return False

    assert wait_until(dependent_gone, timeout=60), (
        "kube-controller-manager did not garbage-collect the dependent"
    )


def test_a_deployment_gets_a_replicaset_from_the_controller_manager(
    kube: KubeTarget, namespace: str, api_client: client.ApiClient
) -> None:
    labels = {"app.kubernetes.io/name": "smoke"}
    deployment = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="smoke"),
        spec=client.V1DeploymentSpec(
            replicas=1,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(
                    containers=[client.V1Container(name="app", image="example.invalid/app:1")]
                ),
            ),
        ),
    )
    client.AppsV1Api(api_client).create_namespaced_deployment(namespace, deployment)
    apps = client.AppsV1Api(api_client)
    assert wait_until(lambda: bool(apps.list_namespaced_replica_set(namespace).items), timeout=60)
