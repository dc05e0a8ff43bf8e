"""A pipeline's life on the real node while ticks flow: its pods deleted, a rolling update of every
workload, suspend and resume, the node's kubelet and containerd restarted. Each is judged as the
reliability suite judges a fault: nothing acknowledged lost, no duplicate in silver, gold equal to a
recomputation from silver, and the archive group past every tick of the ledger.

The ledger: ingest's own ledger file lives in its pod and goes with it, and the restricted Pod
Security Standard allows no hostPath to keep it. Under acks=all every acknowledged tick is on the ticks
topic, so the judge snapshots the topic (first offset to the current end of each partition): a
stricter ledger, which also holds ticks whose acknowledgement a killed producer never saw.

The pipeline keeps running while it is judged: once its own archive has committed the snapshot's end
offsets, `marketpulse transform` builds a fresh warehouse on this machine from the pipeline's bronze,
and the checks compare it with the ledger.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition
from kubernetes import client

from marketpulse.storage.s3 import minio_client
from marketpulse_dev.localenv.kafka import KafkaServer
from marketpulse_dev.pytest_plugin import NodeCluster, container_environment, eventually
from marketpulse_dev.reliability.checks import drain_and_check
from marketpulse_dev.reliability.pipeline import FlowUnderTest

if TYPE_CHECKING:  # the fixture's class; conftest is not importable at run time
    from conftest import Release

pytestmark = [pytest.mark.node, pytest.mark.helm, pytest.mark.kafka, pytest.mark.s3]

NAME = "life"
COMPONENTS = ("archive", "dashboard", "ingest", "transform")
# Ticks flow this long after the pipeline has recovered from a fault, before it is judged.
FLOW_SECONDS = 5


@pytest.fixture(scope="module")
def flowing(release: Release, node_kafka: KafkaServer) -> Iterator[str]:
    """One pipeline for the module's faults, each test leaving it running and Ready."""
    release.apply(release.direct_pipeline(NAME, node_kafka))
    release.wait_phase(NAME, "Ready")
    release.all_pods_ready(NAME, len(COMPONENTS))
    time.sleep(FLOW_SECONDS)  # ticks in flight before the first fault
    yield NAME
    release.delete(NAME)


def archive_environment(release: Release, name: str) -> dict[str, str]:
    """The archive container's environment as its kubelet resolves it."""
    apps = client.AppsV1Api(release.api)
    deployment = apps.read_namespaced_deployment(f"{name}-archive", release.namespace)
    (container,) = deployment.spec.template.spec.containers
    return container_environment(release.api, release.namespace, container)


def ledger_from_topic(bootstrap: str, topic: str, path: Path) -> dict[int, int]:
    """Write `producer_id seq` of every record on `topic` up to its current end to `path`; returns the
    end offset of each partition that had records."""
    group = f"ledger-{uuid.uuid4().hex}"
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        ends = {}
        for partition in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            if high > low:
                ends[partition] = high
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        lines, positions = [], dict.fromkeys(ends, -1)
        while any(positions[p] < ends[p] - 1 for p in ends):
            message = consumer.poll(5)
            if message is None:
                raise AssertionError(f"the ticks topic stopped answering at {positions} of {ends}")
            if message.error() or message.offset() >= ends[message.partition()]:
                continue
            record = orjson.loads(message.value())
            lines.append(f"{record['producer_id']} {record['seq']}\n")
            positions[message.partition()] = message.offset()
    finally:
        consumer.close()
    path.write_text("".join(lines))
    return ends


def judge(release: Release, name: str, scenario: str, fault_cleared_at: float, workdir: Path) -> None:
    """Let ticks flow a little longer, then check every invariant up to now; fails the test on any
    violation. The pipeline runs on throughout."""
    time.sleep(FLOW_SECONDS)
    env = archive_environment(release, name)
    workdir.mkdir(parents=True, exist_ok=True)
    ledger = workdir / "ledger"
    ends = ledger_from_topic(env["KAFKA_BOOTSTRAP_SERVERS"], env["MARKETPULSE_TICKS_TOPIC"], ledger)
    flow = FlowUnderTest(
        name=name,
        env={**env, "MARKETPULSE_INGEST_LEDGER": str(ledger)},
        bucket=env["MARKETPULSE_BUCKET"],
        ticks_topic=env["MARKETPULSE_TICKS_TOPIC"],
        dlq_topic=env["MARKETPULSE_DLQ_TOPIC"],
        workdir=workdir,
        minio=minio_client(env["S3_ENDPOINT"], env["S3_ACCESS_KEY"], env["S3_SECRET_KEY"]),
        bootstrap=env["KAFKA_BOOTSTRAP_SERVERS"],
    )
    try:
        result = drain_and_check(
            flow, f"in-cluster: {scenario}", fault_cleared_at=fault_cleared_at, until=ends
        )
    finally:
        flow.stop_all()
    assert result.acknowledged > 0, "no tick flowed"
    result.assert_held()


def pod_uids(release: Release, name: str, component: str) -> set[str]:
    return {p.metadata.uid for p in release.pipeline_pods(name, component)}


def replaced(release: Release, name: str, before: dict[str, set[str]]) -> Callable[[], bool]:
    """True once each listed component runs one Ready pod that is not one of `before`."""

    def check() -> bool:
        for component, old in before.items():
            pods = [p for p in release.pipeline_pods(name, component) if not p.metadata.deletion_timestamp]
            if len(pods) != 1 or pods[0].metadata.uid in old or not release.pod_ready(pods[0]):
                return False
        return True

    return check


@pytest.mark.parametrize("component", ["ingest", "archive", "transform"])
def test_deleting_a_workloads_pod_while_ticks_flow_loses_nothing(
    release: Release, flowing: str, component: str, tmp_path: Path
) -> None:
    before = {component: pod_uids(release, flowing, component)}
    (pod,) = release.pipeline_pods(flowing, component)
    faulted = time.monotonic()
    client.CoreV1Api(release.api).delete_namespaced_pod(pod.metadata.name, release.namespace)
    eventually(replaced(release, flowing, before), timeout=120, what=f"a new Ready {component} pod")
    print(f"{component}: a new pod Ready {time.monotonic() - faulted:.1f}s after the delete")
    judge(release, flowing, f"kubectl delete pod ({component})", faulted, tmp_path)


def test_a_rolling_update_of_every_workload_while_ticks_flow_loses_nothing(
    release: Release, flowing: str, tmp_path: Path
) -> None:
    pipeline = release.pipeline(flowing)
    assert pipeline is not None
    before = {c: pod_uids(release, flowing, c) for c in COMPONENTS}
    # The watchlist is in every workload's environment: a new ReplicaSet for each.
    faulted = time.monotonic()
    release.patch_spec(flowing, {"watchlist": [*pipeline["spec"]["watchlist"], "AMZN"]})
    eventually(replaced(release, flowing, before), timeout=180, what="every workload rolled to a new pod")
    print(f"rolling update: every workload on a new Ready pod after {time.monotonic() - faulted:.1f}s")
    judge(release, flowing, "rolling update of every workload", faulted, tmp_path)


def test_suspend_then_resume_loses_nothing(release: Release, flowing: str, tmp_path: Path) -> None:
    release.patch_spec(flowing, {"suspend": True})
    suspended = release.wait_phase(flowing, "Suspended", timeout=60)
    eventually(lambda: not release.pipeline_pods(flowing), timeout=120, what="every pod stopped")
    resumed = time.monotonic()
    release.patch_spec(flowing, {"suspend": False})
    release.wait_phase(flowing, "Ready")
    release.all_pods_ready(flowing, len(COMPONENTS))
    print(f"resume: phase Ready and every pod Ready after {time.monotonic() - resumed:.1f}s")
    judge(release, flowing, "suspend, then resume", resumed, tmp_path)
    assert suspended["status"]["phase"] == "Suspended"


def test_restarting_the_nodes_kubelet_and_containerd_loses_nothing(
    release: Release, flowing: str, node_cluster: NodeCluster, tmp_path: Path
) -> None:
    assert node_cluster.node is not None
    before = {p.metadata.uid for p in release.pipeline_pods(flowing)}
    faulted = time.monotonic()
    node_cluster.node.restart(("kubelet", "containerd"))
    release.all_pods_ready(flowing, len(COMPONENTS))
    print(f"node restart: Ready again, every pod Ready after {time.monotonic() - faulted:.1f}s")
    after = {p.metadata.uid for p in release.pipeline_pods(flowing)}
    judge(release, flowing, "kubelet and containerd restarted", faulted, tmp_path)
    # The same pods ran on: their containers outlived the restart.
    assert after == before
