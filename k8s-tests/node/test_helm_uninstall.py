"""`helm uninstall` on the real node: the chart's pre-delete hook runs as a pod of the operator image,
deletes every pipeline through the operator, and only what each deletionPolicy keeps remains."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from marketpulse.storage.s3 import minio_client
from marketpulse_dev.localenv.kafka import KafkaServer
from marketpulse_dev.localenv.node import NODE_NAME
from marketpulse_dev.pytest_plugin import eventually

if TYPE_CHECKING:  # the fixture's class; conftest is not importable at run time
    from conftest import Release

pytestmark = [pytest.mark.node, pytest.mark.helm, pytest.mark.kafka, pytest.mark.s3]

HOOK = "app.kubernetes.io/component=uninstall"


@dataclass
class HookPod:
    name: str
    node: str | None = None
    exit_code: int | None = None
    log: str = ""


@dataclass
class HookWatch:
    """What the hook's pods did: helm deletes them once the hook succeeded, so look while it runs."""

    pods: dict[str, HookPod] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


@pytest.fixture
def hook_watch(own_release: Release) -> Iterator[HookWatch]:
    release = own_release
    watch, stop = HookWatch(), threading.Event()
    core = client.CoreV1Api(release.api)

    def look() -> None:
        while not stop.is_set():
            try:
                for pod in core.list_namespaced_pod(release.namespace, label_selector=HOOK).items:
                    seen = watch.pods.setdefault(pod.metadata.name, HookPod(pod.metadata.name))
                    seen.node = pod.spec.node_name
                    for status in pod.status.container_statuses or []:
                        if status.state.terminated and seen.exit_code is None:
                            seen.log = core.read_namespaced_pod_log(pod.metadata.name, release.namespace)
                            seen.exit_code = status.state.terminated.exit_code
            except ApiException as exc:
                if exc.status != 404:  # the pod went between list and log
                    watch.errors.append(f"{exc.status} {exc.reason}")
            stop.wait(0.3)

    thread = threading.Thread(target=look, name="hook-watch", daemon=True)
    thread.start()
    yield watch
    stop.set()
    thread.join(timeout=10)


def test_helm_uninstall_runs_the_hook_pod_which_deletes_every_pipeline_through_the_operator(
    own_release: Release, node_kafka: KafkaServer, hook_watch: HookWatch
) -> None:
    release = own_release
    for name, policy in (("gone", "Delete"), ("kept", "Retain")):
        release.apply(release.direct_pipeline(name, node_kafka, deletionPolicy=policy))
    buckets = {
        name: eventually(
            lambda name=name: ((release.pipeline(name) or {}).get("status") or {}).get("bucket"),
            timeout=120,
            what=f"pipeline {name} reconciled (its bucket made)",
        )
        for name in ("gone", "kept")
    }
    started = time.monotonic()
    release.cluster.run(
        [release.helm, "uninstall", release.name, "-n", release.namespace, "--wait", "--timeout", "240s"],
        timeout=300,
    )
    uninstall_seconds = time.monotonic() - started
    s3 = minio_client(release.s3.endpoint, release.s3.access_key, release.s3.secret_key)
    core = client.CoreV1Api(release.api)

    def claims() -> list[str]:
        return sorted(
            c.metadata.name for c in core.list_namespaced_persistent_volume_claim(release.namespace).items
        )

    left = eventually(
        lambda: claims() == ["kept-warehouse"] and claims(),
        timeout=60,
        what="only the kept pipeline's warehouse claim to remain",
    )

    print(f"helm uninstall with two pipelines: {uninstall_seconds:.1f}s")
    assert hook_watch.errors == []
    (hook,) = hook_watch.pods.values()
    assert hook.node == NODE_NAME
    assert hook.exit_code == 0, hook.log
    assert f"StockPipeline {release.namespace}/gone finalized" in hook.log
    assert f"StockPipeline {release.namespace}/kept finalized" in hook.log
    assert release.pipeline("gone") is None
    assert release.pipeline("kept") is None
    assert s3.bucket_exists(buckets["kept"]), "Retain keeps the bucket"
    assert not s3.bucket_exists(buckets["gone"]), "Delete removes the bucket"
    assert left == ["kept-warehouse"]
    assert not client.AppsV1Api(release.api).list_namespaced_deployment(
        release.namespace
    ).items or eventually(
        lambda: not client.AppsV1Api(release.api).list_namespaced_deployment(release.namespace).items,
        timeout=60,
        what="the pipelines' Deployments to be garbage-collected",
    )
