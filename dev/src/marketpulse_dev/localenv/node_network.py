"""The local node's network: one network namespace, one veth link to the host, one pod bridge.

Everything the node creates on the network lives inside the namespace `NETNS`: the pod bridge
(made by the CNI bridge plugin, because containerd runs in the namespace), pod veths, and every
iptables rule of kube-proxy and CNI. The host gets only the link's host end, `HOST_LINK`, with two
routes through it (pods, Services). Deleting the namespace removes all of it at once, which makes
`dev down` and the clean-up after a crash complete. The namespace has no default route, so nothing
in it can send to any address but the link, the bridge and its own loopback.

Addresses (all private, on interfaces the project creates):
- link: host 10.245.0.1, node 10.245.0.2 (/30). The node IP; the API server, Kafka and S3 listen on
  the host end so that pods reach them.
- pods: 10.244.0.0/24 on the bridge `BRIDGE` (gateway 10.244.0.1).
- Services: 10.0.0.0/24 (the API server's `--service-cluster-ip-range`).
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from marketpulse_dev.localenv.errors import ComponentError
from marketpulse_dev.localenv.pki import APISERVER_IPS

NETNS = "marketpulse-node"
HOST_LINK = "mp-host"
NODE_LINK = "mp-node"
BRIDGE = "mp-br0"
HOST_IP = "10.245.0.1"
NODE_IP = "10.245.0.2"
LINK_CIDR = "10.245.0.0/30"
POD_CIDR = "10.244.0.0/24"
POD_GATEWAY = "10.244.0.1"
SERVICE_CIDR = "10.0.0.0/24"
CNI_NETWORK = "marketpulse"
# Debian's containernetworking-plugins.
CNI_BIN_DIR = Path("/usr/lib/cni")
CNI_PLUGINS = ("bridge", "host-local", "portmap", "loopback")

STEP = "set up the node's network"

assert HOST_IP in APISERVER_IPS, "the API server's certificate must name the node link's host address"


def netns_path() -> Path:
    return Path("/run/netns") / NETNS


def in_netns(argv: Sequence[str]) -> list[str]:
    """`argv` run inside the node's network namespace only (same mounts, so kubelet and containerd
    share their volume mounts, unlike `ip netns exec`, which makes a mount namespace of its own)."""
    return ["nsenter", f"--net={netns_path()}", "--", *argv]


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise ComponentError(STEP, f"`ip {' '.join(args)}` failed: {result.stderr.strip()}")
    return result


def preflight() -> None:
    """Refuse to start, with one line each, what cannot work; nothing has been created yet."""
    if os.geteuid() != 0:
        raise ComponentError(
            STEP, "the node needs root (network namespaces, mounts, cgroups); run as root or with sudo"
        )
    for tool, package in (("ip", "iproute2"), ("nsenter", "util-linux"), ("iptables", "iptables")):
        if shutil.which(tool) is None:
            raise ComponentError(STEP, f"`{tool}` is not on PATH; install Debian's {package}")
    missing = [p for p in CNI_PLUGINS if not (CNI_BIN_DIR / p).is_file()]
    if missing:
        raise ComponentError(
            STEP,
            f"CNI plugins {', '.join(missing)} are missing from {CNI_BIN_DIR}; "
            "install Debian's containernetworking-plugins",
        )
    if "overlay" not in Path("/proc/filesystems").read_text():
        raise ComponentError(
            STEP, "the kernel has no overlay filesystem (containerd's snapshotter); `modprobe overlay`"
        )
    _check_routes()


def _check_routes() -> None:
    """Our ranges must not overlap a route that is not ours (a VPN, Docker's bridge, a kind node)."""
    ours = [ipaddress.ip_network(c) for c in (LINK_CIDR, POD_CIDR, SERVICE_CIDR)]
    routes = json.loads(_ip("-j", "route", "show").stdout or "[]")
    for route in routes:
        dst, dev = route.get("dst", ""), route.get("dev", "")
        if dst in ("default", "") or dev == HOST_LINK:
            continue
        network = ipaddress.ip_network(dst if "/" in dst else f"{dst}/32", strict=False)
        for mine in ours:
            if network.version == mine.version and network.overlaps(mine):
                raise ComponentError(
                    STEP,
                    f"the route {dst} on {dev} overlaps the node's {mine}; remove it "
                    f"(`ip route del {dst} dev {dev}`) or stop what made it",
                )


def exists() -> bool:
    return netns_path().exists() or _ip("link", "show", HOST_LINK, check=False).returncode == 0


def create() -> None:
    """The namespace, the link, the routes and the namespace's forwarding; undone by `remove`."""
    remove()  # whatever a crashed run left behind
    try:
        _ip("netns", "add", NETNS)
        _ip("link", "add", HOST_LINK, "type", "veth", "peer", "name", NODE_LINK, "netns", NETNS)
        _ip("addr", "add", f"{HOST_IP}/30", "dev", HOST_LINK)
        _ip("link", "set", HOST_LINK, "up")
        _ip("-n", NETNS, "addr", "add", f"{NODE_IP}/30", "dev", NODE_LINK)
        _ip("-n", NETNS, "link", "set", NODE_LINK, "up")
        _ip("-n", NETNS, "link", "set", "lo", "up")
        for cidr in (POD_CIDR, SERVICE_CIDR):
            _ip("route", "add", cidr, "via", NODE_IP, "dev", HOST_LINK)
        # Per-namespace settings: routing between the bridge and the link, and iptables on bridged
        # traffic so that a pod reaching its own Service (hairpin) is translated both ways.
        _sysctl("net.ipv4.ip_forward", "1")
        _sysctl("net.bridge.bridge-nf-call-iptables", "1", required=False)
    except BaseException:
        remove()
        raise


def _sysctl(key: str, value: str, *, required: bool = True) -> None:
    path = Path("/proc/sys") / key.replace(".", "/")
    result = subprocess.run(
        in_netns(["sh", "-c", f"test -e {path} && echo {value} > {path}"]),
        capture_output=True,
        text=True,
        check=False,
    )
    if required and result.returncode != 0:
        raise ComponentError(
            STEP, f"cannot set {key}={value} in the node's namespace: {result.stderr.strip()}"
        )


def remove() -> None:
    """Delete the namespace (with the bridge, pod veths and every rule in it) and the host link."""
    if netns_path().exists():
        _ip("netns", "delete", NETNS, check=False)
    if _ip("link", "show", HOST_LINK, check=False).returncode == 0:
        _ip("link", "delete", HOST_LINK, check=False)


def cni_conflist(ipam_dir: Path) -> dict[str, object]:
    """The pod network: a bridge with the gateway address, host-local IPAM, port mappings."""
    return {
        "cniVersion": "1.0.0",
        "name": CNI_NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(ipam_dir),
                    "ranges": [[{"subnet": POD_CIDR, "gateway": POD_GATEWAY}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
