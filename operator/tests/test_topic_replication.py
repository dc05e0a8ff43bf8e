"""Replication of the pipeline's topics: safe defaults on three brokers or more, a working topic on
fewer, and what the spec sets always wins, for the direct backend and Strimzi's KafkaTopics alike."""

from __future__ import annotations

from typing import Any

import pytest

from marketpulse.contract.api import StockPipeline, validate_stockpipeline
from marketpulse.contract.topics import for_brokers, plan_topics
from marketpulse.contract.workloads import names_for
from marketpulse.operator.backends.topics import TopicsOutcome
from marketpulse.operator.builders import BuildContext, Capabilities, render_children


def pipeline(**kafka: Any) -> StockPipeline:
    return validate_stockpipeline(
        {
            "apiVersion": "marketpulse.io/v1alpha1",
            "kind": "StockPipeline",
            "metadata": {"name": "demo", "namespace": "trading"},
            "spec": {"watchlist": ["AAPL"], "kafka": kafka},
        }
    )


def settled(brokers: int, **kafka: Any) -> list[tuple[int | None, str | None]]:
    p = pipeline(**kafka)
    plans = [for_brokers(plan, brokers) for plan in plan_topics(p.spec, names_for(p))]
    return [(plan.replicas, plan.config.get("min.insync.replicas")) for plan in plans]


@pytest.mark.parametrize(
    ("brokers", "expected"), [(1, (1, "1")), (2, (2, "1")), (3, (3, "2")), (5, (3, "2"))]
)
def test_unset_replicas_become_three_or_every_broker_with_one_copy_allowed_missing(
    brokers: int, expected: tuple[int, str]
) -> None:
    assert settled(brokers) == [expected] * 3


def test_replicas_set_in_the_spec_win_over_the_brokers_count() -> None:
    assert settled(5, replicas=2) == [(2, "1")] * 3
    assert settled(1, replicas=3) == [(3, "2")] * 3, "too few brokers is Kafka's refusal, not a silent 1"


def test_min_insync_replicas_set_in_the_spec_wins() -> None:
    assert settled(3, replicas=3, minInsyncReplicas=3) == [(3, "3")] * 3
    assert settled(3, replicas=3, minInsyncReplicas=1) == [(3, "1")] * 3


def test_every_topic_keeps_its_retention_beside_the_replication() -> None:
    p = pipeline(replicas=3, retentionHours=2)
    for plan in plan_topics(p.spec, names_for(p)):
        assert plan.config == {"retention.ms": "7200000", "min.insync.replicas": "2"}


def kafkatopics(p: StockPipeline) -> list[dict[str, Any]]:
    ctx = BuildContext(names=names_for(p), image="img:1", capabilities=Capabilities("kafka.strimzi.io/v1"))
    return [m["spec"] for m in render_children(p, ctx) if m["kind"] == "KafkaTopic"]


def test_a_strimzi_kafkatopic_gets_the_replicas_and_min_insync_replicas_of_the_spec() -> None:
    for spec in kafkatopics(pipeline(replicas=3)):
        assert spec["replicas"] == 3
        assert spec["config"]["min.insync.replicas"] == "2"


def test_a_strimzi_kafkatopic_without_replicas_leaves_both_to_the_kafka_cluster() -> None:
    # The operator cannot count Strimzi's brokers; the cluster's defaults (the chart's kafka.config) apply.
    for spec in kafkatopics(pipeline()):
        assert "replicas" not in spec
        assert "min.insync.replicas" not in spec["config"]


def test_the_durability_note_names_brokers_factor_and_min_insync_and_warns_below_three() -> None:
    safe = TopicsOutcome(brokers=3, replicas={"t": 3, "d": 3}, min_insync={"t": "2", "d": "2"})
    assert safe.durability() == "3 brokers, replication factor 3, min.insync.replicas 2"
    single = TopicsOutcome(brokers=1, replicas={"t": 1}, min_insync={"t": "1"})
    assert single.durability() == (
        "1 broker, replication factor 1, min.insync.replicas 1 "
        "(below 3: a broker's loss may lose acknowledged ticks)"
    )
