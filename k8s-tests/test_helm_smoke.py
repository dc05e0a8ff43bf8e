"""helm is the real tool: it templates with the pinned Kubernetes version and installs into the API server."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kubernetes import client

from marketpulse_dev.localenv.versions import KUBERNETES_VERSION
from marketpulse_dev.pytest_plugin import KubeTarget

pytestmark = [pytest.mark.k8s, pytest.mark.helm]


def test_helm_template_renders_for_the_pinned_kubernetes_minor(
    helm_binary: Path, kube: KubeTarget, test_charts: Path
) -> None:
    result = kube.run([helm_binary, "template", "smoke", test_charts / "hello", "--set", "greeting=hi"])
    (configmap,) = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert configmap["data"]["greeting"] == "hi"
    major_minor = ".".join(KUBERNETES_VERSION.split(".")[:2])
    assert configmap["data"]["kubeVersion"].startswith(major_minor)


def test_helm_install_creates_the_release_objects_and_uninstall_removes_them(
    helm_binary: Path, kube: KubeTarget, namespace: str, api_client: client.ApiClient, test_charts: Path
) -> None:
    chart = test_charts / "hello"
    kube.run([helm_binary, "install", "smoke", chart, "--namespace", namespace, "--wait", "--timeout", "60s"])
    core = client.CoreV1Api(api_client)
    configmap = core.read_namespaced_config_map("smoke-greeting", namespace)
    assert configmap.data["greeting"] == "hello"
    assert configmap.metadata.labels["app.kubernetes.io/managed-by"] == "Helm"

    kube.run([helm_binary, "uninstall", "smoke", "--namespace", namespace, "--wait"])
    names = [cm.metadata.name for cm in core.list_namespaced_config_map(namespace).items]
    assert "smoke-greeting" not in names
