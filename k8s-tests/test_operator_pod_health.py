"""Pods that cannot run: each concern carries its pod's own reason within seconds, and follows the
pod back when it recovers."""

from __future__ import annotations

import time
from typing import Any

import pytest
from operator_harness import (
    IMAGE,
    Cluster,
    condition,
    handled,
    operator_settings,
    running_operator,
    sample,
    wait_for,
    wait_status,
)

from marketpulse_dev.localenv.s3 import S3Server
from marketpulse_dev.pytest_plugin import KubeTarget

pytestmark = [pytest.mark.k8s, pytest.mark.s3, pytest.mark.kafka]

# No kubelet or scheduler runs against this API server, so these tests write pod status through the
# pods/binding and pods/status subresources exactly as the scheduler and a kubelet would. The proof
# with a real kubelet, real image pulls and real crashes belongs to the tests on a real node.

KUBELET_NODE = "node-written-by-the-test"


def _workload_pod(cluster: Cluster, namespace: str, component: str, job: str | None = None) -> str:
    """The one pod of `component`, made by its ReplicaSet or, for `job`, by the Job controller."""
    selector = f"app.kubernetes.io/instance=demo,app.kubernetes.io/component={component}"
    if job is not None:  # the CronJob may start a run of its own meanwhile
        selector += f",batch.kubernetes.io/job-name={job}"

    def one() -> str | None:
        pods = cluster.core.list_namespaced_pod(namespace, label_selector=selector).items
        return pods[0].metadata.name if len(pods) == 1 else None

    name: str = wait_for(one, timeout=20, what=f"the {component} pod")
    return name


def _bind_as_the_scheduler_would(cluster: Cluster, namespace: str, pod: str) -> None:
    binding = {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": pod},
        "target": {"apiVersion": "v1", "kind": "Node", "name": KUBELET_NODE},
    }
    # The client cannot read the Status it gets back as a Binding; the response is not needed.
    cluster.core.create_namespaced_pod_binding(pod, namespace, binding, _preload_content=False)


def _write_pod_status_as_a_kubelet_would(
    cluster: Cluster, namespace: str, pod: str, status: dict[str, Any]
) -> None:
    cluster.core.patch_namespaced_pod_status(pod, namespace, {"status": status})


def _kubelet_conditions(*, ready: bool, container: str, at: str) -> list[dict[str, Any]]:
    not_ready = (
        {}
        if ready
        else {"reason": "ContainersNotReady", "message": f"containers with unready status: [{container}]"}
    )
    return [
        {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": at},
        {"type": "Initialized", "status": "True", "lastTransitionTime": at},
        {"type": "Ready", "status": str(ready), "lastTransitionTime": at, **not_ready},
        {"type": "ContainersReady", "status": str(ready), "lastTransitionTime": at, **not_ready},
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": at},
    ]


def _container_status(container: str, state: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "name": container,
        "image": IMAGE,
        "imageID": "",
        "ready": False,
        "started": False,
        "restartCount": 0,
        "state": state,
        "lastState": {},
        **extra,
    }


def _waiting(container: str, reason: str, message: str, **extra: Any) -> dict[str, Any]:
    return _container_status(container, {"waiting": {"reason": reason, "message": message}}, **extra)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def test_pod_status_written_by_the_test_as_a_kubelet_would_gives_each_concern_the_pods_reason_within_seconds(
    cluster: Cluster, kube: KubeTarget, s3_server: S3Server, namespace: str
) -> None:
    cluster.crd_set(strimzi="v1", monitoring=True)
    # No periodic reconcile within the test: only the operator's watch of its pods can bring the news.
    slow = operator_settings(kube, s3_server, resync_seconds=3600)
    at = _now()
    container_id = "containerd://" + "0f" * 32
    # What a workload that dies at start-up leaves with FallbackToLogsOnError: its last log lines,
    # here with the S3 secret key it was given (it must not reach the status).
    last_lines = (
        "Traceback (most recent call last):\n"
        '  File "/app/marketpulse/cli/__init__.py", line 88, in ingest\n'
        f"marketpulse.platform.SettingsError: cannot reach Kafka (S3_SECRET_KEY={s3_server.secret_key})\n"
        "KAFKA_BOOTSTRAP_SERVERS=marketpulse-kafka-bootstrap:9092: no broker answered within 10 s\n"
    )
    with running_operator(slow, namespace):
        cluster.apply_yaml(namespace, sample("synthetic-duckdb"))
        first = wait_status(cluster, namespace, "demo", handled(1), "the first reconcile")
        ingest, archive, dashboard = (
            _workload_pod(cluster, namespace, c) for c in ("ingest", "archive", "dashboard")
        )
        # The transform runs as a CronJob: start a run now, as `kubectl create job --from` does.
        cluster.kube.run(
            [
                cluster.kubectl,
                "create",
                "job",
                "-n",
                namespace,
                "demo-transform-now",
                "--from=cronjob/demo-transform",
            ]
        )
        transform = _workload_pod(cluster, namespace, "transform", job="demo-transform-now")
        _bind_as_the_scheduler_would(cluster, namespace, transform)
        not_found = (
            f'failed to pull and unpack image "{IMAGE}": failed to resolve reference "{IMAGE}": '
            f"{IMAGE}: not found"
        )
        _write_pod_status_as_a_kubelet_would(
            cluster,
            namespace,
            transform,
            {
                "phase": "Pending",
                "startTime": at,
                "conditions": _kubelet_conditions(ready=False, container="transform", at=at),
                "containerStatuses": [_waiting("transform", "ErrImagePull", not_found)],
            },
        )
        # The new Job changes the CronJob's status, which reconciles the pipeline anyway: once that
        # news is in, nothing but the pods below changes, and only the pod watch can tell.
        wait_status(
            cluster,
            namespace,
            "demo",
            lambda p: condition(p, "Transform").get("reason") == "ErrImagePull",
            "the transform run's pod reason",
        )

        started = time.monotonic()
        for pod in (ingest, archive):
            _bind_as_the_scheduler_would(cluster, namespace, pod)
        _write_pod_status_as_a_kubelet_would(
            cluster,
            namespace,
            ingest,
            {
                "phase": "Running",
                "startTime": at,
                "conditions": _kubelet_conditions(ready=False, container="ingest", at=at),
                "containerStatuses": [
                    _waiting(
                        "ingest",
                        "CrashLoopBackOff",
                        f"back-off 40s restarting failed container=ingest pod={ingest}_{namespace}(uid)",
                        containerID=container_id,
                        restartCount=3,
                        lastState={
                            "terminated": {
                                "exitCode": 1,
                                "reason": "Error",
                                "message": last_lines,
                                "startedAt": at,
                                "finishedAt": at,
                                "containerID": container_id,
                            }
                        },
                    )
                ],
            },
        )
        missing_key = f"couldn't find key AWS_SECRET_ACCESS_KEY in Secret {namespace}/marketpulse-s3"
        _write_pod_status_as_a_kubelet_would(
            cluster,
            namespace,
            archive,
            {
                "phase": "Pending",
                "startTime": at,
                "conditions": _kubelet_conditions(ready=False, container="archive", at=at),
                "containerStatuses": [_waiting("archive", "CreateContainerConfigError", missing_key)],
            },
        )
        no_room = (
            "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: "
            "1 No preemption victims found for incoming pod."
        )
        _write_pod_status_as_a_kubelet_would(  # as the scheduler does for a pod it cannot place
            cluster,
            namespace,
            dashboard,
            {
                "phase": "Pending",
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": no_room,
                        "lastTransitionTime": at,
                    }
                ],
            },
        )
        reasons = {
            "Ingest": "CrashLoopBackOff",
            "Archive": "CreateContainerConfigError",
            "Transform": "ErrImagePull",
            "Dashboard": "Unschedulable",
        }
        degraded = wait_status(
            cluster,
            namespace,
            "demo",
            lambda p: all(condition(p, kind).get("reason") == reason for kind, reason in reasons.items()),
            "every concern to carry its pod's reason",
        )
        elapsed = time.monotonic() - started

        # The pod starts and becomes ready: the condition follows it back.
        _write_pod_status_as_a_kubelet_would(
            cluster,
            namespace,
            ingest,
            {
                "conditions": _kubelet_conditions(ready=True, container="ingest", at=_now()),
                "containerStatuses": [
                    _container_status(
                        "ingest",
                        {"running": {"startedAt": _now()}},
                        imageID=f"{IMAGE}@sha256:{'ab' * 32}",
                        containerID=container_id,
                        restartCount=4,
                        ready=True,
                        started=True,
                    )
                ],
            },
        )
        recovered = wait_status(
            cluster,
            namespace,
            "demo",
            lambda p: condition(p, "Ingest").get("status") == "True",
            "the ingest condition to follow its pod back",
        )
        events = cluster.events(namespace, "demo")

    # Printed here: the operator's runner captures stdout while it runs.
    print(f"\npods' reasons in the pipeline's conditions {elapsed:.2f}s after the pods' status was written")
    assert condition(first, "Ingest")["reason"] == "Unavailable"
    assert first["status"]["phase"] == "Provisioning"
    assert elapsed <= 20, f"the pods' reasons took {elapsed:.1f}s"
    assert degraded["status"]["phase"] == "Degraded"
    assert condition(degraded, "Ready")["status"] == "False"
    crash = condition(degraded, "Ingest")["message"]
    assert crash.startswith(f"Deployment demo-ingest: pod {ingest}: container ingest keeps crashing; ")
    assert "exited with code 1 (Error)" in crash
    assert crash.endswith(
        "KAFKA_BOOTSTRAP_SERVERS=marketpulse-kafka-bootstrap:9092: no broker answered within 10 s"
    )
    assert "\n" not in crash
    assert s3_server.secret_key not in crash
    assert "S3_SECRET_KEY=<redacted>" in crash
    assert (
        condition(degraded, "Archive")["message"]
        == f"Deployment demo-archive: pod {archive}: container archive: {missing_key}"
    )
    assert condition(degraded, "Transform")["message"] == (
        f"CronJob demo-transform: pod {transform}: container transform: {not_found}"
    )
    assert (
        condition(degraded, "Dashboard")["message"]
        == f"Deployment demo-dashboard: pod {dashboard} cannot be scheduled: {no_room}"
    )
    assert condition(recovered, "Ingest")["reason"] == "Available"
    warnings = {e.reason: e.message for e in events if e.type == "Warning"}
    assert warnings["CrashLoopBackOff"].startswith("Ingest: Deployment demo-ingest: pod ")
    assert s3_server.secret_key not in warnings["CrashLoopBackOff"]
    assert "Degraded" in warnings
