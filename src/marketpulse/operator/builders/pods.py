"""Pod templates that meet the `restricted` Pod Security Standard."""

from __future__ import annotations

from typing import Any

from marketpulse.contract.workloads import Workload
from marketpulse.operator.builders.context import BuildContext

TMP_VOLUME = "tmp"
WAREHOUSE_VOLUME = "warehouse"


def build_container_security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
    }


def build_pod_security_context(ctx: BuildContext) -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": ctx.run_as_user,
        "runAsGroup": ctx.run_as_user,
        # The warehouse volume must be writable by the non-root user.
        "fsGroup": ctx.run_as_user,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def build_pod_template(
    workload: Workload, ctx: BuildContext, *, restart_policy: str | None = None
) -> dict[str, Any]:
    names = ctx.names
    mounts: list[dict[str, Any]] = [{"name": TMP_VOLUME, "mountPath": "/tmp"}]  # noqa: S108 - a per-pod emptyDir, not a shared /tmp
    # readOnlyRootFilesystem: /tmp is the only scratch space, and it is per pod; its size limit keeps
    # one pod from filling the node's disk (the kubelet evicts the pod instead).
    scratch = {"sizeLimit": workload.scratch_limit} if workload.scratch_limit else {}
    volumes: list[dict[str, Any]] = [{"name": TMP_VOLUME, "emptyDir": scratch}]
    if workload.warehouse_dir is not None:
        mounts.append({"name": WAREHOUSE_VOLUME, "mountPath": workload.warehouse_dir})
        volumes.append(
            {"name": WAREHOUSE_VOLUME, "persistentVolumeClaim": {"claimName": names.warehouse_claim}}
        )
    for secret_file in workload.secret_files:
        mounts.append({"name": secret_file.volume, "mountPath": secret_file.mount_dir, "readOnly": True})
        volumes.append(
            {
                "name": secret_file.volume,
                "secret": {
                    "secretName": secret_file.secret.name,
                    "items": [{"key": secret_file.secret.key, "path": secret_file.file_name}],
                    "defaultMode": 0o400,
                },
            }
        )
    container: dict[str, Any] = {
        "name": workload.component,
        "image": ctx.image,
        "imagePullPolicy": ctx.image_pull_policy,
        "command": list(workload.command),
        "env": workload.env_manifest(),
        "ports": [{"name": p.name, "containerPort": p.port, "protocol": "TCP"} for p in workload.ports],
        "resources": workload.resources.manifest(),
        "securityContext": build_container_security_context(),
        # A process that dies at start-up leaves its last log lines as the termination message,
        # which the operator reports in the pipeline's condition (see podhealth).
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": mounts,
    }
    if workload.ports:
        # The process serves its metrics port once it is up; a TCP check needs no extra endpoint.
        first = workload.ports[0].name
        container["readinessProbe"] = {"tcpSocket": {"port": first}, "periodSeconds": 10}
    spec: dict[str, Any] = {
        # Workloads never call the Kubernetes API.
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": build_pod_security_context(ctx),
        "containers": [container],
        "volumes": volumes,
    }
    if restart_policy is not None:
        spec["restartPolicy"] = restart_policy
    if workload.stop_grace_seconds is not None:
        spec["terminationGracePeriodSeconds"] = workload.stop_grace_seconds
    return {"metadata": {"labels": names.labels(workload.component)}, "spec": spec}
