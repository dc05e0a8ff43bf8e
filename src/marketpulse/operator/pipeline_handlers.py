"""The handlers of StockPipelines and of their children: each locks the pipeline, reconciles or
cleans it up, and hands the outcome to the status writer. Errors become kopf's retries."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

import kopf

from marketpulse.contract.api import GROUP, KIND, VERSION, StockPipelineInvalid
from marketpulse.operator.debounce import Debouncer
from marketpulse.operator.deletion import cleanup, left_behind
from marketpulse.operator.deletion_budget import CleanupFailedError, WorkloadsStopping
from marketpulse.operator.full_refresh import ANNOTATION as FULL_REFRESH_ANNOTATION
from marketpulse.operator.full_refresh import CONDITION as FULL_REFRESH
from marketpulse.operator.full_refresh import REQUESTED as FULL_REFRESH_REQUESTED
from marketpulse.operator.full_refresh import full_refresh
from marketpulse.operator.kube import KubeError, Ref
from marketpulse.operator.metrics import DURATION, ERRORS, RECONCILES
from marketpulse.operator.reconcile import reconcile
from marketpulse.operator.runtime import OperatorState, Pipeline, Runtime
from marketpulse.operator.status import Check, with_condition
from marketpulse.operator.status_writer import into_patch, to_subresource, write_status
from marketpulse.operator.watch import handled_and_current, owners, pipeline_of_pod, pod_diagnosis_changed

RETRY_DELAY = 5.0
REFUSED_RETRY_DELAY = 30.0
# Pods stop within their grace period; look again soon.
STOPPING_RETRY_DELAY = 2.0
# How many tries of its deletionPolicy cleanup have failed, kept on the pipeline between tries.
FAILURES_ANNOTATION = "marketpulse.io/cleanup-failures"
Logger = logging.Logger | logging.LoggerAdapter[Any]
log = logging.getLogger(__name__)


class PipelineHandlers:
    def __init__(self, state: OperatorState) -> None:
        self.state = state
        state.refresher = Debouncer(state.settings.child_refresh_seconds, self.refresh_from_children)

    # --- the pipeline changed, or it is time to look again ----------------------------------------

    async def resume(self, body: kopf.Body, patch: kopf.Patch, logger: Logger, **_: Any) -> None:
        await self.reconcile("resume", body, patch, logger)

    async def create(self, body: kopf.Body, patch: kopf.Patch, logger: Logger, **_: Any) -> None:
        await self.reconcile("create", body, patch, logger)

    async def update(self, body: kopf.Body, patch: kopf.Patch, logger: Logger, **_: Any) -> None:
        await self.reconcile("update", body, patch, logger)

    async def resync(self, body: kopf.Body, patch: kopf.Patch, logger: Logger, **_: Any) -> None:
        await self.reconcile("timer", body, patch, logger)

    async def annotated(
        self, event: Mapping[str, Any], body: kopf.Body, patch: kopf.Patch, logger: Logger, **_: Any
    ) -> None:
        """The full-refresh annotation is set: act on it now, not at the next resync. A value it
        does not take is reported once, not again on every event while it stays."""
        # The initial listing is handled by the resume handlers; a pipeline being deleted by delete.
        if event.get("type") is None or body.get("metadata", {}).get("deletionTimestamp"):
            return
        if full_refresh_already_refused(body):
            return
        await self.reconcile("annotation", body, patch, logger)

    async def reconcile(self, trigger: str, body: kopf.Body, patch: kopf.Patch, logger: Logger) -> None:
        runtime = self.state.require_runtime()
        RECONCILES.labels(trigger).inc()
        started = time.perf_counter()
        meta = body.get("metadata", {})
        try:
            async with runtime.lock(meta["uid"]):
                outcome = await reconcile(
                    runtime,
                    body,
                    lambda objs: kopf.adopt(objs, owner=body),
                    logger,
                    fresh=trigger == "create",
                    take_full_refresh=True,
                )
            await write_status(body, outcome, into_patch(patch), self.state.phases, logger)
            if outcome.full_refresh_requested is not None:
                took_full_refresh(body, patch, outcome.full_refresh_requested, logger)
        except KubeError as exc:
            ERRORS.labels(trigger, "temporary").inc()
            raise kopf.TemporaryError(f"Kubernetes API: {exc}", delay=RETRY_DELAY) from None
        except Exception:
            ERRORS.labels(trigger, "unexpected").inc()
            raise
        finally:
            # Observed last, so a finished reconcile has its status write counted already.
            DURATION.labels(trigger).observe(time.perf_counter() - started)
        if outcome.invalid is not None:
            ERRORS.labels(trigger, "permanent").inc()
            raise kopf.PermanentError(str(outcome.invalid))
        if outcome.refused:
            # The platform's policy, or a Secret its owner has not marked: fixed outside the spec
            # (a label, an allow-list), so look again now and then rather than give up.
            ERRORS.labels(trigger, "refused").inc()
            raise kopf.TemporaryError("; ".join(outcome.refused), delay=REFUSED_RETRY_DELAY)
        if outcome.transient:
            ERRORS.labels(trigger, "temporary").inc()
            raise kopf.TemporaryError("; ".join(outcome.transient), delay=RETRY_DELAY)

    # --- one of its children or pods changed ------------------------------------------------------

    async def child_changed(self, event: Mapping[str, Any], body: kopf.Body, **_: Any) -> None:
        # The initial listing is no change: resume handlers reconcile every pipeline at start-up.
        if event.get("type") is None or self.state.refresher is None:
            return
        for owner in owners(body):
            self.state.refresher.request(owner)

    async def pod_changed(self, event: Mapping[str, Any], body: kopf.Body, **_: Any) -> None:
        """A workload's pod got into trouble (image pull, crash loop, config, scheduling) or out
        of it: its pipeline's status says so about a second later. Listings after a reconnect count
        too: a change missed while the watch was down is noticed then."""
        state = self.state
        if state.refresher is None or not pod_diagnosis_changed(state.troubled_pods, event, body):
            return
        pipeline = pipeline_of_pod(body)
        if pipeline:
            state.refresher.request(pipeline)

    async def refresh_from_children(self, key: Pipeline) -> None:
        """A child changed (a controller wrote its status, someone edited or deleted it, or one of
        its pods got into or out of trouble): reconcile its pipeline now, not at the next periodic
        reconcile, and write what changed."""
        namespace, name = key
        runtime = self.state.runtime
        if runtime is None:
            return
        ref = Ref(f"{GROUP}/{VERSION}", KIND, namespace, name)
        first = await runtime.kube.get(ref)
        if first is None or not handled_and_current(first):
            return
        uid = first["metadata"]["uid"]
        RECONCILES.labels("child").inc()
        started = time.perf_counter()
        try:
            async with runtime.lock(uid):
                # Read again under the lock: a handler that held it may have moved the pipeline on.
                body = await runtime.kube.get(ref)
                if body is None or body["metadata"]["uid"] != uid or not handled_and_current(body):
                    return
                owner = cast(kopf.Body, body)
                outcome = await reconcile(
                    runtime, body, lambda objs: kopf.adopt(objs, owner=owner), log, prune=False
                )
                send = to_subresource(runtime.kube, ref)
                why = f"{namespace}/{name}: a child changed; "
                await write_status(body, outcome, send, self.state.phases, log, why=why)
        except KubeError as exc:
            ERRORS.labels("child", "temporary").inc()
            log.warning("%s/%s: reconcile after a child changed: %s", namespace, name, exc)
        finally:
            DURATION.labels("child").observe(time.perf_counter() - started)

    # --- it is being deleted ----------------------------------------------------------------------

    async def delete(self, body: kopf.Body, patch: kopf.Patch, logger: Logger, **_: Any) -> None:
        """Carry out the deletionPolicy. While workloads stop or a step fails, the Cleanup condition
        says why; a step that keeps failing is given up on after the budget's tries, keeping what
        is left and saying so, so that the finalizer never holds the pipeline (or its namespace)."""
        state = self.state
        runtime = state.require_runtime()
        meta = body["metadata"]
        uid = meta["uid"]
        budget = runtime.settings.cleanup_budget()
        RECONCILES.labels("delete").inc()
        try:
            async with runtime.lock(uid):
                done = await cleanup(runtime, body)
        except WorkloadsStopping as exc:
            cleanup_condition(body, patch, Check.failed("StoppingWorkloads", str(exc)))
            raise kopf.TemporaryError(str(exc), delay=STOPPING_RETRY_DELAY) from None
        except StockPipelineInvalid as exc:  # an invalid spec cannot say what to keep; let it go
            logger.warning("cleanup skipped: %s", exc)
            return
        except Exception as exc:
            failure = as_failure(exc)
            failures = int((meta.get("annotations") or {}).get(FAILURES_ANNOTATION, "0")) + 1
            terminating = await namespace_terminating(runtime, meta["namespace"])
            if budget.exhausted(failure, failures, terminating):
                ERRORS.labels("delete", "abandoned").inc()
                abandon(body, failure, await left_behind(runtime, body), failures, terminating, logger)
                return
            ERRORS.labels("delete", "permanent" if failure.permanent else "temporary").inc()
            limit = budget.permanent_attempts if failure.permanent else budget.attempts
            then = f"after {limit} tries the pipeline is let go and what is left is kept"
            remedy = f"; to finish it, {failure.remedy}" if failure.remedy else ""
            message = f"{failure.message} (try {failures} of {limit}; {then}{remedy})"
            patch.metadata.annotations[FAILURES_ANNOTATION] = str(failures)
            cleanup_condition(body, patch, Check.failed(failure.reason, message))
            raise kopf.TemporaryError(f"cleanup: {message}", delay=budget.retry_seconds) from None
        finally:
            state.phases.set(uid, None)
            runtime.locks.pop(uid, None)
        if done.retained:
            kopf.event(
                body,
                type="Normal",
                reason="Retained",
                message=(
                    f"deletionPolicy Retain: kept {', '.join(done.retained)}; delete them by hand when "
                    "no longer needed"
                )[:1024],
            )
        if done.deleted:
            kopf.event(
                body, type="Normal", reason="Deleted", message=f"deleted {', '.join(done.deleted)}"[:1024]
            )


def full_refresh_already_refused(body: Mapping[str, Any]) -> bool:
    """The annotation holds a value it does not take, and the status says so already."""
    refusal = full_refresh(body, datetime.now(UTC), act=False).check
    if refusal is None or refusal.status == "True":
        return False
    conditions = (body.get("status") or {}).get("conditions", [])
    return any(c.get("type") == FULL_REFRESH and c.get("message") == refusal.message for c in conditions)


def took_full_refresh(body: kopf.Body, patch: kopf.Patch, token: str, logger: Logger) -> None:
    """A full refresh was handed to the transform: the annotation goes (with the status, in one
    patch), and an Event says what happens next."""
    patch.metadata.annotations[FULL_REFRESH_ANNOTATION] = None
    message = (
        f"{FULL_REFRESH_ANNOTATION} taken at {token}: the transform's next run rebuilds silver and gold "
        "from bronze once (dbt build --full-refresh)"
    )
    logger.info("%s", message)
    kopf.event(body, type="Normal", reason=FULL_REFRESH_REQUESTED, message=message)


def as_failure(exc: Exception) -> CleanupFailedError:
    if isinstance(exc, CleanupFailedError):
        return exc
    if isinstance(exc, KubeError):
        return CleanupFailedError(
            "KubernetesApi",
            f"Kubernetes API: {exc}",
            permanent=exc.status == 403,
            remedy="grant the operator's ServiceAccount the rights its chart gives it",
        )
    # Nothing expected: retried like a server that is down, and logged whole by kopf.
    log.exception("cleanup failed unexpectedly")
    return CleanupFailedError("CleanupError", type(exc).__name__, permanent=False)


async def namespace_terminating(runtime: Runtime, namespace: str) -> bool:
    try:
        found = await runtime.kube.get(Ref("v1", "Namespace", "", namespace))
    except KubeError:
        return False
    return bool(found and (found.get("status") or {}).get("phase") == "Terminating")


def cleanup_condition(body: Mapping[str, Any], patch: kopf.Patch, check: Check) -> None:
    status = body.get("status") or {}
    generation = int(body.get("metadata", {}).get("generation", 0))
    now = datetime.now(UTC)
    patch.status["phase"] = "Deleting"
    patch.status["conditions"] = with_condition(
        status.get("conditions", []), "Cleanup", check, now, generation
    )


def abandon(
    body: kopf.Body,
    failure: CleanupFailedError,
    kept: list[str],
    failures: int,
    terminating: bool,
    logger: Logger,
) -> None:
    """Let the pipeline go with its data partly deleted: say what may be left, loudly, in the log
    (which outlives the pipeline and a namespace being deleted) and in an Event where one can be made."""
    why = (
        "its namespace is being deleted" if terminating and failure.permanent else f"{failures} tries failed"
    )
    message = (
        f"deletionPolicy Delete given up ({why}): {failure.message}. These may be left and are "
        f"no longer managed: {', '.join(kept)}; delete them by hand"
    )
    logger.warning("%s", message)
    if not terminating:  # a namespace being deleted refuses new Events
        kopf.event(body, type="Warning", reason="CleanupAbandoned", message=message[:1024])
