"""charts/marketpulse against the real API server: install every scenario, upgrade, uninstall, and the
operator reconciling a pipeline from chart values under the chart's own ServiceAccount and RBAC.

No kubelet runs on the local control plane, so the chart's Deployment never gets a pod: installs
run without `--wait` on Deployments, and the operator runs as a local process with exactly the
container's arguments and environment, authenticated by a token of the chart's ServiceAccount.
The uninstall hook's Job pod is run the same way by a FAKE kubelet (`FakeKubelet`), which reports
the exit code in the pod's status so that the Job controller and helm see the hook finish.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from marketpulse.localenv.process import free_port
from marketpulse.localenv.pytest_plugin import KubeTarget
from marketpulse.localenv.s3 import S3Server
from marketpulse.storage.s3 import minio_client

pytestmark = [pytest.mark.k8s, pytest.mark.helm]

ROOT = Path(__file__).parents[1]
CHART = ROOT / "charts" / "marketpulse"
SCENARIOS = [
    "defaults",
    *sorted(p.name.removesuffix("-values.yaml") for p in (CHART / "ci").glob("*-values.yaml")),
]
T = TypeVar("T")

# Every kind the chart can render, to look for leftovers after an uninstall: (api, plural, namespaced).
CHART_KINDS = [
    ("apps/v1", "deployments", True),
    ("v1", "serviceaccounts", True),
    ("v1", "services", True),
    ("v1", "secrets", True),
    ("v1", "configmaps", True),
    ("policy/v1", "poddisruptionbudgets", True),
    ("networking.k8s.io/v1", "networkpolicies", True),
    ("rbac.authorization.k8s.io/v1", "roles", True),
    ("rbac.authorization.k8s.io/v1", "rolebindings", True),
    ("rbac.authorization.k8s.io/v1", "clusterroles", False),
    ("rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
    ("kopf.dev/v1", "kopfpeerings", True),
    ("kopf.dev/v1", "clusterkopfpeerings", False),
    ("monitoring.coreos.com/v1", "servicemonitors", True),
    ("monitoring.coreos.com/v1", "prometheusrules", True),
    ("kafka.strimzi.io/v1", "kafkas", True),
    ("kafka.strimzi.io/v1", "kafkanodepools", True),
    ("marketpulse.io/v1alpha1", "stockpipelines", True),
]


def wait_for(predicate: Callable[[], T | None], *, timeout: float = 30, what: str = "") -> T:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (ApiException, httpx.HTTPError, KeyError) as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}" + (f": {last}" if last else ""))


class Helm:
    """helm and kubectl against the test cluster, one release per test namespace."""

    def __init__(
        self, kube: KubeTarget, helm: Path, kubectl: Path, api: client.ApiClient, namespace: str
    ) -> None:
        self.kube, self.helm, self.kubectl, self.api, self.namespace = kube, helm, kubectl, api, namespace
        # Cluster-scoped objects are named after the release: one release name per test namespace.
        self.release = namespace

    def values_args(self, scenario: str, values: dict[str, Any] | None = None) -> list[str | Path]:
        argv: list[str | Path] = []
        if scenario != "defaults":
            argv += ["--values", CHART / "ci" / f"{scenario}-values.yaml"]
        for key, value in (values or {}).items():
            argv += ["--set-json", f"{key}={json.dumps(value)}"]
        return argv

    def run(self, *argv: str | Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.kube.run(list(argv), stdin=stdin)

    def template(self, scenario: str, values: dict[str, Any] | None = None) -> str:
        argv = ["template", self.release, CHART, "--namespace", self.namespace]
        return self.run(self.helm, *argv, *self.values_args(scenario, values)).stdout

    def install(self, scenario: str, values: dict[str, Any] | None = None) -> str:
        argv = ["install", self.release, CHART, "--namespace", self.namespace, "--timeout", "60s"]
        return self.run(self.helm, *argv, *self.values_args(scenario, values)).stdout

    def upgrade(self, scenario: str, values: dict[str, Any] | None = None) -> str:
        argv = ["upgrade", self.release, CHART, "--namespace", self.namespace, "--timeout", "60s"]
        return self.run(self.helm, *argv, *self.values_args(scenario, values)).stdout

    def uninstall(self) -> None:
        self.run(
            self.helm, "uninstall", self.release, "--namespace", self.namespace, "--wait", "--timeout", "60s"
        )

    def validate_server_side(self, manifests: str) -> None:
        """Every object as the API server would admit it: schema, unknown fields, CEL rules."""
        argv = [self.kubectl, "apply", "--dry-run=server", "--validate=strict", "--namespace", self.namespace]
        self.run(*argv, "-f", "-", stdin=manifests)

    def leftovers(self) -> list[str]:
        """Objects labelled with this release, in the namespace and cluster-wide."""
        found = []
        selector = f"app.kubernetes.io/instance={self.release}"
        for api_version, plural, namespaced in CHART_KINDS:
            prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            path = f"{prefix}/namespaces/{self.namespace}/{plural}" if namespaced else f"{prefix}/{plural}"
            try:
                response = self.api.call_api(
                    path,
                    "GET",
                    query_params=[("labelSelector", selector)],
                    _preload_content=False,
                    _return_http_data_only=True,
                )
            except ApiException as exc:
                if exc.status == 404:  # the kind is not served: nothing of it can be left
                    continue
                raise
            found += [f"{plural}/{i['metadata']['name']}" for i in json.loads(response.data)["items"]]
        return found


def install_crds(kube: KubeTarget, kubectl: Path, upstream_crds: Path) -> None:
    """Upstream CRDs the scenarios use, then the chart's own crds/ (the documented upgrade step)."""
    files = [
        *sorted((upstream_crds / "strimzi").glob("04[0-5]-Crd-*.yaml")),
        *sorted((upstream_crds / "prometheus-operator").glob("*.yaml")),
        *sorted((CHART / "crds").glob("*.yaml")),
    ]
    files = [f for f in files if "v1beta2" not in f.name]
    for path in files:
        kube.run([kubectl, "apply", "--server-side", "--force-conflicts", "-f", path])
    names = [d["metadata"]["name"] for f in files for d in yaml.safe_load_all(f.read_text()) if d]
    kube.run([kubectl, "wait", "--for=condition=Established", "--timeout=60s", *[f"crd/{n}" for n in names]])


@pytest.fixture
def fake_kubelet(
    kube: KubeTarget, api_client: client.ApiClient, namespace: str, tmp_path: Path
) -> Iterator[FakeKubelet | None]:
    """The stand-in for the kubelet that runs the uninstall hook; None on a real cluster, which has one."""
    if kube.local is None:
        yield None
        return
    kubelet = FakeKubelet(kube, api_client, namespace, tmp_path / "fake-kubelet")
    kubelet.start()
    try:
        yield kubelet
    finally:
        kubelet.stop()


@pytest.fixture
def helm(
    kube: KubeTarget,
    helm_binary: Path,
    kubectl_binary: Path,
    api_client: client.ApiClient,
    namespace: str,
    upstream_crds: Path,
    fake_kubelet: FakeKubelet | None,
) -> Iterator[Helm]:
    install_crds(kube, kubectl_binary, upstream_crds)
    release = Helm(kube, helm_binary, kubectl_binary, api_client, namespace)
    yield release
    # A failed test must not leave cluster-scoped objects behind for the next one (the fake kubelet
    # still runs, for the uninstall hook).
    argv = [
        helm_binary,
        "uninstall",
        release.release,
        "-n",
        namespace,
        "--ignore-not-found",
        "--timeout",
        "60s",
    ]
    kube.run(argv, check=False)


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


def service_account_kubeconfig(
    kube: KubeTarget, api: client.ApiClient, namespace: str, account: str, path: Path
) -> Path:
    """A kubeconfig that authenticates with a TokenRequest token of `account`, nothing else."""
    token = (
        client.CoreV1Api(api)
        .create_namespaced_service_account_token(
            account,
            namespace,
            client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[])),
        )
        .status.token
    )
    admin = yaml.safe_load(kube.kubeconfig.read_text())
    cluster = admin["clusters"][0]["name"]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": admin["clusters"],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": account, "context": {"cluster": cluster, "user": account}}],
        "current-context": account,
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def container_environment(
    api: client.ApiClient, namespace: str, container: client.V1Container
) -> dict[str, str]:
    """The container's env as the kubelet would resolve it (values and secretKeyRefs)."""
    core = client.CoreV1Api(api)
    env = {}
    for var in container.env:
        if var.value is not None:
            env[var.name] = var.value
        else:
            ref = var.value_from.secret_key_ref
            secret = core.read_namespaced_secret(ref.name, namespace)
            env[var.name] = base64.b64decode(secret.data[ref.key]).decode()
    return env


@dataclass(frozen=True)
class PodRun:
    pod: str
    argv: list[str]
    exit_code: int
    output: str


class FakeKubelet:
    """A FAKE kubelet for the chart's uninstall hook: none runs on the local control plane.

    It picks up the hook Job's pods (label app.kubernetes.io/component=uninstall) in one namespace,
    runs each pod's container as the image would (the real `marketpulse` CLI with the container's
    arguments and environment), authenticated as the pod's ServiceAccount by a TokenRequest token
    against the API server, and then writes what a kubelet writes: the pod's phase (Succeeded, or
    Failed with the container's exit code). The Job controller then completes or fails the Job,
    and helm's wait for the hook returns.
    """

    SELECTOR = "app.kubernetes.io/component=uninstall"

    def __init__(self, kube: KubeTarget, api: client.ApiClient, namespace: str, workdir: Path) -> None:
        self.kube, self.api, self.namespace, self.workdir = kube, api, namespace, workdir
        self.runs: list[PodRun] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="fake-kubelet", daemon=True)

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _serve(self) -> None:
        core = client.CoreV1Api(self.api)
        started: set[str] = set()
        while not self._stop.is_set():
            try:
                pods = core.list_namespaced_pod(self.namespace, label_selector=self.SELECTOR).items
                for pod in pods:
                    if pod.metadata.uid in started or pod.metadata.deletion_timestamp:
                        continue
                    if (pod.status.phase or "Pending") != "Pending":
                        continue
                    started.add(pod.metadata.uid)
                    self._run(core, pod)
            except Exception as exc:  # kept for the test, which asserts there were none
                self.errors.append(f"{type(exc).__name__}: {exc}")
            self._stop.wait(0.2)

    def _run(self, core: client.CoreV1Api, pod: client.V1Pod) -> None:
        (container,) = pod.spec.containers
        # The image's ENTRYPOINT is `marketpulse`; the chart gives only arguments.
        assert not container.command, container.command
        name = pod.metadata.name
        kubeconfig = service_account_kubeconfig(
            self.kube,
            self.api,
            self.namespace,
            pod.spec.service_account_name,
            self.workdir / f"{name}.kubeconfig",
        )
        env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
        if container.env:
            env.update(container_environment(self.api, self.namespace, container))
        argv = [str(Path(sys.executable).with_name("marketpulse")), *container.args]
        began = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)
        finished = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        output = result.stdout + result.stderr
        (self.workdir / f"{name}.log").write_text(output)
        self.runs.append(PodRun(name, argv, result.returncode, output))
        terminated = {
            "exitCode": result.returncode,
            "reason": "Completed" if result.returncode == 0 else "Error",
            "startedAt": began,
            "finishedAt": finished,
        }
        status = {
            "phase": "Succeeded" if result.returncode == 0 else "Failed",
            "startTime": began,
            "containerStatuses": [
                {
                    "name": container.name,
                    "image": container.image,
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "state": {"terminated": terminated},
                }
            ],
        }
        core.patch_namespaced_pod_status(name, self.namespace, {"status": status})


def chart_s3_values(s3_server: S3Server) -> dict[str, Any]:
    """The chart's `s3` values for the local S3 server, with the Secret created by the chart."""
    return {
        "endpoint": s3_server.endpoint,
        "createSecret": True,
        "accessKeyId": s3_server.access_key,
        "secretAccessKey": s3_server.secret_key,
    }


@contextmanager
def chart_operator(helm: Helm, tmp_path: Path) -> Iterator[Path]:
    """The release's operator Deployment run as a local process the way its pod would run: the chart's
    arguments and environment, and the token of the chart's ServiceAccount. Yields its log file."""
    api, namespace = helm.api, helm.namespace
    deployment = client.AppsV1Api(api).read_namespaced_deployment(f"{helm.release}-marketpulse", namespace)
    pod = deployment.spec.template.spec
    (container,) = pod.containers
    kubeconfig = service_account_kubeconfig(
        helm.kube, api, namespace, pod.service_account_name, tmp_path / "kubeconfig"
    )
    env = {**os.environ, **container_environment(api, namespace, container), "KUBECONFIG": str(kubeconfig)}
    # The image's entrypoint is `marketpulse`; the chart gives the arguments.
    argv = [str(Path(sys.executable).with_name("marketpulse")), *container.args]
    log = tmp_path / "operator.log"
    with log.open("w") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield log
    finally:
        process.terminate()
        process.wait(timeout=30)


def pipeline(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        found: dict[str, Any] = client.CustomObjectsApi(api).get_namespaced_custom_object(
            "marketpulse.io", "v1alpha1", namespace, "stockpipelines", name
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return found


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


# --- helm uninstall: the pre-delete hook deletes the pipelines while the operator finalizes them ------


def remaining_in(api: client.ApiClient, namespace: str) -> dict[str, list[str]]:
    """Every object left in the namespace that the cluster did not put there: Kind/name -> finalizers
    of those being deleted (an empty list for those that are not)."""
    found: dict[str, list[str]] = {}
    for api_version, plural, kind in (
        ("marketpulse.io/v1alpha1", "stockpipelines", "StockPipeline"),
        ("apps/v1", "deployments", "Deployment"),
        ("batch/v1", "cronjobs", "CronJob"),
        ("batch/v1", "jobs", "Job"),
        ("v1", "pods", "Pod"),
        ("v1", "services", "Service"),
        ("networking.k8s.io/v1", "ingresses", "Ingress"),
        ("v1", "persistentvolumeclaims", "PersistentVolumeClaim"),
        ("v1", "secrets", "Secret"),
        ("v1", "configmaps", "ConfigMap"),
        ("v1", "serviceaccounts", "ServiceAccount"),
        ("rbac.authorization.k8s.io/v1", "roles", "Role"),
        ("rbac.authorization.k8s.io/v1", "rolebindings", "RoleBinding"),
        ("kafka.strimzi.io/v1", "kafkatopics", "KafkaTopic"),
        ("kafka.strimzi.io/v1", "kafkausers", "KafkaUser"),
        ("monitoring.coreos.com/v1", "servicemonitors", "ServiceMonitor"),
        ("monitoring.coreos.com/v1", "prometheusrules", "PrometheusRule"),
        ("kopf.dev/v1", "kopfpeerings", "KopfPeering"),
    ):
        prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        response = api.call_api(
            f"{prefix}/namespaces/{namespace}/{plural}",
            "GET",
            _preload_content=False,
            _return_http_data_only=True,
        )
        for item in json.loads(response.data)["items"]:
            meta = item["metadata"]
            deleting = meta.get("finalizers", []) if meta.get("deletionTimestamp") else []
            found[f"{kind}/{meta['name']}"] = deleting
    # What the control plane puts in every namespace.
    for own in ("ServiceAccount/default", "ConfigMap/kube-root-ca.crt"):
        found.pop(own, None)
    return found


@pytest.mark.s3
def test_helm_uninstall_deletes_every_pipeline_through_the_operator_and_leaves_only_what_retain_keeps(
    helm: Helm, s3_server: S3Server, fake_kubelet: FakeKubelet | None, tmp_path: Path
) -> None:
    api, namespace = helm.api, helm.namespace
    metrics_port, health_port = free_port(), free_port()
    watchlist = ["AAPL", "MSFT"]
    values: dict[str, Any] = {
        # Only the release namespace: the hook of an operator serving every namespace would wait for
        # every pipeline in the (shared) test cluster.
        "operator": {"watchAnyNamespace": False, "metricsPort": metrics_port, "healthPort": health_port},
        "s3": chart_s3_values(s3_server),
        # One pipeline from chart values, with deletionPolicy Delete ...
        "pipelines": [{"name": "gone", "spec": {"watchlist": watchlist, "deletionPolicy": "Delete"}}],
    }
    helm.install("defaults", values)
    # ... and one a user applied, with the default deletionPolicy Retain.
    kept = {"apiVersion": "marketpulse.io/v1alpha1", "kind": "StockPipeline", "metadata": {"name": "kept"}}
    helm.run(
        helm.kubectl,
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        stdin=json.dumps({**kept, "spec": {"watchlist": watchlist}}),
    )
    with chart_operator(helm, tmp_path) as log:
        reconciled = {
            name: wait_for(
                lambda name=name: (
                    (p := pipeline(api, namespace, name))
                    and "marketpulse.io/cleanup" in p["metadata"].get("finalizers", [])
                    and (p.get("status") or {}).get("bucket")
                    and p
                ),
                timeout=60,
                what=f"pipeline {name} to be reconciled",
            )
            for name in ("gone", "kept")
        }
        buckets = {name: p["status"]["bucket"] for name, p in reconciled.items()}
        s3 = minio_client(s3_server.endpoint, s3_server.access_key, s3_server.secret_key)
        before = {name: s3.bucket_exists(bucket) for name, bucket in buckets.items()}
        # No pipeline is deleted by hand: the uninstall alone must let both go.
        helm.run(
            helm.helm, "uninstall", helm.release, "--namespace", namespace, "--wait", "--timeout", "120s"
        )
        operator_log = log.read_text()
    # Garbage collection (kube-controller-manager) removes what the finalized pipelines still owned.
    expected = {
        "KafkaTopic/kept-alerts": [],
        "KafkaTopic/kept-ticks": [],
        "KafkaTopic/kept-ticks-dlq": [],
        "PersistentVolumeClaim/kept-warehouse": [],
        # Deleted by the operator (Delete policy); the local control plane runs no pvc-protection
        # controller, which on a cluster removes this finalizer once no pod mounts the claim.
        "PersistentVolumeClaim/gone-warehouse": ["kubernetes.io/pvc-protection"],
    }
    try:
        left = wait_for(
            lambda: (found := remaining_in(api, namespace)) == expected and found,
            timeout=60,
            what="only what Retain keeps to remain",
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}; left: {remaining_in(api, namespace)}") from None

    assert before == {"gone": True, "kept": True}
    assert left == expected
    assert helm.leftovers() == []
    assert s3.bucket_exists(buckets["kept"]), "Retain keeps the bucket"
    assert not s3.bucket_exists(buckets["gone"]), "Delete removes the bucket"
    assert "Forbidden" not in operator_log.split("Deleted")[0], operator_log[-3000:]
    if fake_kubelet is not None:
        assert fake_kubelet.errors == []
        assert len(fake_kubelet.runs) == 1, [(r.pod, r.exit_code, r.output) for r in fake_kubelet.runs]
        (run,) = fake_kubelet.runs
        assert run.exit_code == 0, run.output
        assert run.argv[1:] == ["operator", "cleanup", "--timeout=240", f"--namespace={namespace}"]
        assert f"StockPipeline {namespace}/gone finalized" in run.output
        assert f"StockPipeline {namespace}/kept finalized" in run.output
