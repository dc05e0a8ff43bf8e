"""Status tells the truth about pods that a real kubelet and scheduler could not run: a workload that
exits at start-up, an image that cannot be pulled, a node that takes no pods. Each gives phase
Degraded with the pod's own reason and words within 60 seconds, never Provisioning for ever."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from marketpulse_dev.localenv.kafka import KafkaServer
from marketpulse_dev.localenv.node import NODE_NAME
from marketpulse_dev.pytest_plugin import NodeCluster, eventually

if TYPE_CHECKING:  # the fixture's class; conftest is not importable at run time
    from conftest import Release

pytestmark = [pytest.mark.node, pytest.mark.helm, pytest.mark.kafka, pytest.mark.s3]

DEGRADED_WITHIN = 60


def degraded(
    release: Release, name: str, concern: str, reasons: tuple[str, ...]
) -> tuple[dict[str, Any], float]:
    """The concern's condition once the pipeline is Degraded for one of `reasons`, and the seconds since
    the call. Before the pod's own reason is known, the condition may say only that the Deployment is
    unavailable."""
    started = time.monotonic()

    def told() -> dict[str, Any] | None:
        pipeline = release.pipeline(name) or {}
        found = release.condition(pipeline, concern)
        phase = (pipeline.get("status") or {}).get("phase")
        return found if phase == "Degraded" and found.get("reason") in reasons else None

    try:
        found = eventually(told, timeout=DEGRADED_WITHIN, what=f"{name}: Degraded, {concern} {reasons}")
    except AssertionError as exc:
        status = (release.pipeline(name) or {}).get("status")
        raise AssertionError(f"{exc}; status: {status}") from None
    return found, time.monotonic() - started


def test_a_workload_that_exits_at_start_is_a_crash_loop_with_its_last_log_lines_in_the_condition(
    release: Release, node_kafka: KafkaServer
) -> None:
    source = {"type": "replay", "replay": {"uri": "/nonexistent/ticks.ndjson"}}
    release.apply(release.direct_pipeline("crash", node_kafka, source=source))
    try:
        ingest, seconds = degraded(release, "crash", "Ingest", ("CrashLoopBackOff",))
    finally:
        release.delete("crash")

    print(f"Degraded {seconds:.1f}s after apply: {ingest}")
    assert ingest["status"] == "False"
    assert ingest["reason"] == "CrashLoopBackOff"
    # The termination message (FallbackToLogsOnError): the process's own last words.
    assert "/nonexistent/ticks.ndjson: no such file" in ingest["message"], ingest


@pytest.fixture
def cordoned(node_cluster: NodeCluster, kubectl_binary: Path) -> Iterator[None]:
    node_cluster.run([kubectl_binary, "cordon", NODE_NAME])
    try:
        yield
    finally:
        node_cluster.run([kubectl_binary, "uncordon", NODE_NAME])


def test_pods_the_scheduler_cannot_place_are_unschedulable_with_the_schedulers_words(
    release: Release, node_kafka: KafkaServer, cordoned: None
) -> None:
    release.apply(release.direct_pipeline("nowhere", node_kafka))
    try:
        ingest, seconds = degraded(release, "nowhere", "Ingest", ("Unschedulable",))
    finally:
        release.delete("nowhere")

    print(f"Degraded {seconds:.1f}s after apply: {ingest}")
    assert "node(s) were unschedulable" in ingest["message"], ingest


@pytest.fixture
def unpullable_workloads(release: Release) -> Iterator[str]:
    """The release upgraded to a workloads image that exists nowhere; restored afterwards."""
    workloads = release.values["workloads"]
    image = {**workloads["image"], "tag": "does-not-exist", "pullPolicy": "IfNotPresent"}
    release.upgrade({**release.values, "workloads": {**workloads, "image": image}})
    try:
        yield f"{image['repository']}:does-not-exist"
    finally:
        release.upgrade(release.values)


def test_an_image_that_cannot_be_pulled_gives_the_kubelets_pull_reason(
    release: Release, node_kafka: KafkaServer, unpullable_workloads: str
) -> None:
    release.apply(release.direct_pipeline("unpulled", node_kafka))
    try:
        ingest, seconds = degraded(release, "unpulled", "Ingest", ("ErrImagePull", "ImagePullBackOff"))
    finally:
        release.delete("unpulled")

    print(f"Degraded {seconds:.1f}s after apply: {ingest}")
    assert unpullable_workloads in ingest["message"], ingest
