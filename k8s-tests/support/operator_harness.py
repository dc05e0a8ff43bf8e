"""The harness of the operator's tests (`test_operator_*.py`): typed access to the test cluster, the
operator running in a thread, and the waits and reads the tests share.

Each test runs the real operator (kopf's CLI with the operator's registry) in a thread through
`kopf.testing.KopfRunner`, serving the test's own namespace. Test modules are imported with
`--import-mode=importlib` and cannot import one another, so this module is on pytest's `pythonpath`
(see pyproject.toml); the fixtures built from it are in `k8s-tests/conftest.py`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import yaml
from kopf.testing import KopfRunner
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from marketpulse.contract.api import GROUP, PLURAL, VERSION
from marketpulse.contract.api.crd import CRD_RELATIVE_PATH
from marketpulse.operator.handlers import build_registry
from marketpulse.operator.rbac import cluster_role
from marketpulse.operator.settings import OperatorSettings
from marketpulse_dev.localenv.s3 import S3Server
from marketpulse_dev.pytest_plugin import KubeTarget, eventually

ROOT = Path(__file__).parents[2]
UPSTREAM = ROOT / "k8s-tests" / "upstream-crds"
SAMPLES = ROOT / "operator" / "config" / "samples"
IMAGE = "registry.example/marketpulse:test"

T = TypeVar("T")

STRIMZI_V1 = [
    UPSTREAM / "strimzi" / "043-Crd-kafkatopic.yaml",
    UPSTREAM / "strimzi" / "044-Crd-kafkauser.yaml",
]
STRIMZI_V1BETA2 = [UPSTREAM / "strimzi" / "043-Crd-kafkatopic-v1beta2.yaml"]
MONITORING = sorted((UPSTREAM / "prometheus-operator").glob("*.yaml"))


def wait_for(
    predicate: Callable[[], T | None], *, timeout: float = 30, interval: float = 0.05, what: str = ""
) -> T:
    """Poll until `predicate` returns something truthy; fail after `timeout` seconds saying what."""
    return eventually(predicate, timeout=timeout, what=what, interval=interval)


class Cluster:
    """Typed access to the test API server."""

    def __init__(self, kube: KubeTarget, kubectl: Path, api: client.ApiClient) -> None:
        self.kube, self.kubectl, self.api = kube, kubectl, api
        self.objects = client.CustomObjectsApi(api)
        self.apps = client.AppsV1Api(api)
        self.batch = client.BatchV1Api(api)
        self.core = client.CoreV1Api(api)
        self.networking = client.NetworkingV1Api(api)
        self.extensions = client.ApiextensionsV1Api(api)

    # --- CRDs ------------------------------------------------------------------------------------
    def _crd_names(self, files: list[Path]) -> list[str]:
        return [d["metadata"]["name"] for f in files for d in yaml.safe_load_all(f.read_text()) if d]

    def install(self, files: list[Path]) -> None:
        for f in files:
            self.kube.run([self.kubectl, "apply", "--server-side", "--force-conflicts", "-f", f])
        for name in self._crd_names(files):
            self.kube.run(
                [self.kubectl, "wait", "--for=condition=Established", "--timeout=60s", f"crd/{name}"]
            )

    def uninstall(self, files: list[Path]) -> None:
        for name in self._crd_names(files):
            self.kube.run([self.kubectl, "delete", "crd", name, "--ignore-not-found", "--wait=true"])

    def served(self, group_version: str, kind: str) -> bool:
        try:
            response = self.api.call_api(
                f"/apis/{group_version}", "GET", _preload_content=False, _return_http_data_only=True
            )
        except ApiException:
            return False
        return any(r["kind"] == kind for r in json.loads(response.data).get("resources", []))

    def crd_set(self, *, strimzi: str | None = "v1", monitoring: bool = True) -> None:
        """Make the cluster serve exactly this set of optional CRDs (plus StockPipeline)."""
        self.install([ROOT / CRD_RELATIVE_PATH])
        topic_version = None
        with contextlib.suppress(ApiException):
            crd = self.extensions.read_custom_resource_definition("kafkatopics.kafka.strimzi.io")
            topic_version = next(v.name for v in crd.spec.versions if v.storage)
        if topic_version != strimzi:
            if topic_version is not None:
                self.uninstall(STRIMZI_V1)
                wait_for(
                    lambda: not self.served(f"kafka.strimzi.io/{topic_version}", "KafkaTopic"),
                    what="no topics",
                )
            if strimzi == "v1":
                self.install(STRIMZI_V1)
            elif strimzi == "v1beta2":
                self.install(STRIMZI_V1BETA2)
        if monitoring:
            self.install(MONITORING)
        else:
            self.uninstall(MONITORING)
            wait_for(
                lambda: not self.served("monitoring.coreos.com/v1", "ServiceMonitor"), what="no monitoring"
            )
        if strimzi:
            wait_for(
                lambda: self.served(f"kafka.strimzi.io/{strimzi}", "KafkaTopic"), what="KafkaTopic served"
            )

    # --- pipelines -------------------------------------------------------------------------------
    def apply_yaml(self, namespace: str, document: dict[str, Any]) -> None:
        argv = [self.kubectl, "apply", "--server-side", "-n", namespace, "-f", "-"]
        self.kube.run(argv, stdin=yaml.safe_dump(document))

    def pipeline(self, namespace: str, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.objects.get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name
        )
        return found

    def patch_spec(self, namespace: str, name: str, spec: dict[str, Any]) -> None:
        self.objects.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, {"spec": spec})

    def delete_pipeline(self, namespace: str, name: str) -> None:
        self.objects.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)

    def pipeline_gone(self, namespace: str, name: str) -> bool:
        try:
            self.pipeline(namespace, name)
        except ApiException as exc:
            if exc.status == 404:
                return True
            raise
        return False

    def release_pipelines(self, namespace: str) -> None:
        """Remove every StockPipeline left in `namespace` without its finalizer (no operator serves
        it any more), and wait until they are gone."""

        def left() -> list[dict[str, Any]]:
            try:
                found: list[dict[str, Any]] = self.objects.list_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL
                )["items"]
            except ApiException as exc:
                if exc.status == 404:  # the StockPipeline CRD is not installed: nothing can be left
                    return []
                raise
            return found

        for pipeline in left():
            name = pipeline["metadata"]["name"]
            with contextlib.suppress(ApiException):  # gone meanwhile
                self.objects.patch_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, name, {"metadata": {"finalizers": None}}
                )
                self.delete_pipeline(namespace, name)
        wait_for(lambda: not left(), timeout=30, what=f"the StockPipelines of {namespace} to go")

    def custom(self, api_version: str, plural: str, namespace: str) -> list[dict[str, Any]]:
        group, version = api_version.split("/")
        items: list[dict[str, Any]] = self.objects.list_namespaced_custom_object(
            group, version, namespace, plural
        )["items"]
        return items

    def events(self, namespace: str, name: str) -> list[client.CoreV1Event]:
        found = self.core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}")
        return list(found.items)


def service_account_kubeconfig(cluster: Cluster, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig that authenticates with a TokenRequest token of `account`, nothing else."""
    token = cluster.core.create_namespaced_service_account_token(
        account, namespace, client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[]))
    ).status.token
    admin = yaml.safe_load(cluster.kube.kubeconfig.read_text())
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": admin["clusters"],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [
            {"name": account, "context": {"cluster": admin["clusters"][0]["name"], "user": account}}
        ],
        "current-context": account,
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


@contextlib.contextmanager
def operator_account(cluster: Cluster, namespace: str, path: Path) -> Iterator[Path]:
    """A kubeconfig of a ServiceAccount bound to exactly the operator's ClusterRole (rbac.py), which
    goes with the context."""
    account, role_name = "marketpulse-operator", f"marketpulse-operator-{namespace}"
    rbac = client.RbacAuthorizationV1Api(cluster.api)
    cluster.core.create_namespaced_service_account(namespace, {"metadata": {"name": account}})
    rbac.create_cluster_role(cluster_role(role_name))
    role_ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_name}
    try:
        rbac.create_cluster_role_binding(
            {
                "metadata": {"name": role_name},
                "roleRef": role_ref,
                "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
            }
        )
        try:
            yield service_account_kubeconfig(cluster, namespace, account, path)
        finally:
            rbac.delete_cluster_role_binding(role_name)
    finally:
        rbac.delete_cluster_role(role_name)


def sample(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((SAMPLES / f"stockpipeline-{name}.yaml").read_text())
    return document


def operator_settings(kube: KubeTarget, s3: S3Server, **overrides: Any) -> OperatorSettings:
    values: dict[str, Any] = {
        "kubeconfig": kube.kubeconfig,
        "image": IMAGE,
        "s3_endpoint": s3.endpoint,
        "s3_access_key": s3.access_key,
        "s3_secret_key": s3.secret_key,
        "metrics_port": 0,
        "health_port": 0,
        "resync_seconds": 60.0,
        # The test broker, which direct-backend pipelines name in spec.kafka.bootstrapServers.
        "allowed_kafka_servers": "127.0.0.1",
        **overrides,
    }
    return OperatorSettings(**values)


class _WatchStarted(logging.Handler):
    """Notices kopf starting its watch of StockPipelines: from then on the operator sees changes."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.started = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "Starting the watch-stream for stockpipelines" in record.getMessage():
            self.started.set()


@contextlib.contextmanager
def running_operator(settings: OperatorSettings, namespace: str) -> Iterator[KopfRunner]:
    """The real operator (kopf CLI, our registry) in a thread, serving one namespace, watching."""
    watching = logging.getLogger("kopf._cogs.clients.watching")
    notice = _WatchStarted()
    watching.addHandler(notice)
    watching.setLevel(logging.DEBUG)
    try:
        args = ["run", "--standalone", "--namespace", namespace]
        with KopfRunner(args, registry=build_registry(settings), timeout=60) as runner:
            wait_for(notice.started.is_set, timeout=30, what="the operator to watch StockPipelines")
            yield runner
    finally:
        watching.removeHandler(notice)
    assert runner.exception is None, runner.output
    assert runner.exit_code == 0, runner.output


def children(cluster: Cluster, namespace: str) -> dict[str, dict[str, Any]]:
    """Every object in the namespace that the operator made, as `Kind/name` -> object (dict)."""
    found: dict[str, dict[str, Any]] = {}
    sanitize = cluster.api.sanitize_for_serialization
    for kind, items in (
        ("Deployment", cluster.apps.list_namespaced_deployment(namespace).items),
        ("CronJob", cluster.batch.list_namespaced_cron_job(namespace).items),
        ("Service", cluster.core.list_namespaced_service(namespace).items),
        ("Ingress", cluster.networking.list_namespaced_ingress(namespace).items),
        ("PersistentVolumeClaim", cluster.core.list_namespaced_persistent_volume_claim(namespace).items),
    ):
        for item in items:
            found[f"{kind}/{item.metadata.name}"] = sanitize(item)
    for api_version, kind, plural in (
        ("kafka.strimzi.io/v1", "KafkaTopic", "kafkatopics"),
        ("kafka.strimzi.io/v1beta2", "KafkaTopic", "kafkatopics"),
        ("kafka.strimzi.io/v1", "KafkaUser", "kafkausers"),
        ("monitoring.coreos.com/v1", "ServiceMonitor", "servicemonitors"),
        ("monitoring.coreos.com/v1", "PrometheusRule", "prometheusrules"),
    ):
        if cluster.served(api_version, kind):
            for item in cluster.custom(api_version, plural, namespace):
                found[f"{kind}/{item['metadata']['name']}"] = item
    return found


def condition(pipeline: dict[str, Any], kind: str) -> dict[str, Any]:
    conditions = (pipeline.get("status") or {}).get("conditions", [])
    return next((c for c in conditions if c["type"] == kind), {})


# What the operator makes of the synthetic-duckdb sample on a cluster with Strimzi and monitoring.
DEMO_CHILDREN = {
    "KafkaTopic/demo-ticks",
    "KafkaTopic/demo-ticks-dlq",
    "KafkaTopic/demo-alerts",
    "PersistentVolumeClaim/demo-warehouse",
    "Deployment/demo-ingest",
    "Deployment/demo-archive",
    "CronJob/demo-transform",
    "Deployment/demo-dashboard",
    "Service/demo-dashboard",
    "Service/demo-metrics",
    "ServiceMonitor/demo",
    "PrometheusRule/demo",
}


def wait_status(cluster: Cluster, namespace: str, name: str, predicate: Any, what: str) -> dict[str, Any]:
    """The pipeline, once `predicate` holds for it (within 20 s)."""

    def check() -> dict[str, Any] | None:
        found = cluster.pipeline(namespace, name)
        return found if predicate(found) else None

    result: dict[str, Any] = wait_for(check, timeout=20, what=what)
    return result


def handled(generation: int) -> Any:
    """The status describes `generation`: the operator has reconciled that version of the spec."""
    return lambda p: (p.get("status") or {}).get("observedGeneration") == generation


def histogram_count(histogram: Any) -> float:
    """Observations of one labelled histogram of this process (the operator runs in a thread here)."""
    return float(sum(bucket.get() for bucket in histogram._buckets))
