"""Deployments, the transform CronJob and the warehouse volume."""

from __future__ import annotations

from typing import Any

from marketpulse.contract.api import StockPipelineSpec
from marketpulse.contract.workloads import Workload
from marketpulse.operator.builders.context import BuildContext, object_meta
from marketpulse.operator.builders.pods import build_pod_template


def build_workload_deployment(
    workload: Workload, spec: StockPipelineSpec, ctx: BuildContext
) -> dict[str, Any]:
    names = ctx.names
    deployment_spec: dict[str, Any] = {
        "replicas": 0 if spec.suspend else 1,
        "revisionHistoryLimit": 3,
        "selector": {"matchLabels": names.selector(workload.component)},
        "template": build_pod_template(workload, ctx),
    }
    if workload.mode == "continuous":
        # Never two transforms at once: DuckDB allows one writer, and runs must not overlap.
        deployment_spec["strategy"] = {"type": "Recreate"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": object_meta(names.workload(workload.component), ctx, workload.component),
        "spec": deployment_spec,
    }


def build_transform_cronjob(workload: Workload, spec: StockPipelineSpec, ctx: BuildContext) -> dict[str, Any]:
    names = ctx.names
    cron_spec: dict[str, Any] = {
        "schedule": workload.schedule,
        "suspend": spec.suspend,
        # A run that is still loading or building must finish before the next one starts.
        "concurrencyPolicy": "Forbid",
        "startingDeadlineSeconds": 300,
        "successfulJobsHistoryLimit": 3,
        "failedJobsHistoryLimit": 3,
        "jobTemplate": {
            "metadata": {"labels": names.labels(workload.component)},
            "spec": {
                "backoffLimit": 2,
                "ttlSecondsAfterFinished": 86_400,
                "template": build_pod_template(workload, ctx, restart_policy="Never"),
            },
        },
    }
    if workload.time_zone:
        cron_spec["timeZone"] = workload.time_zone
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": object_meta(names.workload(workload.component), ctx, workload.component),
        "spec": cron_spec,
    }


def build_warehouse_pvc(spec: StockPipelineSpec, ctx: BuildContext) -> dict[str, Any]:
    duckdb = spec.warehouse.duckdb_settings
    claim_spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": duckdb.volume_size}},
    }
    if duckdb.storage_class_name:
        claim_spec["storageClassName"] = duckdb.storage_class_name
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": object_meta(ctx.names.warehouse_claim, ctx, "warehouse"),
        "spec": claim_spec,
    }


def build_workload(workload: Workload, spec: StockPipelineSpec, ctx: BuildContext) -> dict[str, Any]:
    if workload.mode == "cron":
        return build_transform_cronjob(workload, spec, ctx)
    return build_workload_deployment(workload, spec, ctx)
