"""One reconcile of one StockPipeline: render, apply what differs, provision backends, observe.

Handlers call `reconcile()`; it returns the observations and leaves writing the status and
emitting events to the handler. Nothing here decides the status: `status.summarize` does.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from confluent_kafka.admin import AdminClient
from minio import Minio
from minio.error import S3Error

from marketpulse.operator.api import StockPipeline, StockPipelineInvalid, validate_stockpipeline
from marketpulse.operator.backends import buckets, topics
from marketpulse.operator.builders import (
    BuildContext,
    Capabilities,
    Manifest,
    dashboard_url,
    names_for,
    plan_topics,
    render_children,
)
from marketpulse.operator.diff import up_to_date, with_hash
from marketpulse.operator.freshness import QuotesUnreadableError, freshness_from_quotes, read_quotes
from marketpulse.operator.kube import KubeApi, KubeError, Ref
from marketpulse.operator.podhealth import with_pods
from marketpulse.operator.settings import OperatorSettings
from marketpulse.operator.status import Check, Observed
from marketpulse.storage.s3 import minio_client
from marketpulse.workloads import PipelineNames, bootstrap_servers
from marketpulse.workloads.names import LABEL_COMPONENT

T = TypeVar("T")

# Kinds that come and go with the spec (alerts rules removed, dashboard disabled, transform mode
# switched); topics and the warehouse volume hold data and are only removed by deletionPolicy.
PRUNABLE = (
    ("apps/v1", "Deployment"),
    ("batch/v1", "CronJob"),
    ("v1", "Service"),
    ("networking.k8s.io/v1", "Ingress"),
)

Adopt = Callable[[list[Manifest]], None]


@dataclass
class Runtime:
    """What handlers share for the life of the operator process."""

    settings: OperatorSettings
    kube: KubeApi
    capabilities: Capabilities
    # SDK calls (minio, confluent-kafka) block; they get their own threads.
    pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(8, thread_name_prefix="sdk"))
    admins: dict[str, AdminClient] = field(default_factory=dict)
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    async def blocking(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn)

    def admin(self, bootstrap: str) -> AdminClient:
        if bootstrap not in self.admins:
            self.admins[bootstrap] = topics.admin_client(bootstrap)
        return self.admins[bootstrap]

    def lock(self, uid: str) -> asyncio.Lock:
        # Timers and change handlers of one object must not reconcile it concurrently.
        return self.locks.setdefault(uid, asyncio.Lock())

    def context(self, pipeline: StockPipeline) -> BuildContext:
        return BuildContext(
            names=names_for(pipeline),
            image=self.settings.image,
            image_pull_policy=self.settings.image_pull_policy,
            run_as_user=self.settings.run_as_user,
            capabilities=self.capabilities,
            platform=self.settings.platform(),
        )


@dataclass
class ChildResult:
    manifest: Manifest
    live: dict[str, Any] | None = None
    error: KubeError | None = None
    applied: bool = False


@dataclass
class Outcome:
    """What a reconcile saw and did; `observed` feeds `summarize`."""

    observed: Observed
    transient: list[str] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    invalid: StockPipelineInvalid | None = None


def parse(body: Mapping[str, Any]) -> StockPipeline:
    meta = body.get("metadata", {})
    return validate_stockpipeline(
        {
            "apiVersion": body.get("apiVersion"),
            "kind": body.get("kind"),
            "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace")},
            "spec": dict(body.get("spec", {})),
        },
        source=f"{meta.get('namespace')}/{meta.get('name')}",
    )


def _now() -> datetime:
    return datetime.now(UTC)


# --- children -------------------------------------------------------------------------------------


async def _sync_child(kube: KubeApi, desired: Manifest, *, fresh: bool) -> ChildResult:
    result = ChildResult(desired)
    try:
        # A pipeline just created has no children yet: apply without reading first.
        live = None if fresh else await kube.get(Ref.of(desired))
        if up_to_date(desired, live):
            result.live = live
        else:
            result.live = await kube.apply(desired)
            result.applied = True
    except KubeError as exc:
        result.error = exc
    return result


async def _prune(kube: KubeApi, names: PipelineNames, uid: str, desired: list[Manifest]) -> list[str]:
    keep = {(m["kind"], m["metadata"]["name"]) for m in desired}
    listed = await asyncio.gather(
        *(
            kube.list_objects(api_version, kind, names.namespace, names.owned_selector)
            for api_version, kind in PRUNABLE
        )
    )
    stale = [
        Ref(api_version, kind, names.namespace, item["metadata"]["name"])
        for (api_version, kind), items in zip(PRUNABLE, listed, strict=True)
        for item in items
        if (kind, item["metadata"]["name"]) not in keep
        and any(o.get("uid") == uid for o in item["metadata"].get("ownerReferences", []))
    ]
    await asyncio.gather(*(kube.delete(ref) for ref in stale))
    return [f"{ref.kind}/{ref.name}" for ref in stale]


# --- observations ---------------------------------------------------------------------------------


def deployment_check(result: ChildResult, suspended: bool) -> Check:
    name = result.manifest["metadata"]["name"]
    if result.error is not None:
        return Check.failed("ApplyFailed", f"Deployment {name}: {result.error.message}")
    if suspended:
        return Check.failed("Suspended", f"Deployment {name} is scaled to 0 (spec.suspend)")
    live = result.live or {}
    status = live.get("status") or {}
    generation = live.get("metadata", {}).get("generation", 0)
    if status.get("observedGeneration", 0) < generation:
        return Check.failed(
            "Unavailable", f"Deployment {name}: not yet observed by the deployment controller"
        )
    wanted = live.get("spec", {}).get("replicas", 1)
    available = status.get("availableReplicas", 0)
    condition = next((c for c in status.get("conditions", []) if c.get("type") == "Available"), None)
    if condition is not None and condition.get("status") == "True" and available >= wanted:
        return Check.ok("Available", f"Deployment {name}: {available}/{wanted} replicas available")
    detail = condition.get("message", "") if condition else "no Available condition yet"
    return Check.failed(
        "Unavailable", f"Deployment {name}: {available}/{wanted} replicas available; {detail}"
    )


def cronjob_check(result: ChildResult, suspended: bool) -> Check:
    name = result.manifest["metadata"]["name"]
    if result.error is not None:
        return Check.failed("ApplyFailed", f"CronJob {name}: {result.error.message}")
    if suspended:
        return Check.failed("Suspended", f"CronJob {name} is suspended (spec.suspend)")
    spec = result.manifest["spec"]
    last = (result.live or {}).get("status", {}).get("lastScheduleTime", "never")
    return Check.ok("Scheduled", f"CronJob {name} runs on {spec['schedule']!r}; last run: {last}")


def topics_check_strimzi(results: list[ChildResult], caps: Capabilities, cluster: str) -> Check:
    if not caps.kafka_topic_version:
        return Check.failed(
            "StrimziNotInstalled",
            "kafka.topicBackend is strimzi but the cluster serves no kafka.strimzi.io KafkaTopic: "
            "install Strimzi, or use topicBackend direct with bootstrapServers",
        )
    failed = [r for r in results if r.error is not None]
    if failed:
        return Check.failed(
            "ApplyFailed",
            "; ".join(f"KafkaTopic {r.manifest['metadata']['name']}: {r.error}" for r in failed),
        )
    waiting, broken = [], []
    for r in results:
        conditions = (r.live or {}).get("status", {}).get("conditions", [])
        ready = next((c for c in conditions if c.get("type") == "Ready"), None)
        name = r.manifest["metadata"]["name"]
        if ready is None:
            waiting.append(name)
        elif ready.get("status") != "True":
            broken.append(f"{name}: {ready.get('message') or ready.get('reason')}")
    if broken:
        return Check.failed("TopicNotReady", "; ".join(broken))
    if waiting:
        return Check.failed(
            "WaitingForTopicOperator",
            f"KafkaTopics {', '.join(waiting)} are created; waiting for the Strimzi topic operator of "
            f"cluster {cluster} to report them Ready",
        )
    return Check.ok("TopicsReady", f"{len(results)} KafkaTopics are Ready")


async def _ensure_direct_topics(runtime: Runtime, pipeline: StockPipeline, ctx: BuildContext) -> Check:
    bootstrap = bootstrap_servers(pipeline.spec)
    plans = plan_topics(pipeline.spec, ctx)
    timeout = runtime.settings.kafka_timeout_seconds
    try:
        outcome = await runtime.blocking(
            lambda: topics.ensure_topics(runtime.admin(bootstrap), plans, timeout)
        )
    except Exception as exc:
        # Brokers down or unreachable: say so and retry; nothing about the spec is wrong.
        return Check.failed("KafkaUnavailable", f"Kafka at {bootstrap}: {exc}")
    parts = ", ".join(f"{name}: {count} partitions" for name, count in outcome.partitions.items())
    if outcome.larger:
        more = ", ".join(f"{n} has {c}" for n, c in outcome.larger.items())
        return Check.ok("PartitionsKept", f"{parts}; more than requested kept (never shrunk): {more}")
    return Check.ok("TopicsReady", parts)


async def _s3_credentials(runtime: Runtime, pipeline: StockPipeline, namespace: str) -> tuple[str, str]:
    """Access key and secret key for the pipeline's bucket: its credentialsSecret, else the operator's."""
    storage, settings = pipeline.spec.storage, runtime.settings
    access, secret = settings.s3_access_key, settings.s3_secret_key
    if storage.credentials_secret is not None:
        creds = storage.credentials_secret
        data = await runtime.kube.read_secret(namespace, creds.name)
        try:
            access = base64.b64decode(data[creds.access_key_id_key]).decode()
            secret = base64.b64decode(data[creds.secret_access_key_key]).decode()
        except KeyError as exc:
            raise KubeError(
                422, "MissingKey", f"Secret {creds.name} has no key {exc.args[0]} (storage.credentialsSecret)"
            ) from None
    return access, secret


def _minio(runtime: Runtime, pipeline: StockPipeline, access: str, secret: str) -> Minio:
    storage, settings = pipeline.spec.storage, runtime.settings
    return minio_client(
        storage.endpoint or settings.s3_endpoint, access, secret, storage.region or settings.s3_region
    )


async def _s3_client(runtime: Runtime, pipeline: StockPipeline, namespace: str) -> Minio:
    access, secret = await _s3_credentials(runtime, pipeline, namespace)
    return _minio(runtime, pipeline, access, secret)


@dataclass
class BucketResult:
    check: Check
    # Newest tick per watchlist symbol from the archive's quotes; None when it could not be read.
    freshness: list[dict[str, str]] | None = None
    # The S3 secret key the workloads may hold: never to appear in what their pods report.
    secrets: tuple[str, ...] = ()


async def _ensure_bucket(
    runtime: Runtime,
    pipeline: StockPipeline,
    names: PipelineNames,
    logger: logging.Logger | logging.LoggerAdapter[Any],
) -> BucketResult:
    retention = pipeline.spec.storage.retention_days
    try:
        access, secret = await _s3_credentials(runtime, pipeline, names.namespace)
    except KubeError as exc:
        return BucketResult(Check.failed("CredentialsUnavailable", exc.message))
    secrets = (secret,)
    try:
        client = _minio(runtime, pipeline, access, secret)
        outcome = await runtime.blocking(lambda: buckets.ensure_bucket(client, names.bucket, retention))
    except S3Error as exc:
        return BucketResult(
            Check.failed("BucketFailed", f"bucket {names.bucket}: {exc.code}: {exc.message}"), secrets=secrets
        )
    except Exception as exc:
        return BucketResult(Check.failed("S3Unavailable", f"bucket {names.bucket}: {exc}"), secrets=secrets)
    freshness = await _read_freshness(runtime, client, pipeline, names, logger)
    if outcome.refused:
        refused = "; ".join(
            f"{feature} refused by the S3 server ({why})" for feature, why in outcome.refused.items()
        )
        reason = "LifecycleNotSupported" if "lifecycle" in outcome.refused else "FeatureNotSupported"
        return BucketResult(Check.ok(reason, f"bucket {names.bucket} exists; {refused}"), freshness, secrets)
    ready = f"bucket {names.bucket}: versioning on, bronze expires after {retention} days"
    return BucketResult(Check.ok("BucketReady", ready), freshness, secrets)


async def _read_freshness(
    runtime: Runtime,
    client: Minio,
    pipeline: StockPipeline,
    names: PipelineNames,
    logger: logging.Logger | logging.LoggerAdapter[Any],
) -> list[dict[str, str]] | None:
    """Freshness from the archive's quotes: [] before any, None (keep the last) when unreadable."""
    try:
        raw = await runtime.blocking(lambda: read_quotes(client, names.bucket))
        return [] if raw is None else freshness_from_quotes(raw, pipeline.spec.watchlist)
    except QuotesUnreadableError as exc:
        logger.warning("freshness not updated: bucket %s: %s", names.bucket, exc)
    except Exception as exc:  # S3 trouble is the Bucket condition's business; freshness just waits
        logger.debug("freshness not updated: bucket %s: %s", names.bucket, exc)
    return None


async def _nothing() -> None:
    return None


async def _list_pods(kube: KubeApi, names: PipelineNames) -> list[dict[str, Any]]:
    """The pods of the pipeline's workloads (Deployments' and the transform Jobs'), by label."""
    return await kube.list_objects("v1", "Pod", names.namespace, names.owned_selector)


def _by_component(pods: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for pod in pods:
        component = ((pod.get("metadata") or {}).get("labels") or {}).get(LABEL_COMPONENT, "")
        grouped.setdefault(component, []).append(pod)
    return grouped


_TRANSIENT_REASONS = {"KafkaUnavailable", "S3Unavailable", "CredentialsUnavailable"}


async def reconcile(
    runtime: Runtime,
    body: Mapping[str, Any],
    adopt: Adopt,
    logger: logging.Logger | logging.LoggerAdapter[Any],
    *,
    fresh: bool = False,
    prune: bool = True,
) -> Outcome:
    """Bring the children and backends in line with the spec. `fresh`: the pipeline was just
    created, so there is nothing to read back or prune (saves a round trip per child). `prune`:
    look for children the spec no longer wants (only a spec change makes them; False saves a list
    call per kind when a child's own change is the reason to reconcile)."""
    meta = body.get("metadata", {})
    previous = list((body.get("status") or {}).get("conditions", []))
    try:
        pipeline = parse(body)
    except StockPipelineInvalid as exc:
        message = "; ".join(str(e) for e in exc.errors)
        return Outcome(Observed(checks={}, now=_now(), previous=previous, invalid=message), invalid=exc)

    spec = pipeline.spec
    ctx = runtime.context(pipeline)
    names = ctx.names
    desired = render_children(pipeline, ctx)
    adopt(desired)
    desired = [with_hash(m) for m in desired]

    direct = spec.kafka.topic_backend == "direct"
    child_results, prunes, topic_check, bucket_check, listed_pods = await asyncio.gather(
        asyncio.gather(*(_sync_child(runtime.kube, m, fresh=fresh) for m in desired)),
        _nothing() if fresh or not prune else _prune(runtime.kube, names, meta.get("uid", ""), desired),
        _ensure_direct_topics(runtime, pipeline, ctx) if direct else _nothing(),
        _ensure_bucket(runtime, pipeline, names, logger),
        # A pipeline just created has no pods yet.
        _nothing() if fresh else _list_pods(runtime.kube, names),
        return_exceptions=True,
    )
    transient: list[str] = []
    if isinstance(child_results, BaseException):
        raise child_results
    results: list[ChildResult] = list(child_results)
    pruned: list[str] = []
    if prunes is None:
        pass
    elif isinstance(prunes, KubeError):
        transient.append(f"pruning: {prunes}")
    elif isinstance(prunes, BaseException):
        raise prunes
    else:
        pruned = prunes
    # None: not observed (just created, or the list failed), so the workloads' checks stand alone.
    pods: dict[str, list[dict[str, Any]]] | None = None
    if isinstance(listed_pods, KubeError):
        logger.warning("pods not observed: %s", listed_pods)
        if listed_pods.transient:
            transient.append(f"listing pods: {listed_pods}")
    elif isinstance(listed_pods, BaseException):
        raise listed_pods
    elif listed_pods is not None:
        pods = _by_component(listed_pods)

    by_kind: dict[str, list[ChildResult]] = {}
    by_name: dict[tuple[str, str], ChildResult] = {}
    for r in results:
        by_kind.setdefault(r.manifest["kind"], []).append(r)
        by_name[(r.manifest["kind"], r.manifest["metadata"]["name"])] = r
        if r.error is not None and r.error.transient:
            transient.append(f"{r.manifest['kind']} {r.manifest['metadata']['name']}: {r.error}")

    checks: dict[str, Check] = {}
    if direct:
        assert isinstance(topic_check, Check)
        checks["Topics"] = topic_check
    else:
        checks["Topics"] = topics_check_strimzi(
            by_kind.get("KafkaTopic", []), runtime.capabilities, spec.kafka.cluster_name
        )
    if isinstance(bucket_check, BaseException):
        raise bucket_check
    checks["Bucket"] = bucket_check.check
    secrets = (runtime.settings.s3_secret_key, *bucket_check.secrets)
    suspended = spec.suspend

    def workload(component: str) -> Check:
        """The component's Deployment or CronJob check, unless its pods say why they cannot run."""
        name = names.workload(component)
        if ("CronJob", name) in by_name:
            kind, check = "CronJob", cronjob_check(by_name[("CronJob", name)], suspended)
        else:
            kind, check = "Deployment", deployment_check(by_name[("Deployment", name)], suspended)
        found = None if pods is None else pods.get(component, [])
        return with_pods(check, f"{kind} {name}", found, jobs=kind == "CronJob", secrets=secrets)

    freshness = bucket_check.freshness
    if freshness is None:
        freshness = list((body.get("status") or {}).get("freshness", []))
    for component in ("ingest", "archive", "transform"):
        checks[component.capitalize()] = workload(component)
    if spec.alerts.rules:
        checks["Alerts"] = workload("alerts")
    if spec.dashboard.enabled:
        dashboard = workload("dashboard")
        for kind in ("Service", "Ingress"):
            r = by_name[(kind, names.dashboard_service)]
            if r.error is not None:
                dashboard = Check.failed(
                    "ApplyFailed", f"{kind} {names.dashboard_service}: {r.error.message}"
                )
        checks["Dashboard"] = dashboard
    else:
        checks["Dashboard"] = Check.ok("Disabled", "spec.dashboard.enabled is false")
    transient += [f"{name}: {c.message}" for name, c in checks.items() if c.reason in _TRANSIENT_REASONS]

    observed = Observed(
        checks=checks,
        now=_now(),
        previous=previous,
        suspended=suspended,
        topics=list(names.topics),
        bucket=names.bucket,
        dashboard_url=dashboard_url(spec, ctx),
        freshness=freshness,
    )
    applied = [f"{r.manifest['kind']}/{r.manifest['metadata']['name']}" for r in results if r.applied]
    if applied or pruned:
        logger.info("applied %s; pruned %s", ", ".join(applied) or "nothing", ", ".join(pruned) or "nothing")
    return Outcome(observed, transient=transient, applied=applied, pruned=pruned)


# --- deletion -------------------------------------------------------------------------------------


@dataclass
class Cleanup:
    deleted: list[str] = field(default_factory=list)
    retained: list[str] = field(default_factory=list)


async def cleanup(runtime: Runtime, body: Mapping[str, Any]) -> Cleanup:
    """Enforce deletionPolicy before the finalizer lets the pipeline go.

    Delete: topics, bucket and warehouse volume are removed. Retain: they are released from the
    pipeline (ownerReferences dropped) so that garbage collection of the rest leaves them alone.
    """
    pipeline = parse(body)
    spec = pipeline.spec
    ctx = runtime.context(pipeline)
    names = ctx.names
    done = Cleanup()
    data_children: list[Ref] = []
    if spec.kafka.topic_backend == "strimzi" and runtime.capabilities.kafka_topic_version:
        version = runtime.capabilities.kafka_topic_version
        data_children += [
            Ref(version, "KafkaTopic", names.namespace, names.topic_object(t)) for t in names.topics
        ]
    if spec.warehouse.type == "duckdb":
        data_children.append(Ref("v1", "PersistentVolumeClaim", names.namespace, names.warehouse_claim))

    if spec.deletion_policy == "Delete":
        for ref in data_children:
            if await runtime.kube.delete(ref):
                done.deleted.append(f"{ref.kind} {ref.name}")
        if spec.kafka.topic_backend == "direct":
            admin = runtime.admin(bootstrap_servers(spec))
            timeout = runtime.settings.kafka_timeout_seconds
            gone = await runtime.blocking(lambda: topics.delete_topics(admin, names.topics, timeout))
            done.deleted += [f"topic {t}" for t in gone]
        client = await _s3_client(runtime, pipeline, names.namespace)
        if await runtime.blocking(lambda: buckets.delete_bucket(client, names.bucket)):
            done.deleted.append(f"bucket {names.bucket}")
        return done

    for ref in data_children:
        try:
            await runtime.kube.merge_patch(ref, {"metadata": {"ownerReferences": None}})
            done.retained.append(f"{ref.kind} {ref.name}")
        except KubeError as exc:
            if exc.status != 404:
                raise
    if spec.kafka.topic_backend == "direct":
        done.retained += [f"topic {t}" for t in names.topics]
    done.retained.append(f"bucket {names.bucket}")
    return done
