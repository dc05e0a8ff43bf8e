"""`marketpulse operator cleanup` (the chart's uninstall hook) against the real API server.

No operator runs in these tests: a pipeline without the operator's finalizer goes at once, and one
with it is what the command must report, by name and with the way out, instead of hanging.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from marketpulse.contract.api import GROUP, PLURAL, VERSION
from marketpulse.contract.api.crd import CRD_RELATIVE_PATH
from marketpulse.operator.lifecycle import FINALIZER
from marketpulse_dev.pytest_plugin import KubeTarget

pytestmark = [pytest.mark.k8s]

ROOT = Path(__file__).parents[1]


def cleanup(kube: KubeTarget, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [str(Path(sys.executable).with_name("marketpulse")), "operator", "cleanup", *args]
    return subprocess.run(argv, env=kube.env(), capture_output=True, text=True, timeout=120, check=False)


def create(api: client.ApiClient, namespace: str, name: str, finalizers: list[str]) -> None:
    body: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "StockPipeline",
        "metadata": {"name": name, "finalizers": finalizers},
        "spec": {"watchlist": ["AAPL"], "deletionPolicy": "Delete"},
    }
    client.CustomObjectsApi(api).create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)


def names(api: client.ApiClient, namespace: str) -> list[str]:
    found = client.CustomObjectsApi(api).list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
    return sorted(p["metadata"]["name"] for p in found["items"])


@pytest.fixture
def crd(kube: KubeTarget, kubectl_binary: Path) -> None:
    kube.run([kubectl_binary, "apply", "--server-side", "--force-conflicts", "-f", ROOT / CRD_RELATIVE_PATH])
    kube.run(
        [
            kubectl_binary,
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/stockpipelines.marketpulse.io",
        ]
    )


def test_cleanup_deletes_every_pipeline_of_the_namespace_and_exits_zero_when_none_is_left(
    kube: KubeTarget, api_client: client.ApiClient, namespace: str, crd: None
) -> None:
    for name in ("one", "two"):
        create(api_client, namespace, name, [])

    result = cleanup(kube, "--namespace", namespace, "--timeout", "30")

    assert result.returncode == 0, result.stdout + result.stderr
    assert names(api_client, namespace) == []
    assert f"StockPipeline {namespace}/one finalized" in result.stdout
    assert f"StockPipeline {namespace}/two finalized" in result.stdout


def test_cleanup_without_a_running_operator_fails_in_time_naming_the_pipeline_and_the_way_out(
    kube: KubeTarget, api_client: client.ApiClient, namespace: str, crd: None
) -> None:
    create(api_client, namespace, "stuck", [FINALIZER])
    try:
        result = cleanup(kube, "--namespace", namespace, "--timeout", "2")
        left = client.CustomObjectsApi(api_client).get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, "stuck"
        )
    finally:
        try:
            client.CustomObjectsApi(api_client).patch_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, "stuck", {"metadata": {"finalizers": None}}
            )
        except ApiException as exc:
            if exc.status != 404:
                raise

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    message = " ".join(result.stderr.split())
    assert "timed out after 2s waiting for the operator to finalize 1 StockPipeline(s)" in message
    assert f"{namespace}/stuck (deletionPolicy Delete; finalizers: {FINALIZER})" in message
    assert "patch stockpipeline NAME --type=merge" in message
    assert left["metadata"]["deletionTimestamp"], "the pipeline was deleted, only its finalizer holds it"


def test_cleanup_refused_by_rbac_says_so_instead_of_waiting(
    kube: KubeTarget, api_client: client.ApiClient, namespace: str, crd: None, tmp_path: Path
) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "nobody"}})
    token = core.create_namespaced_service_account_token(
        "nobody", namespace, client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[]))
    ).status.token
    admin = yaml.safe_load(kube.kubeconfig.read_text())
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": admin["clusters"],
                "users": [{"name": "nobody", "user": {"token": token}}],
                "contexts": [
                    {"name": "nobody", "context": {"cluster": admin["clusters"][0]["name"], "user": "nobody"}}
                ],
                "current-context": "nobody",
            }
        )
    )
    argv = [str(Path(sys.executable).with_name("marketpulse")), "operator", "cleanup", "-n", namespace]
    env = {**kube.env(), "KUBECONFIG": str(kubeconfig)}

    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    message = " ".join(result.stderr.split())
    assert "the API server refused" in message
    assert "stockpipelines" in message
    assert "forbidden" in message.lower()
