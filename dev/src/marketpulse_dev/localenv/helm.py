"""helm v3, built from the Go module proxy with the Kubernetes version it should assume."""

from __future__ import annotations

from pathlib import Path

from marketpulse_dev.localenv.gobuild import GoBuild, ensure_built
from marketpulse_dev.localenv.versions import HELM_VERSION, KUBERNETES_VERSION

_k8s_major, _k8s_minor, _ = KUBERNETES_VERSION.lstrip("v").split(".")

HELM = GoBuild(
    name=f"helm-{HELM_VERSION}",
    requires={"helm.sh/helm/v3": HELM_VERSION},
    packages={"helm.sh/helm/v3/cmd/helm": "helm"},
    # Without these `helm version` is wrong and `helm template` assumes Kubernetes 1.20 (helm/helm#13248).
    ldflags=(
        f"-s -w -X helm.sh/helm/v3/internal/version.version={HELM_VERSION} "
        "-X helm.sh/helm/v3/internal/version.gitTreeState=clean "
        f"-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor={_k8s_major} "
        f"-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor={_k8s_minor}"
    ),
    hint="first time: a few minutes",
)


def ensure_helm() -> Path:
    return ensure_built(HELM) / "helm"
