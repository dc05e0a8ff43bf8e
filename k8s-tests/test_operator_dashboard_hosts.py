"""One dashboard host, one pipeline: the operator refuses a host that a StockPipeline of any namespace
asked for first, says so in the status, and gives the host over once its holder lets it go."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from operator_harness import Cluster, children, condition, operator_settings, running_operator, wait_for

from marketpulse.contract.api import GROUP, VERSION
from marketpulse_dev.localenv.s3 import S3Server
from marketpulse_dev.pytest_plugin import KubeTarget

pytestmark = [pytest.mark.k8s, pytest.mark.s3]


def pipeline(name: str, host: str, *, ingress: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "StockPipeline",
        "metadata": {"name": name},
        "spec": {
            "watchlist": ["AAPL"],
            "dashboard": {"ingress": {"enabled": ingress, "host": host}},
        },
    }


@pytest.fixture
def other_namespace(cluster: Cluster, namespace: str) -> Iterator[str]:
    """A namespace no operator of this test serves, named to sort before the test's own, so that a
    tie in creation time would go to it too: only who asked first decides."""
    name = f"a-{namespace}"
    cluster.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    cluster.release_pipelines(name)
    cluster.core.delete_namespace(name)


def test_a_host_held_by_a_pipeline_of_another_namespace_is_refused_until_that_pipeline_lets_it_go(
    cluster: Cluster, kube: KubeTarget, s3_server: S3Server, namespace: str, other_namespace: str
) -> None:
    cluster.crd_set(strimzi=None, monitoring=False)
    host = f"markets-{uuid.uuid4().hex[:8]}.example.com"
    settings = operator_settings(kube, s3_server, resync_seconds=1.0)
    # Created first, with its Ingress off: it holds nothing yet.
    cluster.apply_yaml(other_namespace, pipeline("first", host, ingress=False))

    def dashboard(reason: str) -> dict[str, Any] | None:
        found = condition(cluster.pipeline(namespace, "second"), "Dashboard")
        return found if found.get("reason") == reason else None

    def ingress_hosts() -> list[str]:
        found = children(cluster, namespace).get("Ingress/second-dashboard")
        return [r["host"] for r in found["spec"]["rules"]] if found else []

    with running_operator(settings, namespace):
        cluster.apply_yaml(namespace, pipeline("second", host))
        wait_for(
            lambda: ingress_hosts() == [host], what="the Ingress of the only pipeline asking for the host"
        )

        # The earlier-created pipeline asks for the host: it is its, and the later one's Ingress goes.
        cluster.patch_spec(other_namespace, "first", {"dashboard": {"ingress": {"enabled": True}}})
        refused = wait_for(lambda: dashboard("HostConflict"), what="a HostConflict condition")
        wait_for(lambda: not ingress_hosts(), what="the Ingress of the later pipeline to be removed")
        status = cluster.pipeline(namespace, "second")["status"]

        cluster.delete_pipeline(other_namespace, "first")
        wait_for(lambda: ingress_hosts() == [host], what="the host to pass to the pipeline still asking")
        wait_for(lambda: not dashboard("HostConflict"), what="the HostConflict condition to clear")

    assert refused["status"] == "False"
    assert f"spec.dashboard.ingress.host {host}" in refused["message"]
    assert f"StockPipeline {other_namespace}/first" in refused["message"]
    assert status["phase"] == "Degraded"
    assert status["dashboardUrl"] == f"http://second-dashboard.{namespace}.svc:80/"
    assert cluster.pipeline(namespace, "second")["status"]["dashboardUrl"] == f"http://{host}/"


def test_two_pipelines_created_with_one_host_agree_that_the_first_holds_it(
    cluster: Cluster, kube: KubeTarget, s3_server: S3Server, namespace: str
) -> None:
    cluster.crd_set(strimzi=None, monitoring=False)
    host = f"markets-{uuid.uuid4().hex[:8]}.example.com"
    settings = operator_settings(kube, s3_server)
    with running_operator(settings, namespace):
        # Same namespace, likely the same second: the tie goes to the first name.
        cluster.apply_yaml(namespace, pipeline("beta", host))
        cluster.apply_yaml(namespace, pipeline("alpha", host))
        first, second = sorted(
            (cluster.pipeline(namespace, n) for n in ("alpha", "beta")),
            key=lambda p: (p["metadata"]["creationTimestamp"], p["metadata"]["name"]),
        )
        loser = second["metadata"]["name"]
        refused = wait_for(
            lambda: (
                condition(cluster.pipeline(namespace, loser), "Dashboard").get("reason") == "HostConflict"
                and condition(cluster.pipeline(namespace, loser), "Dashboard")
            ),
            what="the later pipeline to be refused the host",
        )
        found = wait_for(
            lambda: {k for k in children(cluster, namespace) if k.startswith("Ingress/")} or None,
            what="the Ingress of the first",
        )

    assert found == {f"Ingress/{first['metadata']['name']}-dashboard"}
    assert f"StockPipeline {namespace}/{first['metadata']['name']}" in refused["message"]
    listed = client.NetworkingV1Api(cluster.api).list_namespaced_ingress(namespace).items
    assert [i.spec.rules[0].host for i in listed] == [host]
