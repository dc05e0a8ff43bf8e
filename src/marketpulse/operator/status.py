"""The StockPipeline status, computed by one pure function from what a reconcile observed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from marketpulse.contract.api import Condition, StockPipelineStatus, SymbolFreshness
from marketpulse.contract.api.v1alpha1 import ConditionStatus, Phase

# Concerns in the order they are reported; Ready summarises them.
CONCERNS = ("Topics", "Bucket", "Ingest", "Archive", "Transform", "Alerts", "Dashboard")
READY = "Ready"

# Reasons that mean "on its way", not "broken": the pipeline is Provisioning, not Degraded
# (and Ready's own reason while it is).
PROGRESSING = frozenset(
    {
        "Unavailable",
        "Progressing",
        "Pending",
        "WaitingForTopicOperator",
        "NotObserved",
        "Created",
        "Provisioning",
    }
)


@dataclass(frozen=True)
class Check:
    """What a reconcile found out about one concern."""

    status: ConditionStatus
    reason: str
    message: str = ""

    @classmethod
    def ok(cls, reason: str, message: str = "") -> Check:
        return cls("True", reason, message)

    @classmethod
    def failed(cls, reason: str, message: str = "") -> Check:
        return cls("False", reason, message)


@dataclass(frozen=True)
class Observed:
    """Everything `summarize` needs; built by the reconcile, plain data."""

    checks: Mapping[str, Check]
    now: datetime
    previous: Sequence[Mapping[str, Any]] = ()
    suspended: bool = False
    invalid: str | None = None
    # Refused by the platform's policy (endpoints, Secrets): nothing applied or contacted.
    refused: str | None = None
    topics: Sequence[str] = ()
    bucket: str | None = None
    dashboard_url: str | None = None
    freshness: Sequence[Mapping[str, Any]] = field(default_factory=list)
    # Conditions reported beside the concerns, not counted towards the phase or Ready (FullRefresh).
    notices: Mapping[str, Check] = field(default_factory=dict)
    last_full_refresh: str | None = None


def _phase(checks: Mapping[str, Check], suspended: bool, invalid: str | None) -> Phase:
    if invalid is not None:
        return "Failed"
    if suspended:
        return "Suspended"
    not_ready = [c for c in checks.values() if c.status != "True"]
    if not not_ready:
        return "Ready"
    if all(c.status == "Unknown" or c.reason in PROGRESSING for c in not_ready):
        return "Provisioning"
    return "Degraded"


def _ready(checks: Mapping[str, Check], phase: str, invalid: str | None, refused: str | None) -> Check:
    if invalid is not None:
        return Check.failed("InvalidSpec", invalid)
    if refused is not None:
        return Check.failed("Refused", refused)
    if phase == "Suspended":
        return Check.failed("Suspended", "spec.suspend is true: workloads are scaled to zero, data is kept")
    waiting = [name for name, c in checks.items() if c.status != "True"]
    if not waiting:
        return Check.ok("PipelineReady", "every component is ready")
    first = checks[waiting[0]]
    return Check.failed(first.reason if phase == "Degraded" else phase, f"not ready: {', '.join(waiting)}")


def summarize(observed: Observed, generation: int) -> dict[str, Any]:
    """The status subresource (wire form) for `observed` at `generation`.

    A condition keeps its lastTransitionTime while its status stays the same, so summarising an
    unchanged world twice gives byte-identical status and the handler writes nothing.
    """
    ordered = {name: observed.checks[name] for name in CONCERNS if name in observed.checks}
    stopped = observed.invalid if observed.invalid is not None else observed.refused
    phase = _phase(ordered, observed.suspended, stopped)
    checks = {
        **ordered,
        READY: _ready(ordered, phase, observed.invalid, observed.refused),
        **observed.notices,
    }
    before = {c.get("type"): c for c in observed.previous}
    conditions = []
    for kind, check in checks.items():
        old = before.get(kind)
        since = old["lastTransitionTime"] if old and old.get("status") == check.status else None
        conditions.append(
            Condition(
                type=kind,
                status=check.status,
                reason=check.reason,
                message=check.message,
                last_transition_time=since or observed.now,
                observed_generation=generation,
            )
        )
    status = StockPipelineStatus(
        observed_generation=generation,
        phase=phase,
        conditions=conditions,
        topics=list(observed.topics),
        bucket=observed.bucket,
        dashboard_url=observed.dashboard_url,
        last_full_refresh=observed.last_full_refresh,
        freshness=[SymbolFreshness.model_validate(entry) for entry in observed.freshness],
    )
    # Unset keys stay out of the wire form: a status patch then removes what is no longer known.
    return status.model_dump(
        mode="json", exclude_none=True, exclude=None if status.freshness else {"freshness"}
    )


def healthy(condition: Mapping[str, Any]) -> bool:
    """True, or False only because it is on its way (the reasons in PROGRESSING)."""
    return condition.get("status") == "True" or condition.get("reason") in PROGRESSING


def transitions(
    previous: Sequence[Mapping[str, Any]], current: Sequence[Mapping[str, Any]]
) -> list[dict[str, str]]:
    """Conditions whose status changed (or appeared), or that went from on its way to broken or
    back while staying False (Unavailable -> CrashLoopBackOff): the significant moments worth an
    Event. A change from one broken reason to another (ErrImagePull -> ImagePullBackOff) is not."""
    before = {c.get("type"): c for c in previous}
    return [
        dict(c)
        for c in current
        if (old := before.get(c["type"])) is None
        or old.get("status") != c["status"]
        or healthy(old) != healthy(c)
    ]


def with_condition(
    previous: Sequence[Mapping[str, Any]], kind: str, check: Check, now: datetime, generation: int
) -> list[dict[str, Any]]:
    """`previous` with the condition `kind` set to `check` (its lastTransitionTime kept while its
    status stays the same): for the Cleanup condition, written outside a reconcile."""
    old = next((c for c in previous if c.get("type") == kind), None)
    since = old["lastTransitionTime"] if old and old.get("status") == check.status else None
    condition = Condition(
        type=kind,
        status=check.status,
        reason=check.reason,
        message=check.message,
        last_transition_time=since or now,
        observed_generation=generation,
    ).model_dump(mode="json", by_alias=True, exclude_none=True)
    return [*(dict(c) for c in previous if c.get("type") != kind), condition]
