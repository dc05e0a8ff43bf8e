"""Pure builders: (StockPipeline, BuildContext) -> the manifests of every child object.

No I/O here. Handlers call `render_children` and apply the result; tests call it directly.
"""

from __future__ import annotations

from typing import Any

from marketpulse.contract.api import StockPipeline
from marketpulse.contract.topics import plan_topics
from marketpulse.contract.workloads import render_workloads
from marketpulse.operator.builders.context import BuildContext, Capabilities
from marketpulse.operator.builders.dashboard import (
    build_dashboard_ingress,
    build_dashboard_service,
    dashboard_url,
)
from marketpulse.operator.builders.kafka import (
    build_pipeline_kafka_secret,
    build_pipeline_kafkauser,
    build_topic_kafkatopic,
)
from marketpulse.operator.builders.monitoring import (
    build_metrics_service,
    build_pipeline_prometheusrule,
    build_pipeline_servicemonitor,
)
from marketpulse.operator.builders.network import build_network_policy
from marketpulse.operator.builders.workloads import build_warehouse_pvc, build_workload

Manifest = dict[str, Any]


def render_children(pipeline: StockPipeline, ctx: BuildContext) -> list[Manifest]:
    """Every Kubernetes object of the pipeline, in the order they are best created.

    Volumes first so that a workload never waits on a claim that does not exist yet; KafkaTopics
    and the KafkaUser only with the strimzi backend and where the cluster serves those kinds (the
    direct backend's Kafka password Secret is made once by the reconcile, not rendered here);
    the dashboard's Ingress only when asked for; the NetworkPolicy unless the platform turns it
    off; monitoring only where the Prometheus Operator's kinds are served.
    """
    spec, caps = pipeline.spec, ctx.capabilities
    children: list[Manifest] = []
    strimzi = spec.kafka.topic_backend == "strimzi"
    if strimzi and caps.kafka_topic_version:
        children += [build_topic_kafkatopic(plan, spec, ctx) for plan in plan_topics(spec, ctx.names)]
    # With the direct backend the operator makes the SCRAM user through the admin API instead.
    if strimzi and spec.kafka.authentication == "scram-sha-512" and caps.kafka_user_version:
        children.append(build_pipeline_kafkauser(spec, ctx))
    if spec.warehouse.type == "duckdb":
        children.append(build_warehouse_pvc(spec, ctx))
    children += [
        build_workload(w, spec, ctx)
        for w in render_workloads(spec, ctx.names, ctx.platform, full_refresh=ctx.full_refresh)
    ]
    if spec.dashboard.enabled:
        children.append(build_dashboard_service(ctx))
    if spec.dashboard.ingress_enabled:
        children.append(build_dashboard_ingress(spec, ctx))
    if ctx.network is not None:
        children.append(build_network_policy(spec, ctx, ctx.network))
    if caps.service_monitor:
        children += [build_metrics_service(ctx), build_pipeline_servicemonitor(ctx, spec)]
    if caps.prometheus_rule:
        children.append(build_pipeline_prometheusrule(ctx, spec))
    return children


__all__ = [
    "BuildContext",
    "Capabilities",
    "Manifest",
    "build_pipeline_kafka_secret",
    "dashboard_url",
    "render_children",
]
