"""Fixtures for tests on the real node: its API client, restricted namespaces, the built images, and
charts/marketpulse installed from them (one release per test module)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from marketpulse_dev.localenv import node_network
from marketpulse_dev.localenv import prometheus_stack as stack
from marketpulse_dev.localenv.addon_images import (
    OPERATOR_IMAGE,
    PROMETHEUS_IMAGE,
    RELOADER_IMAGE,
    AddonImage,
    ensure_addon_image,
)
from marketpulse_dev.localenv.errors import ComponentError
from marketpulse_dev.localenv.image import BuiltImage, Target, ensure_image
from marketpulse_dev.localenv.kafka import KafkaServer
from marketpulse_dev.localenv.s3 import S3Server
from marketpulse_dev.pytest_plugin import NodeCluster, eventually

RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}
CHART = Path(__file__).parents[2] / "charts" / "marketpulse"
WATCHLIST = ["AAPL", "MSFT", "NVDA"]
# Apply to phase Ready: pods started, topics, bucket, the warehouse volume, the first dbt build.
READY_TIMEOUT = 180


@pytest.fixture(scope="session")
def node_api(node_cluster: NodeCluster) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(str(node_cluster.kubeconfig))
    yield api
    api.close()


@contextmanager
def _restricted(api: client.ApiClient) -> Iterator[str]:
    core = client.CoreV1Api(api)
    name = f"mp-node-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=RESTRICTED)))
    yield name
    core.delete_namespace(name)


@pytest.fixture
def restricted_namespace(node_api: client.ApiClient) -> Iterator[str]:
    """A fresh namespace where the API server enforces the restricted Pod Security Standard."""
    with _restricted(node_api) as name:
        yield name


def _imported(node_cluster: NodeCluster, target: Target | AddonImage) -> BuiltImage:
    assert node_cluster.node is not None
    try:
        if isinstance(target, AddonImage):
            built = ensure_addon_image(target, live=False)
        else:
            built = ensure_image(target, live=False)
    except ComponentError as exc:
        pytest.fail(str(exc), pytrace=False)
    if built.reference not in node_cluster.node.images():
        node_cluster.node.import_image(built.archive)
    return built


@pytest.fixture(scope="session")
def workloads_image(node_cluster: NodeCluster) -> str:
    """The image of every workload, built from images/marketpulse/Dockerfile and present on the node."""
    return _imported(node_cluster, Target.workloads).reference


@pytest.fixture(scope="session")
def operator_image(node_cluster: NodeCluster) -> str:
    """The operator's slim image (`--target operator`), present on the node."""
    return _imported(node_cluster, Target.operator).reference


def pod_ready(pod: client.V1Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def describe(pods: list[client.V1Pod]) -> str:
    """One line per pod: phase, and each container's readiness or waiting reason, and restarts."""

    def container(status: client.V1ContainerStatus) -> str:
        waiting = status.state.waiting.reason if status.state and status.state.waiting else "not ready"
        return f"{status.name}:{'ready' if status.ready else waiting}(restarts {status.restart_count})"

    return "; ".join(
        f"{p.metadata.name} {p.status.phase} {','.join(map(container, p.status.container_statuses or []))}"
        for p in pods
    )


def condition(pipeline: dict[str, Any], kind: str) -> dict[str, Any]:
    found: dict[str, Any] = next(
        (c for c in (pipeline.get("status") or {}).get("conditions", []) if c["type"] == kind), {}
    )
    return found


@dataclass(frozen=True)
class Release:
    """A release of charts/marketpulse on the node, and what its tests do with it."""

    cluster: NodeCluster
    api: client.ApiClient
    helm: Path
    kubectl: Path
    namespace: str
    name: str
    s3: S3Server
    values: dict[str, Any]

    def upgrade(self, values: dict[str, Any]) -> None:
        argv = [self.helm, "upgrade", self.name, CHART, "-n", self.namespace, "--wait", "--timeout", "180s"]
        self.cluster.run([*argv, *set_json(values)], timeout=240)

    def apply(self, manifest: dict[str, Any]) -> None:
        argv = [self.kubectl, "apply", "--server-side", "-n", self.namespace, "-f", "-"]
        self.cluster.run(argv, stdin=json.dumps(manifest))

    def patch_spec(self, name: str, spec: dict[str, Any]) -> None:
        client.CustomObjectsApi(self.api).patch_namespaced_custom_object(
            "marketpulse.io", "v1alpha1", self.namespace, "stockpipelines", name, {"spec": spec}
        )

    def delete(self, name: str, timeout: float = 120) -> None:
        """Delete a pipeline and wait until the operator has finalized it."""
        client.CustomObjectsApi(self.api).delete_namespaced_custom_object(
            "marketpulse.io", "v1alpha1", self.namespace, "stockpipelines", name
        )
        eventually(lambda: self.pipeline(name) is None, timeout=timeout, what=f"pipeline {name} finalized")

    def pipeline(self, name: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = client.CustomObjectsApi(self.api).get_namespaced_custom_object(
                "marketpulse.io", "v1alpha1", self.namespace, "stockpipelines", name
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return found

    def pods(self, selector: str) -> list[client.V1Pod]:
        pods: list[client.V1Pod] = (
            client.CoreV1Api(self.api).list_namespaced_pod(self.namespace, label_selector=selector).items
        )
        return pods

    def pipeline_pods(self, name: str, component: str | None = None) -> list[client.V1Pod]:
        selector = f"app.kubernetes.io/instance={name}"
        if component:
            selector += f",app.kubernetes.io/component={component}"
        return self.pods(selector)

    def wait_phase(self, name: str, phase: str, timeout: float = READY_TIMEOUT) -> dict[str, Any]:
        """The pipeline once its status says `phase`; on timeout, the status and its pods."""

        def reached() -> dict[str, Any] | None:
            found = self.pipeline(name)
            return found if found and (found.get("status") or {}).get("phase") == phase else None

        try:
            return eventually(reached, timeout=timeout, what=f"pipeline {name} to reach phase {phase}")
        except AssertionError as exc:
            status = (self.pipeline(name) or {}).get("status")
            pods = describe(self.pipeline_pods(name))
            raise AssertionError(f"{exc}\nstatus: {json.dumps(status, indent=1)}\npods: {pods}") from None

    def all_pods_ready(self, name: str, components: int) -> list[client.V1Pod]:
        """The pipeline's pods once `components` of them run, all Ready and none being deleted."""

        def ready() -> list[client.V1Pod] | None:
            pods = [p for p in self.pipeline_pods(name) if not p.metadata.deletion_timestamp]
            return pods if len(pods) == components and all(map(pod_ready, pods)) else None

        try:
            return eventually(ready, timeout=READY_TIMEOUT, what=f"the {components} pods of {name} Ready")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {describe(self.pipeline_pods(name))}") from None

    @staticmethod
    def direct_pipeline(name: str, kafka: KafkaServer, **spec: Any) -> dict[str, Any]:
        """A pipeline on the node's Kafka (topics through the admin API), gold rebuilt continuously."""
        return {
            "apiVersion": "marketpulse.io/v1alpha1",
            "kind": "StockPipeline",
            "metadata": {"name": name},
            "spec": {
                "watchlist": WATCHLIST,
                "source": {"type": "synthetic", "synthetic": {"seed": 7, "ticksPerSecond": 20}},
                "kafka": {
                    "topicBackend": "direct",
                    "bootstrapServers": kafka.bootstrap_servers,
                    "partitions": 3,
                },
                "transform": {"mode": "continuous", "intervalSeconds": 5},
                "deletionPolicy": "Delete",
                **spec,
            },
        }

    # For the test modules, which cannot import this conftest.
    describe = staticmethod(describe)
    pod_ready = staticmethod(pod_ready)
    condition = staticmethod(condition)

    def service_url(self, name: str, path: str) -> str:
        """The Service's ClusterIP, which this machine routes into the node's network namespace."""
        service = client.CoreV1Api(self.api).read_namespaced_service(name, self.namespace)
        return f"http://{service.spec.cluster_ip}:{service.spec.ports[0].port}{path}"


def set_json(values: dict[str, Any]) -> list[str | Path]:
    argv: list[str | Path] = []
    for key, value in values.items():
        argv += ["--set-json", f"{key}={json.dumps(value)}"]
    return argv


def split_reference(reference: str) -> tuple[str, str]:
    repository, _, tag = reference.rpartition(":")
    return repository, tag


@contextmanager
def installed_release(
    node_cluster: NodeCluster,
    node_api: client.ApiClient,
    node_s3: S3Server,
    helm_binary: Path,
    kubectl_binary: Path,
    operator_image: str,
    workloads_image: str,
    extra_values: dict[str, Any] | None = None,
    name: str = "mp",
) -> Iterator[Release]:
    """charts/marketpulse installed with the images built from this checkout, in a namespace of its own
    that enforces the restricted Pod Security Standard, serving only that namespace."""
    operator_repository, operator_tag = split_reference(operator_image)
    workloads_repository, workloads_tag = split_reference(workloads_image)
    values: dict[str, Any] = {
        # The images are on the node already (imported, never pulled).
        "image": {"repository": operator_repository, "tag": operator_tag, "pullPolicy": "Never"},
        "workloads": {
            "image": {"repository": workloads_repository, "tag": workloads_tag, "pullPolicy": "Never"}
        },
        "operator": {"watchAnyNamespace": False},
        # The node's broker, which direct-backend pipelines name in spec.kafka.bootstrapServers.
        "security": {"allowedKafkaServers": [node_network.HOST_IP]},
        "s3": {
            "endpoint": node_s3.endpoint,
            "createSecret": True,
            "accessKeyId": node_s3.access_key,
            "secretAccessKey": node_s3.secret_key,
        },
        **(extra_values or {}),
    }
    with _restricted(node_api) as namespace:
        argv = [helm_binary, "install", name, CHART, "-n", namespace, "--wait", "--timeout", "180s"]
        node_cluster.run([*argv, *set_json(values)], timeout=240)
        yield Release(node_cluster, node_api, helm_binary, kubectl_binary, namespace, name, node_s3, values)
        uninstall = [helm_binary, "uninstall", name, "-n", namespace, "--wait", "--timeout", "240s"]
        node_cluster.run([*uninstall, "--ignore-not-found"], timeout=300, check=False)


_RELEASE_FIXTURES = (
    "node_cluster",
    "node_api",
    "node_s3",
    "helm_binary",
    "kubectl_binary",
    "operator_image",
    "workloads_image",
)


@pytest.fixture(scope="session")
def release(request: pytest.FixtureRequest) -> Iterator[Release]:
    """One release for the node tests that leave it installed (each uses pipelines of its own names)."""
    with installed_release(*(request.getfixturevalue(f) for f in _RELEASE_FIXTURES)) as installed:
        yield installed


@pytest.fixture
def own_release(request: pytest.FixtureRequest) -> Iterator[Release]:
    """A release of the test's own, for a test that uninstalls it."""
    with installed_release(*(request.getfixturevalue(f) for f in _RELEASE_FIXTURES)) as installed:
        yield installed


@pytest.fixture(scope="session")
def prometheus_url(
    node_cluster: NodeCluster, node_api: client.ApiClient, kubectl_binary: Path
) -> Iterator[str]:
    """The Prometheus Operator from its release bundle and a Prometheus that selects every ServiceMonitor
    and PrometheusRule (kube-prometheus-stack's with empty selectors), all built here; its API's URL."""
    images = stack.StackImages(
        operator=_imported(node_cluster, OPERATOR_IMAGE).reference,
        config_reloader=_imported(node_cluster, RELOADER_IMAGE).reference,
        prometheus=_imported(node_cluster, PROMETHEUS_IMAGE).reference,
    )
    core = client.CoreV1Api(node_api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=stack.NAMESPACE)))
    apply = [kubectl_binary, "apply", "--server-side", "--force-conflicts", "-f", "-"]
    try:
        node_cluster.run(apply, stdin=stack.as_stream(stack.operator_manifests(images)))
        wait = [kubectl_binary, "wait", "--for", "condition=Established", "--timeout", "60s"]
        node_cluster.run([*wait, *(f"crd/{name}" for name in stack.crd_names())], timeout=90)
        node_cluster.run(apply, stdin=stack.as_stream(stack.prometheus_manifests(images)))
        service = eventually(
            lambda: core.read_namespaced_service(stack.OPERATED_SERVICE, stack.NAMESPACE),
            timeout=120,
            what=f"the operator to create Service {stack.OPERATED_SERVICE}",
        )
        selector = f"app.kubernetes.io/name=prometheus,app.kubernetes.io/instance={stack.PROMETHEUS_NAME}"

        def ready() -> client.V1Pod | None:
            pods = core.list_namespaced_pod(stack.NAMESPACE, label_selector=selector).items
            return pods[0] if len(pods) == 1 and pod_ready(pods[0]) else None

        try:
            pod = eventually(ready, timeout=180, what="the Prometheus pod Ready")
        except AssertionError as exc:
            every = core.list_namespaced_pod(stack.NAMESPACE).items
            raise AssertionError(f"{exc}: {describe(every)}") from None
        port = next(p.port for p in service.spec.ports if p.name == "web")
        # The headless Service has no ClusterIP: the pod's own address, which this machine routes to.
        yield f"http://{pod.status.pod_ip}:{port}"
    finally:
        core.delete_namespace(stack.NAMESPACE)
        eventually(
            lambda: not any(n.metadata.name == stack.NAMESPACE for n in core.list_namespace().items),
            timeout=120,
            what=f"namespace {stack.NAMESPACE} deleted",
        )
        delete = [kubectl_binary, "delete", "--ignore-not-found", "--wait=false"]
        node_cluster.run(
            [*delete, "clusterrole,clusterrolebinding", "marketpulse-test-prometheus"], check=False
        )
        node_cluster.run([*delete, "clusterrole,clusterrolebinding", "prometheus-operator"], check=False)
        node_cluster.run([*delete, *(f"crd/{name}" for name in stack.crd_names())], check=False)


@pytest.fixture(scope="module")
def monitored_release(request: pytest.FixtureRequest, prometheus_url: str) -> Iterator[Release]:
    """A release whose operator creates ServiceMonitors and PrometheusRules, which that Prometheus loads."""
    values = {"metrics": {"serviceMonitor": {"enabled": True, "interval": stack.SCRAPE_INTERVAL}}}
    fixtures = (request.getfixturevalue(f) for f in _RELEASE_FIXTURES)
    # A name of its own: the session's release may still be installed, and a release's cluster-scoped
    # objects (its ClusterRole and binding) are named after it.
    with installed_release(*fixtures, extra_values=values, name="mon") as installed:
        yield installed
