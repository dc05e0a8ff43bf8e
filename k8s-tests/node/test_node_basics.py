"""The node runs pods as a cluster does: the built image under the restricted Pod Security Standard,
logs through the API server, Services by cluster DNS name, service-account tokens, volumes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from marketpulse_dev.localenv import node_network
from marketpulse_dev.localenv.node import NODE_NAME, STORAGE_CLASS
from marketpulse_dev.localenv.versions import KUBERNETES_VERSION
from marketpulse_dev.pytest_plugin import NodeCluster, eventually

pytestmark = pytest.mark.node

POD_SECURITY = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": True,
}


def python_pod(name: str, image: str, code: str, **spec: Any) -> dict[str, Any]:
    """A pod that runs `python -c code` in the workloads image, restricted-compliant."""
    container = {
        "name": "main",
        "image": image,
        "imagePullPolicy": "Never",
        "command": ["python", "-c", code],
        "securityContext": CONTAINER_SECURITY,
        **spec.pop("container", {}),
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": POD_SECURITY,
            "containers": [container],
            **spec,
        },
    }


def run_to_completion(
    core: client.CoreV1Api, namespace: str, pod: dict[str, Any], timeout: float = 90
) -> str:
    """Create the pod, wait until it finished, and return its log; fail with its status if it failed."""
    name = pod["metadata"]["name"]
    core.create_namespaced_pod(namespace, pod)

    def finished() -> client.V1Pod | None:
        current = core.read_namespaced_pod(name, namespace)
        return current if current.status.phase in ("Succeeded", "Failed") else None

    final = eventually(finished, timeout=timeout, what=f"pod {name} to finish")
    log: str = core.read_namespaced_pod_log(name, namespace)
    assert final.status.phase == "Succeeded", f"pod {name} failed: {final.status}\nlog:\n{log}"
    return log


def test_the_node_registers_ready_at_its_link_address_with_the_pinned_kubelet(
    node_cluster: NodeCluster, node_api: client.ApiClient
) -> None:
    node = client.CoreV1Api(node_api).read_node(NODE_NAME)
    ready = {c.type: c.status for c in node.status.conditions}
    assert ready["Ready"] == "True"
    assert {"type": "InternalIP", "address": node_network.NODE_IP} in [
        a.to_dict() for a in node.status.addresses
    ]
    assert node.status.node_info.kubelet_version == KUBERNETES_VERSION
    assert node.status.node_info.container_runtime_version.startswith("containerd://2.")


def test_a_restricted_pod_runs_the_image_as_its_non_root_user_on_a_read_only_root_and_logs(
    node_api: client.ApiClient, restricted_namespace: str, workloads_image: str
) -> None:
    code = (
        "import os, pathlib\n"
        "try:\n    pathlib.Path('/opt/marketpulse/x').write_text('x')\n    ro = 'writable'\n"
        "except OSError:\n    ro = 'read-only'\n"
        "print('uid', os.getuid(), 'root', ro)"
    )
    core = client.CoreV1Api(node_api)
    log = run_to_completion(core, restricted_namespace, python_pod("whoami", workloads_image, code))
    assert "uid 10001 root read-only" in log


def test_the_api_server_refuses_a_privileged_pod_in_a_restricted_namespace(
    node_api: client.ApiClient, restricted_namespace: str, workloads_image: str
) -> None:
    pod = python_pod(
        "privileged", workloads_image, "pass", container={"securityContext": {"privileged": True}}
    )
    pod["spec"]["securityContext"] = {}
    with pytest.raises(ApiException) as refused:
        client.CoreV1Api(node_api).create_namespaced_pod(restricted_namespace, pod)
    assert refused.value.status == 403
    message = json.loads(refused.value.body)["message"]
    assert 'violates PodSecurity "restricted:latest": privileged' in message


def test_a_pod_reaches_another_through_its_service_by_cluster_dns_name_once_its_probe_passes(
    node_api: client.ApiClient, restricted_namespace: str, workloads_image: str
) -> None:
    core = client.CoreV1Api(node_api)
    server = python_pod(
        "web",
        workloads_image,
        "import http.server, os; os.chdir('/tmp'); open('index.html', 'w').write('hello from web');"
        "http.server.ThreadingHTTPServer(('', 8080), http.server.SimpleHTTPRequestHandler).serve_forever()",
        container={
            "ports": [{"containerPort": 8080}],
            "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        },
        volumes=[{"name": "tmp", "emptyDir": {"sizeLimit": "10Mi"}}],
    )
    core.create_namespaced_pod(restricted_namespace, server)
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    core.create_namespaced_service(restricted_namespace, service)

    def ready() -> bool:
        status = core.read_namespaced_pod("web", restricted_namespace).status
        return any(c.type == "Ready" and c.status == "True" for c in status.conditions or [])

    eventually(ready, timeout=90, what="the web pod's readiness probe to pass")
    url = f"http://web.{restricted_namespace}.svc.cluster.local/index.html"
    client_code = (
        "import socket, urllib.request\n"
        f"print('resolved', socket.gethostbyname('web.{restricted_namespace}.svc.cluster.local'))\n"
        f"print('body', urllib.request.urlopen({url!r}, timeout=10).read().decode())"
    )
    log = run_to_completion(core, restricted_namespace, python_pod("client", workloads_image, client_code))
    cluster_ip = core.read_namespaced_service("web", restricted_namespace).spec.cluster_ip
    assert f"resolved {cluster_ip}" in log
    assert "body hello from web" in log


def test_a_pod_calls_the_api_server_with_its_service_account_token(
    node_api: client.ApiClient, restricted_namespace: str, workloads_image: str
) -> None:
    code = (
        "import json, ssl, urllib.error, urllib.request\n"
        "sa = '/var/run/secrets/kubernetes.io/serviceaccount'\n"
        "token = open(sa + '/token').read()\n"
        "ctx = ssl.create_default_context(cafile=sa + '/ca.crt')\n"
        "req = urllib.request.Request('https://kubernetes.default.svc/api/v1/namespaces/default/secrets',"
        " headers={'Authorization': 'Bearer ' + token})\n"
        "try:\n    urllib.request.urlopen(req, context=ctx, timeout=10)\n"
        "except urllib.error.HTTPError as e:\n    print('status', e.code, json.load(e)['message'])"
    )
    core = client.CoreV1Api(node_api)
    log = run_to_completion(core, restricted_namespace, python_pod("token", workloads_image, code))
    # Authenticated as the pod's account (TLS verified against the cluster CA), and refused by RBAC.
    assert (
        f'status 403 secrets is forbidden: User "system:serviceaccount:{restricted_namespace}:default"' in log
    )


def test_a_claim_binds_a_local_volume_that_the_non_root_pod_writes_through_its_fs_group(
    node_api: client.ApiClient, restricted_namespace: str, workloads_image: str
) -> None:
    core = client.CoreV1Api(node_api)
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    core.create_namespaced_persistent_volume_claim(restricted_namespace, claim)
    pod = python_pod(
        "writer",
        workloads_image,
        "import pathlib; p = pathlib.Path('/data/file'); p.write_text('kept'); print('wrote', p.read_text())",
        container={"volumeMounts": [{"name": "data", "mountPath": "/data"}]},
        volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
    )
    pod["spec"]["securityContext"] = {**POD_SECURITY, "fsGroup": 10001}
    log = run_to_completion(core, restricted_namespace, pod)
    assert "wrote kept" in log
    bound = core.read_namespaced_persistent_volume_claim("data", restricted_namespace)
    assert bound.status.phase == "Bound"
    assert bound.spec.storage_class_name == STORAGE_CLASS
