"""Fixtures for tests that need a Kubernetes API server (local control plane or $KUBECONFIG)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from marketpulse.localenv.pytest_plugin import KubeTarget

HERE = Path(__file__).parent


@pytest.fixture(scope="session")
def upstream_crds() -> Path:
    """Byte-for-byte upstream CRDs (Strimzi, Prometheus Operator); see upstream-crds/SOURCES.md."""
    return HERE / "upstream-crds"


@pytest.fixture(scope="session")
def test_charts() -> Path:
    return HERE / "charts"


@pytest.fixture(scope="session")
def api_client(kube: KubeTarget) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(str(kube.kubeconfig))
    yield api
    api.close()
