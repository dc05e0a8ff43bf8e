"""Thin kopf handlers: each one locks the pipeline, calls `reconcile`, and writes what changed.

Handlers are registered on a registry built from settings (`build_registry`), not at import
time, so the timer interval and the credentials are the ones read at start-up, and tests run the
real handlers with their own settings through `kopf.testing.KopfRunner(registry=...)`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import kopf
import prometheus_client

from marketpulse.operator.api import GROUP, PLURAL, VERSION
from marketpulse.operator.debounce import Debouncer
from marketpulse.operator.kube import STRIMZI_GROUP, KubeApi, KubeError, Ref, bearer_token, load_configuration
from marketpulse.operator.metrics import API_WRITES, DURATION, ERRORS, RECONCILES, PhaseBook
from marketpulse.operator.podhealth import pod_problem
from marketpulse.operator.reconcile import Outcome, Runtime, cleanup, reconcile
from marketpulse.operator.settings import OperatorSettings
from marketpulse.operator.status import healthy, summarize, transitions
from marketpulse.workloads.names import LABEL_INSTANCE, LABEL_MANAGED_BY, MANAGED_BY

FINALIZER = "marketpulse.io/cleanup"
ANNOTATION_PREFIX = "marketpulse.io"
RETRY_DELAY = 5.0
Logger = logging.Logger | logging.LoggerAdapter[Any]
KIND = "StockPipeline"
log = logging.getLogger(__name__)
STATUS_KEYS = ("observedGeneration", "phase", "conditions", "topics", "bucket", "dashboardUrl", "freshness")
# Pods remembered as being in trouble (uid -> hash of the diagnosis), at most this many.
MAX_TRACKED_PODS = 50_000
Pipeline = tuple[str, str]  # (namespace, name)


@dataclass
class OperatorState:
    settings: OperatorSettings
    runtime: Runtime | None = None
    phases: PhaseBook = field(default_factory=PhaseBook)
    metrics_server: Any = None
    refresher: Debouncer[Pipeline] | None = None
    # Pods whose last diagnosis was a problem: a pod notifies its pipeline only when this changes.
    troubled_pods: dict[str, int] = field(default_factory=dict)

    def require_runtime(self) -> Runtime:
        if self.runtime is None:
            raise kopf.TemporaryError("the operator is still starting", delay=1)
        return self.runtime


def _handled_and_current(body: Mapping[str, Any] | None) -> bool:
    """Not being deleted, and with no spec change waiting for its handler (that handler writes the
    status itself)."""
    if body is None:
        return False
    meta = body.get("metadata", {})
    observed = (body.get("status") or {}).get("observedGeneration")
    return not meta.get("deletionTimestamp") and observed == meta.get("generation")


def status_changes(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """Only the status keys that differ; keys we no longer set are removed (None in a merge patch)."""
    changes = {k: v for k, v in desired.items() if current.get(k) != v}
    changes.update({k: None for k in STATUS_KEYS if k in current and k not in desired})
    return changes


def status_update(
    body: Mapping[str, Any], outcome: Outcome
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The previous status, the status `outcome` calls for, and the keys that changed between them."""
    previous = dict(body.get("status") or {})
    status = summarize(outcome.observed, generation=int(body.get("metadata", {}).get("generation", 0)))
    return previous, status, status_changes(previous, status)


def _owners(body: Mapping[str, Any]) -> list[Pipeline]:
    """(namespace, name) of each StockPipeline that owns this object."""
    meta = body.get("metadata", {})
    return [
        (meta.get("namespace", ""), owner["name"])
        for owner in meta.get("ownerReferences") or []
        if owner.get("kind") == KIND and str(owner.get("apiVersion", "")).startswith(f"{GROUP}/")
    ]


def pod_diagnosis_changed(troubled: dict[str, int], event: Mapping[str, Any], pod: Mapping[str, Any]) -> bool:
    """Record what `pod_problem` says about `pod` after `event`; True when that changed.

    Only pods in trouble are remembered, so healthy pods cost nothing and a pod's routine status
    updates (started, ready) reconcile nothing here: its Deployment's status brings those.
    """
    uid = str((pod.get("metadata") or {}).get("uid", ""))
    problem = None if event.get("type") == "DELETED" else pod_problem(pod)
    now = None if problem is None else hash((problem.reason, problem.message))
    before = troubled.pop(uid, None)
    if now is not None:
        if len(troubled) >= MAX_TRACKED_PODS:  # bounded memory, whatever pods a namespace holds
            troubled.pop(next(iter(troubled)))
        troubled[uid] = now
    return now != before


def _emit_events(body: Mapping[str, Any], previous: Mapping[str, Any], status: Mapping[str, Any]) -> None:
    """An Event per condition that changed status or broke, and per phase change: the moments people
    look for."""
    for condition in transitions(previous.get("conditions", []), status["conditions"]):
        if condition["type"] == "Ready":
            continue
        kopf.event(
            cast(kopf.Body, body),
            type="Normal" if healthy(condition) else "Warning",
            reason=condition["reason"],
            message=f"{condition['type']}: {condition['message']}"[:1024],
        )
    if previous.get("phase") != status["phase"]:
        kopf.event(
            cast(kopf.Body, body),
            type="Warning" if status["phase"] in ("Degraded", "Failed") else "Normal",
            reason=status["phase"],
            message=f"phase {previous.get('phase', 'Pending')} -> {status['phase']}",
        )


def build_registry(settings: OperatorSettings) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    state = OperatorState(settings)
    resource = (GROUP, VERSION, PLURAL)

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        # One source of credentials for kopf's watches and for the operator's own client.
        configuration = load_configuration(settings.kubeconfig)
        token = bearer_token(configuration)
        return kopf.ConnectionInfo(
            server=configuration.host,
            ca_path=configuration.ssl_ca_cert,
            insecure=not configuration.verify_ssl,
            certificate_path=configuration.cert_file,
            private_key_path=configuration.key_file,
            scheme="Bearer" if token else None,
            token=token,
        )

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, logger: Logger, **_: Any) -> None:
        settings.persistence.finalizer = FINALIZER
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=ANNOTATION_PREFIX)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=ANNOTATION_PREFIX, key="last-handled-configuration"
        )
        # Log lines stay logs; Events are posted on purpose (transitions, errors) via kopf.event.
        settings.posting.level = logging.WARNING
        # The API server filters pods, so the operator never receives pods that are not its own.
        settings.watching.label_selectors["v1", "pods"] = f"{LABEL_MANAGED_BY}={MANAGED_BY}"
        settings.watching.server_timeout = 300
        settings.execution.max_workers = 16
        kube = KubeApi(load_configuration(state.settings.kubeconfig))
        capabilities = await kube.discover()
        logger.info("cluster serves: %s", capabilities)
        state.runtime = Runtime(state.settings, kube, capabilities)
        if state.settings.metrics_port:
            server, _thread = prometheus_client.start_http_server(state.settings.metrics_port)
            state.metrics_server = server

    @kopf.on.cleanup(registry=registry)
    async def shutdown(**_: Any) -> None:
        if state.refresher is not None:
            await state.refresher.close()
        if state.metrics_server is not None:
            state.metrics_server.shutdown()
        if state.runtime is not None:
            state.runtime.kube.close()
            state.runtime.pool.shutdown(wait=False, cancel_futures=True)

    @kopf.on.probe(id="pipelines", registry=registry)
    def probe(**_: Any) -> int:
        return len(state.runtime.locks) if state.runtime else 0

    async def run(trigger: str, body: kopf.Body, patch: kopf.Patch, logger: Logger) -> None:
        runtime = state.require_runtime()
        RECONCILES.labels(trigger).inc()
        started = time.perf_counter()
        meta = body.get("metadata", {})
        try:
            async with runtime.lock(meta["uid"]):
                outcome: Outcome = await reconcile(
                    runtime,
                    body,
                    lambda objs: kopf.adopt(objs, owner=body),
                    logger,
                    fresh=trigger == "create",
                )
            _write_status(body, outcome, patch, logger)
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
        if outcome.transient:
            ERRORS.labels(trigger, "temporary").inc()
            raise kopf.TemporaryError("; ".join(outcome.transient), delay=RETRY_DELAY)

    def _write_status(body: kopf.Body, outcome: Outcome, patch: kopf.Patch, logger: Logger) -> None:
        """Patch only the status keys that changed, with an Event for each significant change."""
        previous, status, changes = status_update(body, outcome)
        if changes:
            API_WRITES.labels(KIND, "status").inc()
            logger.info("status changed: %s", ", ".join(sorted(changes)))
            for key, value in changes.items():
                patch.status[key] = value
            _emit_events(body, previous, status)
        state.phases.set(body["metadata"]["uid"], status["phase"])

    async def refresh_from_children(key: Pipeline) -> None:
        """A child changed (a controller wrote its status, someone edited or deleted it, or one of
        its pods got into or out of trouble): reconcile its pipeline now, not at the next periodic
        reconcile, and write what changed."""
        namespace, name = key
        runtime = state.runtime
        if runtime is None:
            return
        ref = Ref(f"{GROUP}/{VERSION}", KIND, namespace, name)
        first = await runtime.kube.get(ref)
        if first is None or not _handled_and_current(first):
            return
        uid = first["metadata"]["uid"]
        RECONCILES.labels("child").inc()
        started = time.perf_counter()
        try:
            async with runtime.lock(uid):
                # Read again under the lock: a handler that held it may have moved the pipeline on.
                body = await runtime.kube.get(ref)
                if body is None or body["metadata"]["uid"] != uid or not _handled_and_current(body):
                    return
                owner = cast(kopf.Body, body)
                outcome = await reconcile(
                    runtime, body, lambda objs: kopf.adopt(objs, owner=owner), log, prune=False
                )
                previous, status, changes = status_update(body, outcome)
                if changes:
                    await runtime.kube.patch_status(ref, changes)
                    log.info(
                        "%s/%s: a child changed; status changed: %s",
                        namespace,
                        name,
                        ", ".join(sorted(changes)),
                    )
                    _emit_events(body, previous, status)
                state.phases.set(uid, status["phase"])
        except KubeError as exc:
            ERRORS.labels("child", "temporary").inc()
            log.warning("%s/%s: reconcile after a child changed: %s", namespace, name, exc)
        finally:
            DURATION.labels("child").observe(time.perf_counter() - started)

    state.refresher = Debouncer(settings.child_refresh_seconds, refresh_from_children)

    async def child_changed(event: Mapping[str, Any], body: kopf.Body, **_: Any) -> None:
        # The initial listing is no change: resume handlers reconcile every pipeline at start-up.
        if event.get("type") is None or state.refresher is None:
            return
        for owner in _owners(body):
            state.refresher.request(owner)

    managed = {LABEL_MANAGED_BY: MANAGED_BY}
    # The children whose status says how the pipeline is doing, written by other controllers.
    for group, version, plural in (("apps", "v1", "deployments"), ("batch", "v1", "cronjobs")):
        kopf.on.event(group, version, plural, labels=managed, id=f"child-{plural}", registry=registry)(
            child_changed
        )
    kopf.on.event(STRIMZI_GROUP, "kafkatopics", labels=managed, id="child-kafkatopics", registry=registry)(
        child_changed
    )

    @kopf.on.event("v1", "pods", labels=managed, id="child-pods", registry=registry)
    async def pod_changed(event: Mapping[str, Any], body: kopf.Body, **_: Any) -> None:
        """A workload's pod got into trouble (image pull, crash loop, config, scheduling) or out
        of it: its pipeline's status says so about a second later. Pods belong to ReplicaSets and
        Jobs, not to the pipeline; their instance label names it. Listings after a reconnect count
        too: a change missed while the watch was down is noticed then."""
        if state.refresher is None or not pod_diagnosis_changed(state.troubled_pods, event, body):
            return
        pipeline = (body.get("metadata", {}).get("labels") or {}).get(LABEL_INSTANCE)
        if pipeline:
            state.refresher.request((body.get("metadata", {}).get("namespace", ""), pipeline))

    @kopf.on.resume(*resource, registry=registry)
    async def resume_pipeline(body: kopf.Body, patch: kopf.Patch, logger: Logger, **_: Any) -> None:
        await run("resume", body, patch, logger)

    @kopf.on.create(*resource, registry=registry)
    async def create_pipeline(body: kopf.Body, patch: kopf.Patch, logger: Logger, **_: Any) -> None:
        await run("create", body, patch, logger)

    @kopf.on.update(*resource, field="spec", registry=registry)
    async def update_pipeline(body: kopf.Body, patch: kopf.Patch, logger: Logger, **_: Any) -> None:
        await run("update", body, patch, logger)

    @kopf.timer(
        *resource,
        interval=settings.resync_seconds,
        initial_delay=settings.resync_seconds,
        # Not while kopf is still handling a change: that reconcile is under way already.
        idle=min(settings.resync_seconds, 1.0),
        registry=registry,
    )
    async def resync_pipeline(body: kopf.Body, patch: kopf.Patch, logger: Logger, **_: Any) -> None:
        await run("timer", body, patch, logger)

    @kopf.on.delete(*resource, registry=registry)
    async def delete_pipeline(body: kopf.Body, logger: Logger, **_: Any) -> None:
        runtime = state.require_runtime()
        RECONCILES.labels("delete").inc()
        try:
            async with runtime.lock(body["metadata"]["uid"]):
                done = await cleanup(runtime, body)
        except KubeError as exc:
            ERRORS.labels("delete", "temporary").inc()
            raise kopf.TemporaryError(f"cleanup: {exc}", delay=RETRY_DELAY) from None
        except kopf.PermanentError:
            raise
        except ValueError as exc:  # an invalid spec cannot say what to keep; let the pipeline go
            logger.warning("cleanup skipped: %s", exc)
            return
        except Exception as exc:  # S3 or Kafka unreachable: the finalizer waits for them
            ERRORS.labels("delete", "temporary").inc()
            raise kopf.TemporaryError(f"cleanup: {exc}", delay=RETRY_DELAY) from None
        finally:
            state.phases.set(body["metadata"]["uid"], None)
            runtime.locks.pop(body["metadata"]["uid"], None)
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

    return registry
