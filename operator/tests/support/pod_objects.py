"""Pod objects as the kubelet and the scheduler write their status, for the pod-health tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
IMAGE = "ghcr.io/marketpulse/marketpulse:0.1.0"


def pod(
    name: str = "demo-ingest-6d4cf56db6-x7k2p",
    *,
    component: str = "ingest",
    phase: str = "Running",
    containers: list[dict[str, Any]] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    created: str = "2026-01-02T03:00:00Z",
    job: str | None = None,
    restart_policy: str = "Always",
    **status: Any,
) -> dict[str, Any]:
    """A pod as `kubectl get pod -o json` shows it, for one of the pipeline `demo`'s workloads."""
    labels = {
        "app.kubernetes.io/name": "marketpulse",
        "app.kubernetes.io/instance": "demo",
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "marketpulse",
        "app.kubernetes.io/managed-by": "marketpulse-operator",
    }
    if job is not None:
        labels |= {"batch.kubernetes.io/job-name": job, "job-name": job}
    else:
        labels["pod-template-hash"] = "6d4cf56db6"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "trading",
            "uid": f"uid-{name}",
            "creationTimestamp": created,
            "labels": labels,
        },
        "spec": {"restartPolicy": restart_policy, "containers": [{"name": component, "image": IMAGE}]},
        "status": {
            "phase": phase,
            "conditions": conditions if conditions is not None else scheduled(),
            "hostIP": "10.0.0.5",
            "podIP": "10.244.0.12",
            "startTime": created,
            "qosClass": "Burstable",
            **({"containerStatuses": containers} if containers is not None else {}),
            **status,
        },
    }


def scheduled(ready: bool = False) -> list[dict[str, Any]]:
    not_ready = {"reason": "ContainersNotReady", "message": "containers with unready status: [ingest]"}
    return [
        {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": "2026-01-02T03:00:02Z"},
        {"type": "Initialized", "status": "True", "lastTransitionTime": "2026-01-02T03:00:01Z"},
        {"type": "Ready", "status": str(ready), **({} if ready else not_ready)},
        {"type": "ContainersReady", "status": str(ready), **({} if ready else not_ready)},
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-01-02T03:00:00Z"},
    ]


def container(
    name: str = "ingest",
    *,
    waiting: dict[str, str] | None = None,
    running: bool = False,
    ready: bool | None = None,
    terminated: dict[str, Any] | None = None,
    last: dict[str, Any] | None = None,
    restarts: int = 0,
) -> dict[str, Any]:
    if waiting is not None:
        state: dict[str, Any] = {"waiting": waiting}
    elif terminated is not None:
        state = {"terminated": {**finished(), **terminated}}
    else:
        state = {"running": {"startedAt": "2026-01-02T03:01:12Z"}} if running else {}
    status: dict[str, Any] = {
        "name": name,
        "image": IMAGE,
        "imageID": "" if waiting and "Image" in waiting.get("reason", "") else f"{IMAGE}@sha256:{'ab' * 32}",
        "ready": running if ready is None else ready,
        "restartCount": restarts,
        "started": running,
        "state": state,
        "lastState": {"terminated": {**finished(), **last}} if last is not None else {},
    }
    return status


def finished() -> dict[str, Any]:
    return {
        "containerID": "containerd://" + "c" * 64,
        "startedAt": "2026-01-02T03:01:00Z",
        "finishedAt": "2026-01-02T03:01:02Z",
    }


TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/app/marketpulse/cli/__init__.py", line 88, in ingest\n'
    "    settings = IngestSettings()\n"
    "pydantic_core._pydantic_core.ValidationError: 1 validation error for IngestSettings\n"
    "MARKETPULSE_WATCHLIST\n"
    "  Field required [type=missing]\n"
)


def crash_looping(backoff: str = "1m20s", message: str = TRACEBACK) -> dict[str, Any]:
    return pod(
        containers=[
            container(
                waiting={
                    "reason": "CrashLoopBackOff",
                    "message": (
                        f"back-off {backoff} restarting failed container=ingest "
                        "pod=demo-ingest-6d4cf56db6-x7k2p_trading(0f3c2a4e-8d1b-4c59-9a57-3f7e2b1d6c90)"
                    ),
                },
                last={"exitCode": 1, "reason": "Error", "message": message},
                restarts=4,
            )
        ]
    )
