"""A pipeline's life on the real node while ticks flow: its pods deleted, a rolling update of every
workload, suspend and resume, the node's kubelet and containerd restarted. Each is judged as the
reliability suite judges a fault: nothing acknowledged lost, no duplicate in silver, gold equal to a
recomputation from silver, the archive group's lag 0.

The ledger: ingest's own ledger file lives in its pod and goes with it, and the restricted Pod
Security Standard allows no hostPath to keep it. Under acks=all every acknowledged tick is on the ticks
topic, so the judge reads the topic from its first offset after ingest has stopped: a stricter
ledger (it also holds ticks whose acknowledgement a killed producer never saw).

To drain, the pipeline is suspended (every Deployment scaled to 0: ingest flushes and stops, the
archive commits what it wrote); a `marketpulse archive` on this machine with the archive pod's own
environment then catches up on what the stopped archive had not yet written, and `marketpulse
transform` builds a fresh warehouse from the pipeline's bronze, which the checks compare.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition
from kubernetes import client

from marketpulse.localenv.kafka import KafkaServer
from marketpulse.localenv.process import free_port
from marketpulse.localenv.pytest_plugin import NodeCluster, eventually
from marketpulse.reliability.checks import drain_and_check
from marketpulse.reliability.pipeline import FlowUnderTest
from marketpulse.storage.s3 import minio_client

if TYPE_CHECKING:  # the fixture's class; conftest is not importable at run time
    from conftest import Release

pytestmark = [pytest.mark.node, pytest.mark.helm, pytest.mark.kafka, pytest.mark.s3]

NAME = "life"
COMPONENTS = ("archive", "dashboard", "ingest", "transform")
# Ticks flow this long before a fault and again after the pipeline has recovered from it.
FLOW_SECONDS = 10


@pytest.fixture(scope="module")
def flowing(release: Release, node_kafka: KafkaServer) -> Iterator[str]:
    """One pipeline for the module's faults, each test leaving it running and Ready."""
    release.apply(release.direct_pipeline(NAME, node_kafka))
    release.wait_phase(NAME, "Ready")
    release.all_pods_ready(NAME, len(COMPONENTS))
    yield NAME
    release.delete(NAME)


def archive_environment(release: Release, name: str) -> dict[str, str]:
    """The archive container's environment as its kubelet resolves it (values and secretKeyRefs)."""
    deployment = client.AppsV1Api(release.api).read_namespaced_deployment(
        f"{name}-archive", release.namespace
    )
    (container,) = deployment.spec.template.spec.containers
    core = client.CoreV1Api(release.api)
    env = {}
    for var in container.env:
        if var.value is not None:
            env[var.name] = var.value
        else:
            ref = var.value_from.secret_key_ref
            secret = core.read_namespaced_secret(ref.name, release.namespace)
            env[var.name] = base64.b64decode(secret.data[ref.key]).decode()
    return env


def ledger_from_topic(bootstrap: str, topic: str, path: Path) -> int:
    """Write `producer_id seq` of every record on `topic` (first offset to the end) to `path`."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"ledger-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
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
            if message.error():
                continue
            record = orjson.loads(message.value())
            lines.append(f"{record['producer_id']} {record['seq']}\n")
            positions[message.partition()] = message.offset()
    finally:
        consumer.close()
    path.write_text("".join(lines))
    return len(lines)


def judge(release: Release, name: str, scenario: str, fault_cleared_at: float, workdir: Path) -> None:
    """Suspend, drain, check every invariant, and resume; fails the test on any violation."""
    flowed_until = time.monotonic() + FLOW_SECONDS
    time.sleep(max(0.0, flowed_until - time.monotonic()))
    env = archive_environment(release, name)
    release.patch_spec(name, {"suspend": True})
    eventually(
        lambda: not release.pipeline_pods(name), timeout=120, what=f"every pod of {name} stopped (suspend)"
    )
    workdir.mkdir(parents=True, exist_ok=True)
    ledger = workdir / "ledger"
    ledger_from_topic(env["KAFKA_BOOTSTRAP_SERVERS"], env["MARKETPULSE_TICKS_TOPIC"], ledger)
    env = {**env, "MARKETPULSE_INGEST_LEDGER": str(ledger), "MARKETPULSE_METRICS_PORT": str(free_port())}
    flow = FlowUnderTest(
        name=name,
        env=env,
        bucket=env["MARKETPULSE_BUCKET"],
        ticks_topic=env["MARKETPULSE_TICKS_TOPIC"],
        dlq_topic=env["MARKETPULSE_DLQ_TOPIC"],
        workdir=workdir,
        minio=minio_client(env["S3_ENDPOINT"], env["S3_ACCESS_KEY"], env["S3_SECRET_KEY"]),
        bootstrap=env["KAFKA_BOOTSTRAP_SERVERS"],
    )
    try:
        result = drain_and_check(
            flow, f"in-cluster: {scenario}", fault_cleared_at=fault_cleared_at, archive=flow.run("archive")
        )
    finally:
        flow.stop_all()
        release.patch_spec(name, {"suspend": False})
    release.wait_phase(name, "Ready")
    release.all_pods_ready(name, len(COMPONENTS))
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
    time.sleep(FLOW_SECONDS)
    before = {component: pod_uids(release, flowing, component)}
    (pod,) = release.pipeline_pods(flowing, component)
    client.CoreV1Api(release.api).delete_namespaced_pod(pod.metadata.name, release.namespace)
    eventually(replaced(release, flowing, before), timeout=120, what=f"a new Ready {component} pod")
    judge(release, flowing, f"kubectl delete pod ({component})", time.monotonic(), tmp_path)


def test_a_rolling_update_of_every_workload_while_ticks_flow_loses_nothing(
    release: Release, flowing: str, tmp_path: Path
) -> None:
    time.sleep(FLOW_SECONDS)
    pipeline = release.pipeline(flowing)
    assert pipeline is not None
    before = {c: pod_uids(release, flowing, c) for c in COMPONENTS}
    # The watchlist is in every workload's environment: a new ReplicaSet for each.
    release.patch_spec(flowing, {"watchlist": [*pipeline["spec"]["watchlist"], "AMZN"]})
    eventually(replaced(release, flowing, before), timeout=180, what="every workload rolled to a new pod")
    judge(release, flowing, "rolling update of every workload", time.monotonic(), tmp_path)


def test_suspend_then_resume_loses_nothing(release: Release, flowing: str, tmp_path: Path) -> None:
    time.sleep(FLOW_SECONDS)
    release.patch_spec(flowing, {"suspend": True})
    suspended = release.wait_phase(flowing, "Suspended", timeout=60)
    eventually(lambda: not release.pipeline_pods(flowing), timeout=120, what="every pod stopped")
    release.patch_spec(flowing, {"suspend": False})
    release.wait_phase(flowing, "Ready")
    release.all_pods_ready(flowing, len(COMPONENTS))
    judge(release, flowing, "suspend, then resume", time.monotonic(), tmp_path)
    assert suspended["status"]["phase"] == "Suspended"


def test_restarting_the_nodes_kubelet_and_containerd_loses_nothing(
    release: Release, flowing: str, node_cluster: NodeCluster, tmp_path: Path
) -> None:
    assert node_cluster.node is not None
    time.sleep(FLOW_SECONDS)
    before = {p.metadata.uid for p in release.pipeline_pods(flowing)}
    node_cluster.node.restart(("kubelet", "containerd"))
    release.all_pods_ready(flowing, len(COMPONENTS))
    after = {p.metadata.uid for p in release.pipeline_pods(flowing)}
    judge(release, flowing, "kubelet and containerd restarted", time.monotonic(), tmp_path)
    # The same pods ran on: their containers outlived the restart.
    assert after == before
