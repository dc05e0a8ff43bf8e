"""Why a workload's pods cannot run, from pod status as the kubelet and the scheduler write it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from marketpulse.operator import watch
from marketpulse.operator.podhealth import (
    MAX_DETAIL,
    MAX_MESSAGE,
    deployment_problem,
    job_problem,
    one_line,
    pod_problem,
    with_pods,
)
from marketpulse.operator.status import Check, Observed, summarize
from marketpulse.operator.watch import pod_diagnosis_changed

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
IMAGE = "ghcr.io/marketpulse/marketpulse:0.1.0"


def pod(
    name: str = "demo-ingest-6d4cf56db6-x7k2p",
    *,
    component: str = "ingest",
    phase: str = "Running",
    containers: list[dict[str, Any]] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    created: str = "2026-01-02T03:00:00Z",
    job: str | None = None,
    restart_policy: str = "Always",
    **status: Any,
) -> dict[str, Any]:
    """A pod as `kubectl get pod -o json` shows it, for one of the pipeline `demo`'s workloads."""
    labels = {
        "app.kubernetes.io/name": "marketpulse",
        "app.kubernetes.io/instance": "demo",
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "marketpulse",
        "app.kubernetes.io/managed-by": "marketpulse-operator",
    }
    if job is not None:
        labels |= {"batch.kubernetes.io/job-name": job, "job-name": job}
    else:
        labels["pod-template-hash"] = "6d4cf56db6"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "trading",
            "uid": f"uid-{name}",
            "creationTimestamp": created,
            "labels": labels,
        },
        "spec": {"restartPolicy": restart_policy, "containers": [{"name": component, "image": IMAGE}]},
        "status": {
            "phase": phase,
            "conditions": conditions if conditions is not None else scheduled(),
            "hostIP": "10.0.0.5",
            "podIP": "10.244.0.12",
            "startTime": created,
            "qosClass": "Burstable",
            **({"containerStatuses": containers} if containers is not None else {}),
            **status,
        },
    }


def scheduled(ready: bool = False) -> list[dict[str, Any]]:
    not_ready = {"reason": "ContainersNotReady", "message": "containers with unready status: [ingest]"}
    return [
        {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": "2026-01-02T03:00:02Z"},
        {"type": "Initialized", "status": "True", "lastTransitionTime": "2026-01-02T03:00:01Z"},
        {"type": "Ready", "status": str(ready), **({} if ready else not_ready)},
        {"type": "ContainersReady", "status": str(ready), **({} if ready else not_ready)},
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-01-02T03:00:00Z"},
    ]


def container(
    name: str = "ingest",
    *,
    waiting: dict[str, str] | None = None,
    running: bool = False,
    ready: bool | None = None,
    terminated: dict[str, Any] | None = None,
    last: dict[str, Any] | None = None,
    restarts: int = 0,
) -> dict[str, Any]:
    if waiting is not None:
        state: dict[str, Any] = {"waiting": waiting}
    elif terminated is not None:
        state = {"terminated": {**finished(), **terminated}}
    else:
        state = {"running": {"startedAt": "2026-01-02T03:01:12Z"}} if running else {}
    status: dict[str, Any] = {
        "name": name,
        "image": IMAGE,
        "imageID": "" if waiting and "Image" in waiting.get("reason", "") else f"{IMAGE}@sha256:{'ab' * 32}",
        "ready": running if ready is None else ready,
        "restartCount": restarts,
        "started": running,
        "state": state,
        "lastState": {"terminated": {**finished(), **last}} if last is not None else {},
    }
    return status


def finished() -> dict[str, Any]:
    return {
        "containerID": "containerd://" + "c" * 64,
        "startedAt": "2026-01-02T03:01:00Z",
        "finishedAt": "2026-01-02T03:01:02Z",
    }


TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/app/marketpulse/cli/__init__.py", line 88, in ingest\n'
    "    settings = IngestSettings()\n"
    "pydantic_core._pydantic_core.ValidationError: 1 validation error for IngestSettings\n"
    "MARKETPULSE_WATCHLIST\n"
    "  Field required [type=missing]\n"
)


def crash_looping(backoff: str = "1m20s", message: str = TRACEBACK) -> dict[str, Any]:
    return pod(
        containers=[
            container(
                waiting={
                    "reason": "CrashLoopBackOff",
                    "message": (
                        f"back-off {backoff} restarting failed container=ingest "
                        "pod=demo-ingest-6d4cf56db6-x7k2p_trading(0f3c2a4e-8d1b-4c59-9a57-3f7e2b1d6c90)"
                    ),
                },
                last={"exitCode": 1, "reason": "Error", "message": message},
                restarts=4,
            )
        ]
    )


# --- one pod ---------------------------------------------------------------------------------------


def test_a_crash_looping_container_is_reported_by_how_it_last_exited_not_by_the_growing_back_off() -> None:
    problem = pod_problem(crash_looping())

    assert problem is not None
    assert problem.reason == "CrashLoopBackOff"
    assert problem.message.startswith(
        "pod demo-ingest-6d4cf56db6-x7k2p: container ingest keeps crashing; it exited with code 1 (Error): "
    )
    assert problem.message.endswith("MARKETPULSE_WATCHLIST Field required [type=missing]")
    assert "back-off" not in problem.message
    # The kubelet doubles the back-off with each restart; the diagnosis (and so the status) stays.
    assert pod_problem(crash_looping(backoff="5m0s")) == problem


def test_a_crash_loop_is_one_diagnosis_all_the_way_round_exited_backing_off_and_running_not_ready() -> None:
    exit_1 = {"exitCode": 1, "reason": "Error", "message": TRACEBACK}
    just_exited = pod(containers=[container(terminated=exit_1, restarts=3)])
    backing_off = crash_looping()
    running_again = pod(containers=[container(running=True, ready=False, last=exit_1, restarts=4)])
    diagnoses = {pod_problem(p) for p in (just_exited, backing_off, running_again)}

    assert len(diagnoses) == 1
    (problem,) = diagnoses
    assert problem is not None
    assert problem.reason == "CrashLoopBackOff"


def test_a_container_that_was_ready_since_its_restart_has_a_readiness_problem_not_a_crash() -> None:
    conditions = scheduled()
    for condition in conditions:
        if condition["type"] in ("Ready", "ContainersReady"):
            # Became ready after the restart at 03:01:12, and not ready again an hour later.
            condition["lastTransitionTime"] = "2026-01-02T04:00:00Z"
    unready = pod(
        conditions=conditions,
        containers=[
            container(running=True, ready=False, last={"exitCode": 1, "reason": "Error"}, restarts=1)
        ],
    )
    assert pod_problem(unready) is None


def test_a_container_killed_for_memory_says_oomkilled() -> None:
    oom = pod(
        containers=[
            container(
                waiting={"reason": "CrashLoopBackOff", "message": "back-off 10s restarting failed container"},
                last={"exitCode": 137, "reason": "OOMKilled"},
                restarts=1,
            )
        ]
    )
    problem = pod_problem(oom)
    assert problem is not None
    assert problem.reason == "CrashLoopBackOff"
    assert problem.message.endswith("container ingest keeps crashing; it exited with code 137 (OOMKilled)")


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        (
            "ErrImagePull",
            f'failed to pull and unpack image "{IMAGE}": failed to resolve '
            f'reference "{IMAGE}": {IMAGE}: not found',
        ),
        ("ImagePullBackOff", 'Back-off pulling image "ghcr.io/marketpulse/marketpulse:0.1.0"'),
        ("InvalidImageName", 'Failed to apply default image tag "Ghcr.io/x:": invalid reference format'),
    ],
)
def test_an_image_that_cannot_be_pulled_is_reported_with_the_kubelets_own_reason_and_message(
    reason: str, message: str
) -> None:
    problem = pod_problem(
        pod(phase="Pending", containers=[container(waiting={"reason": reason, "message": message})])
    )

    assert problem is not None
    assert problem.reason == reason
    assert problem.message == f"pod demo-ingest-6d4cf56db6-x7k2p: container ingest: {message}"


def test_a_missing_secret_key_is_a_create_container_config_error_naming_the_key_never_a_value() -> None:
    message = "couldn't find key AWS_SECRET_ACCESS_KEY in Secret trading/marketpulse-s3"
    missing_key = pod(
        component="archive",
        phase="Pending",
        containers=[
            container("archive", waiting={"reason": "CreateContainerConfigError", "message": message})
        ],
    )
    missing_secret = pod(
        component="archive",
        phase="Pending",
        containers=[
            container(
                "archive",
                waiting={
                    "reason": "CreateContainerConfigError",
                    "message": 'secret "marketpulse-s3" not found',
                },
            )
        ],
    )

    key_problem, secret_problem = pod_problem(missing_key), pod_problem(missing_secret)
    assert key_problem is not None
    assert secret_problem is not None
    assert key_problem.reason == secret_problem.reason == "CreateContainerConfigError"
    assert key_problem.message.endswith(f"container archive: {message}")
    assert secret_problem.message.endswith('container archive: secret "marketpulse-s3" not found')


def test_an_unschedulable_pod_carries_the_schedulers_message() -> None:
    said = (
        "0/3 nodes are available: 1 Insufficient memory, 2 node(s) had untolerated taint "
        "{node-role.kubernetes.io/control-plane: }. preemption: 0/3 nodes are available: "
        "1 No preemption victims found for incoming pod, 2 Preemption is not helpful for scheduling."
    )
    unschedulable = pod(
        phase="Pending",
        conditions=[
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": said,
                "lastProbeTime": None,
                "lastTransitionTime": "2026-01-02T03:00:00Z",
            }
        ],
    )
    del unschedulable["status"]["hostIP"], unschedulable["status"]["podIP"]

    problem = pod_problem(unschedulable)
    assert problem is not None
    assert problem.reason == "Unschedulable"
    assert problem.message == f"pod demo-ingest-6d4cf56db6-x7k2p cannot be scheduled: {said}"


def test_an_init_container_that_cannot_start_is_reported_too() -> None:
    stuck = pod(
        phase="Pending",
        containers=[container(waiting={"reason": "PodInitializing"})],
        initContainerStatuses=[
            container("migrate", waiting={"reason": "CreateContainerConfigError", "message": "bad"})
        ],
    )
    problem = pod_problem(stuck)
    assert problem is not None
    assert problem.reason == "CreateContainerConfigError"
    assert "container migrate: bad" in problem.message


@pytest.mark.parametrize(
    "healthy",
    [
        pytest.param(pod(phase="Pending", conditions=[]), id="just created, not yet scheduled"),
        pytest.param(
            pod(phase="Pending", containers=[container(waiting={"reason": "ContainerCreating"})]),
            id="container creating",
        ),
        pytest.param(
            pod(containers=[container(running=True)], conditions=scheduled(ready=True)), id="running"
        ),
        pytest.param(
            pod(
                conditions=scheduled(ready=True),
                containers=[container(running=True, last={"exitCode": 1, "reason": "Error"}, restarts=1)],
            ),
            id="ready again after one crash",
        ),
        pytest.param(
            pod(
                conditions=scheduled(ready=True),
                containers=[container(running=True)],
                initContainerStatuses=[
                    container("migrate", terminated={"exitCode": 0, "reason": "Completed"})
                ],
            ),
            id="init container done",
        ),
        pytest.param(
            pod(
                phase="Succeeded",
                job="demo-transform-29467380",
                restart_policy="Never",
                containers=[container("transform", terminated={"exitCode": 0, "reason": "Completed"})],
            ),
            id="a finished Job run",
        ),
    ],
)
def test_pods_starting_running_or_finished_are_no_problem(healthy: dict[str, Any]) -> None:
    assert pod_problem(healthy) is None


def test_a_pod_that_is_going_away_is_no_problem_whatever_its_state() -> None:
    leaving = crash_looping()
    leaving["metadata"]["deletionTimestamp"] = "2026-01-02T03:05:00Z"
    assert pod_problem(leaving) is None


# --- untrusted text --------------------------------------------------------------------------------


def test_a_termination_message_becomes_one_bounded_printable_line_that_keeps_its_end() -> None:
    noisy = (
        "\x1b[31mERROR\x1b[0m\tstarting\r\n" + "x" * 5000 + "\n\u202eevil\x00\x07\nFATAL: cannot connect\n"
    )
    problem = pod_problem(crash_looping(message=noisy))

    assert problem is not None
    detail = problem.message.split("(Error): ", 1)[1]
    assert len(detail) <= MAX_DETAIL
    assert detail.startswith("…")
    assert detail.endswith("xxx evil FATAL: cannot connect")
    assert problem.message.isprintable()
    assert "\x1b" not in problem.message
    assert "\u202e" not in problem.message


def test_kubelet_and_scheduler_messages_are_cut_at_their_end() -> None:
    assert one_line("a" * 300, 100) == "a" * 99 + "…"
    assert one_line("a b\n\nc", 100) == "a b c"


@pytest.mark.parametrize(
    ("said", "secret"),
    [
        ("botocore: signature mismatch for key wJalrXUtnFEMI/K7MDENG", "wJalrXUtnFEMI/K7MDENG"),
        ("connecting with password=hunter2-long", "hunter2-long"),
        ("settings: {'s3_secret_key': 'topsecretvalue', 'bucket': 'b'}", "topsecretvalue"),
        ('{"api_key": "sk-live-abcdef123456"}', "sk-live-abcdef123456"),
        ("SNOWFLAKE_PASSWORD: s3cr3t-pw", "s3cr3t-pw"),
        ("GET /v1 Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig", "eyJhbGciOiJIUzI1NiJ9"),
        ("dsn postgres://app:pa55word@db:5432/x", "pa55word"),
        (
            "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----",
            "MIIEvQIB",
        ),
    ],
)
def test_credentials_in_a_termination_message_are_redacted(said: str, secret: str) -> None:
    problem = pod_problem(crash_looping(message=said), secrets=["wJalrXUtnFEMI/K7MDENG"])

    assert problem is not None
    assert secret not in problem.message
    assert "<redacted>" in problem.message


def test_redaction_leaves_names_of_secrets_and_keys_alone() -> None:
    text = 'couldn\'t find key AWS_SECRET_ACCESS_KEY in Secret trading/marketpulse-s3; secret "x" not found'
    assert one_line(text, 500) == text


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
