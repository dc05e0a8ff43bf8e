"""Fixtures for tests on the real node: its API client, restricted namespaces, the built images."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client, config

from marketpulse.localenv.errors import ComponentError
from marketpulse.localenv.image import BuiltImage, Target, ensure_image
from marketpulse.localenv.pytest_plugin import NodeCluster

RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


@pytest.fixture(scope="session")
def node_api(node_cluster: NodeCluster) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(str(node_cluster.kubeconfig))
    yield api
    api.close()


@pytest.fixture
def restricted_namespace(node_api: client.ApiClient) -> Iterator[str]:
    """A fresh namespace where the API server enforces the restricted Pod Security Standard."""
    core = client.CoreV1Api(node_api)
    name = f"mp-node-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=RESTRICTED)))
    yield name
    core.delete_namespace(name)


def _imported(node_cluster: NodeCluster, target: Target) -> BuiltImage:
    assert node_cluster.node is not None
    try:
        built = ensure_image(target, live=False)
    except ComponentError as exc:
        pytest.fail(str(exc), pytrace=False)
    if built.reference not in node_cluster.node.images():
        node_cluster.node.import_image(built.archive)
    return built


@pytest.fixture(scope="session")
def workloads_image(node_cluster: NodeCluster) -> str:
    """The image of every workload, built from images/marketpulse/Dockerfile and present on the node."""
    return _imported(node_cluster, Target.workloads).reference


@pytest.fixture(scope="session")
def operator_image(node_cluster: NodeCluster) -> str:
    """The operator's slim image (`--target operator`), present on the node."""
    return _imported(node_cluster, Target.operator).reference
