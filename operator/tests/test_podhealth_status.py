"""A workload's pods into one diagnosis, the diagnosis into the status, and noticing a change."""

from __future__ import annotations

from typing import Any

import pytest
from pod_objects import NOW, container, crash_looping, pod, scheduled

from marketpulse.operator import watch
from marketpulse.operator.podhealth import (
    MAX_MESSAGE,
    deployment_problem,
    job_problem,
    with_pods,
)
from marketpulse.operator.status import Check, Observed, summarize
from marketpulse.operator.watch import pod_diagnosis_changed

# --- a workload's pods -----------------------------------------------------------------------------


def test_the_most_telling_problem_of_a_deployments_pods_wins_whatever_their_order() -> None:
    unschedulable = pod(
        "demo-ingest-6d4cf56db6-aaaaa",
        phase="Pending",
        conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "no"}],
    )
    crashing = crash_looping()
    evicted = pod(
        "demo-ingest-6d4cf56db6-00000",
        phase="Failed",
        reason="Evicted",
        message="The node was low on resource: memory.",
    )
    forwards = deployment_problem([unschedulable, crashing, evicted])
    backwards = deployment_problem([evicted, crashing, unschedulable])

    assert forwards == backwards
    assert forwards is not None
    assert forwards.reason == "CrashLoopBackOff"
    # An evicted pod has been replaced by its ReplicaSet; the replacement is what counts.
    assert deployment_problem([evicted]) is None
    assert deployment_problem([]) is None


def job_pod(job: str, suffix: str, created: str, *, phase: str, **state: Any) -> dict[str, Any]:
    return pod(
        f"{job}-{suffix}",
        component="transform",
        phase=phase,
        job=job,
        created=created,
        restart_policy="Never",
        containers=[container("transform", **state)],
    )


FAILED_RUN = {"terminated": {"exitCode": 2, "reason": "Error", "message": "dbt: 1 of 12 models failed"}}


def test_a_cronjobs_newest_run_decides_and_a_failed_attempt_stays_the_answer_while_the_job_retries() -> None:
    old_failed = job_pod(
        "demo-transform-29467300", "a1b2c", "2026-01-02T01:00:00Z", phase="Failed", **FAILED_RUN
    )
    new_failed = job_pod(
        "demo-transform-29467380", "d3e4f", "2026-01-02T03:00:00Z", phase="Failed", **FAILED_RUN
    )
    retrying = job_pod(
        "demo-transform-29467380", "g5h6i", "2026-01-02T03:00:20Z", phase="Running", running=True
    )
    succeeded = job_pod(
        "demo-transform-29467380",
        "j7k8l",
        "2026-01-02T03:00:50Z",
        phase="Succeeded",
        terminated={"exitCode": 0, "reason": "Completed"},
    )

    problem = job_problem([old_failed, new_failed, retrying])
    assert problem is not None
    assert problem.reason == "Error"
    assert problem.message == (
        "pod demo-transform-29467380-d3e4f: container transform exited with code 2 (Error): "
        "dbt: 1 of 12 models failed"
    )
    assert job_problem([old_failed, new_failed, retrying, succeeded]) is None
    # Yesterday's failure is history once a newer run started fine.
    assert job_problem([old_failed, retrying]) is None
    pulling = job_pod(
        "demo-transform-29467380",
        "m9n0o",
        "2026-01-02T03:00:00Z",
        phase="Pending",
        waiting={"reason": "ImagePullBackOff", "message": 'Back-off pulling image "x"'},
    )
    pulled = job_problem([old_failed, pulling])
    assert pulled is not None
    assert pulled.reason == "ImagePullBackOff"
    assert job_problem([]) is None


# --- into the status -------------------------------------------------------------------------------

ALL_OK = {
    "Topics": Check.ok("TopicsReady"),
    "Bucket": Check.ok("BucketReady"),
    "Ingest": Check.ok("Available"),
    "Archive": Check.ok("Available"),
    "Transform": Check.ok("Scheduled"),
    "Dashboard": Check.ok("Available"),
}
UNAVAILABLE = Check.failed("Unavailable", "Deployment demo-ingest: 0/1 replicas available; ...")


def by_type(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


def test_a_crash_looping_workload_degrades_its_concern_with_the_pods_reason_instead_of_provisioning() -> None:
    before = summarize(Observed({**ALL_OK, "Ingest": UNAVAILABLE}, NOW), 1)
    ingest = with_pods(UNAVAILABLE, "Deployment demo-ingest", [crash_looping()])
    status = summarize(Observed({**ALL_OK, "Ingest": ingest}, NOW), 1)

    assert before["phase"] == "Provisioning"
    assert status["phase"] == "Degraded"
    condition = by_type(status)["Ingest"]
    assert condition["status"] == "False"
    assert condition["reason"] == "CrashLoopBackOff"
    assert condition["message"].startswith(
        "Deployment demo-ingest: pod demo-ingest-6d4cf56db6-x7k2p: container ingest keeps crashing; "
        "it exited with code 1 (Error): "
    )
    assert by_type(status)["Ready"]["reason"] == "CrashLoopBackOff"


def test_every_concern_gets_its_own_pods_reason() -> None:
    pulling = pod(
        phase="Pending", containers=[container(waiting={"reason": "ImagePullBackOff", "message": "m"})]
    )
    unschedulable = pod(
        phase="Pending",
        conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "m"}],
    )
    failed_run = job_pod("demo-transform-1", "abcde", "2026-01-02T03:00:00Z", phase="Failed", **FAILED_RUN)
    checks = {
        **ALL_OK,
        "Ingest": with_pods(UNAVAILABLE, "Deployment demo-ingest", [crash_looping()]),
        "Archive": with_pods(UNAVAILABLE, "Deployment demo-archive", [pulling]),
        "Transform": with_pods(ALL_OK["Transform"], "CronJob demo-transform", [failed_run], jobs=True),
        "Alerts": with_pods(UNAVAILABLE, "Deployment demo-alerts", [unschedulable]),
        "Dashboard": with_pods(ALL_OK["Dashboard"], "Deployment demo-dashboard", [crash_looping()]),
    }
    conditions = by_type(summarize(Observed(checks, NOW), 1))

    assert {kind: conditions[kind]["reason"] for kind in checks} == {
        "Topics": "TopicsReady",
        "Bucket": "BucketReady",
        "Ingest": "CrashLoopBackOff",
        "Archive": "ImagePullBackOff",
        "Transform": "Error",
        "Alerts": "Unschedulable",
        "Dashboard": "CrashLoopBackOff",
    }
    assert conditions["Transform"]["message"].startswith("CronJob demo-transform: pod demo-transform-1-abcde")


def test_a_refused_apply_a_suspension_and_unlisted_pods_leave_the_check_as_it_was() -> None:
    refused = Check.failed("ApplyFailed", "Deployment demo-ingest: forbidden")
    suspended = Check.failed("Suspended", "Deployment demo-ingest is scaled to 0 (spec.suspend)")

    assert with_pods(refused, "Deployment demo-ingest", [crash_looping()]) == refused
    assert with_pods(suspended, "Deployment demo-ingest", [crash_looping()]) == suspended
    assert with_pods(UNAVAILABLE, "Deployment demo-ingest", None) == UNAVAILABLE
    healthy = pod(containers=[container(running=True)], conditions=scheduled(ready=True))
    assert with_pods(UNAVAILABLE, "Deployment demo-ingest", [healthy]) == UNAVAILABLE


def test_the_condition_message_stays_bounded_for_the_longest_names_and_messages() -> None:
    long = crash_looping(message="e" * 10_000)
    long["metadata"]["name"] = "p" * 63
    check = with_pods(UNAVAILABLE, "Deployment " + "d" * 63, [long])
    assert len(check.message) <= MAX_MESSAGE


def test_the_same_troubled_pods_summarise_to_the_same_status_so_an_unchanged_world_writes_nothing() -> None:
    def status() -> dict[str, Any]:
        ingest = with_pods(UNAVAILABLE, "Deployment demo-ingest", [crash_looping(backoff="40s")])
        return summarize(Observed({**ALL_OK, "Ingest": ingest}, NOW), 1)

    first = status()
    again = summarize(
        Observed(
            {
                **ALL_OK,
                "Ingest": with_pods(UNAVAILABLE, "Deployment demo-ingest", [crash_looping(backoff="5m0s")]),
            },
            NOW,
            previous=first["conditions"],
        ),
        1,
    )
    assert again == first == status()


# --- noticing a change -----------------------------------------------------------------------------


def test_a_pod_notifies_its_pipeline_only_when_its_diagnosis_changes() -> None:
    troubled: dict[str, int] = {}
    healthy = pod(containers=[container(running=True)], conditions=scheduled(ready=True))
    modified = {"type": "MODIFIED"}

    assert not pod_diagnosis_changed(troubled, {"type": None}, pod(phase="Pending", conditions=[]))
    assert not pod_diagnosis_changed(troubled, modified, healthy)
    assert pod_diagnosis_changed(troubled, modified, crash_looping(backoff="10s"))
    # Only the kubelet's back-off grew: the status would say the same, so nothing to do.
    assert not pod_diagnosis_changed(troubled, modified, crash_looping(backoff="20s"))
    assert pod_diagnosis_changed(troubled, modified, crash_looping(message="another error"))
    # The listing after a reconnect: a change missed while the watch was down still counts.
    assert pod_diagnosis_changed(troubled, {"type": None}, healthy)
    assert troubled == {}
    assert pod_diagnosis_changed(troubled, modified, crash_looping())
    assert pod_diagnosis_changed(troubled, {"type": "DELETED"}, crash_looping())
    assert troubled == {}
    assert not pod_diagnosis_changed(troubled, {"type": "DELETED"}, healthy)


def test_the_pods_remembered_as_troubled_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    assert watch.MAX_TRACKED_PODS == 50_000
    monkeypatch.setattr(watch, "MAX_TRACKED_PODS", 100)
    troubled: dict[str, int] = {}
    crashing = crash_looping()
    for i in range(110):
        crashing["metadata"]["uid"] = f"uid-{i}"
        pod_diagnosis_changed(troubled, {"type": "ADDED"}, crashing)
    assert len(troubled) == 100
    assert "uid-0" not in troubled
    assert "uid-109" in troubled
