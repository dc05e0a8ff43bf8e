"""Why one pod cannot run, from its status as the kubelet and the scheduler write it; untrusted text."""

from __future__ import annotations

from typing import Any

import pytest
from pod_objects import IMAGE, TRACEBACK, container, crash_looping, pod, scheduled

from marketpulse.operator.podhealth import (
    MAX_DETAIL,
    one_line,
    pod_problem,
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
