"""Pinned versions of every local component. Bump here, nowhere else."""

from __future__ import annotations

GO_MIN_VERSION = (1, 26)

KUBERNETES_VERSION = "v1.36.3"
ETCD_VERSION = "v3.6.16"
HELM_VERSION = "v3.22.0"
VERSITYGW_VERSION = "v1.8.0"
PROMETHEUS_VERSION = "v3.16.0"
# The newest release of the operator's root module the Go module proxy serves.
PROMETHEUS_OPERATOR_VERSION = "v0.85.0"
CONTAINERD_VERSION = "v2.4.2"
RUNC_VERSION = "v1.5.3"
COREDNS_VERSION = "v1.15.0"

KAFKA_VERSION = "4.4.0"
SLF4J_VERSION = "2.0.20"


def staging_version(kubernetes_version: str = KUBERNETES_VERSION) -> str:
    """Staging modules (k8s.io/api, ...) are released as v0.<minor>.<patch> beside v1.<minor>.<patch>."""
    major, minor, patch = kubernetes_version.lstrip("v").split(".")
    if major != "1":
        raise ValueError(f"unexpected Kubernetes version {kubernetes_version!r}: expected v1.<minor>.<patch>")
    return f"v0.{minor}.{patch}"


def prometheus_module_version(prometheus_version: str = PROMETHEUS_VERSION) -> str:
    """Prometheus v3.<minor>.<patch> is published on the Go module proxy as v0.3<minor:02>.<patch>."""
    major, minor, patch = prometheus_version.lstrip("v").split(".")
    if major != "3":
        raise ValueError(f"unexpected Prometheus version {prometheus_version!r}: expected v3.<minor>.<patch>")
    return f"v0.{major}{int(minor):02d}.{patch}"
