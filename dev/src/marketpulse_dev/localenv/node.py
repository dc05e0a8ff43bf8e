"""A real Kubernetes node on this machine: containerd, runc, CNI, kubelet, kube-scheduler, kube-proxy
and CoreDNS beside a control plane started `for_node` (kube.py).

The node's processes that touch the network run inside its network namespace (node_network.py), so
that the pod bridge, pod veths and every iptables rule are created there and vanish with it. Its
files, mounts and cgroups live under `workdir` and under the cgroup `CGROUP_ROOT`, which `remove`
clears, also after a crash. What each piece needs on this kind of machine is written beside it.
"""

from __future__ import annotations

import calendar
import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tenacity
import yaml

from marketpulse_dev.localenv import node_network as net
from marketpulse_dev.localenv.errors import ComponentError
from marketpulse_dev.localenv.gobuild import ensure_built
from marketpulse_dev.localenv.kube import KUBERNETES as KUBERNETES_BUILD
from marketpulse_dev.localenv.kube import ControlPlane, ensure_kubectl, render_kubeconfig
from marketpulse_dev.localenv.node_binaries import ensure_node_binaries
from marketpulse_dev.localenv.paths import cache_dir
from marketpulse_dev.localenv.process import ManagedProcess, console, run_step, tail, wait_for
from marketpulse_dev.localenv.versions import KUBERNETES_VERSION

NODE_NAME = "marketpulse-node"
CLUSTER_DOMAIN = "cluster.local"
# Every pod's cgroup is below this one (kubelet's cgroupRoot), in each cgroup v1 hierarchy.
CGROUP_ROOT = "marketpulse"
# containerd's namespace for Kubernetes images and containers.
K8S_NAMESPACE = "k8s.io"
# The sandbox ("pause") image: Debian's statically linked catatonit in pause mode (-P), as podman's
# infra containers use it; no registry here serves registry.k8s.io/pause.
CATATONIT = Path("/usr/bin/catatonit")
PAUSE_IMAGE = "localhost/marketpulse/pause:catatonit"
# containerd's sockets and kubelet's root (which holds the pod-resources and plugin sockets): short
# fixed paths, since a unix socket path has at most 104 bytes and a workdir under pytest's temporary
# directory is longer. One node per machine, like the network. Configs, logs and volumes stay in
# the workdir.
SOCKET_DIR = Path("/run/marketpulse-node")
KUBELET_ROOT = Path("/var/lib/marketpulse-node/kubelet")
STORAGE_CLASS = "marketpulse-local"
PERSISTENT_VOLUMES = 24
STEP = "start the node"


def _node_kubeconfig(plane: ControlPlane, name: str, user: str, group: str | None) -> Path:
    cert, key = plane.pki.issue(name, user, group)
    path = plane.workdir / f"{name}.kubeconfig"
    path.write_text(render_kubeconfig(plane.server, plane.pki, cert=cert, key=key, user=user))
    path.chmod(0o600)
    return path


@dataclass
class Node:
    """One node, `NODE_NAME`, registered with `plane` (which must be started with `for_node`)."""

    workdir: Path
    plane: ControlPlane
    processes: list[ManagedProcess] = field(default_factory=list)

    # --- paths -----------------------------------------------------------------------------------
    @property
    def containerd_socket(self) -> Path:
        return SOCKET_DIR / "containerd.sock"

    @property
    def kubelet_root(self) -> Path:
        return KUBELET_ROOT

    @property
    def pod_logs(self) -> Path:
        return self.workdir / "pod-logs"

    def log_path(self, name: str) -> Path:
        return self.workdir / "logs" / f"{name}.log"

    def settings(self) -> dict[str, str]:
        return {
            "KUBECONFIG": str(self.plane.kubeconfig),
            "CONTAINERD_ADDRESS": str(self.containerd_socket),
            "CONTAINERD_NAMESPACE": K8S_NAMESPACE,
        }

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self, timeout: float = 120) -> Node:
        if not self.plane.for_node:
            raise ValueError("the control plane must be started with for_node=True for a node to join it")
        binaries = {**ensure_node_binaries(), **_kubernetes_node_binaries()}
        if not net.exists():
            raise ValueError("the node's network is missing: call node.prepare() before the control plane")
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
            self._make_cgroup_root()
            self._start_containerd(binaries, timeout)
            self.import_image(self._pause_archive())
            self._start_coredns(binaries["coredns"], timeout)
            self._start_kubelet(binaries["kubelet"], timeout)
            self._start_scheduler(binaries["kube-scheduler"])
            self._start_kube_proxy(binaries["kube-proxy"], timeout)
            self._apply_cluster_objects()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every process (kubelet first, so it starts no new container) and remove what they made."""
        for process in self.processes:
            if process.name == "kubelet":
                process.stop()
        _kill_containers(self.workdir)
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
        self.remove_leftovers()

    def remove_leftovers(self) -> None:
        remove_leftovers(self.workdir)

    def restart(self, names: tuple[str, ...] = ("kubelet", "containerd"), downtime: float = 2.0) -> None:
        """Stop these processes (in this order), then start them again as they were, in reverse order.

        Running containers survive: each has its own shim in its own process group, which containerd
        and the kubelet find again when they come back (what a node's `systemctl restart` does).
        """
        stopped: list[tuple[int, ManagedProcess]] = []
        for name in names:
            index, old = next((i, p) for i, p in enumerate(self.processes) if p.name == name)
            old.stop()
            stopped.append((index, old))
        time.sleep(downtime)
        restarted_at = float(int(time.time()))  # heartbeats have whole seconds
        for index, old in reversed(stopped):
            process = ManagedProcess(old.name, old.argv, old.log_path, env=old.env).start()
            self.processes[index] = process
            if old.name == "containerd":
                wait_for(
                    lambda: self._ctr("version", check=False).returncode == 0,
                    timeout=60,
                    step="restart containerd",
                    what="containerd to answer again",
                    log_path=process.log_path,
                    alive=process.alive,
                )
        if "kubelet" in names:
            kubelet = next(p for p in self.processes if p.name == "kubelet")
            wait_for(
                lambda: self.ready() and self._heartbeat() >= restarted_at,
                timeout=60,
                step="restart kubelet",
                what=f"node {NODE_NAME} to report Ready from the restarted kubelet",
                log_path=kubelet.log_path,
                alive=kubelet.alive,
                interval=0.5,
            )

    def _heartbeat(self) -> float:
        """When the kubelet last wrote the node's Ready condition (seconds since the epoch)."""
        conditions = self.node_object().get("status", {}).get("conditions", [])
        stamp = next(c["lastHeartbeatTime"] for c in conditions if c["type"] == "Ready")
        return float(calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")))

    # --- cgroups ---------------------------------------------------------------------------------
    def _make_cgroup_root(self) -> None:
        for hierarchy in _cgroup_hierarchies():
            (hierarchy / CGROUP_ROOT).mkdir(exist_ok=True)

    # --- containerd ------------------------------------------------------------------------------
    def _containerd_config(self, binaries: dict[str, Path]) -> str:
        base = self.workdir / "containerd"
        return f"""\
version = 4
root = "{base / "root"}"
state = "{base / "state"}"
temp = "{base / "tmp"}"
disabled_plugins = ["io.containerd.nri.v1.nri", "io.containerd.snapshotter.v1.devmapper",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.blockfile",
                    "io.containerd.snapshotter.v1.erofs"]

[debug]
  level = "warn"

[plugins]
  [plugins.'io.containerd.server.v1.grpc']
    address = "{self.containerd_socket}"
  [plugins.'io.containerd.server.v1.ttrpc']
    address = "{self.containerd_socket}.ttrpc"
  [plugins.'io.containerd.internal.v1.opt']
    path = "{base / "opt"}"
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = "overlayfs"
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = "{PAUSE_IMAGE}"
  [plugins.'io.containerd.cri.v1.runtime']
    # Without CAP_SYS_RESOURCE a process may not lower its oom_score_adj: keep what it has.
    restrict_oom_score_adj = true
    netns_mounts_under_state_dir = true
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = "runc"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = "{binaries["runc"]}"
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ["{net.CNI_BIN_DIR}"]
      conf_dir = "{self.workdir / "cni" / "net.d"}"
  [plugins.'io.containerd.grpc.v1.cri']
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
"""

    def _start_containerd(self, binaries: dict[str, Path], timeout: float) -> None:
        conf_dir = self.workdir / "cni" / "net.d"
        conf_dir.mkdir(parents=True, exist_ok=True)
        (conf_dir / "10-marketpulse.conflist").write_text(
            json.dumps(net.cni_conflist(self.workdir / "cni" / "ipam"), indent=2)
        )
        config = self.workdir / "containerd" / "config.toml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(self._containerd_config(binaries))
        SOCKET_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
        # The shim is found on containerd's PATH.
        path = f"{binaries['containerd'].parent}:{os.environ.get('PATH', '')}"
        self._start(
            "containerd",
            net.in_netns([str(binaries["containerd"]), "--config", str(config)]),
            env={"PATH": path},
        )
        wait_for(
            lambda: self._ctr("version", check=False).returncode == 0,
            timeout=timeout,
            step="start containerd",
            what=f"containerd to answer on {self.containerd_socket}",
            log_path=self.log_path("containerd"),
            alive=self.processes[-1].alive,
        )

    def _ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _ctr(*args, check=check)

    def import_image(self, archive: Path) -> None:
        """Import a docker-archive or OCI archive into the node's image store (pods use it as present)."""
        _ctr("images", "import", "--no-unpack=false", str(archive))

    def images(self) -> list[str]:
        return self._ctr("images", "list", "--quiet").stdout.split()

    def _pause_archive(self) -> Path:
        """Build the sandbox image once per machine: catatonit -P in an image from scratch."""
        archive = cache_dir() / "images" / "pause-catatonit.tar"
        if archive.exists():
            return archive
        if not CATATONIT.is_file():
            raise ComponentError(
                "build the pause image", f"{CATATONIT} is missing; install Debian's catatonit"
            )
        if shutil.which("buildah") is None:
            raise ComponentError(
                "build the pause image", "`buildah` is not on PATH; install Debian's buildah"
            )
        archive.parent.mkdir(parents=True, exist_ok=True)
        log = cache_dir() / "logs" / "build-pause-image.log"
        script = (
            "set -e; c=$(buildah from scratch); "
            f"buildah copy $c {CATATONIT} /catatonit >/dev/null; "
            'buildah config --entrypoint \'["/catatonit", "-P"]\' --user 65535:65535 $c; '
            f"buildah commit --rm $c {PAUSE_IMAGE} >/dev/null; "
            f"buildah push {PAUSE_IMAGE} docker-archive:{archive}.part:{PAUSE_IMAGE}; "
            f"mv {archive}.part {archive}"
        )
        run_step("build the pause image", ["sh", "-c", script], log_path=log)
        return archive

    # --- CoreDNS ---------------------------------------------------------------------------------
    def _start_coredns(self, binary: Path, timeout: float) -> None:
        kubeconfig = _node_kubeconfig(self.plane, "coredns", "system:coredns", None)
        corefile = self.workdir / "coredns" / "Corefile"
        corefile.parent.mkdir(parents=True, exist_ok=True)
        # Cluster names only: nothing is forwarded anywhere, every other name is NXDOMAIN.
        corefile.write_text(
            f"""\
{CLUSTER_DOMAIN}:53 in-addr.arpa:53 {{
    bind {net.NODE_IP}
    errors
    ready {net.NODE_IP}:8181
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa {{
        kubeconfig {kubeconfig}
        pods insecure
        ttl 5
    }}
}}
.:53 {{
    bind {net.NODE_IP}
    template ANY ANY {{
        rcode NXDOMAIN
    }}
}}
"""
        )
        self._apply(COREDNS_RBAC)
        self._start("coredns", net.in_netns([str(binary), "-conf", str(corefile)]))
        import httpx

        wait_for(
            lambda: httpx.get(f"http://{net.NODE_IP}:8181/ready", timeout=1).status_code == 200,
            timeout=timeout,
            step="start CoreDNS",
            what="its kubernetes plugin to sync (/ready)",
            log_path=self.log_path("coredns"),
            alive=self.processes[-1].alive,
        )

    # --- kubelet ---------------------------------------------------------------------------------
    def _kubelet_config(self) -> dict[str, Any]:
        pki = self.plane.pki
        serving_cert, serving_key = pki.issue(
            "kubelet-serving",
            f"system:node:{NODE_NAME}",
            "system:nodes",
            server_ips=(net.NODE_IP,),
            server_names=(NODE_NAME,),
        )
        resolv = self.workdir / "kubelet-resolv.conf"
        resolv.write_text("")  # no host search domains or resolvers leak into pods
        return {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            # This kind of machine mounts cgroup v1 (hybrid); kubelet 1.35+ refuses it unless told.
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": f"/{CGROUP_ROOT}",
            "failSwapOn": False,
            "containerRuntimeEndpoint": f"unix://{self.containerd_socket}",
            "address": net.NODE_IP,
            "port": 10250,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": 10248,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(pki.ca_cert)},
            },
            "authorization": {"mode": "Webhook"},
            "tlsCertFile": str(serving_cert),
            "tlsPrivateKeyFile": str(serving_key),
            "clusterDNS": [net.NODE_IP],
            "clusterDomain": CLUSTER_DOMAIN,
            "resolvConf": str(resolv),
            "podLogsDir": str(self.pod_logs),
            # Its default is under /usr/libexec, which kubelet would create on this machine.
            "volumePluginDir": str(self.workdir / "volume-plugins"),
            "podCIDR": net.POD_CIDR,
            "serializeImagePulls": False,
            # A shared development disk is often fuller than a node's: evict only when nearly full.
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
            },
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "syncFrequency": "10s",
            "fileCheckFrequency": "10s",
            "nodeStatusReportFrequency": "10s",
            "shutdownGracePeriod": "0s",
        }

    def _start_kubelet(self, binary: Path, timeout: float) -> None:
        kubeconfig = _node_kubeconfig(self.plane, "kubelet", f"system:node:{NODE_NAME}", "system:nodes")
        config = self.workdir / "kubelet-config.yaml"
        config.write_text(yaml.safe_dump(self._kubelet_config(), sort_keys=False))
        self.kubelet_root.mkdir(parents=True, exist_ok=True)
        self.pod_logs.mkdir(parents=True, exist_ok=True)
        argv = [
            str(binary),
            f"--config={config}",
            f"--kubeconfig={kubeconfig}",
            f"--root-dir={self.kubelet_root}",
            f"--cert-dir={self.workdir / 'kubelet-pki'}",
            f"--hostname-override={NODE_NAME}",
            f"--node-ip={net.NODE_IP}",
            "--v=1",
        ]
        self._start("kubelet", net.in_netns(argv))
        console.print(f"starting kubelet {KUBERNETES_VERSION} as node {NODE_NAME} ({net.NODE_IP})")
        wait_for(
            self.ready,
            timeout=timeout,
            step="start kubelet",
            what=f"node {NODE_NAME} to report Ready",
            log_path=self.log_path("kubelet"),
            alive=self.processes[-1].alive,
            interval=0.5,
        )

    def node_object(self) -> dict[str, Any]:
        response = self.plane.get(f"/api/v1/nodes/{NODE_NAME}")
        response.raise_for_status()
        node: dict[str, Any] = response.json()
        return node

    def ready(self) -> bool:
        conditions = self.node_object().get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    # --- scheduler and kube-proxy ----------------------------------------------------------------
    def _start_scheduler(self, binary: Path) -> None:
        kubeconfig = _node_kubeconfig(self.plane, "kube-scheduler", "system:kube-scheduler", None)
        argv = [
            str(binary),
            f"--kubeconfig={kubeconfig}",
            "--leader-elect=false",
            # No health/metrics port, so no delegated authentication to configure either.
            "--secure-port=0",
            "--v=1",
        ]
        self._start("kube-scheduler", argv)

    def _start_kube_proxy(self, binary: Path, timeout: float) -> None:
        kubeconfig = _node_kubeconfig(self.plane, "kube-proxy", "system:kube-proxy", None)
        config = self.workdir / "kube-proxy-config.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
                    "kind": "KubeProxyConfiguration",
                    "clientConnection": {"kubeconfig": str(kubeconfig)},
                    "mode": "iptables",
                    "clusterCIDR": net.POD_CIDR,
                    "hostnameOverride": NODE_NAME,
                    "bindAddress": net.NODE_IP,
                    "healthzBindAddress": "127.0.0.1:10256",
                    "metricsBindAddress": "127.0.0.1:10249",
                    "nodePortAddresses": [f"{net.NODE_IP}/32"],
                    # nf_conntrack_max is global to the machine, not the namespace: leave it alone.
                    "conntrack": {"maxPerCore": 0},
                },
                sort_keys=False,
            )
        )
        self._start("kube-proxy", net.in_netns([str(binary), f"--config={config}", "--v=1"]))
        wait_for(
            self._services_programmed,
            timeout=timeout,
            step="start kube-proxy",
            what="the `kubernetes` Service's iptables rules",
            log_path=self.log_path("kube-proxy"),
            alive=self.processes[-1].alive,
            interval=0.5,
        )

    @staticmethod
    def _services_programmed() -> bool:
        rules = subprocess.run(
            net.in_netns(["iptables", "-t", "nat", "-S", "KUBE-SERVICES"]),
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        return "default/kubernetes:https" in rules

    # --- cluster objects -------------------------------------------------------------------------
    def _apply(self, manifest: str) -> None:
        result = subprocess.run(
            [str(ensure_kubectl()), "apply", "--server-side", "--field-manager=marketpulse-node", "-f", "-"],
            input=manifest,
            capture_output=True,
            text=True,
            env={**os.environ, "KUBECONFIG": str(self.plane.kubeconfig)},
            check=False,
        )
        if result.returncode != 0:
            raise ComponentError(STEP, f"kubectl apply failed: {result.stderr.strip()}")

    def _apply_cluster_objects(self) -> None:
        """A default StorageClass with a pool of local PersistentVolumes on this node."""
        volumes = self.workdir / "volumes"
        documents: list[dict[str, Any]] = [
            {
                "apiVersion": "storage.k8s.io/v1",
                "kind": "StorageClass",
                "metadata": {
                    "name": STORAGE_CLASS,
                    "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
                },
                "provisioner": "kubernetes.io/no-provisioner",
                "volumeBindingMode": "WaitForFirstConsumer",
                "reclaimPolicy": "Delete",
            }
        ]
        for index in range(PERSISTENT_VOLUMES):
            path = volumes / f"pv-{index:02d}"
            path.mkdir(parents=True, exist_ok=True)
            documents.append(_local_volume(f"{NODE_NAME}-pv-{index:02d}", path))
        self._apply(yaml.safe_dump_all(documents))

    # --- helpers ---------------------------------------------------------------------------------
    def _start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        process = ManagedProcess(name, argv, self.log_path(name), env=env).start()
        self.processes.append(process)

    def log_tails(self) -> dict[str, str]:
        return {p.name: tail(p.log_path) for p in self.processes}


def prepare(workdir: Path) -> None:
    """Before the control plane starts: check the machine, clear a crashed run, create the network."""
    net.preflight()
    remove_leftovers(workdir)
    net.create()


def _ctr(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    ctr = ensure_node_binaries()["ctr"]
    socket = SOCKET_DIR / "containerd.sock"
    argv = [str(ctr), "--address", str(socket), "--namespace", K8S_NAMESPACE, *args]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise ComponentError(f"ctr {args[0]}", f"`{' '.join(argv)}` failed: {result.stderr.strip()}")
    return result


def import_into_running_node(archive: Path) -> bool:
    """Import an image archive into the node's containerd if a node runs on this machine."""
    if not (SOCKET_DIR / "containerd.sock").exists() or _ctr("version", check=False).returncode != 0:
        return False
    _ctr("images", "import", "--no-unpack=false", str(archive))
    return True


def node_ready(kubeconfig: Path) -> str:
    """`Ready`, `NotReady` or why it is not known, for `dev status`."""
    from kubernetes import client, config

    try:
        with config.new_client_from_config(str(kubeconfig)) as api:
            node = client.CoreV1Api(api).read_node(NODE_NAME, _request_timeout=3)
    except Exception as exc:
        return f"{NODE_NAME} unknown ({type(exc).__name__})"
    ready = next((c for c in node.status.conditions or [] if c.type == "Ready"), None)
    return f"{NODE_NAME} {'Ready' if ready is not None and ready.status == 'True' else 'NotReady'}"


def remove_leftovers(workdir: Path) -> None:
    """Whatever a node that ran in `workdir` left: containers, shims, mounts, cgroups, the network."""
    _kill_containers(workdir)
    for root in (workdir, KUBELET_ROOT.parent, SOCKET_DIR):
        _unmount_below(root)
    _remove_cgroups(CGROUP_ROOT)
    net.remove()
    for runtime_dir in (SOCKET_DIR, KUBELET_ROOT.parent):
        shutil.rmtree(runtime_dir, ignore_errors=True)
    # kubelet links every container log into /var/log/containers (a fixed path): drop ours.
    containers_log_dir = Path("/var/log/containers")
    if containers_log_dir.is_dir():
        for link in containers_log_dir.iterdir():
            with contextlib.suppress(OSError):
                if link.is_symlink() and str(link.readlink()).startswith(str(workdir)):
                    link.unlink()
        with contextlib.suppress(OSError):
            containers_log_dir.rmdir()  # only if empty: another runtime's logs stay


def _kill_containers(workdir: Path) -> None:
    """SIGKILL every process in the node's cgroups and every shim of this node's containerd."""
    for procs in _cgroup_dirs(CGROUP_ROOT, "cgroup.procs"):
        with contextlib.suppress(OSError):
            for pid in procs.read_text().split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
    shim_name = "containerd-shim-runc-v2"
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError, ValueError):
            argv = cmdline.read_bytes().split(b"\0")
            # Shims are started with `-address <containerd's socket>`.
            if argv and argv[0].endswith(shim_name.encode()) and str(SOCKET_DIR).encode() in b" ".join(argv):
                os.kill(int(cmdline.parent.name), signal.SIGKILL)


def _local_volume(name: str, path: Path) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "marketpulse-node"}},
        "spec": {
            "capacity": {"storage": "10Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": STORAGE_CLASS,
            "local": {"path": str(path)},
            "nodeAffinity": {
                "required": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": "kubernetes.io/hostname", "operator": "In", "values": [NODE_NAME]}
                            ]
                        }
                    ]
                }
            },
        },
    }


COREDNS_RBAC = """\
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: system:coredns
rules:
  - apiGroups: [""]
    resources: [endpoints, services, pods, namespaces]
    verbs: [list, watch]
  - apiGroups: [discovery.k8s.io]
    resources: [endpointslices]
    verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: system:coredns
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: system:coredns
subjects:
  - apiGroup: rbac.authorization.k8s.io
    kind: User
    name: system:coredns
"""


def _kubernetes_node_binaries() -> dict[str, Path]:
    k8s = ensure_built(KUBERNETES_BUILD)
    return {name: k8s / name for name in ("kubelet", "kube-scheduler", "kube-proxy")}


def _cgroup_hierarchies() -> list[Path]:
    """Mount points of the cgroup v1 hierarchies with controllers (and of cgroup2 if unified)."""
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fstype = right.split()[0] if right else ""
        if fstype in ("cgroup", "cgroup2"):
            mounts.append(Path(left.split()[4]))
    return mounts


def _cgroup_dirs(root: str, filename: str) -> list[Path]:
    found = []
    for hierarchy in _cgroup_hierarchies():
        base = hierarchy / root
        if base.is_dir():
            found += list(base.rglob(filename))
    return found


def _remove_cgroups(root: str) -> None:
    """rmdir every cgroup below `root`, deepest first (a cgroup with processes stays; they were killed)."""
    for hierarchy in _cgroup_hierarchies():
        base = hierarchy / root
        if not base.is_dir():
            continue
        directories = sorted((p for p in base.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
        for directory in [*directories, base]:
            remove_cgroup_dir(directory)


@tenacity.retry(
    retry=tenacity.retry_if_exception_type(OSError),
    stop=tenacity.stop_after_attempt(20),
    wait=tenacity.wait_fixed(0.1),
    retry_error_callback=lambda _: None,
)
def remove_cgroup_dir(directory: Path) -> None:
    """rmdir one cgroup (gone already is fine). The kernel answers EBUSY until the last of its killed
    processes has exited: ask again for about 2 s, then leave it (a cgroup whose process could not be
    killed stays; the node's next start or stop tries again)."""
    with contextlib.suppress(FileNotFoundError):
        directory.rmdir()


def _unmount_below(root: Path) -> None:
    """Unmount everything mounted at or below `root` (overlay rootfs, tmpfs volumes, netns files)."""
    prefix = str(root.resolve()) if root.exists() else str(root)
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    for point in sorted(set(points), key=lambda p: -len(p)):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)
