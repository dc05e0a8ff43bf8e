"""Why a workload's pods cannot run, from their status as the kubelet and scheduler write it.

Pure: pod dicts in (as the API server returns them), a `PodProblem` or a `Check` out. The
reconcile lists the pods; the handlers use `pod_problem` to notice a pod whose diagnosis changed.

A pod's own reason is kept verbatim (`CrashLoopBackOff`, `ImagePullBackOff`, `ErrImagePull`,
`CreateContainerConfigError`, `Unschedulable`, ...) so that `kubectl get pods` and the pipeline's
condition say the same thing. Messages are one bounded line: they go into a condition and an Event.
A termination message is whatever the container wrote (with `FallbackToLogsOnError`, its last log
lines), so it is treated as untrusted: control characters removed, credentials redacted, truncated.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from marketpulse.operator.status import Check

# Waiting reasons of a container that is on its way; every other reason means it cannot start.
STARTING = frozenset({"ContainerCreating", "PodInitializing"})
# Concerns whose check already says something more basic than their pods can.
_KEEP = frozenset({"ApplyFailed", "Suspended"})

# How much fits: a pod's own text (termination, kubelet or scheduler message) gets MAX_DETAIL, and
# the whole condition message, names included, stays well under an Event's 1024.
MAX_MESSAGE = 600
MAX_DETAIL = 320
REDACTED = "<redacted>"
_MIN_SECRET = 4  # shorter values would redact ordinary words

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-_]")
# C0/C1 controls, line and paragraph separators, and the invisible and bidi marks that could make
# a message read differently from what it says.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
_PRIVATE_KEY = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)", re.S
)
_ASSIGNED = re.compile(
    r"(?i)\b((?:[a-z0-9]+[_-])*(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|"
    r"private[_-]?key|credentials?|authorization)(?:[_-][a-z0-9]+)*)"
    r"(\"?'?\s*[:=]\s*\"?'?)([^\s\"',;}&]+)"
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_URL_PASSWORD = re.compile(r"(://[^/\s:@]+):[^/\s@]+@")


def one_line(text: str, limit: int, *, keep: str = "head", secrets: Collection[str] = ()) -> str:
    """`text` as a single printable line of at most `limit` characters, credentials redacted.

    `keep="tail"` keeps the end, where the last log lines of a failed start say what went wrong.
    """
    text = _PRIVATE_KEY.sub(REDACTED, text)
    for value in sorted((s for s in secrets if len(s) >= _MIN_SECRET), key=len, reverse=True):
        text = text.replace(value, REDACTED)
    text = _ANSI.sub("", text)
    text = " ".join(_CONTROL.sub(" ", text).split())
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _ASSIGNED.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    text = _URL_PASSWORD.sub(rf"\1:{REDACTED}@", text)
    if len(text) <= limit:
        return text
    return "…" + text[-(limit - 1) :].lstrip() if keep == "tail" else text[: limit - 1].rstrip() + "…"


@dataclass(frozen=True, order=True)
class PodProblem:
    """Why one pod cannot run. Ordered by `rank` first: the most telling problem of a workload wins."""

    rank: int
    pod: str
    reason: str
    message: str


# Lower rank = reported first when several pods of a workload are in trouble.
_RANK_WAITING = 0  # the container cannot start or keeps crashing: the most direct explanation
_RANK_TERMINATED = 1  # a run (a Job's pod) failed
_RANK_UNSCHEDULED = 2  # nothing ran yet; the scheduler says why


def _statuses(pod: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    status = pod.get("status") or {}
    yield from status.get("initContainerStatuses") or []
    yield from status.get("containerStatuses") or []


def _exit(terminated: Mapping[str, Any], secrets: Collection[str]) -> str:
    code = terminated.get("exitCode")
    reason = terminated.get("reason")
    said = one_line(str(terminated.get("message") or ""), MAX_DETAIL, keep="tail", secrets=secrets)
    text = f"exited with code {code}" + (f" ({reason})" if reason else "")
    return f"{text}: {said}" if said else text


def _never_ready_since_restart(pod: Mapping[str, Any], container: Mapping[str, Any]) -> bool:
    """Running again after an exit, and not ready at any moment since it started."""
    running = (container.get("state") or {}).get("running")
    if not running or container.get("ready") or not (container.get("lastState") or {}).get("terminated"):
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    if ready is None or ready.get("status") == "True":
        return False
    # RFC 3339 in UTC, as the kubelet writes them: ordered as strings. A container that became
    # ready after this start and then stopped being ready has a readiness problem, not a crash.
    return str(ready.get("lastTransitionTime") or "") <= str(running.get("startedAt") or "")


def _container_problem(
    pod: Mapping[str, Any], container: Mapping[str, Any], secrets: Collection[str]
) -> PodProblem | None:
    pod_name = str((pod.get("metadata") or {}).get("name", "?"))
    phase = str((pod.get("status") or {}).get("phase") or "")
    name = container.get("name", "?")
    state = container.get("state") or {}
    waiting = state.get("waiting") or {}
    reason = str(waiting.get("reason") or "")
    terminated = state.get("terminated")
    if phase == "Failed":
        # The pod is over (a Job's pod, restartPolicy Never): how it ended is the answer.
        if terminated and terminated.get("exitCode") != 0:
            reason = str(terminated.get("reason") or "Error")
            message = f"pod {pod_name}: container {name} {_exit(terminated, secrets)}"
            return PodProblem(_RANK_TERMINATED, pod_name, reason, message)
        return None
    restarts = (pod.get("spec") or {}).get("restartPolicy", "Always") != "Never"
    # A crash-looping container goes round: terminated (non-zero; a finished init container exits
    # 0), waiting in CrashLoopBackOff, running (not yet ready), terminated again. All of it is one
    # crash loop, so the condition does not flip with every restart, and it is told by how the
    # container last exited: the kubelet's back-off message only says how long it waits (and that
    # grows each time).
    if (
        reason == "CrashLoopBackOff"
        or (restarts and terminated and terminated.get("exitCode") != 0)
        or (restarts and _never_ready_since_restart(pod, container))
    ):
        exited = terminated or (container.get("lastState") or {}).get("terminated")
        detail = f"container {name} keeps crashing" + (f"; it {_exit(exited, secrets)}" if exited else "")
        return PodProblem(_RANK_WAITING, pod_name, "CrashLoopBackOff", f"pod {pod_name}: {detail}")
    if reason and reason not in STARTING:
        said = one_line(str(waiting.get("message") or ""), MAX_DETAIL, secrets=secrets)
        detail = f"container {name}: {said}" if said else f"container {name} cannot start"
        return PodProblem(_RANK_WAITING, pod_name, reason, f"pod {pod_name}: {detail}")
    return None


def pod_problem(pod: Mapping[str, Any], *, secrets: Collection[str] = ()) -> PodProblem | None:
    """Why this pod cannot run, or None while it runs, is on its way, finished or is going away."""
    meta = pod.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return None
    name = str(meta.get("name", "?"))
    status = pod.get("status") or {}
    phase = str(status.get("phase") or "")
    if phase == "Succeeded":
        return None
    found = [p for c in _statuses(pod) if (p := _container_problem(pod, c, secrets)) is not None]
    if found:
        return min(found)
    if phase == "Failed":
        reason = str(status.get("reason") or "Failed")
        said = one_line(str(status.get("message") or ""), MAX_DETAIL, secrets=secrets)
        message = f"pod {name} failed" + (f": {said}" if said else "")
        return PodProblem(_RANK_TERMINATED, name, reason, message)
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            reason = str(condition.get("reason") or "Unschedulable")
            said = one_line(str(condition.get("message") or ""), MAX_DETAIL, secrets=secrets)
            detail = f"cannot be scheduled: {said}" if said else "cannot be scheduled"
            return PodProblem(_RANK_UNSCHEDULED, name, reason, f"pod {name} {detail}")
    return None


def deployment_problem(
    pods: Sequence[Mapping[str, Any]], *, secrets: Collection[str] = ()
) -> PodProblem | None:
    """The most telling problem among a Deployment's pods.

    A failed pod of a Deployment (evicted, say) has been replaced by its ReplicaSet; the
    replacement is the one to judge.
    """
    live = [p for p in pods if (p.get("status") or {}).get("phase") != "Failed"]
    found = [problem for p in live if (problem := pod_problem(p, secrets=secrets)) is not None]
    return min(found) if found else None


JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")


def _job_of(pod: Mapping[str, Any]) -> str:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return next((str(labels[k]) for k in JOB_NAME_LABELS if k in labels), "")


def _created(pod: Mapping[str, Any]) -> str:
    # RFC 3339 in UTC with a `Z`, as the API server writes it: ordered as strings.
    return str((pod.get("metadata") or {}).get("creationTimestamp") or "")


def job_problem(pods: Sequence[Mapping[str, Any]], *, secrets: Collection[str] = ()) -> PodProblem | None:
    """The problem of the newest Job run among a CronJob's pods, or None if it succeeded or is fine.

    Older runs are history: a run that failed yesterday and succeeded since is no problem. Within
    the newest run, a failed attempt stays the answer while the Job retries, so that the
    condition does not flip back and forth with each attempt, until an attempt succeeds.
    """
    if not pods:
        return None
    jobs: dict[str, list[Mapping[str, Any]]] = {}
    for pod in pods:
        jobs.setdefault(_job_of(pod), []).append(pod)
    newest = max(jobs.values(), key=lambda run: max(_created(p) for p in run))
    if any((p.get("status") or {}).get("phase") == "Succeeded" for p in newest):
        return None
    found = [problem for p in newest if (problem := pod_problem(p, secrets=secrets)) is not None]
    return min(found) if found else None


def with_pods(
    check: Check,
    owner: str,
    pods: Sequence[Mapping[str, Any]] | None,
    *,
    jobs: bool = False,
    secrets: Collection[str] = (),
) -> Check:
    """`check` of a workload (`owner`, e.g. "Deployment demo-ingest"), unless its pods say why it
    cannot run: then False with the pod's own reason. `pods` None means they could not be listed."""
    if pods is None or check.reason in _KEEP:
        return check
    problem = (job_problem if jobs else deployment_problem)(pods, secrets=secrets)
    if problem is None:
        return check
    message = one_line(f"{owner}: {problem.message}", MAX_MESSAGE)
    return Check.failed(problem.reason, message)
