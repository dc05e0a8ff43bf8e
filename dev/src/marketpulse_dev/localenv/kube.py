"""A local Kubernetes control plane: etcd + kube-apiserver + kube-controller-manager.

Started the way controller-runtime's envtest starts them (pkg/internal/testing/controlplane), plus
kube-controller-manager so that garbage collection, namespace deletion, Deployment→ReplicaSet and
CronJob→Job happen as on a real cluster. Alone it has no scheduler or kubelet and pods never start;
with `for_node` it listens where a local node (node.py) reaches it and authorises kubelets as a
cluster does (Node authorizer, NodeRestriction, service-account tokens, the kube-root-ca.crt
ConfigMap, Endpoints and PersistentVolume binding).
"""

from __future__ import annotations

import base64
import json
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from marketpulse_dev.localenv.gobuild import GoBuild, ensure_built
from marketpulse_dev.localenv.pki import ControlPlanePKI
from marketpulse_dev.localenv.process import ManagedProcess, console, free_port, tail, wait_for
from marketpulse_dev.localenv.versions import ETCD_VERSION, KUBERNETES_VERSION, staging_version

# Staging modules that k8s.io/kubernetes requires at v0.0.0 (regenerate from its go.mod on a bump:
# `go mod download -json k8s.io/kubernetes@<version>`, field GoMod; 1.36 added cri-streaming and streaming).
STAGING_MODULES = (
    "api",
    "apiextensions-apiserver",
    "apimachinery",
    "apiserver",
    "cli-runtime",
    "client-go",
    "cloud-provider",
    "cluster-bootstrap",
    "code-generator",
    "component-base",
    "component-helpers",
    "controller-manager",
    "cri-api",
    "cri-client",
    "cri-streaming",
    "csi-translation-lib",
    "dynamic-resource-allocation",
    "endpointslice",
    "externaljwt",
    "kms",
    "kube-aggregator",
    "kube-controller-manager",
    "kube-proxy",
    "kube-scheduler",
    "kubectl",
    "kubelet",
    "metrics",
    "mount-utils",
    "pod-security-admission",
    "sample-apiserver",
    "streaming",
)


def _version_ldflags(version: str) -> str:
    major, minor, _ = version.lstrip("v").split(".")
    pkg = "k8s.io/component-base/version"
    return (
        f"-s -w -X {pkg}.gitVersion={version} -X {pkg}.gitMajor={major} -X {pkg}.gitMinor={minor} "
        f"-X {pkg}.gitTreeState=clean"
    )


KUBERNETES = GoBuild(
    name=f"kubernetes-{KUBERNETES_VERSION}",
    requires={"k8s.io/kubernetes": KUBERNETES_VERSION},
    replaces={f"k8s.io/{m}": staging_version() for m in STAGING_MODULES},
    packages={
        "k8s.io/kubernetes/cmd/kube-apiserver": "kube-apiserver",
        "k8s.io/kubernetes/cmd/kube-controller-manager": "kube-controller-manager",
        # kubectl of the same minor as the server, whatever the machine has on PATH (version skew policy).
        "k8s.io/kubernetes/cmd/kubectl": "kubectl",
        # The node: built in the same `go build` as the control plane so they share compiled packages.
        "k8s.io/kubernetes/cmd/kubelet": "kubelet",
        "k8s.io/kubernetes/cmd/kube-scheduler": "kube-scheduler",
        "k8s.io/kubernetes/cmd/kube-proxy": "kube-proxy",
    },
    ldflags=_version_ldflags(KUBERNETES_VERSION),
    hint="first time: 15-30 min on 2 cores",
)

ETCD = GoBuild(
    name=f"etcd-{ETCD_VERSION}",
    requires={"go.etcd.io/etcd/server/v3": ETCD_VERSION},
    # The module root of go.etcd.io/etcd/server/v3 is etcd's main package.
    packages={"go.etcd.io/etcd/server/v3": "etcd"},
    ldflags="-s -w",
    hint="first time: a few minutes",
)

CONTROLLERS = (
    "garbage-collector-controller",
    "namespace-controller",
    "deployment-controller",
    "replicaset-controller",
    "cronjob-controller",
    "job-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "ttl-after-finished-controller",
    # Without it the admission plugin's pvc-protection finalizer is never removed, and a namespace
    # with a PVC (every DuckDB pipeline has one) never finishes deleting.
    "persistentvolumeclaim-protection-controller",
)
# What pods on a node need besides: the CA ConfigMap their token volume mounts, Service endpoints,
# volume binding, and the node's health reflected in taints.
NODE_CONTROLLERS = (
    "root-ca-certificate-publisher-controller",
    "endpoints-controller",
    "endpointslice-controller",
    "endpointslice-mirroring-controller",
    "persistentvolume-binder-controller",
    "persistentvolume-protection-controller",
    "pod-garbage-collector-controller",
    "node-lifecycle-controller",
    "disruption-controller",
    "statefulset-controller",
    "daemonset-controller",
)


def ensure_control_plane_binaries() -> dict[str, Path]:
    k8s = ensure_built(KUBERNETES)
    etcd = ensure_built(ETCD)
    return {
        "etcd": etcd / "etcd",
        "kube-apiserver": k8s / "kube-apiserver",
        "kube-controller-manager": k8s / "kube-controller-manager",
    }


def ensure_kubectl() -> Path:
    return ensure_built(KUBERNETES) / "kubectl"


def render_kubeconfig(
    server: str,
    pki: ControlPlanePKI,
    context: str = "marketpulse-local",
    *,
    cert: Path | None = None,
    key: Path | None = None,
    user: str = "admin",
) -> str:
    """A kubeconfig for `server`: the admin's by default, or the user whose `cert`/`key` are given."""

    def b64(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": context, "cluster": {"server": server, "certificate-authority-data": b64(pki.ca_cert)}}
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": b64(cert or pki.admin_cert),
                    "client-key-data": b64(key or pki.admin_key),
                },
            }
        ],
        "contexts": [
            {"name": context, "context": {"cluster": context, "user": user, "namespace": "default"}}
        ],
        "current-context": context,
    }
    return yaml.safe_dump(config, sort_keys=False)


@dataclass
class ControlPlane:
    """etcd, kube-apiserver and kube-controller-manager, state under `workdir`.

    The API server listens on `host`: 127.0.0.1, or with `for_node` the host end of the node's link,
    so that the kubelet and pods (through the `kubernetes` Service) reach it.
    """

    workdir: Path
    etcd_port: int = field(default_factory=free_port)
    etcd_peer_port: int = field(default_factory=free_port)
    apiserver_port: int = 0
    controller_manager_port: int = field(default_factory=free_port)
    with_controller_manager: bool = True
    host: str = "127.0.0.1"
    for_node: bool = False
    processes: list[ManagedProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.apiserver_port:
            self.apiserver_port = free_port(self.host)

    @property
    def server(self) -> str:
        return f"https://{self.host}:{self.apiserver_port}"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def pki(self) -> ControlPlanePKI:
        return ControlPlanePKI(self.workdir / "pki")

    def settings(self) -> dict[str, str]:
        return {"KUBECONFIG": str(self.kubeconfig)}

    def log_path(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        context.load_cert_chain(str(self.pki.admin_cert), str(self.pki.admin_key))
        return context

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.server + path, verify=self._ssl_context(), timeout=3)

    def start(self, timeout: float = 120) -> ControlPlane:
        binaries = ensure_control_plane_binaries()
        self.workdir.mkdir(parents=True, exist_ok=True)
        pki = self.pki.ensure()
        self.kubeconfig.write_text(render_kubeconfig(self.server, pki))
        self.kubeconfig.chmod(0o600)
        try:
            self._start_etcd(binaries["etcd"], timeout)
            self._start_apiserver(binaries["kube-apiserver"], pki, timeout)
            if self.with_controller_manager:
                self._start_controller_manager(binaries["kube-controller-manager"], pki, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_etcd(self, binary: Path, timeout: float) -> None:
        client = f"http://127.0.0.1:{self.etcd_port}"
        peer = f"http://127.0.0.1:{self.etcd_peer_port}"
        argv = [
            str(binary),
            "--name=marketpulse",
            f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=marketpulse={peer}",
            "--unsafe-no-fsync=true",
            "--quota-backend-bytes=8589934592",
            "--log-level=warn",
        ]
        process = ManagedProcess("etcd", argv, self.log_path("etcd")).start()
        self.processes.append(process)
        console.print(f"starting etcd {ETCD_VERSION} on {client}")
        wait_for(
            lambda: json.loads(httpx.get(client + "/health", timeout=1).text)["health"] == "true",
            timeout=timeout,
            step="start etcd",
            what="/health to report healthy",
            log_path=process.log_path,
            alive=process.alive,
        )

    def _start_apiserver(self, binary: Path, pki: ControlPlanePKI, timeout: float) -> None:
        argv = [
            str(binary),
            # Needed where the machine has no default route ("no default routes found in /proc/net/route").
            f"--advertise-address={self.host}",
            f"--bind-address={self.host}",
            f"--secure-port={self.apiserver_port}",
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            f"--cert-dir={self.workdir / 'apiserver-certs'}",
            f"--tls-cert-file={pki.serving_cert}",
            f"--tls-private-key-file={pki.serving_key}",
            f"--client-ca-file={pki.ca_cert}",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--allow-privileged=true",
            "--authorization-mode=Node,RBAC" if self.for_node else "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki.service_account_pub}",
            f"--service-account-signing-key-file={pki.service_account_key}",
            "--v=1",
        ]
        if self.for_node:
            # The API server calls kubelets (logs, exec) as a client of their own CA-signed port, as
            # kubeadm sets it up; NodeRestriction limits each kubelet to its own node and pods.
            kubelet_cert, kubelet_key = pki.issue(
                "apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters"
            )
            argv += [
                "--enable-admission-plugins=NodeRestriction",
                f"--kubelet-client-certificate={kubelet_cert}",
                f"--kubelet-client-key={kubelet_key}",
                f"--kubelet-certificate-authority={pki.ca_cert}",
                "--kubelet-preferred-address-types=InternalIP",
            ]
        process = ManagedProcess("kube-apiserver", argv, self.log_path("kube-apiserver")).start()
        self.processes.append(process)
        console.print(f"starting kube-apiserver {KUBERNETES_VERSION} on {self.server}")
        self._wait_apiserver_ready(process, timeout, "start kube-apiserver")

    def _wait_apiserver_ready(self, process: ManagedProcess, timeout: float, step: str) -> None:
        wait_for(
            lambda: self.get("/readyz").status_code == 200,
            timeout=timeout,
            step=step,
            what="/readyz to answer 200",
            log_path=process.log_path,
            alive=process.alive,
            interval=0.5,
        )

    def _start_controller_manager(self, binary: Path, pki: ControlPlanePKI, timeout: float) -> None:
        argv = [
            str(binary),
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            f"--controllers={','.join(CONTROLLERS + (NODE_CONTROLLERS if self.for_node else ()))}",
            f"--service-account-private-key-file={pki.service_account_key}",
            f"--root-ca-file={pki.ca_cert}",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.controller_manager_port}",
            f"--cert-dir={self.workdir / 'controller-manager-certs'}",
            "--concurrent-gc-syncs=5",
            "--v=1",
        ]
        process = ManagedProcess(
            "kube-controller-manager", argv, self.log_path("kube-controller-manager")
        ).start()
        self.processes.append(process)
        console.print("starting kube-controller-manager")
        # Its own controllers creating the `default` ServiceAccount proves they run against our API server.
        wait_for(
            lambda: self.get("/api/v1/namespaces/default/serviceaccounts/default").status_code == 200,
            timeout=timeout,
            step="start kube-controller-manager",
            what="the default ServiceAccount to be created",
            log_path=process.log_path,
            alive=process.alive,
            interval=0.5,
        )

    def restart_apiserver(self, downtime: float = 2.0, timeout: float = 120) -> None:
        """Stop kube-apiserver and start it again on the same port and etcd (for outage tests)."""
        index, old = next((i, p) for i, p in enumerate(self.processes) if p.name == "kube-apiserver")
        old.stop()
        time.sleep(downtime)
        process = ManagedProcess(old.name, old.argv, old.log_path).start()
        self.processes[index] = process
        self._wait_apiserver_ready(process, timeout, "restart kube-apiserver")

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()

    def log_tails(self) -> dict[str, str]:
        return {
            name: tail(self.log_path(name)) for name in ("etcd", "kube-apiserver", "kube-controller-manager")
        }
