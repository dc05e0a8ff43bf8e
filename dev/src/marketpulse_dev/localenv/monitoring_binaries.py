"""The monitoring add-ons the node tier runs as pods, built from the Go module proxy as static binaries:
the Prometheus server, and the Prometheus Operator with its config reloader."""

from __future__ import annotations

from marketpulse_dev.localenv.gobuild import GoBuild
from marketpulse_dev.localenv.versions import (
    PROMETHEUS_OPERATOR_VERSION,
    PROMETHEUS_VERSION,
    prometheus_module_version,
)

_VERSION_VAR = "github.com/prometheus/common/version.Version"  # what their release builds set

PROMETHEUS = GoBuild(
    name=f"prometheus-{PROMETHEUS_VERSION}",
    requires={"github.com/prometheus/prometheus": prometheus_module_version()},
    packages={"github.com/prometheus/prometheus/cmd/prometheus": "prometheus"},
    ldflags=f"-s -w -X {_VERSION_VAR}={PROMETHEUS_VERSION.lstrip('v')}",
    # Kubernetes service discovery only (what the operator's configuration uses); the HTTP API serves
    # without the web UI's assets.
    tags=("remove_all_sd", "enable_kubernetes_sd"),
    static=True,
    hint="first time: several minutes",
)

_OPERATOR_MODULE = "github.com/prometheus-operator/prometheus-operator"
PROMETHEUS_OPERATOR = GoBuild(
    name=f"prometheus-operator-{PROMETHEUS_OPERATOR_VERSION}",
    requires={_OPERATOR_MODULE: PROMETHEUS_OPERATOR_VERSION},
    packages={
        f"{_OPERATOR_MODULE}/cmd/operator": "operator",
        f"{_OPERATOR_MODULE}/cmd/prometheus-config-reloader": "prometheus-config-reloader",
    },
    ldflags=f"-s -w -X {_VERSION_VAR}={PROMETHEUS_OPERATOR_VERSION.lstrip('v')}",
    own_module=_OPERATOR_MODULE,
    nested=("pkg/apis/monitoring", "pkg/client"),
    static=True,
    hint="first time: several minutes",
)
