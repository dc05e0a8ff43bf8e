"""The StockPipeline operator against the real local API server, Kafka broker and S3 server.

Each test runs the real operator (kopf's CLI with the operator's registry) in a thread through
`kopf.testing.KopfRunner`, serving the test's own namespace. No kubelet runs here: Deployments
are asserted as API objects and never become Available, which the status must say honestly.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import yaml
from confluent_kafka.admin import AdminClient
from kopf.testing import KopfRunner
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from marketpulse.archive.quotes import QUOTES_KEY, QuoteBook
from marketpulse.localenv.kafka import KafkaServer
from marketpulse.localenv.process import free_port
from marketpulse.localenv.pytest_plugin import KubeTarget
from marketpulse.localenv.s3 import S3Server
from marketpulse.operator.api import GROUP, PLURAL, VERSION
from marketpulse.operator.api.crd import CRD_RELATIVE_PATH
from marketpulse.operator.handlers import build_registry
from marketpulse.operator.metrics import (
    BACKEND_WRITES,
    DURATION,
    api_writes_by_kind,
)
from marketpulse.operator.rbac import cluster_role
from marketpulse.operator.settings import OperatorSettings
from marketpulse.storage.s3 import minio_client

ROOT = Path(__file__).parents[1]
UPSTREAM = Path(__file__).parent / "upstream-crds"
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
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (ApiException, httpx.HTTPError, KeyError, IndexError, TypeError) as exc:
            last = exc
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what or predicate}" + (f": {last}" if last else "")
    )


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

    def custom(self, api_version: str, plural: str, namespace: str) -> list[dict[str, Any]]:
        group, version = api_version.split("/")
        items: list[dict[str, Any]] = self.objects.list_namespaced_custom_object(
            group, version, namespace, plural
        )["items"]
        return items

    def events(self, namespace: str, name: str) -> list[client.CoreV1Event]:
        found = self.core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}")
        return list(found.items)


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


pytestmark = [pytest.mark.k8s, pytest.mark.s3, pytest.mark.kafka]

CHILD_KINDS = ("Deployment", "CronJob", "Service", "Ingress", "PersistentVolumeClaim")


@pytest.fixture
def cluster(kube: KubeTarget, kubectl_binary: Path, api_client: client.ApiClient) -> Cluster:
    return Cluster(kube, kubectl_binary, api_client)


@pytest.fixture
def settings(kube: KubeTarget, s3_server: S3Server) -> OperatorSettings:
    return operator_settings(kube, s3_server)


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


def env_of(deployment: dict[str, Any]) -> dict[str, Any]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


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
    "Ingress/demo-dashboard",
    "Service/demo-metrics",
    "ServiceMonitor/demo",
    "PrometheusRule/demo",
}


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
    assert {"name": "tmp", "emptyDir": {}} in pod["volumes"]
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


def _wait_status(cluster: Cluster, namespace: str, name: str, predicate: Any, what: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        found = cluster.pipeline(namespace, name)
        return found if predicate(found) else None

    result: dict[str, Any] = wait_for(check, timeout=20, what=what)
    return result


def _handled(generation: int) -> Any:
    return lambda p: (p.get("status") or {}).get("observedGeneration") == generation


def test_the_status_reports_each_symbols_newest_archived_tick_and_keeps_it_over_a_bad_snapshot(
    cluster: Cluster, kube: KubeTarget, s3_server: S3Server, namespace: str
) -> None:
    cluster.crd_set(strimzi="v1", monitoring=True)
    fast = operator_settings(kube, s3_server, resync_seconds=0.3)
    s3 = minio_client(s3_server.endpoint, s3_server.access_key, s3_server.secret_key)

    def put_quotes(data: bytes) -> None:
        s3.put_object(bucket, QUOTES_KEY, io.BytesIO(data), len(data))

    book = QuoteBook()
    book.update({"symbol": "AAPL", "price": 190.0, "size": 5, "event_time": "2026-11-26T14:30:00.250000Z"})
    book.update({"symbol": "NVDA", "price": 480.0, "size": 1, "event_time": "2026-11-26T14:29:59.999999Z"})
    timer = DURATION.labels("timer")
    with running_operator(fast, namespace):
        cluster.apply_yaml(namespace, sample("synthetic-duckdb"))
        first = _wait_status(cluster, namespace, "demo", _handled(1), "the first reconcile")
        bucket = first["status"]["bucket"]
        put_quotes(book.snapshot())
        fresh = _wait_status(
            cluster, namespace, "demo", lambda p: (p.get("status") or {}).get("freshness"), "freshness"
        )
        put_quotes(b"{not json")
        runs = _count(timer)
        wait_for(lambda: _count(timer) >= runs + 3, timeout=15, what="three timer reconciles")
        kept = cluster.pipeline(namespace, "demo")

    assert "freshness" not in first["status"]  # nothing archived yet
    assert fresh["status"]["freshness"] == [
        {"symbol": "AAPL", "lastTickTime": "2026-11-26T14:30:00Z"},
        {"symbol": "MSFT"},
        {"symbol": "NVDA", "lastTickTime": "2026-11-26T14:29:59Z"},
        {"symbol": "AMZN"},
        {"symbol": "BRK.B"},
    ]
    assert kept["status"]["freshness"] == fresh["status"]["freshness"]


def test_a_topic_reported_ready_reaches_the_pipeline_status_without_waiting_for_the_periodic_reconcile(
    cluster: Cluster, kube: KubeTarget, s3_server: S3Server, namespace: str
) -> None:
    cluster.crd_set(strimzi="v1", monitoring=True)
    # No periodic reconcile within the test: only the child's change can bring the news.
    slow = operator_settings(kube, s3_server, resync_seconds=3600)
    with running_operator(slow, namespace):
        cluster.apply_yaml(namespace, sample("synthetic-duckdb"))
        first = _wait_status(cluster, namespace, "demo", _handled(1), "the first reconcile")
        # What Strimzi's topic operator does once a topic exists in Kafka.
        ready = {"status": {"conditions": [{"type": "Ready", "status": "True"}], "observedGeneration": 1}}
        listed = cluster.objects.list_namespaced_custom_object(
            "kafka.strimzi.io", "v1", namespace, "kafkatopics"
        )
        for topic in listed["items"]:
            cluster.objects.patch_namespaced_custom_object_status(
                "kafka.strimzi.io", "v1", namespace, "kafkatopics", topic["metadata"]["name"], ready
            )
        # Within _wait_status's 20 s: the periodic reconcile is an hour away.
        topics_ready = _wait_status(
            cluster, namespace, "demo", lambda p: condition(p, "Topics").get("status") == "True", "Topics"
        )

    assert condition(first, "Topics")["reason"] == "WaitingForTopicOperator"
    assert condition(topics_ready, "Topics")["reason"] == "TopicsReady"
    assert len(listed["items"]) == 3


# --- pods that cannot run -------------------------------------------------------------------------
# No kubelet or scheduler runs against this API server, so these tests write pod status through the
# pods/binding and pods/status subresources exactly as the scheduler and a kubelet would. The proof
# with a real kubelet, real image pulls and real crashes belongs to the tests on a real node.

KUBELET_NODE = "node-written-by-the-test"


def _workload_pod(cluster: Cluster, namespace: str, component: str, job: str | None = None) -> str:
    """The one pod of `component`, made by its ReplicaSet or, for `job`, by the Job controller."""
    selector = f"app.kubernetes.io/instance=demo,app.kubernetes.io/component={component}"
    if job is not None:  # the CronJob may start a run of its own meanwhile
        selector += f",batch.kubernetes.io/job-name={job}"

    def one() -> str | None:
        pods = cluster.core.list_namespaced_pod(namespace, label_selector=selector).items
        return pods[0].metadata.name if len(pods) == 1 else None

    name: str = wait_for(one, timeout=20, what=f"the {component} pod")
    return name


def _bind_as_the_scheduler_would(cluster: Cluster, namespace: str, pod: str) -> None:
    binding = {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": pod},
        "target": {"apiVersion": "v1", "kind": "Node", "name": KUBELET_NODE},
    }
    # The client cannot read the Status it gets back as a Binding; the response is not needed.
    cluster.core.create_namespaced_pod_binding(pod, namespace, binding, _preload_content=False)


def _write_pod_status_as_a_kubelet_would(
    cluster: Cluster, namespace: str, pod: str, status: dict[str, Any]
) -> None:
    cluster.core.patch_namespaced_pod_status(pod, namespace, {"status": status})


def _kubelet_conditions(*, ready: bool, container: str, at: str) -> list[dict[str, Any]]:
    not_ready = (
        {}
        if ready
        else {"reason": "ContainersNotReady", "message": f"containers with unready status: [{container}]"}
    )
    return [
        {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": at},
        {"type": "Initialized", "status": "True", "lastTransitionTime": at},
        {"type": "Ready", "status": str(ready), "lastTransitionTime": at, **not_ready},
        {"type": "ContainersReady", "status": str(ready), "lastTransitionTime": at, **not_ready},
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": at},
    ]


def _container_status(container: str, state: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "name": container,
        "image": IMAGE,
        "imageID": "",
        "ready": False,
        "started": False,
        "restartCount": 0,
        "state": state,
        "lastState": {},
        **extra,
    }


def _waiting(container: str, reason: str, message: str, **extra: Any) -> dict[str, Any]:
    return _container_status(container, {"waiting": {"reason": reason, "message": message}}, **extra)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def test_pod_status_written_by_the_test_as_a_kubelet_would_gives_each_concern_the_pods_reason_within_seconds(
    cluster: Cluster, kube: KubeTarget, s3_server: S3Server, namespace: str
) -> None:
    cluster.crd_set(strimzi="v1", monitoring=True)
    # No periodic reconcile within the test: only the operator's watch of its pods can bring the news.
    slow = operator_settings(kube, s3_server, resync_seconds=3600)
    at = _now()
    container_id = "containerd://" + "0f" * 32
    # What a workload that dies at start-up leaves with FallbackToLogsOnError: its last log lines,
    # here with the S3 secret key it was given (it must not reach the status).
    last_lines = (
        "Traceback (most recent call last):\n"
        '  File "/app/marketpulse/cli/__init__.py", line 88, in ingest\n'
        f"marketpulse.platform.SettingsError: cannot reach Kafka (S3_SECRET_KEY={s3_server.secret_key})\n"
        "KAFKA_BOOTSTRAP_SERVERS=marketpulse-kafka-bootstrap:9092: no broker answered within 10 s\n"
    )
    with running_operator(slow, namespace):
        cluster.apply_yaml(namespace, sample("synthetic-duckdb"))
        first = _wait_status(cluster, namespace, "demo", _handled(1), "the first reconcile")
        ingest, archive, dashboard = (
            _workload_pod(cluster, namespace, c) for c in ("ingest", "archive", "dashboard")
        )
        # The transform runs as a CronJob: start a run now, as `kubectl create job --from` does.
        cluster.kube.run(
            [
                cluster.kubectl,
                "create",
                "job",
                "-n",
                namespace,
                "demo-transform-now",
                "--from=cronjob/demo-transform",
            ]
        )
        transform = _workload_pod(cluster, namespace, "transform", job="demo-transform-now")
        _bind_as_the_scheduler_would(cluster, namespace, transform)
        not_found = (
            f'failed to pull and unpack image "{IMAGE}": failed to resolve reference "{IMAGE}": '
            f"{IMAGE}: not found"
        )
        _write_pod_status_as_a_kubelet_would(
            cluster,
            namespace,
            transform,
            {
                "phase": "Pending",
                "startTime": at,
                "conditions": _kubelet_conditions(ready=False, container="transform", at=at),
                "containerStatuses": [_waiting("transform", "ErrImagePull", not_found)],
            },
        )
        # The new Job changes the CronJob's status, which reconciles the pipeline anyway: once that
        # news is in, nothing but the pods below changes, and only the pod watch can tell.
        _wait_status(
            cluster,
            namespace,
            "demo",
            lambda p: condition(p, "Transform").get("reason") == "ErrImagePull",
            "the transform run's pod reason",
        )

        started = time.monotonic()
        for pod in (ingest, archive):
            _bind_as_the_scheduler_would(cluster, namespace, pod)
        _write_pod_status_as_a_kubelet_would(
            cluster,
            namespace,
            ingest,
            {
                "phase": "Running",
                "startTime": at,
                "conditions": _kubelet_conditions(ready=False, container="ingest", at=at),
                "containerStatuses": [
                    _waiting(
                        "ingest",
                        "CrashLoopBackOff",
                        f"back-off 40s restarting failed container=ingest pod={ingest}_{namespace}(uid)",
                        containerID=container_id,
                        restartCount=3,
                        lastState={
                            "terminated": {
                                "exitCode": 1,
                                "reason": "Error",
                                "message": last_lines,
                                "startedAt": at,
                                "finishedAt": at,
                                "containerID": container_id,
                            }
                        },
                    )
                ],
            },
        )
        missing_key = f"couldn't find key AWS_SECRET_ACCESS_KEY in Secret {namespace}/marketpulse-s3"
        _write_pod_status_as_a_kubelet_would(
            cluster,
            namespace,
            archive,
            {
                "phase": "Pending",
                "startTime": at,
                "conditions": _kubelet_conditions(ready=False, container="archive", at=at),
                "containerStatuses": [_waiting("archive", "CreateContainerConfigError", missing_key)],
            },
        )
        no_room = (
            "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: "
            "1 No preemption victims found for incoming pod."
        )
        _write_pod_status_as_a_kubelet_would(  # as the scheduler does for a pod it cannot place
            cluster,
            namespace,
            dashboard,
            {
                "phase": "Pending",
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": no_room,
                        "lastTransitionTime": at,
                    }
                ],
            },
        )
        reasons = {
            "Ingest": "CrashLoopBackOff",
            "Archive": "CreateContainerConfigError",
            "Transform": "ErrImagePull",
            "Dashboard": "Unschedulable",
        }
        degraded = _wait_status(
            cluster,
            namespace,
            "demo",
            lambda p: all(condition(p, kind).get("reason") == reason for kind, reason in reasons.items()),
            "every concern to carry its pod's reason",
        )
        elapsed = time.monotonic() - started

        # The pod starts and becomes ready: the condition follows it back.
        _write_pod_status_as_a_kubelet_would(
            cluster,
            namespace,
            ingest,
            {
                "conditions": _kubelet_conditions(ready=True, container="ingest", at=_now()),
                "containerStatuses": [
                    _container_status(
                        "ingest",
                        {"running": {"startedAt": _now()}},
                        imageID=f"{IMAGE}@sha256:{'ab' * 32}",
                        containerID=container_id,
                        restartCount=4,
                        ready=True,
                        started=True,
                    )
                ],
            },
        )
        recovered = _wait_status(
            cluster,
            namespace,
            "demo",
            lambda p: condition(p, "Ingest").get("status") == "True",
            "the ingest condition to follow its pod back",
        )
        events = cluster.events(namespace, "demo")

    # Printed here: the operator's runner captures stdout while it runs.
    print(f"\npods' reasons in the pipeline's conditions {elapsed:.2f}s after the pods' status was written")
    assert condition(first, "Ingest")["reason"] == "Unavailable"
    assert first["status"]["phase"] == "Provisioning"
    assert elapsed <= 20, f"the pods' reasons took {elapsed:.1f}s"
    assert degraded["status"]["phase"] == "Degraded"
    assert condition(degraded, "Ready")["status"] == "False"
    crash = condition(degraded, "Ingest")["message"]
    assert crash.startswith(f"Deployment demo-ingest: pod {ingest}: container ingest keeps crashing; ")
    assert "exited with code 1 (Error)" in crash
    assert crash.endswith(
        "KAFKA_BOOTSTRAP_SERVERS=marketpulse-kafka-bootstrap:9092: no broker answered within 10 s"
    )
    assert "\n" not in crash
    assert s3_server.secret_key not in crash
    assert "S3_SECRET_KEY=<redacted>" in crash
    assert (
        condition(degraded, "Archive")["message"]
        == f"Deployment demo-archive: pod {archive}: container archive: {missing_key}"
    )
    assert condition(degraded, "Transform")["message"] == (
        f"CronJob demo-transform: pod {transform}: container transform: {not_found}"
    )
    assert (
        condition(degraded, "Dashboard")["message"]
        == f"Deployment demo-dashboard: pod {dashboard} cannot be scheduled: {no_room}"
    )
    assert condition(recovered, "Ingest")["reason"] == "Available"
    warnings = {e.reason: e.message for e in events if e.type == "Warning"}
    assert warnings["CrashLoopBackOff"].startswith("Ingest: Deployment demo-ingest: pod ")
    assert s3_server.secret_key not in warnings["CrashLoopBackOff"]
    assert "Degraded" in warnings


def test_a_deleted_deployment_is_put_back_without_waiting_for_the_periodic_reconcile(
    cluster: Cluster, kube: KubeTarget, s3_server: S3Server, namespace: str
) -> None:
    cluster.crd_set(strimzi="v1", monitoring=True)
    slow = operator_settings(kube, s3_server, resync_seconds=3600)
    with running_operator(slow, namespace):
        cluster.apply_yaml(namespace, sample("synthetic-duckdb"))
        _wait_status(cluster, namespace, "demo", _handled(1), "the first reconcile")
        before = cluster.apps.read_namespaced_deployment("demo-archive", namespace).metadata.uid
        cluster.apps.delete_namespaced_deployment("demo-archive", namespace)

        def recreated() -> str | None:
            uid = cluster.apps.read_namespaced_deployment("demo-archive", namespace).metadata.uid
            return uid if uid != before else None

        after = wait_for(recreated, timeout=20, what="demo-archive to be recreated")

    assert after != before


def test_a_watchlist_change_rolls_the_workloads_by_changing_their_pod_template(
    cluster: Cluster, settings: OperatorSettings, namespace: str
) -> None:
    cluster.crd_set(strimzi="v1", monitoring=True)
    with running_operator(settings, namespace):
        cluster.apply_yaml(namespace, sample("synthetic-duckdb"))
        _wait_status(cluster, namespace, "demo", _handled(1), "the first reconcile")
        before = cluster.apps.read_namespaced_deployment("demo-ingest", namespace)
        cluster.patch_spec(namespace, "demo", {"watchlist": ["AAPL", "TSLA"]})
        _wait_status(cluster, namespace, "demo", _handled(2), "the update")
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
        _wait_status(cluster, namespace, "demo", _handled(1), "the first reconcile")
        cluster.patch_spec(namespace, "demo", {"suspend": True})
        suspended = _wait_status(cluster, namespace, "demo", _handled(2), "suspend")
        replicas_suspended = {
            d.metadata.name: d.spec.replicas for d in cluster.apps.list_namespaced_deployment(namespace).items
        }
        cron_suspended = cluster.batch.read_namespaced_cron_job("demo-transform", namespace).spec.suspend
        cluster.patch_spec(namespace, "demo", {"suspend": False})
        resumed = _wait_status(cluster, namespace, "demo", _handled(3), "resume")
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


def test_reconciling_an_unchanged_pipeline_makes_zero_writes(
    cluster: Cluster, kube: KubeTarget, s3_server: S3Server, namespace: str
) -> None:
    cluster.crd_set(strimzi="v1", monitoring=True)
    fast = operator_settings(kube, s3_server, resync_seconds=0.3)
    timer = DURATION.labels("timer")

    def finished_timer_runs() -> float:
        return _count(timer)

    def timer_runs(count: int) -> None:
        runs = finished_timer_runs()
        wait_for(lambda: finished_timer_runs() >= runs + count, timeout=15, what=f"{count} timer reconciles")

    def world() -> dict[str, str]:
        """resourceVersion of the pipeline and every child: unchanged means nobody wrote anything."""
        versions = {k: c["metadata"]["resourceVersion"] for k, c in children(cluster, namespace).items()}
        versions["StockPipeline/demo"] = cluster.pipeline(namespace, "demo")["metadata"]["resourceVersion"]
        return versions

    windows: list[dict[str, Any]] = []

    def unchanged_window() -> dict[str, Any] | None:
        """Writes made over five timer reconciles of an unchanged world, or None if it changed.

        The world must hold still for two reconciles first, so that a change made just before
        the window (the controllers fill in Deployment status) is reported before it starts.
        """
        before = world()
        timer_runs(2)
        writes, backend = api_writes_by_kind(), _backend_writes()
        if world() != before:
            return None
        timer_runs(5)
        after = world()
        made = {k: n - writes.get(k, 0) for k, n in api_writes_by_kind().items() if n != writes.get(k, 0)}
        windows.append({"made": made, "changed": sorted(k for k in after if after[k] != before.get(k))})
        if after != before:
            return None
        return {"made": made, "backend": _backend_writes() - backend}

    with running_operator(fast, namespace):
        cluster.apply_yaml(namespace, sample("synthetic-duckdb"))
        _wait_status(cluster, namespace, "demo", _handled(1), "the first reconcile")
        try:
            quiet = wait_for(unchanged_window, timeout=60, what="five reconciles of an unchanged world")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; windows seen: {windows}") from None

    assert quiet["made"] == {}, f"writes made by no-op reconciles: {quiet['made']}"
    assert quiet["backend"] == 0


def _count(histogram: Any) -> float:
    return float(sum(bucket.get() for bucket in histogram._buckets))


def _backend_writes() -> float:
    return sum(s.value for m in BACKEND_WRITES.collect() for s in m.samples if s.name.endswith("_total"))


def test_deleting_with_retain_keeps_topics_volume_and_bucket_and_says_so_in_an_event(
    cluster: Cluster, settings: OperatorSettings, namespace: str, s3_server: S3Server
) -> None:
    cluster.crd_set(strimzi="v1", monitoring=True)
    with running_operator(settings, namespace):
        cluster.apply_yaml(namespace, sample("synthetic-duckdb"))
        pipeline = _wait_status(cluster, namespace, "demo", _handled(1), "the first reconcile")
        assert "marketpulse.io/cleanup" in pipeline["metadata"]["finalizers"]
        cluster.delete_pipeline(namespace, "demo")
        wait_for(lambda: cluster.pipeline_gone(namespace, "demo"), timeout=20, what="the pipeline to go")
    # Garbage collection by the controller-manager removes what the pipeline still owns.
    wait_for(
        lambda: not cluster.apps.list_namespaced_deployment(namespace).items,
        timeout=30,
        what="Deployments to be garbage-collected",
    )
    topics = cluster.custom("kafka.strimzi.io/v1", "kafkatopics", namespace)
    claim = cluster.core.read_namespaced_persistent_volume_claim("demo-warehouse", namespace)
    events = cluster.events(namespace, "demo")

    assert sorted(t["metadata"]["name"] for t in topics) == ["demo-alerts", "demo-ticks", "demo-ticks-dlq"]
    assert all(not t["metadata"].get("ownerReferences") for t in topics)
    assert not claim.metadata.owner_references
    assert minio_client(s3_server.endpoint, s3_server.access_key, s3_server.secret_key).bucket_exists(
        pipeline["status"]["bucket"]
    )
    retained = [e for e in events if e.reason == "Retained"]
    assert retained
    assert "kept" in retained[0].message
    assert pipeline["status"]["bucket"] in retained[0].message


def test_direct_topics_exist_on_the_broker_grow_and_are_deleted_with_the_bucket_under_delete_policy(
    cluster: Cluster,
    settings: OperatorSettings,
    namespace: str,
    s3_server: S3Server,
    kafka_server: KafkaServer,
) -> None:
    cluster.crd_set(strimzi="v1", monitoring=True)
    document = sample("direct-topics")
    document["spec"]["kafka"]["bootstrapServers"] = kafka_server.bootstrap_servers
    admin = AdminClient({"bootstrap.servers": kafka_server.bootstrap_servers})
    s3 = minio_client(s3_server.endpoint, s3_server.access_key, s3_server.secret_key)
    ticks = f"{namespace}.fx-lab.ticks"

    def partitions() -> dict[str, int]:
        listed = admin.list_topics(timeout=5).topics
        return {n: len(t.partitions) for n, t in listed.items() if n.startswith(f"{namespace}.")}

    with running_operator(settings, namespace):
        cluster.apply_yaml(namespace, document)
        pipeline = _wait_status(cluster, namespace, "fx-lab", _handled(1), "the first reconcile")
        created = partitions()
        transform = cluster.apps.read_namespaced_deployment("fx-lab-transform", namespace)
        cluster.patch_spec(namespace, "fx-lab", {"kafka": {"partitions": 5}})
        _wait_status(cluster, namespace, "fx-lab", _handled(2), "the partition change")
        # Metadata reaches the broker we ask a moment after the controller commits the change.
        grown = wait_for(lambda: (found := partitions()).get(ticks) == 5 and found, what="5 partitions")
        cluster.delete_pipeline(namespace, "fx-lab")
        wait_for(lambda: cluster.pipeline_gone(namespace, "fx-lab"), timeout=30, what="the pipeline to go")
        after = partitions()

    assert created == {ticks: 3, f"{ticks}.dlq": 1, f"{namespace}.fx-lab.alerts": 1}
    assert condition(pipeline, "Topics")["status"] == "True"
    assert transform.spec.strategy.type == "Recreate"
    assert transform.spec.replicas == 1
    assert grown[ticks] == 5
    assert after == {}
    assert not s3.bucket_exists(pipeline["status"]["bucket"])
    assert not cluster.custom("kafka.strimzi.io/v1", "kafkatopics", namespace)


def test_a_v1beta2_only_strimzi_cluster_gets_v1beta2_topics_and_no_monitoring_without_its_crds(
    cluster: Cluster, settings: OperatorSettings, namespace: str
) -> None:
    cluster.crd_set(strimzi="v1beta2", monitoring=False)
    try:
        with running_operator(settings, namespace):
            cluster.apply_yaml(namespace, sample("synthetic-duckdb"))
            _wait_status(cluster, namespace, "demo", _handled(1), "the first reconcile")
            found = children(cluster, namespace)
    finally:
        cluster.crd_set(strimzi="v1", monitoring=True)

    topics = [c for k, c in found.items() if k.startswith("KafkaTopic/")]
    assert len(topics) == 3
    assert {t["apiVersion"] for t in topics} == {"kafka.strimzi.io/v1beta2"}
    assert not [k for k in found if k.split("/")[0] in ("ServiceMonitor", "PrometheusRule")]
    assert "Service/demo-metrics" not in found


def test_restarting_the_operator_mid_reconcile_converges_without_duplicates(
    cluster: Cluster, settings: OperatorSettings, namespace: str
) -> None:
    cluster.crd_set(strimzi="v1", monitoring=True)
    with running_operator(settings, namespace):
        cluster.apply_yaml(namespace, sample("synthetic-duckdb"))
        # Stop as soon as the first child exists: the reconcile is under way, not finished.
        wait_for(lambda: children(cluster, namespace), timeout=10, interval=0.01, what="a first child")
    with running_operator(settings, namespace):
        pipeline = _wait_status(cluster, namespace, "demo", _handled(1), "a reconcile after the restart")
        found = children(cluster, namespace)

    assert set(found) == DEMO_CHILDREN
    assert pipeline["metadata"]["finalizers"] == ["marketpulse.io/cleanup"]
    assert len(cluster.custom("kafka.strimzi.io/v1", "kafkatopics", namespace)) == 3


def test_restarting_the_api_server_mid_reconcile_converges_without_duplicates(
    cluster: Cluster, settings: OperatorSettings, namespace: str, kube: KubeTarget
) -> None:
    if kube.local is None:
        pytest.skip("restarts the API server, so it needs the local control plane")
    cluster.crd_set(strimzi="v1", monitoring=True)
    with running_operator(settings, namespace):
        cluster.apply_yaml(namespace, sample("synthetic-duckdb"))
        wait_for(lambda: children(cluster, namespace), timeout=10, interval=0.01, what="a first child")
        kube.local.restart_apiserver()
        pipeline = _wait_status(
            cluster, namespace, "demo", _handled(1), "a reconcile after the API server restart"
        )
        found = children(cluster, namespace)

    assert set(found) == DEMO_CHILDREN
    assert len(cluster.custom("kafka.strimzi.io/v1", "kafkatopics", namespace)) == 3
    assert condition(pipeline, "Topics").get("status") is not None


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
            pipeline = _wait_status(
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


def test_apply_to_children_and_status_latency_p95_is_within_2_seconds(
    cluster: Cluster, settings: OperatorSettings, namespace: str
) -> None:
    cluster.crd_set(strimzi="v1", monitoring=True)
    latencies = []
    with running_operator(settings, namespace):
        # Warm-up: the watch's first list and the clients' connection pools.
        cluster.apply_yaml(namespace, {**sample("synthetic-duckdb"), "metadata": {"name": "warmup"}})
        _wait_status(cluster, namespace, "warmup", _handled(1), "the warm-up pipeline")
        for i in range(20):
            name = f"lat-{i:02d}"
            document = {**sample("synthetic-duckdb"), "metadata": {"name": name, "namespace": namespace}}
            started = time.monotonic()
            cluster.objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, document)
            wait_for(
                lambda name=name: (cluster.pipeline(namespace, name).get("status") or {}).get("phase"),
                timeout=10,
                interval=0.01,
                what=f"status of {name}",
            )
            deployments = cluster.apps.list_namespaced_deployment(
                namespace, label_selector=f"app.kubernetes.io/instance={name}"
            ).items
            latencies.append(time.monotonic() - started)
            assert len(deployments) == 3

    durations = DURATION.labels("create")
    print(f"\nreconcile (create) mean {durations._sum.get() / max(1, _count(durations)) * 1000:.0f} ms")
    latencies.sort()
    p50, p95 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.95) - 1]
    print(
        f"\napply -> children + status: p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
        f"max {latencies[-1] * 1000:.0f} ms"
    )
    assert p95 <= 2.0


def _service_account_kubeconfig(cluster: Cluster, namespace: str, account: str, path: Path) -> Path:
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
    kubeconfig = _service_account_kubeconfig(cluster, namespace, account, tmp_path / "kubeconfig")
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
    argv = [str(Path(sys.executable).with_name("marketpulse")), "operator", "--namespace", namespace]
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
            pipeline = _wait_status(
                cluster, namespace, "demo", _handled(1), "a reconcile under the chart's RBAC"
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
    assert 'marketpulse_operator_reconciles_total{trigger="create"} 1.0' in metrics
    assert 'marketpulse_operator_pipelines{phase="Provisioning"} 1.0' in metrics
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
            argv = [str(Path(sys.executable).with_name("marketpulse")), "operator", "--namespace", namespace]
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
        _wait_status(cluster, namespace, "demo", _handled(1), "the active replica's reconcile")

        def reconciles(port: int) -> float:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            return sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("marketpulse_operator_reconciles_total{")
            )

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
