"""The node's binaries that are not part of Kubernetes: containerd, runc and CoreDNS.

kubelet, kube-scheduler and kube-proxy come from the Kubernetes build (`kube.KUBERNETES`), so they
share its compiled packages. Debian's containerd (1.6) is too old for kubelet 1.36 and Debian's runc
(1.1) fails under containerd 2.x, so both are built from the Go module proxy.
"""

from __future__ import annotations

from pathlib import Path

from marketpulse_dev.localenv.gobuild import GoBuild, ensure_built
from marketpulse_dev.localenv.versions import CONTAINERD_VERSION, COREDNS_VERSION, RUNC_VERSION

CONTAINERD = GoBuild(
    name=f"containerd-{CONTAINERD_VERSION}",
    requires={"github.com/containerd/containerd/v2": CONTAINERD_VERSION},
    packages={
        "github.com/containerd/containerd/v2/cmd/containerd": "containerd",
        "github.com/containerd/containerd/v2/cmd/ctr": "ctr",
        # containerd finds its shim on PATH, so the node puts this directory first on containerd's PATH.
        "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2": "containerd-shim-runc-v2",
    },
    ldflags=f"-s -w -X github.com/containerd/containerd/v2/version.Version={CONTAINERD_VERSION}",
    # btrfs needs C headers this project does not install; the node uses overlayfs.
    tags=("no_btrfs",),
    hint="first time: a few minutes",
)

RUNC = GoBuild(
    name=f"runc-{RUNC_VERSION}",
    requires={"github.com/opencontainers/runc": RUNC_VERSION},
    packages={"github.com/opencontainers/runc": "runc"},
    ldflags=f"-s -w -X main.version={RUNC_VERSION.lstrip('v')}",
    # seccomp (RuntimeDefault, required by the restricted Pod Security Standard) links libseccomp (cgo).
    tags=("seccomp",),
    hint="first time: under a minute; needs Debian's libseccomp-dev and pkg-config",
)

COREDNS = GoBuild(
    name=f"coredns-{COREDNS_VERSION}",
    requires={"github.com/coredns/coredns": COREDNS_VERSION},
    packages={"github.com/coredns/coredns": "coredns"},
    ldflags=f"-s -w -X github.com/coredns/coredns/coremain.GitCommit={COREDNS_VERSION}",
    hint="first time: a few minutes",
)


def ensure_node_binaries() -> dict[str, Path]:
    containerd = ensure_built(CONTAINERD)
    runc = ensure_built(RUNC)
    coredns = ensure_built(COREDNS)
    return {
        "containerd": containerd / "containerd",
        "ctr": containerd / "ctr",
        "containerd-shim-runc-v2": containerd / "containerd-shim-runc-v2",
        "runc": runc / "runc",
        "coredns": coredns / "coredns",
    }
