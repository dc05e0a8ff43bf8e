"""Fixtures for tests that need a Kubernetes API server (local control plane or $KUBECONFIG), and
those of the operator's tests (their harness is `support/operator_harness.py`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from chart_harness import Helm, install_crds
from kubernetes import client, config
from operator_harness import Cluster, operator_settings

from marketpulse.operator.settings import OperatorSettings
from marketpulse_dev.localenv.s3 import S3Server
from marketpulse_dev.pytest_plugin import KubeTarget

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


@pytest.fixture
def cluster(
    kube: KubeTarget, kubectl_binary: Path, api_client: client.ApiClient, namespace: str
) -> Iterator[Cluster]:
    found = Cluster(kube, kubectl_binary, api_client)
    yield found
    # The test's operator has stopped, so a pipeline still in the namespace would keep its finalizer
    # while the namespace terminates, and the operator of a later test that serves every namespace
    # would meet it there (and post Events where nothing may be created). Gone before its namespace.
    found.release_pipelines(namespace)


@pytest.fixture
def settings(kube: KubeTarget, s3_server: S3Server) -> OperatorSettings:
    return operator_settings(kube, s3_server)


@pytest.fixture
def helm(
    kube: KubeTarget,
    helm_binary: Path,
    kubectl_binary: Path,
    api_client: client.ApiClient,
    namespace: str,
    upstream_crds: Path,
) -> Iterator[Helm]:
    install_crds(kube, kubectl_binary, upstream_crds)
    release = Helm(kube, helm_binary, kubectl_binary, api_client, namespace)
    yield release
    # A failed test must not leave cluster-scoped objects behind for the next one.
    argv = [
        helm_binary,
        "uninstall",
        release.release,
        "-n",
        namespace,
        "--ignore-not-found",
        "--timeout",
        "60s",
        *release.hooks,
    ]
    kube.run(argv, check=False)
