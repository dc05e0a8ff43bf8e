"""Three brokers, replication factor 3, min.insync.replicas 2, ingest producing with acks=all at load:
the partition leader killed (kill -9, no controlled shutdown) or a broker restarted (SIGTERM, then
started on its data) loses no acknowledged tick and puts none twice in silver.

The topics get the replication the direct backend gives a pipeline that leaves `kafka.replicas` unset
on three brokers (checked first, through `ensure_topics`).
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import ConfigResource

from marketpulse.contract.topics import TopicPlan
from marketpulse.operator.backends.topics import admin_client, ensure_topics
from marketpulse_dev.localenv.kafka import KafkaServer
from marketpulse_dev.localenv.kafka_cluster import KafkaCluster, PartitionState
from marketpulse_dev.localenv.s3 import S3Server
from marketpulse_dev.reliability.checks import drain_and_check
from marketpulse_dev.reliability.pipeline import FlowUnderTest, wait_until

pytestmark = [pytest.mark.reliability, pytest.mark.kafka, pytest.mark.s3]

# 40,000 ticks at 2,000/s: the fault lands mid-stream and ingest keeps producing through it.
LOAD = {"MARKETPULSE_SYNTHETIC_RATE": "2000", "MARKETPULSE_TICK_LIMIT": "40000"}
PARTITIONS = 3


def topic_config(cluster: KafkaCluster, topic: str) -> dict[str, str]:
    admin = admin_client(cluster.bootstrap_servers)
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    entries = admin.describe_configs([resource])[resource].result(timeout=10)
    return {name: entry.value for name, entry in entries.items()}


@pytest.fixture
def whole_cluster(kafka_cluster: KafkaCluster) -> Iterator[KafkaCluster]:
    """The module's cluster with every node running before and after the test (a test stops nodes)."""
    yield kafka_cluster
    for node in kafka_cluster.nodes:
        if node.process is None or not node.process.alive():
            kafka_cluster.restart(node)


def test_unset_replicas_on_three_brokers_give_topics_replication_three_and_min_insync_two(
    whole_cluster: KafkaCluster,
) -> None:
    topic = f"defaults.{time.monotonic_ns()}"
    outcome = ensure_topics(
        admin_client(whole_cluster.bootstrap_servers), [TopicPlan(topic, PARTITIONS, None)], timeout=30
    )
    assert outcome.durability() == "3 brokers, replication factor 3, min.insync.replicas 2"
    state = wait_until_replicated(whole_cluster, topic)
    assert all(len(p.replicas) == 3 for p in state.values())
    assert topic_config(whole_cluster, topic)["min.insync.replicas"] == "2"


def wait_until_replicated(
    cluster: KafkaCluster, topic: str, timeout: float = 60
) -> dict[int, PartitionState]:
    """Every partition led and with all three replicas in sync."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(KafkaException):
            state = cluster.partitions(topic)
            if state and all(p.leader >= 0 and p.isr == p.replicas for p in state.values()):
                return state
        time.sleep(0.5)
    raise AssertionError(f"{topic} not fully in sync within {timeout}s: {cluster.partitions(topic)}")


def replicated_flow(cluster: KafkaCluster, s3: S3Server, workdir: Path) -> FlowUnderTest:
    flow = FlowUnderTest.create(
        cluster.bootstrap_servers,
        s3.settings(),
        workdir,
        partitions=PARTITIONS,
        replicas=3,
        topic_config={"min.insync.replicas": "2"},
    )
    wait_until_replicated(cluster, flow.ticks_topic)
    return flow


def busiest_leader(cluster: KafkaCluster, topic: str) -> KafkaServer:
    """The node leading the most partitions of `topic` (the lowest id on a tie)."""
    leaders = [p.leader for p in cluster.partitions(topic).values()]
    return cluster.node(min(set(leaders), key=lambda node: (-leaders.count(node), node)))


def wait_for_failover(cluster: KafkaCluster, topic: str, gone: int, flow: FlowUnderTest) -> float:
    """Until no partition is led by node `gone` and none counts it in sync; returns when that was seen."""

    def moved() -> bool:
        try:
            state = cluster.partitions(topic).values()
        except KafkaException:  # metadata asked of the dying node: ask again
            return False
        return all(p.leader not in (gone, -1) and gone not in p.isr for p in state)

    return wait_until(moved, 60, f"the partitions of {topic} to move off node {gone}", flow.logs)


def start_load(flow: FlowUnderTest) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]:
    archive = flow.run("archive")
    ingest = flow.run("ingest", LOAD)
    wait_until(lambda: bool(flow.bronze()[1]), 60, "the first bronze object", flow.logs)
    return archive, ingest


def finish_load(flow: FlowUnderTest, ingest: subprocess.Popen[bytes]) -> int:
    """Ingest's exit once it has produced everything; the producer's 120 s delivery timeout outlasts
    each fault here, so every tick must be acknowledged."""
    assert ingest.wait(timeout=120) == 0, flow.logs()
    (stopped,) = flow.log_records(ingest, "ingest stopped")
    assert int(stopped["failed"]) == 0, stopped  # type: ignore[call-overload]
    return len(flow.ledger())


def test_killing_the_ticks_leader_at_load_loses_no_acknowledged_tick_and_duplicates_none(
    whole_cluster: KafkaCluster, s3_server: S3Server, tmp_path: Path
) -> None:
    flow = replicated_flow(whole_cluster, s3_server, tmp_path)
    try:
        archive, ingest = start_load(flow)
        victim = busiest_leader(whole_cluster, flow.ticks_topic)
        acked_before = len(flow.ledger())
        killed_at = time.monotonic()
        victim.kill()
        failed_over_at = wait_for_failover(whole_cluster, flow.ticks_topic, victim.node_id, flow)
        # Two in-sync copies left, min.insync.replicas 2: the ISR shrank and writes go on.
        assert all(len(p.isr) == 2 for p in whole_cluster.partitions(flow.ticks_topic).values())
        acked = finish_load(flow, ingest)
        assert acked == int(LOAD["MARKETPULSE_TICK_LIMIT"])
        assert acked > acked_before, "ingest went on producing after the leader died"
        result = drain_and_check(
            flow,
            "partition leader kill -9, RF 3, min.isr 2",
            fault_cleared_at=failed_over_at,
            archive=archive,
            notes={"failover_seconds": round(failed_over_at - killed_at, 1), "killed_node": victim.node_id},
        )
    finally:
        flow.stop_all()
    result.assert_held()


def test_restarting_a_broker_at_load_loses_no_acknowledged_tick_and_duplicates_none(
    whole_cluster: KafkaCluster, s3_server: S3Server, tmp_path: Path
) -> None:
    flow = replicated_flow(whole_cluster, s3_server, tmp_path)
    try:
        archive, ingest = start_load(flow)
        node = busiest_leader(whole_cluster, flow.ticks_topic)
        stopped_at = time.monotonic()
        # SIGTERM: a controlled shutdown hands its partitions' leadership to the other replicas.
        node.stop()
        wait_for_failover(whole_cluster, flow.ticks_topic, node.node_id, flow)
        whole_cluster.restart(node)
        restarted_at = time.monotonic()
        # Back on its data, the node catches up and rejoins the ISR while ingest still produces.
        wait_until_replicated(whole_cluster, flow.ticks_topic)
        rejoined_at = time.monotonic()
        assert ingest.poll() is None, "the restart is over before the load is: it ran under load"
        acked = finish_load(flow, ingest)
        assert acked == int(LOAD["MARKETPULSE_TICK_LIMIT"])
        result = drain_and_check(
            flow,
            "broker restart (SIGTERM), RF 3, min.isr 2",
            fault_cleared_at=restarted_at,
            archive=archive,
            notes={
                "down_seconds": round(restarted_at - stopped_at, 1),
                "isr_rejoined_seconds": round(rejoined_at - restarted_at, 1),
                "restarted_node": node.node_id,
            },
        )
    finally:
        flow.stop_all()
    result.assert_held()
