"""charts/marketpulse against the real API server: install every scenario, upgrade, uninstall, and the
operator reconciling a pipeline from chart values under the chart's own ServiceAccount and RBAC.

No kubelet runs on the local control plane, so the chart's Deployment never gets a pod: installs
run without `--wait` on Deployments, and the operator runs as a local process with exactly the
container's arguments and environment, authenticated by a token of the chart's ServiceAccount.
Uninstalls there skip the pre-delete hook (`--no-hooks`), whose Job would never get a pod; the hook
runs for real on the node (k8s-tests/node/test_helm_uninstall.py) and on any cluster given with
--use-existing-cluster.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from marketpulse_dev.localenv.process import free_port
from marketpulse_dev.localenv.s3 import S3Server
from marketpulse_dev.pytest_plugin import KubeTarget, container_environment, eventually

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
    return eventually(predicate, timeout=timeout, what=what, interval=0.1)


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

    @property
    def hooks(self) -> list[str]:
        """No hooks on the local control plane: nothing would run the pre-delete hook's pod."""
        return ["--no-hooks"] if self.kube.local is not None else []

    def uninstall(self) -> None:
        argv = ["uninstall", self.release, "--namespace", self.namespace, "--wait", "--timeout", "60s"]
        self.run(self.helm, *argv, *self.hooks)

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
def helm(
    kube: KubeTarget,
    helm_binary: Path,
    kubectl_binary: Path,
    api_client: client.ApiClient,
    namespace: str,
    upstream_crds: Path,
) -> Iterator[Helm]:
    install_crds(kube, kubectl_binary, upstream_crds)
    release = Helm(kube, helm_binary, kubectl_binary, api_client, namespace)
    yield release
    # A failed test must not leave cluster-scoped objects behind for the next one.
    argv = [
        helm_binary,
        "uninstall",
        release.release,
        "-n",
        namespace,
        "--ignore-not-found",
        "--timeout",
        "60s",
        *release.hooks,
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
