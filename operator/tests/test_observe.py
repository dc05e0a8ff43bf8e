"""`observe`: what a reconcile gathered about children, pods and backends, as one check per concern."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from marketpulse.contract.api import StockPipeline, validate_stockpipeline
from marketpulse.contract.workloads import names_for
from marketpulse.operator.builders import BuildContext, Capabilities, render_children
from marketpulse.operator.kube import KubeError
from marketpulse.operator.observe import (
    ChildResult,
    by_component,
    cronjob_check,
    deployment_check,
    pipeline_checks,
    topics_check_strimzi,
)
from marketpulse.operator.status import Check

SAMPLES = Path(__file__).parents[1] / "config" / "samples"
STRIMZI = Capabilities("kafka.strimzi.io/v1", "kafka.strimzi.io/v1", True, True)
BUCKET_READY = Check.ok("BucketReady", "bucket b: versioning on")


def pipeline(**spec: Any) -> StockPipeline:
    document = yaml.safe_load((SAMPLES / "stockpipeline-synthetic-duckdb.yaml").read_text())
    document["metadata"]["namespace"] = "trading"
    document["spec"].update(spec)
    return validate_stockpipeline(document)


def results(p: StockPipeline, caps: Capabilities = STRIMZI, **live: dict[str, Any]) -> list[ChildResult]:
    """Every rendered child as just applied, with the live object given for `Kind/name` keys."""
    ctx = BuildContext(names=names_for(p), capabilities=caps)
    return [
        ChildResult(m, live=live.get(f"{m['kind']}/{m['metadata']['name']}"), applied=True)
        for m in render_children(p, ctx)
    ]


def deployment(*, generation: int = 1, observed: int = 1, available: int = 0) -> ChildResult:
    live = {
        "metadata": {"generation": generation},
        "spec": {"replicas": 1},
        "status": {
            "observedGeneration": observed,
            "availableReplicas": available,
            "conditions": [
                {"type": "Available", "status": "True" if available else "False", "message": "min not met"}
            ],
        },
    }
    return ChildResult({"kind": "Deployment", "metadata": {"name": "demo-ingest"}}, live=live)


def test_a_deployment_is_available_once_its_controller_saw_this_generation_and_its_replicas_are_up() -> None:
    unseen = deployment_check(deployment(generation=2, observed=1, available=1), suspended=False)
    assert (unseen.status, unseen.reason) == ("False", "Unavailable")
    assert "not yet observed" in unseen.message
    waiting = deployment_check(deployment(available=0), suspended=False)
    assert waiting == Check.failed(
        "Unavailable", "Deployment demo-ingest: 0/1 replicas available; min not met"
    )
    assert deployment_check(deployment(available=1), suspended=False) == Check.ok(
        "Available", "Deployment demo-ingest: 1/1 replicas available"
    )


def test_a_refused_child_reports_the_servers_message_before_anything_else() -> None:
    refused = deployment()
    refused.error = KubeError(422, "Invalid", "archives are not allowed in this namespace")
    check = deployment_check(refused, suspended=True)
    assert check == Check.failed(
        "ApplyFailed", "Deployment demo-ingest: archives are not allowed in this namespace"
    )
    assert deployment_check(deployment(available=1), suspended=True).reason == "Suspended"


def test_a_cronjob_says_its_schedule_and_last_run_or_that_it_is_suspended() -> None:
    cron = ChildResult(
        {"kind": "CronJob", "metadata": {"name": "demo-transform"}, "spec": {"schedule": "*/5 * * * *"}},
        live={"status": {"lastScheduleTime": "2026-01-02T03:05:00Z"}},
    )
    assert cronjob_check(cron, suspended=False) == Check.ok(
        "Scheduled", "CronJob demo-transform runs on '*/5 * * * *'; last run: 2026-01-02T03:05:00Z"
    )
    assert cronjob_check(cron, suspended=True).reason == "Suspended"


def test_strimzi_topics_wait_for_the_topic_operator_then_are_ready_or_name_the_broken_one() -> None:
    def topic(name: str, ready: str | None) -> ChildResult:
        conditions = [] if ready is None else [{"type": "Ready", "status": ready, "message": "no leader"}]
        return ChildResult(
            {"kind": "KafkaTopic", "metadata": {"name": name}}, live={"status": {"conditions": conditions}}
        )

    waiting = topics_check_strimzi([topic("t1", "True"), topic("t2", None)], STRIMZI, "kafka")
    assert waiting.reason == "WaitingForTopicOperator"
    assert "KafkaTopics t2 are created" in waiting.message
    assert topics_check_strimzi([topic("t1", "True"), topic("t2", "True")], STRIMZI, "kafka") == Check.ok(
        "TopicsReady", "2 KafkaTopics are Ready"
    )
    assert topics_check_strimzi([topic("t1", "False")], STRIMZI, "kafka") == Check.failed(
        "TopicNotReady", "t1: no leader"
    )
    missing = topics_check_strimzi([], Capabilities(), "kafka")
    assert missing.reason == "StrimziNotInstalled"


def test_every_concern_gets_one_check_in_the_order_the_status_reports_them() -> None:
    p = pipeline()
    names = names_for(p)
    checks = pipeline_checks(
        p.spec, names, results(p), STRIMZI, direct_topics=None, bucket=BUCKET_READY, pods=None, secrets=()
    )
    assert list(checks) == ["Topics", "Bucket", "Ingest", "Archive", "Transform", "Dashboard"]
    assert checks["Topics"].reason == "WaitingForTopicOperator"
    assert checks["Bucket"] is BUCKET_READY
    assert checks["Ingest"].reason == "Unavailable"
    assert checks["Transform"].reason == "Scheduled"


def test_the_brokers_answer_stands_for_direct_topics_and_a_disabled_dashboard_is_no_problem() -> None:
    p = pipeline(dashboard={"enabled": False})
    direct = Check.ok("TopicsReady", "t: 3 partitions")
    checks = pipeline_checks(
        p.spec,
        names_for(p),
        results(p),
        STRIMZI,
        direct_topics=direct,
        bucket=BUCKET_READY,
        pods=None,
        secrets=(),
    )
    assert checks["Topics"] is direct
    assert checks["Dashboard"] == Check.ok("Disabled", "spec.dashboard.enabled is false")


def test_a_refused_dashboard_ingress_fails_the_dashboard_even_when_its_deployment_is_fine() -> None:
    p = pipeline(dashboard={"ingress": {"enabled": True, "host": "markets.example.com"}})
    names = names_for(p)
    children = results(p)
    ingress = next(r for r in children if r.manifest["kind"] == "Ingress")
    ingress.error = KubeError(403, "Forbidden", "host taken by another tenant")
    checks = pipeline_checks(
        p.spec, names, children, STRIMZI, direct_topics=None, bucket=BUCKET_READY, pods=None, secrets=()
    )
    assert checks["Dashboard"] == Check.failed(
        "ApplyFailed", f"Ingress {names.dashboard_service}: host taken by another tenant"
    )


def test_pods_are_grouped_by_their_component_label() -> None:
    def pod(name: str, component: str | None) -> dict[str, Any]:
        labels = {} if component is None else {"app.kubernetes.io/component": component}
        return {"metadata": {"name": name, "labels": labels}}

    grouped = by_component([pod("a", "ingest"), pod("b", "ingest"), pod("c", "archive"), pod("d", None)])
    assert {k: [p["metadata"]["name"] for p in v] for k, v in grouped.items()} == {
        "ingest": ["a", "b"],
        "archive": ["c"],
        "": ["d"],
    }


def test_a_dashboard_host_held_by_another_pipeline_fails_the_dashboard_with_the_reason_given() -> None:
    p = pipeline(dashboard={"ingress": {"enabled": True, "host": "markets.example.com"}})
    children = [r for r in results(p) if r.manifest["kind"] != "Ingress"]
    why = "spec.dashboard.ingress.host markets.example.com is held by StockPipeline other/first"
    checks = pipeline_checks(
        p.spec,
        names_for(p),
        children,
        STRIMZI,
        direct_topics=None,
        bucket=BUCKET_READY,
        pods=None,
        secrets=(),
        host_conflict=why,
    )
    assert checks["Dashboard"] == Check.failed("HostConflict", why)
