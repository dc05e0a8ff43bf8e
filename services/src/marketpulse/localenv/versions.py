"""Pinned versions of every local component. Bump here, nowhere else."""

from __future__ import annotations

GO_MIN_VERSION = (1, 26)

KUBERNETES_VERSION = "v1.36.3"
ETCD_VERSION = "v3.6.16"
HELM_VERSION = "v3.22.0"
VERSITYGW_VERSION = "v1.8.0"

KAFKA_VERSION = "4.4.0"
SLF4J_VERSION = "2.0.20"


def staging_version(kubernetes_version: str = KUBERNETES_VERSION) -> str:
    """Staging modules (k8s.io/api, ...) are released as v0.<minor>.<patch> beside v1.<minor>.<patch>."""
    major, minor, patch = kubernetes_version.lstrip("v").split(".")
    if major != "1":
        raise ValueError(f"unexpected Kubernetes version {kubernetes_version!r}: expected v1.<minor>.<patch>")
    return f"v0.{minor}.{patch}"
