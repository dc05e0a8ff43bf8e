"""The workloads of a pipeline, rendered once from the StockPipeline spec for every executor.

Pure: no Kubernetes client, no kopf. The operator turns these into Deployments and CronJobs; the
local executor runs them as processes with the same environment.
"""

from marketpulse.contract.workloads.model import (
    EnvVar,
    Port,
    Resources,
    RunMode,
    SecretFile,
    SecretRef,
    Workload,
)
from marketpulse.contract.workloads.names import PipelineNames, names_for
from marketpulse.contract.workloads.render import (
    DASHBOARD_PORT,
    KAFKA_PASSWORD_KEY,
    METRICS_PORT,
    WAREHOUSE_DIR,
    Platform,
    bootstrap_servers,
    issues_pipeline_credentials,
    kafka_credentials,
    render_workloads,
)
from marketpulse.contract.workloads.scratch import ScratchSizes

__all__ = [
    "DASHBOARD_PORT",
    "KAFKA_PASSWORD_KEY",
    "METRICS_PORT",
    "WAREHOUSE_DIR",
    "EnvVar",
    "PipelineNames",
    "Platform",
    "Port",
    "Resources",
    "RunMode",
    "ScratchSizes",
    "SecretFile",
    "SecretRef",
    "Workload",
    "bootstrap_servers",
    "issues_pipeline_credentials",
    "kafka_credentials",
    "names_for",
    "render_workloads",
]
