"""promtool, Prometheus's rule checker and rule unit-test runner, built from the Go module proxy."""

from __future__ import annotations

from pathlib import Path

from marketpulse_dev.localenv.gobuild import GoBuild, ensure_built
from marketpulse_dev.localenv.versions import PROMETHEUS_VERSION, prometheus_module_version

PROMTOOL = GoBuild(
    name=f"promtool-{PROMETHEUS_VERSION}",
    requires={"github.com/prometheus/prometheus": prometheus_module_version()},
    packages={"github.com/prometheus/prometheus/cmd/promtool": "promtool"},
    # The version -X flag of Prometheus's own release build (.promu.yml), so `promtool --version` is right.
    ldflags=f"-s -w -X github.com/prometheus/common/version.Version={PROMETHEUS_VERSION.lstrip('v')}",
    # Rules and metrics checks need no service discovery; leaving the cloud SDKs out (Prometheus's
    # plugins/ build tags) saves most of the compile, e.g. the AWS EC2 client alone takes minutes.
    tags=("remove_all_sd",),
    hint="first time: several minutes",
)


def ensure_promtool() -> Path:
    return ensure_built(PROMTOOL) / "promtool"
