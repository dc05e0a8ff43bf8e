"""The chart under test: `Helm` (helm and kubectl against the test API server, one release per
test namespace, what it leaves behind), and the release's operator run as a local process under
the chart's own ServiceAccount token (`chart_operator`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from marketpulse_dev.localenv.s3 import S3Server
from marketpulse_dev.pytest_plugin import KubeTarget, container_environment, eventually

ROOT = Path(__file__).parents[2]
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
