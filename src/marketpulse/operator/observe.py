"""Pure observation: what the children, the pods and the backends say, as one `Check` per concern.

No I/O here. The reconcile gathers what it applied, read and listed; these functions turn that
into the checks that `status.summarize` reports.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from marketpulse.contract.api import StockPipelineSpec
from marketpulse.contract.workloads import PipelineNames
from marketpulse.contract.workloads.names import LABEL_COMPONENT
from marketpulse.operator.builders import Capabilities, Manifest
from marketpulse.operator.kube import KubeError
from marketpulse.operator.podhealth import with_pods
from marketpulse.operator.status import Check

Pods = dict[str, list[dict[str, Any]]]  # component -> its pods


@dataclass
class ChildResult:
    """One child after its sync: the object as the API server holds it, or why it was refused."""

    manifest: Manifest
    live: dict[str, Any] | None = None
    error: KubeError | None = None
    applied: bool = False


def deployment_check(result: ChildResult, suspended: bool) -> Check:
    name = result.manifest["metadata"]["name"]
    if result.error is not None:
        return Check.failed("ApplyFailed", f"Deployment {name}: {result.error.message}")
    if suspended:
        return Check.failed("Suspended", f"Deployment {name} is scaled to 0 (spec.suspend)")
    live = result.live or {}
    status = live.get("status") or {}
    generation = live.get("metadata", {}).get("generation", 0)
    if status.get("observedGeneration", 0) < generation:
        return Check.failed(
            "Unavailable", f"Deployment {name}: not yet observed by the deployment controller"
        )
    wanted = live.get("spec", {}).get("replicas", 1)
    available = status.get("availableReplicas", 0)
    condition = next((c for c in status.get("conditions", []) if c.get("type") == "Available"), None)
    if condition is not None and condition.get("status") == "True" and available >= wanted:
        return Check.ok("Available", f"Deployment {name}: {available}/{wanted} replicas available")
    detail = condition.get("message", "") if condition else "no Available condition yet"
    return Check.failed(
        "Unavailable", f"Deployment {name}: {available}/{wanted} replicas available; {detail}"
    )


def cronjob_check(result: ChildResult, suspended: bool) -> Check:
    name = result.manifest["metadata"]["name"]
    if result.error is not None:
        return Check.failed("ApplyFailed", f"CronJob {name}: {result.error.message}")
    if suspended:
        return Check.failed("Suspended", f"CronJob {name} is suspended (spec.suspend)")
    spec = result.manifest["spec"]
    last = (result.live or {}).get("status", {}).get("lastScheduleTime", "never")
    return Check.ok("Scheduled", f"CronJob {name} runs on {spec['schedule']!r}; last run: {last}")


def topics_check_strimzi(results: list[ChildResult], caps: Capabilities, cluster: str) -> Check:
    if not caps.kafka_topic_version:
        return Check.failed(
            "StrimziNotInstalled",
            "kafka.topicBackend is strimzi but the cluster serves no kafka.strimzi.io KafkaTopic: "
            "install Strimzi, or use topicBackend direct with bootstrapServers",
        )
    failed = [r for r in results if r.error is not None]
    if failed:
        return Check.failed(
            "ApplyFailed",
            "; ".join(f"KafkaTopic {r.manifest['metadata']['name']}: {r.error}" for r in failed),
        )
    waiting, broken = [], []
    for r in results:
        conditions = (r.live or {}).get("status", {}).get("conditions", [])
        ready = next((c for c in conditions if c.get("type") == "Ready"), None)
        name = r.manifest["metadata"]["name"]
        if ready is None:
            waiting.append(name)
        elif ready.get("status") != "True":
            broken.append(f"{name}: {ready.get('message') or ready.get('reason')}")
    if broken:
        return Check.failed("TopicNotReady", "; ".join(broken))
    if waiting:
        return Check.failed(
            "WaitingForTopicOperator",
            f"KafkaTopics {', '.join(waiting)} are created; waiting for the Strimzi topic operator of "
            f"cluster {cluster} to report them Ready",
        )
    return Check.ok("TopicsReady", f"{len(results)} KafkaTopics are Ready")


def by_component(pods: list[dict[str, Any]]) -> Pods:
    grouped: Pods = {}
    for pod in pods:
        component = ((pod.get("metadata") or {}).get("labels") or {}).get(LABEL_COMPONENT, "")
        grouped.setdefault(component, []).append(pod)
    return grouped


def pipeline_checks(
    spec: StockPipelineSpec,
    names: PipelineNames,
    results: Sequence[ChildResult],
    caps: Capabilities,
    *,
    direct_topics: Check | None,
    bucket: Check,
    pods: Pods | None,
    secrets: Collection[str],
    host_conflict: str | None = None,
) -> dict[str, Check]:
    """One check per concern. `direct_topics`: the broker's answer with the direct backend (None
    with strimzi, whose KafkaTopics say it). `pods`: None when they were not observed (just created,
    or the list failed), so the workloads' checks stand alone. `secrets`: values no message may show.
    `host_conflict`: why the Ingress was left out (its host is another pipeline's), if it was."""
    by_name: Mapping[tuple[str, str], ChildResult] = {
        (r.manifest["kind"], r.manifest["metadata"]["name"]): r for r in results
    }
    suspended = spec.suspend

    def workload(component: str) -> Check:
        """The component's Deployment or CronJob check, unless its pods say why they cannot run."""
        name = names.workload(component)
        if ("CronJob", name) in by_name:
            kind, check = "CronJob", cronjob_check(by_name[("CronJob", name)], suspended)
        else:
            kind, check = "Deployment", deployment_check(by_name[("Deployment", name)], suspended)
        found = None if pods is None else pods.get(component, [])
        return with_pods(check, f"{kind} {name}", found, jobs=kind == "CronJob", secrets=secrets)

    checks: dict[str, Check] = {}
    if direct_topics is not None:
        checks["Topics"] = direct_topics
    else:
        topics = [r for r in results if r.manifest["kind"] == "KafkaTopic"]
        checks["Topics"] = topics_check_strimzi(topics, caps, spec.kafka.cluster_name)
    checks["Bucket"] = bucket
    for component in ("ingest", "archive", "transform"):
        checks[component.capitalize()] = workload(component)
    if spec.alerts.rules:
        checks["Alerts"] = workload("alerts")
    if spec.dashboard.enabled:
        dashboard = workload("dashboard")
        for kind in ("Service", "Ingress"):
            r = by_name.get((kind, names.dashboard_service))
            if r is not None and r.error is not None:
                dashboard = Check.failed(
                    "ApplyFailed", f"{kind} {names.dashboard_service}: {r.error.message}"
                )
        if host_conflict is not None:
            dashboard = Check.failed("HostConflict", host_conflict)
        checks["Dashboard"] = dashboard
    else:
        checks["Dashboard"] = Check.ok("Disabled", "spec.dashboard.enabled is false")
    return checks
